"""The run config schema: every key, its type, its range, and one clear message when wrong.

Hydra composes ``conf/`` into a DictConfig; :func:`validate` turns it into a frozen
:class:`RunConfig` or raises :class:`~fer_exp.errors.ConfigError` naming the key, the value
and what is allowed. Nothing here imports TensorFlow, so a bad value fails in well under a
second.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from fer_exp.errors import ConfigError
from fer_exp.models import ModelSpec
from fer_exp.schedules import Monitor, ScheduleSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- augmentation


def _shift_range(value: Any) -> Any:
    """Keras's forms: float (< 1: fraction of the size, >= 1: pixels), int n (integer
    pixel shifts in (-n, n)), or a list of allowed pixel shifts (each taken with random sign)."""
    if isinstance(value, bool):
        raise ValueError("must be a number or a list of numbers, not a boolean")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("must be >= 0 (a fraction of the size when < 1, pixels when >= 1)")
        return value
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        return list(value)
    raise ValueError("must be a number >= 0 or a non-empty list of numbers")


Probability = Annotated[float, Field(ge=0, le=1)]


def _range(v: Any) -> Any:
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(
            isinstance(b, (int, float)) and not isinstance(b, bool) for b in v) and 0 < v[0] <= v[1]:
        return [float(v[0]), float(v[1])]
    raise ValueError("must be a pair [low, high] with 0 < low <= high")


Range = Annotated[list[float], BeforeValidator(_range)]


class AugmentationConfig(_Strict):
    """ImageDataGenerator's augmentation arguments, with Keras's meaning for each."""

    rotation_range: Annotated[float, Field(ge=0, le=180)] = 0.0
    width_shift_range: float | int | list[float] = 0.0
    height_shift_range: float | int | list[float] = 0.0
    shear_range: Annotated[float, Field(ge=0, lt=90)] = 0.0
    zoom_range: float | list[float] = 0.0
    horizontal_flip: bool = False
    vertical_flip: bool = False
    brightness_range: list[float] | None = None
    channel_shift_range: NonNegativeFloat = 0.0
    fill_mode: Literal["nearest", "constant", "reflect", "wrap"] = "nearest"
    cval: float = 0.0
    rescale: float | None = None
    featurewise_center: bool = False
    featurewise_std_normalization: bool = False
    samplewise_center: bool = False
    samplewise_std_normalization: bool = False

    # Beyond ImageDataGenerator (fer_exp.augment.extra): each with a probability and a strength.
    crop_prob: Probability = 0.0
    crop_scale: Range = [0.8, 1.0]  # fraction of the area kept
    crop_ratio: Range = [0.75, 1.3333]  # aspect ratio of the crop
    contrast_prob: Probability = 0.0
    contrast_range: Range = [0.7, 1.3]
    gamma_prob: Probability = 0.0
    gamma_range: Range = [0.7, 1.5]
    equalize_prob: Probability = 0.0
    blur_prob: Probability = 0.0
    blur_sigma: Range = [0.5, 1.2]
    sharpen_prob: Probability = 0.0
    sharpen_amount: Range = [0.5, 1.5]
    erasing_prob: Probability = 0.0
    erasing_area: Range = [0.02, 0.2]
    erasing_aspect: Range = [0.3, 3.3]
    erasing_value: Literal["random", "mean", "zero"] = "random"
    mixup_prob: Probability = 0.0
    mixup_alpha: PositiveFloat = 0.2
    cutmix_prob: Probability = 0.0
    cutmix_alpha: PositiveFloat = 1.0

    _check_shifts = field_validator("width_shift_range", "height_shift_range", mode="before")(
        lambda v: _shift_range(v)
    )

    @field_validator("zoom_range", mode="before")
    @classmethod
    def _zoom(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if not 0 <= v < 1:
                raise ValueError("a single zoom_range z draws zoom from [1-z, 1+z], so z must be in [0, 1)")
            return float(v)
        if isinstance(v, (list, tuple)) and len(v) == 2 and 0 < v[0] <= v[1]:
            return [float(v[0]), float(v[1])]
        raise ValueError("must be a float in [0, 1) or a pair [low, high] with 0 < low <= high")

    @field_validator("brightness_range", mode="before")
    @classmethod
    def _brightness(cls, v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, (list, tuple)) and len(v) == 2 and 0 <= v[0] <= v[1]:
            return [float(v[0]), float(v[1])]
        raise ValueError("must be null or a pair [low, high] with 0 <= low <= high (1.0 = unchanged)")

    @model_validator(mode="after")
    def _probabilities(self):
        if self.mixup_prob + self.cutmix_prob > 1:
            raise ValueError("mixup_prob + cutmix_prob must be <= 1 (one of them per batch)")
        for key in ("crop_scale", "erasing_area"):
            if getattr(self, key)[1] > 1:
                raise ValueError(f"{key} is a fraction of the image area: its high end must be <= 1")
        return self

    @field_validator("rescale")
    @classmethod
    def _rescale(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError("must be null or > 0 (the notebook uses 1/255 = 0.00392156862745098)")
        return v


# --------------------------------------------------------------------------- data

ColorMode = Literal["grayscale", "rgb", "rgba"]
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
PicSize = Annotated[int, Field(ge=8, le=1024)]
Fraction = Annotated[float, Field(ge=0, lt=1)]

# The Kaggle fer2013.csv's emotion indices.
FER2013_EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _required_path(v: str) -> str:
    if v in ("", "???"):  # ??? is what ${oc.env:VAR,???} leaves when the variable is unset
        raise ValueError("required: pass the path on the command line (e.g. data.root=/path/to/dataset)")
    return v


class _ImageData(_Strict):
    """Keys every source shares: how images become model inputs."""

    pic_size: PicSize = 48
    color_mode: ColorMode = "grayscale"
    # Keras's meanings; fer_exp trains classifiers, so 'input' (autoencoders) and None
    # (prediction only) are refused with an explanation.
    class_mode: Literal["categorical", "sparse", "binary", "input"] | None = "categorical"
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"] = "nearest"
    # tfdata: decoded-once cache + fused augmentation in tf.data; keras: ImageDataGenerator.
    pipeline: Literal["tfdata", "keras"] = "tfdata"
    threads: Annotated[int, Field(ge=1, le=256)] | None = None  # null: min(4, cores)
    cache_dir: str | None = None  # null: <cache root>/decoded
    # unreadable images: error (stop, listing them) or skip (drop them, counted in MLflow)
    on_bad_image: Literal["error", "skip"] = "error"
    # none; within: drop repeated copies inside each split; cross_split: also drop from
    # validation/test the images that occur in train (a leak-free validation set)
    dedupe: Literal["none", "within", "cross_split"] = "none"

    @field_validator("class_mode")
    @classmethod
    def _trainable(cls, v):
        if v in ("input", None):
            raise ValueError(f"class_mode={v} yields no class labels (Keras uses it for autoencoders / "
                             "prediction); fer_exp trains classifiers: use categorical, sparse or binary")
        return v


class DirectoryData(_ImageData):
    """Class-per-folder layout: ``root/<train_dir>/<class>/*.jpg``, the same for val (and test)."""

    source: Literal["directory"]
    root: str
    train_dir: str = "train"
    val_dir: str = "validation"
    test_dir: str | None = None
    # > 0: validation is this fraction of each class of train_dir (Keras's subset="validation")
    validation_split: Fraction = 0.0

    _root = field_validator("root")(lambda v: _required_path(v))


class SyntheticData(DirectoryData):
    """Generated faces (see :mod:`fer_exp.data.synthetic`), written on first use."""

    source: Literal["synthetic"]
    root: str | None = None  # null: the user cache dir
    n_train: Annotated[int, Field(ge=14, le=200_000)] = 2000
    n_val: Annotated[int, Field(ge=14, le=200_000)] = 500
    generator_seed: NonNegativeInt = 0

    _root = field_validator("root")(lambda v: v)


class _SplitColumn(_ImageData):
    split_col: str | None = None  # a column naming each row's split
    train_values: list[str] = ["train"]
    val_values: list[str] = ["validation"]
    test_values: list[str] = []
    validation_split: Fraction = 0.0  # without split_col: the first fraction of rows (Keras)


class DataFrameData(_SplitColumn):
    """A CSV or parquet table of image files and labels (``flow_from_dataframe``)."""

    source: Literal["dataframe"]
    path: str
    x_col: str = "filename"
    y_col: str = "class"
    directory: str | None = None  # file names are relative to this folder (default: the table's)
    classes: list[str] | None = None  # null: the sorted distinct labels

    _path = field_validator("path")(lambda v: _required_path(v))


class Fer2013CsvData(_SplitColumn):
    """The Kaggle ``fer2013.csv``: emotion index, 2304 space-separated pixels, Usage."""

    source: Literal["fer2013_csv"]
    path: str
    split_col: str | None = "Usage"
    train_values: list[str] = ["Training"]
    val_values: list[str] = ["PublicTest"]
    test_values: list[str] = ["PrivateTest"]
    emotion_names: list[str] = FER2013_EMOTIONS  # index -> class name

    _path = field_validator("path")(lambda v: _required_path(v))


class ArraysData(_ImageData):
    """``.npz`` (or ``.npy`` pairs) of images and labels, as ``ImageDataGenerator.flow`` takes them."""

    source: Literal["arrays"]
    path: str  # an .npz, or a folder of <key>.npy files
    x_train: str = "x_train"
    y_train: str = "y_train"
    x_val: str = "x_val"
    y_val: str = "y_val"
    x_test: str | None = "x_test"  # used when present
    y_test: str | None = "y_test"
    class_names: list[str] | None = None  # null: the file's class_names array, else "0".."k-1"

    _path = field_validator("path")(lambda v: _required_path(v))


DataConfig = Annotated[DirectoryData | SyntheticData | DataFrameData | Fer2013CsvData | ArraysData,
                       Field(discriminator="source")]


# --------------------------------------------------------------------------- optimizer


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



class EarlyStoppingConfig(_Strict):
    enabled: bool = True
    monitor: Monitor = "val_accuracy"
    patience: NonNegativeInt = 8
    min_delta: NonNegativeFloat = 0.0
    restore_best_weights: bool = True


class CallbacksConfig(_Strict):
    checkpoint_monitor: Monitor = "val_accuracy"
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()


class ThreadsConfig(_Strict):
    """TensorFlow thread pools; 0 lets TensorFlow use every core."""

    intra_op: NonNegativeInt = 0
    inter_op: NonNegativeInt = 0


TTA_MAX_SHIFT = 8  # pixels: test-time views are small moves of the face (a sixth of a 48-px image)


class RunConfig(_Strict):
    data: DataConfig
    augmentation: AugmentationConfig
    model: ModelSpec
    optimizer: OptimizerConfig
    schedule: ScheduleSpec
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
        import re

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


# --------------------------------------------------------------------------- validation


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """Resolve interpolations; a missing mandatory value becomes a ConfigError."""
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        if "Missing mandatory value" in str(exc):
            raise ConfigError(f"{key} is required but not set: pass {key}=<value> on the command line") from None
        raise ConfigError(f"{key}: {exc}".splitlines()[0]) from None


def validate(cfg: DictConfig | dict[str, Any]) -> RunConfig:
    """Check every value of a composed config; raise ConfigError listing each problem."""
    if isinstance(cfg, DictConfig):
        cfg = to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))
    container = {k: v for k, v in cfg.items() if k != "hydra"}
    try:
        return RunConfig.model_validate(container)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, container)) from None


def format_validation_error(exc: ValidationError, container: dict[str, Any]) -> str:
    lines = []
    for err in exc.errors():
        key_parts = _key_path(container, [str(p) for p in err["loc"]])
        key = ".".join(key_parts) or "<config>"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key (check the spelling; the allowed keys of '{'.'.join(key_parts[:-1])}' "
                         f"are in fer_exp/config.py and conf/)")
        elif err["type"] == "missing":
            lines.append(f"{key}: required but not set")
        elif not key_parts:  # a check across keys: its message names them (the value is the whole config)
            lines.append(msg)
        else:
            lines.append(f"{key}={_lookup(container, key_parts)!r}: {msg}")
    return "invalid config:\n  " + "\n  ".join(dict.fromkeys(lines))


_TYPE_TAGS = {"float", "int", "str", "bool", "none"}


def _key_path(container: Any, loc: list[str]) -> list[str]:
    """pydantic's error location minus its schema tags (union members, discriminator values)."""
    keys, node = [], container
    for part in loc:
        if isinstance(node, dict) and part in node:
            keys.append(part)
            node = node[part]
        elif isinstance(node, list) and part.isdigit():
            keys.append(part)
            node = node[int(part)] if int(part) < len(node) else None
        elif part in _TYPE_TAGS or "[" in part or part.startswith(("function-", "constrained-")) or (
                isinstance(node, dict) and part in (node.get("name"), node.get("source"))):
            continue
        else:  # a key that is not in the config: unknown or missing
            keys.append(part)
            node = None
    return keys


def _lookup(container: Any, parts: list[str]) -> Any:
    node = container
    for p in parts:
        if isinstance(node, dict) and p in node:
            node = node[p]
        elif isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
        else:
            return "<unset>"
    return node
