"""Readers: one function per data source, registered by ``data.source``, each turning its
config into train / validation (/ test) :class:`~fer_exp.data.table.ImageTable` s (files or
pixels, labels, class names). Decoding, checks and de-duplication follow in
:func:`fer_exp.data.sources.load_splits`, the same for every source.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fer_exp.config.data import ArraysData, DataConfig, DataFrameData, DirectoryData, Fer2013CsvData, SyntheticData
from fer_exp.data.folders import scan_dataset
from fer_exp.data.kaggle_csv import emotion_indices, kaggle_split_column, pixel_rows
from fer_exp.data.synthetic import SyntheticSpec, ensure_synthetic_dataset
from fer_exp.data.table import ImageTable
from fer_exp.errors import DataError

log = logging.getLogger(__name__)

Tables = dict[str, ImageTable]
Reader = Callable[[DataConfig], tuple[Tables, Path]]
_READERS: dict[str, Reader] = {}


def reader(*sources: str) -> Callable[[Reader], Reader]:
    """Register a reader for the ``data.source`` values ``sources`` (see the "Extending" page)."""

    def register(fn: Reader) -> Reader:
        for source in sources:
            _READERS[source] = fn
        return fn

    return register


def read_source(data: DataConfig) -> tuple[Tables, Path]:
    """The source's tables (``train``, ``val``, maybe ``test``) and the path they came from."""
    return _READERS[data.source](data)


@reader("directory", "synthetic")
def _read_directory(data: DirectoryData) -> tuple[Tables, Path]:
    if isinstance(data, SyntheticData):
        spec = SyntheticSpec(n_train=data.n_train, n_val=data.n_val, seed=data.generator_seed, pic_size=data.pic_size)
        root = ensure_synthetic_dataset(spec)
    else:
        root = Path(data.root).expanduser()
    return scan_dataset(root, data.train_dir, data.val_dir, data.test_dir, data.validation_split), root


def _split_rows(n: int, column, data, where: str) -> dict[str, np.ndarray]:
    """Row indices per split: from ``split_col`` values, or Keras's ``validation_split``. A
    test split whose values match no row is no test split (an INFO line says so: many copies
    of ``fer2013.csv`` hold no ``PrivateTest`` rows); no train or validation rows is an error
    that names the values the column holds, with counts, and the key to set."""
    if column is None:
        cut = int(n * data.validation_split)
        if not cut:
            raise DataError(
                f"{where}: nothing says which rows are validation (data.split_col=null, "
                f"data.validation_split={data.validation_split} of {n} rows). Set data.validation_split=0.1 "
                "(the first tenth of the rows, as Keras does) or data.split_col to a column naming the splits"
            )
        return {"val": np.arange(cut), "train": np.arange(cut, n)}  # Keras: validation = first rows
    column = np.char.strip(np.asarray(column).astype(str))
    values, counts = np.unique(column, return_counts=True)
    found = ", ".join(f"{v!r}: {c}" for v, c in zip(values.tolist(), counts.tolist()))
    chosen = {split: getattr(data, f"{split}_values") for split in ("train", "val", "test")}
    rows = {split: np.flatnonzero(np.isin(column, chosen[split])) for split in chosen if chosen[split]}
    for split, name in (("train", "training"), ("val", "validation")):
        if not len(rows[split]):
            spare = [v for v in values.tolist() if not any(v in chosen[s] for s in chosen)]
            in_test = [v for v in values.tolist() if v in chosen["test"]]
            if spare:
                hint = f"e.g. data.{split}_values=[{spare[0]}]"
            elif split == "val" and in_test:  # validate on the rows meant for testing
                hint = f"e.g. data.val_values=[{in_test[0]}] data.test_values=[]"
            else:
                hint = "or data.split_col=null data.validation_split=0.1 for Keras's first-rows split"
            raise DataError(
                f"{where}: no {name} rows: data.{split}_values={chosen[split]} matches no value of column "
                f"{data.split_col!r}, which holds {found}. Set data.{split}_values to the value(s) that mark "
                f"{name} rows, {hint}"
            )
    unknown = [v for v in values.tolist() if not any(v in chosen[s] for s in chosen)]
    if unknown:  # rows that would silently belong to no split
        first = int(np.flatnonzero(column == unknown[0])[0])
        raise DataError(
            f"{where} row {first + 2}: {data.split_col!r} is {unknown[0]!r}, which is none of data.train_values="
            f"{chosen['train']}, data.val_values={chosen['val']}, data.test_values={chosen['test']} (the column "
            f"holds {found}). Add {unknown[0]!r} to one of those keys, or drop the rows"
        )
    if "test" in rows and not len(rows["test"]):
        log.info(
            "%s: no test split: data.test_values=%s matches no value of column %r, which holds %s",
            where,
            chosen["test"],
            data.split_col,
            found,
        )
        del rows["test"]
    return rows


def _read_table(path: Path):
    import pandas as pd

    if not path.is_file():
        raise DataError(f"data.path not found: {path} (expected a .csv or .parquet file)")
    try:
        return pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def _require_columns(df, path: Path, columns: list[str | None]) -> None:
    missing = [c for c in columns if c is not None and c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; the table has {list(df.columns)}")


@reader("dataframe")
def _read_dataframe(data: DataFrameData) -> tuple[Tables, Path]:
    path = Path(data.path).expanduser()
    df = _read_table(path)
    _require_columns(df, path, [data.x_col, data.y_col, data.split_col])
    base = Path(data.directory).expanduser() if data.directory else path.parent
    y = df[data.y_col].astype(str).to_numpy()
    classes = list(data.classes) if data.classes else sorted(set(y.tolist()))
    unknown = np.flatnonzero(~np.isin(y, classes))
    if len(unknown):
        row = int(unknown[0])
        raise DataError(
            f"{path} row {row + 2}: label {y[row]!r} in column {data.y_col!r} is not one of "
            f"data.classes={classes} ({len(unknown)} such rows)"
        )
    files = [str(base / str(x)) for x in df[data.x_col].tolist()]
    exists = np.array([Path(f).is_file() for f in files])
    if not exists.all():  # flow_from_dataframe drops these too, but fer_exp says which
        gone = np.flatnonzero(~exists)
        log.warning(
            "%s: %d listed image file(s) not found, dropped: %s%s",
            path,
            len(gone),
            ", ".join(files[i] for i in gone[:5]),
            " ..." if len(gone) > 5 else "",
        )
    labels = np.array([classes.index(v) for v in y], dtype=np.int64)
    ids = [f"{path.name} row {i + 2} ({f})" for i, f in enumerate(files)]
    split_rows = _split_rows(len(df), df[data.split_col] if data.split_col else None, data, str(path))
    tables = {}
    for split, rows in split_rows.items():
        rows = rows[exists[rows]]
        tables[split] = ImageTable(
            labels[rows], tuple(classes), paths=tuple(files[i] for i in rows), ids=tuple(ids[i] for i in rows)
        )
    return tables, path


@reader("fer2013_csv")
def _read_fer2013_csv(data: Fer2013CsvData) -> tuple[Tables, Path]:
    path = Path(data.path).expanduser()
    df = _read_table(path)
    df.columns = [str(c).strip() for c in df.columns]  # icml_face_data.csv: "emotion, Usage, pixels"
    split_col = kaggle_split_column(df, data, path)
    emotion = emotion_indices(df["emotion"], data.emotion_names, path)
    images, keep = pixel_rows(df["pixels"], path, data.on_bad_image)
    # Class indices follow the sorted names, as for class folders: runs on either are comparable.
    classes = sorted(data.emotion_names)
    labels = np.array([classes.index(data.emotion_names[e]) for e in emotion], dtype=np.int64)
    split_rows = _split_rows(len(df), df[split_col] if split_col else None, data, str(path))
    ids = [f"{path.name} row {i + 2}" for i in range(len(df))]
    return {
        split: ImageTable(labels[rows], tuple(classes), images=images[rows], ids=tuple(ids[i] for i in rows))
        for split, rows in ((s, r[keep[r]]) for s, r in split_rows.items())
    }, path


@reader("arrays")
def _read_arrays(data: ArraysData) -> tuple[Tables, Path]:
    path = Path(data.path).expanduser()
    if path.is_dir():
        store = {p.stem: p for p in path.glob("*.npy")}
        load = lambda key: np.load(store[key], allow_pickle=False)  # noqa: E731
    elif path.is_file():
        npz = np.load(path, allow_pickle=False)
        store, load = {k: k for k in npz.files}, npz.__getitem__
    else:
        raise DataError(f"data.path not found: {path} (expected an .npz file or a folder of .npy files)")
    pairs = {"train": (data.x_train, data.y_train), "val": (data.x_val, data.y_val), "test": (data.x_test, data.y_test)}
    for split in ("train", "val"):
        for key in pairs[split]:
            if key not in store:
                raise DataError(f"{path}: no array {key!r} (found {sorted(store)}); set data.{split}-keys")
    raw = {s: (load(x), load(y)) for s, (x, y) in pairs.items() if x in store and y in store}
    k = max(int(_int_labels(y, s).max()) for s, (_, y) in raw.items()) + 1
    names = data.class_names or (
        [str(n) for n in load("class_names")] if "class_names" in store else [str(i) for i in range(k)]
    )
    if len(names) < k:
        raise DataError(f"{path}: labels go up to {k - 1} but there are only {len(names)} class names")
    return {
        s: ImageTable(
            _int_labels(y, s),
            tuple(names),
            images=_to_uint8(x, path, s),
            ids=tuple(f"{path.name}[{pairs[s][0]}][{i}]" for i in range(len(y))),
        )
        for s, (x, y) in raw.items()
    }, path


def _int_labels(y: np.ndarray, split: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot, as flow() also accepts
        return y.argmax(axis=1).astype(np.int64)
    y = y.reshape(-1)
    if not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0:
        raise DataError(f"{split} labels must be class indices 0..k-1 or one-hot rows")
    return y.astype(np.int64)


def _to_uint8(x: np.ndarray, path: Path, split: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(f"{path}: {split} images must be (N, rows, cols[, channels]), got {x.shape}")
    if x.dtype != np.uint8:
        scale = 255.0 if x.max() <= 1.0 else 1.0  # [0, 1] floats are scaled to 0..255
        x = np.clip(np.rint(x * scale), 0, 255).astype(np.uint8)
    return x
