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
from fer_exp.training.monitors import Monitor
from fer_exp.training.schedules import ScheduleConfig


class OptimizerConfig(BaseModel):
    """A Keras optimizer built with Hydra's ``instantiate`` from ``_target_``.

    The common keys are checked here; other keyword arguments pass through to the class.
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    target: str = Field(
        alias="_target_",
        pattern=r"^keras\.optimizers\.[A-Za-z]\w*$",
        description="The Keras optimizer class, e.g. `keras.optimizers.AdamW`; set by the `optimizer=` option.",
    )
    learning_rate: PositiveFloat = Field(
        description="The base (peak) learning rate; the `schedule` shapes it over training."
    )
    weight_decay: NonNegativeFloat | None = Field(
        None, description="Decoupled weight decay (AdamW, and optimizers that take it); null = the class's default."
    )
    momentum: Annotated[float, Field(ge=0, lt=1)] | None = Field(
        None, description="Momentum (SGD, RMSprop); null = the class's default."
    )
    clipnorm: PositiveFloat | None = Field(None, description="Clip each gradient to this norm; null = no clipping.")


# --------------------------------------------------------------------------- training


class EarlyStoppingConfig(StrictModel):
    """Keras's EarlyStopping, resumable: its counters are checkpointed with every epoch."""

    enabled: bool = Field(True, description="Stop when the monitored value has not improved for `patience` epochs.")
    monitor: Monitor = Field(
        "val_accuracy", description="The per-epoch value early stopping watches (`val_f1`: the epoch's macro-F1)."
    )
    patience: NonNegativeInt = Field(8, description="Epochs without improvement before training stops.")
    min_delta: NonNegativeFloat = Field(0.0, description="The smallest change that counts as an improvement.")
    restore_best_weights: bool = Field(True, description="On stopping, go back to the weights of the best epoch.")


class CallbacksConfig(StrictModel):
    """What the training callbacks watch: checkpoints and early stopping."""

    checkpoint_monitor: Monitor = Field(
        "val_accuracy",
        description="The value whose best epoch is kept as `checkpoints/best.keras` (and evaluated at the end, "
        "as `best_epoch`); `val_f1`, the epoch's macro-F1, keeps the epoch best on the rare classes too.",
    )
    early_stopping: EarlyStoppingConfig = Field(EarlyStoppingConfig(), description="Early stopping's settings.")


class ThreadsConfig(StrictModel):
    """TensorFlow thread pools; 0 lets TensorFlow use every core."""

    intra_op: NonNegativeInt = Field(
        0,
        description="Threads inside one op (TensorFlow's intra-op pool); 0 = "
        "TensorFlow's default (all cores), or cores / n_jobs in a "
        "joblib sweep.",
    )
    inter_op: NonNegativeInt = Field(
        0, description="Ops run in parallel (TensorFlow's inter-op pool); 0 = TensorFlow's default."
    )


class CompareConfig(StrictModel):
    """How a sweep's parent run compares its jobs when the sweep ends (``python -m fer_exp.compare``
    takes the same choices as ``--baseline`` and ``--by``)."""

    baseline: str | None = Field(
        None,
        description="The setting every other is compared with: a label (`augmentation=none`) or a value "
        "one setting alone holds (`none`); null = the swept keys' first values (job 0's setting).",
    )
    by: str | None = Field(
        None,
        description="Group the jobs by this one param (e.g. `augmentation`, `optimizer.learning_rate`); null = by "
        "every param that differs between the jobs but the seed.",
    )


TTA_MAX_SHIFT = 8  # pixels: test-time views are small moves of the face (a sixth of a 48-px image)


class RunConfig(StrictModel):
    """One run: data + augmentation + model + optimizer + schedule, and how to train and track it."""

    data: DataConfig = Field(description="Where the images come from and how they become model inputs.")
    augmentation: AugmentationConfig = Field(description="How training images are augmented.")
    model: ModelConfig = Field(description="The architecture and its hyperparameters.")
    optimizer: OptimizerConfig = Field(description="The Keras optimizer and its arguments.")
    schedule: ScheduleConfig = Field(description="How the learning rate changes over training.")
    callbacks: CallbacksConfig = Field(CallbacksConfig(), description="Checkpoint and early-stopping settings.")
    threads: ThreadsConfig = Field(ThreadsConfig(), description="TensorFlow's thread pools.")
    compare: CompareConfig = Field(CompareConfig(), description="How a sweep compares its jobs over seeds.")

    batch_size: Annotated[int, Field(ge=1, le=65536, description="Images per training and evaluation batch.")] = 64
    epochs: Annotated[
        int,
        Field(
            ge=1,
            le=100_000,
            description="The most epochs to train (early stopping or `time_budget_min` may stop sooner).",
        ),
    ] = 15
    seed: NonNegativeInt = Field(
        42,
        description="Seeds Python, NumPy, TensorFlow and both input pipelines: the "
        "same config on the same CPU gives the same metrics.",
    )
    deterministic: bool = Field(
        False,
        description="Also turn on TensorFlow's op determinism: bit-identical metrics run to run on one "
        "machine with the same thread settings (not across thread counts or processors); slower.",
    )
    class_weight: Literal["balanced", "none"] = Field(
        "balanced",
        description="`balanced`: scikit-learn's `compute_class_weight('balanced')` on the train labels "
        "weights the loss; `none` (or null): unweighted.",
    )
    label_smoothing: Annotated[
        float,
        Field(ge=0, lt=1, description="Cross-entropy label smoothing (0 = off); needs one-hot (categorical) labels."),
    ] = 0.0
    time_budget_min: PositiveFloat | None = Field(
        None,
        description="Wall-clock training budget in minutes: stop after the epoch that leaves too little time "
        "for another, so that same-budget comparisons are exact (null = train all epochs).",
    )
    time_budget_fit_schedule: bool = Field(
        True,
        description="With a budget, play a step-based schedule (cosine, onecycle, step) faster so that it "
        "ends in the epochs that fit (planned from the mean epoch time, logged as "
        "`budget_epochs`) instead of being cut off half-way.",
    )
    tta: bool = Field(
        False,
        description="Also evaluate with horizontal-flip test-time augmentation "
        "(`val_accuracy_tta`, `val_macro_f1_tta`).",
    )
    tta_shift: Annotated[
        int,
        Field(
            ge=0,
            le=TTA_MAX_SHIFT,
            description="With `tta`: also average over the image and its mirror shifted "
            "this many pixels up, down, left and right (10 views instead of 2; "
            "0 = flip only).",
        ),
    ] = 0
    mixed_precision: Literal["off", "auto", "bfloat16", "float16"] = Field(
        "off",
        description="Half-precision compute with float32 weights: `bfloat16` for CPUs with AMX or "
        "AVX512-BF16 (and recent GPUs), `float16` for GPUs with tensor cores, `auto` for "
        "whichever this machine computes natively (else off); `true`/`false` still mean "
        "`float16`/`off`. The choice is logged as `env.precision`.",
    )
    limit_train_batches: PositiveInt | None = Field(
        None, description="Cap the training batches per epoch (debug configs set it); null = the whole split."
    )
    limit_val_batches: PositiveInt | None = Field(
        None, description="Cap the validation batches per epoch; null = the whole split."
    )
    verbose: bool = Field(
        False,
        description="Show what TensorFlow prints as it starts (its C++ and absl lines, the CUDA probe "
        "of a machine without a GPU) and its known-harmless warnings (`tf.function` retracing); "
        "false keeps the output to fer_exp's own lines.",
    )
    preview_images: Annotated[
        int, Field(ge=0, le=256, description="Augmented training images drawn into `augmented_samples.png` (0 = none).")
    ] = 32
    optimized_metric: str = Field(
        "best_val_accuracy",
        description="The final metric a job returns to the sweeper (what "
        "`hparams_search=optuna` optimizes): `best_val_accuracy`, `val_macro_f1`, "
        "`train_time_s`, or `val_f1.<class>` / `val_precision.<class>` / "
        "`val_recall.<class>`.",
    )

    experiment_name: Annotated[str, Field(min_length=1, description="The MLflow experiment the run is logged to.")] = (
        "fer_exp"
    )
    run_name: str | None = Field(
        None,
        description="The MLflow run name; null = named after the overrides (in a sweep `#N` first; with "
        "none, the presets). A value read from a secret env variable is shown as `run_name=***`.",
    )
    tracking_uri: Annotated[
        str,
        Field(
            min_length=1,
            description="The MLflow store: `$MLFLOW_TRACKING_URI` if "
            "set, else `mlflow.db` in the directory you "
            "launched from, so that `mlflow ui` started "
            "there shows the runs.",
        ),
    ]
    tracking_fallback: Literal["none", "local"] = Field(
        "none",
        description="Tracking store unreachable at start: `none` stops with an error before training; "
        "`local` logs to `./mlflow.db` instead and says so.",
    )
    resume: str | None = Field(
        None, description="Continue an interrupted run from its last epoch: its output folder or its MLflow run id."
    )

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
        """Mixup and cutmix need `data.class_mode=categorical`; `label_smoothing` needs one-hot labels (not
        `sparse`); `tta_shift` needs `tta=true`."""
        if self.data.class_mode != "categorical" and (self.augmentation.mixup_prob or self.augmentation.cutmix_prob):
            raise ValueError("mixup and cutmix mix one-hot labels: use data.class_mode=categorical")
        if self.data.class_mode == "sparse" and self.label_smoothing:
            raise ValueError(
                "label_smoothing needs one-hot targets: use data.class_mode=categorical "
                "(Keras's sparse cross-entropy has no smoothing)"
            )
        if self.tta_shift and not self.tta:
            raise ValueError(f"tta_shift={self.tta_shift} shifts the test-time views of tta: set tta=true too")
        return self

    @field_validator("optimized_metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v in ("best_val_accuracy", "val_macro_f1", "train_time_s") or re.fullmatch(
            r"val_(f1|precision|recall)\.\w+", v
        ):
            return v
        raise ValueError(
            "must be a final metric: best_val_accuracy, val_macro_f1, train_time_s, "
            "or val_f1.<class> / val_precision.<class> / val_recall.<class>"
        )

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _bool_precision(cls, v: Any) -> Any:
        # false/true are what this key took before it had a choice of dtype
        return {False: "off", True: "float16", None: "off"}.get(v, v) if isinstance(v, bool | None) else v

    @field_validator("class_weight", mode="before")
    @classmethod
    def _none_means_off(cls, v: Any) -> Any:
        return "none" if v is None else v
