"""The ``data.*`` keys: one schema per data source, chosen by ``data.source``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, field_validator

from fer_exp.config.base import StrictModel

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


class _ImageData(StrictModel):
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


