"""The run config schema: every key, its type, its range, and one clear message when wrong.

Hydra composes ``conf/`` into a DictConfig; :func:`fer_exp.config.validate` turns it into a
frozen :class:`RunConfig` or raises :class:`~fer_exp.errors.ConfigError` naming the key, the
value and what is allowed. Nothing here imports TensorFlow, so a bad value fails in well under
a second.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from fer_exp.config.augmentation import AugmentationConfig
from fer_exp.config.base import StrictModel
from fer_exp.config.data import DataConfig
from fer_exp.models import ModelConfig
from fer_exp.training.schedules import Monitor, ScheduleConfig


class OptimizerConfig(BaseModel):
    """A Keras optimizer built with Hydra's ``instantiate`` from ``_target_``.

    The common keys are checked here; other keyword arguments pass through to the class.
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    target: str = Field(alias="_target_", pattern=r"^keras\.optimizers\.[A-Za-z]\w*$")
    learning_rate: PositiveFloat
    weight_decay: NonNegativeFloat | None = None
    momentum: Annotated[float, Field(ge=0, lt=1)] | None = None
    clipnorm: PositiveFloat | None = None


# --------------------------------------------------------------------------- training



class EarlyStoppingConfig(StrictModel):
    enabled: bool = True
    monitor: Monitor = "val_accuracy"
    patience: NonNegativeInt = 8
    min_delta: NonNegativeFloat = 0.0
    restore_best_weights: bool = True


class CallbacksConfig(StrictModel):
    checkpoint_monitor: Monitor = "val_accuracy"
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()


class ThreadsConfig(StrictModel):
    """TensorFlow thread pools; 0 lets TensorFlow use every core."""

    intra_op: NonNegativeInt = 0
    inter_op: NonNegativeInt = 0


TTA_MAX_SHIFT = 8  # pixels: test-time views are small moves of the face (a sixth of a 48-px image)


class RunConfig(StrictModel):
    data: DataConfig
    augmentation: AugmentationConfig
    model: ModelConfig
    optimizer: OptimizerConfig
    schedule: ScheduleConfig
    callbacks: CallbacksConfig = CallbacksConfig()
    threads: ThreadsConfig = ThreadsConfig()

    batch_size: Annotated[int, Field(ge=1, le=65536)] = 64
    epochs: Annotated[int, Field(ge=1, le=100_000)] = 15
    seed: NonNegativeInt = 42
    deterministic: bool = False
    class_weight: Literal["balanced", "none"] = "balanced"
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    time_budget_min: PositiveFloat | None = None  # stop when another epoch would not fit
    # with a budget: play a step-based schedule (cosine, onecycle, step) faster so that it ends
    # in the epochs that fit, instead of being cut off half-way
    time_budget_fit_schedule: bool = True
    tta: bool = False  # also evaluate with horizontal-flip test-time augmentation (*_tta metrics)
    # with tta: also average over the image shifted this many pixels up, down, left, right (10 views)
    tta_shift: Annotated[int, Field(ge=0, le=TTA_MAX_SHIFT)] = 0
    # half-precision compute, float32 weights: bfloat16 for CPUs with AMX/AVX512-BF16 (and recent
    # GPUs), float16 for GPUs with tensor cores, auto = whichever this machine computes natively
    mixed_precision: Literal["off", "auto", "bfloat16", "float16"] = "off"
    limit_train_batches: PositiveInt | None = None
    limit_val_batches: PositiveInt | None = None
    preview_images: Annotated[int, Field(ge=0, le=256)] = 32
    # the final metric a job returns to the sweeper (Optuna maximizes/minimizes it)
    optimized_metric: str = "best_val_accuracy"

    experiment_name: Annotated[str, Field(min_length=1)] = "fer_exp"
    run_name: str | None = None
    tracking_uri: Annotated[str, Field(min_length=1)]
    # none: an unreachable tracking store stops the run before training; local: ./mlflow.db instead
    tracking_fallback: Literal["none", "local"] = "none"
    # an interrupted run's output folder or MLflow run id: continue it from its last epoch
    resume: str | None = None

    def to_tree(self) -> dict[str, Any]:
        """The complete config as nested dicts, as logged to MLflow."""
        tree = self.model_dump(by_alias=True)
        tree["optimizer"] = self.optimizer_kwargs()
        return tree

    def optimizer_kwargs(self) -> dict[str, Any]:
        """``_target_`` and the keyword arguments actually set (unset optional keys left out)."""
        return self.optimizer.model_dump(by_alias=True, exclude_none=True)

    @model_validator(mode="after")
    def _coherent(self):
        if self.data.class_mode != "categorical" and (self.augmentation.mixup_prob or self.augmentation.cutmix_prob):
            raise ValueError("mixup and cutmix mix one-hot labels: use data.class_mode=categorical")
        if self.data.class_mode == "sparse" and self.label_smoothing:
            raise ValueError("label_smoothing needs one-hot targets: use data.class_mode=categorical "
                             "(Keras's sparse cross-entropy has no smoothing)")
        if self.tta_shift and not self.tta:
            raise ValueError(f"tta_shift={self.tta_shift} shifts the test-time views of tta: set tta=true too")
        return self

    @field_validator("optimized_metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v in ("best_val_accuracy", "val_macro_f1", "train_time_s") or re.fullmatch(
                r"val_(f1|precision|recall)\.\w+", v):
            return v
        raise ValueError("must be a final metric: best_val_accuracy, val_macro_f1, train_time_s, "
                         "or val_f1.<class> / val_precision.<class> / val_recall.<class>")

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _bool_precision(cls, v: Any) -> Any:
        # false/true are what this key took before it had a choice of dtype
        return {False: "off", True: "float16", None: "off"}.get(v, v) if isinstance(v, bool | None) else v

    @field_validator("class_weight", mode="before")
    @classmethod
    def _none_means_off(cls, v: Any) -> Any:
        return "none" if v is None else v


