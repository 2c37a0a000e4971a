"""The ``data.*`` keys: one schema per data source, chosen by ``data.source``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeInt, field_validator, model_validator

from fer_exp.config.base import StrictModel
from fer_exp.registry import subclasses_by_tag, tagged_union

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

    pic_size: PicSize = Field(
        48, description="Side of the square model input in pixels; images of another size are resized to it."
    )
    color_mode: ColorMode = Field(
        "grayscale",
        description="Channels the model sees: `grayscale` (1), `rgb` (3) "
        "or `rgba` (4); images in another mode are converted.",
    )
    # Keras's meanings; fer_exp trains classifiers, so 'input' (autoencoders) and None
    # (prediction only) are refused with an explanation.
    class_mode: Literal["categorical", "sparse", "binary", "input"] | None = Field(
        "categorical",
        description="Keras's meaning: `categorical` (one-hot, softmax), `sparse` (class index, "
        "sparse cross-entropy), `binary` (exactly two classes, one sigmoid unit). "
        "`input` and null yield no class labels and are refused.",
    )
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"] = Field(
        "nearest",
        description="Resize filter for images that are not `pic_size` square (Keras `load_img`'s default: nearest).",
    )
    pipeline: Literal["tfdata", "keras"] = Field(
        "tfdata",
        description="`tfdata`: images decoded once into a uint8 cache, fused augmentation in tf.data "
        "(fast); `keras`: ImageDataGenerator, exactly the notebook's generator.",
    )
    threads: Annotated[int, Field(ge=1, le=256)] | None = Field(
        None, description="Threads that build batches (tfdata); null = min(4, cores)."
    )
    cache_dir: str | None = Field(
        None, description="Decoded-image cache; null = `$FER_EXP_CACHE/decoded` (default `~/.cache/fer_exp/decoded`)."
    )
    on_bad_image: Literal["error", "skip"] = Field(
        "error",
        description="Unreadable images (and a CSV's malformed pixel rows): `error` stops before training "
        "and lists them by path or row; `skip` drops them and logs how many.",
    )
    dedupe: Literal["none", "within", "cross_split"] = Field(
        "none",
        description="`within`: drop repeated copies (same decoded pixels) inside each split; "
        "`cross_split`: also drop from validation/test the images that occur in train, a "
        "leak-free validation set. The numbers dropped are logged (`data.dropped.*`).",
    )

    val_holdout: Fraction = Field(
        0.0,
        description="A stratified share of the validation images set aside as the test split (the same images in "
        "every run): the best epoch is chosen on the rest and the held-out part scores it once at the end "
        "(`test_accuracy`), free of the choice's flattery. 0 = off; refused when the data has a test split.",
    )

    @field_validator("class_mode")
    @classmethod
    def _trainable(cls, v):
        if v in ("input", None):
            raise ValueError(
                f"class_mode={v} yields no class labels (Keras uses it for autoencoders / "
                "prediction); fer_exp trains classifiers: use categorical, sparse or binary"
            )
        return v


class _FolderLayout(_ImageData):
    """Keys of a class-per-folder layout: the split folders and Keras's ``validation_split``."""

    train_dir: str = Field("train", description="The training split's folder under `root`.")
    val_dir: str = Field(
        "validation", description="The validation split's folder under `root` (not used with `validation_split`)."
    )
    test_dir: str | None = Field(
        None, description="A third split, evaluated once at the end (`test_*` metrics); null = none."
    )
    # > 0: validation is this fraction of each class of train_dir (Keras's subset="validation")
    validation_split: Fraction = Field(
        0.0,
        description="> 0: take validation from `train_dir` instead, this "
        "fraction of each class, as Keras's `validation_split` + "
        "`subset` do.",
    )


class DirectoryData(_FolderLayout):
    """Class-per-folder layout: ``root/<train_dir>/<class>/*.jpg``, the same for val (and test)."""

    source: Literal["directory"] = Field(description="Class folders (`data=fer2013`).")
    root: str = Field(
        description="The folder holding the split folders; `data=fer2013` reads `$FER2013_ROOT` when it is set."
    )

    _root = field_validator("root")(lambda v: _required_path(v))


class SyntheticData(_FolderLayout):
    """Generated faces (see :mod:`fer_exp.data.synthetic`), written on first use under the cache
    directory (``$FER_EXP_CACHE``, default ``~/.cache/fer_exp``) and nowhere else: there is no
    ``data.root`` to point at a folder of the user's (``data.root=...`` is refused, naming the
    sources that read it)."""

    source: Literal["synthetic"] = Field(description="The embedded synthetic faces (`data=synthetic`).")
    n_train: Annotated[int, Field(ge=14, le=200_000, description="Training faces to generate.")] = 2000
    n_val: Annotated[int, Field(ge=14, le=200_000, description="Validation faces to generate.")] = 500
    generator_seed: NonNegativeInt = Field(
        0, description="Seed of the face generator (identities, poses, expressions)."
    )

    @model_validator(mode="before")
    @classmethod
    def _saved_without_root(cls, values: Any) -> Any:
        # runs saved before data.root left the synthetic source hold `root: null`: still resumable
        if isinstance(values, dict) and "root" in values and values["root"] is None:
            values = {k: v for k, v in values.items() if k != "root"}
        return values


class _SplitColumn(_ImageData):
    split_col: str | None = Field(None, description="A column naming each row's split; null = use `validation_split`.")
    train_values: list[str] = Field(["train"], description="Values of `split_col` that mark training rows.")
    val_values: list[str] = Field(["validation"], description="Values of `split_col` that mark validation rows.")
    test_values: list[str] = Field(
        [],
        description="Values of `split_col` that mark test rows, evaluated once "
        "at the end (`test_*` metrics); [] = none.",
    )
    validation_split: Fraction = Field(
        0.0, description="Without `split_col`: the first fraction of rows becomes validation, as Keras does."
    )


class DataFrameData(_SplitColumn):
    """A CSV or parquet table of image files and labels (``flow_from_dataframe``)."""

    source: Literal["dataframe"] = Field(description="A CSV or parquet table (`data=dataframe`).")
    path: str = Field(description="The `.csv` or `.parquet` file.")
    x_col: str = Field("filename", description="The column of image file names.")
    y_col: str = Field("class", description="The column of labels (class names).")
    directory: str | None = Field(
        None, description="File names are relative to this folder; null = the table's folder."
    )
    classes: list[str] | None = Field(None, description="The class list; null = the sorted distinct values of `y_col`.")

    _path = field_validator("path")(lambda v: _required_path(v))


class Fer2013CsvData(_SplitColumn):
    """The Kaggle FER CSVs: ``fer2013.csv`` and ``icml_face_data.csv`` (emotion index, 2304
    space-separated pixels, Usage), or the challenge's ``train.csv`` (no Usage: validation is
    ``validation_split`` of its rows). See :mod:`fer_exp.data.kaggle_csv`."""

    source: Literal["fer2013_csv"] = Field(description="A Kaggle FER CSV (`data=fer2013_csv`).")
    path: str = Field(
        description="`fer2013.csv` or `icml_face_data.csv` (columns `emotion`, `pixels`, `Usage`), or the "
        "challenge's `train.csv` (`emotion`, `pixels`; set `validation_split`)."
    )
    split_col: str | None = Field(
        "Usage",
        description="The column naming each row's split; a file without it (the challenge's `train.csv`) "
        "or null uses `validation_split`.",
    )
    validation_split: Fraction = Field(
        0.0,
        description="Without a split column (the challenge's `train.csv`): the first fraction of rows "
        "becomes validation, as Keras does (e.g. 0.1).",
    )
    train_values: list[str] = Field(["Training"], description="`Usage` values that mark training rows.")
    val_values: list[str] = Field(["PublicTest"], description="`Usage` values that mark validation rows.")
    test_values: list[str] = Field(
        ["PrivateTest"], description="`Usage` values that mark test rows, evaluated once at the end; [] = none."
    )
    emotion_names: list[str] = Field(
        FER2013_EMOTIONS,
        description="Emotion index -> class name (Kaggle's "
        "order); classes are indexed in sorted order, "
        "as folders are.",
    )

    _path = field_validator("path")(lambda v: _required_path(v))


class ArraysData(_ImageData):
    """``.npz`` (or ``.npy`` pairs) of images and labels, as ``ImageDataGenerator.flow`` takes them."""

    source: Literal["arrays"] = Field(description="Arrays of images and labels (`data=arrays`).")
    path: str = Field(description="An `.npz`, or a folder of `<key>.npy` files.")
    x_train: str = Field(
        "x_train", description="Key of the training images: (N, rows, cols[, channels]), uint8 or floats in [0, 1]."
    )
    y_train: str = Field("y_train", description="Key of the training labels: class indices or one-hot rows.")
    x_val: str = Field("x_val", description="Key of the validation images.")
    y_val: str = Field("y_val", description="Key of the validation labels.")
    x_test: str | None = Field("x_test", description="Key of the test images, used when present.")
    y_test: str | None = Field("y_test", description="Key of the test labels, used when present.")
    class_names: list[str] | None = Field(
        None, description='Class names; null = the file\'s `class_names` array, else "0".."k-1".'
    )

    _path = field_validator("path")(lambda v: _required_path(v))


DataConfig = tagged_union(subclasses_by_tag(_ImageData, "source"), "source")
