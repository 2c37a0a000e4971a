"""Data sources: turn ``cfg.data`` into train / validation (/ test) tables of decoded images.

Every source — class folders, a CSV/parquet of file names, the Kaggle ``fer2013.csv``,
``.npz`` arrays, the synthetic faces — ends as :class:`ImageTable` s holding uint8 pixels
(files are decoded once through :mod:`fer_exp.data.cache`). Then the shared steps: unreadable
images (error or skip), exact-duplicate detection within and across splits, and optional
de-duplication. No TensorFlow here: every data problem is reported before a run starts.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from fer_exp.config import (
    CHANNELS,
    ArraysData,
    DataConfig,
    DataFrameData,
    DirectoryData,
    Fer2013CsvData,
    SyntheticData,
)
from fer_exp.data.cache import _RESAMPLE, cache_dir_for, decoded_images
from fer_exp.data.folders import scan_dataset
from fer_exp.data.synthetic import SyntheticSpec, ensure_synthetic_dataset
from fer_exp.data.table import ImageTable
from fer_exp.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass
class Splits:
    train: ImageTable
    val: ImageTable
    test: ImageTable | None = None
    root: Path | None = None
    # class folders used as they are on disk: the keras pipeline may use flow_from_directory
    directory_layout: bool = False
    bad_images: dict[str, list[str]] = field(default_factory=dict)  # split -> messages (skipped)
    duplicates: dict[str, int] = field(default_factory=dict)  # exact-duplicate statistics
    dropped: dict[str, int] = field(default_factory=dict)  # removed by dedupe / on_bad_image
    val_in_train: np.ndarray | None = None  # per validation image: does train hold a copy?

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names

    def items(self) -> Iterable[tuple[str, ImageTable]]:
        return ((n, t) for n, t in (("train", self.train), ("val", self.val), ("test", self.test)) if t is not None)


def load_splits(data: DataConfig) -> Splits:
    """Read the source, decode, check, and (if asked) de-duplicate."""
    if isinstance(data, (DirectoryData, SyntheticData)):
        tables, root = _read_directory(data)
    elif isinstance(data, DataFrameData):
        tables, root = _read_dataframe(data), Path(data.path).expanduser()
    elif isinstance(data, Fer2013CsvData):
        tables, root = _read_fer2013_csv(data), Path(data.path).expanduser()
    else:
        tables, root = _read_arrays(data), Path(data.path).expanduser()
    splits = Splits(**tables, root=root)
    splits.directory_layout = isinstance(data, (DirectoryData, SyntheticData)) and not data.validation_split
    _decode(splits, data)
    _find_duplicates(splits, data.dedupe)
    for name, table in splits.items():
        if len(table) == 0:
            raise DataError(f"the {name} split is empty after filtering ({splits.dropped})")
    missing = [c for c, n in splits.train.counts().items() if n == 0]
    if missing:
        raise DataError(f"classes without training images: {missing}")
    return splits


# --------------------------------------------------------------------------- readers


def _read_directory(data: DirectoryData) -> tuple[dict[str, ImageTable], Path]:
    if isinstance(data, SyntheticData):
        spec = SyntheticSpec(n_train=data.n_train, n_val=data.n_val, seed=data.generator_seed, pic_size=data.pic_size)
        root = ensure_synthetic_dataset(spec, Path(data.root).expanduser() if data.root else None)
    else:
        root = Path(data.root).expanduser()
    return scan_dataset(root, data.train_dir, data.val_dir, data.test_dir, data.validation_split), root


def _split_rows(n: int, column, data, where: str) -> dict[str, np.ndarray]:
    """Row indices per split: from ``split_col`` values, or Keras's ``validation_split``."""
    if column is None:
        cut = int(n * data.validation_split)
        if not cut:
            raise DataError(f"{where}: no split_col and no validation_split: say where validation comes from")
        return {"val": np.arange(cut), "train": np.arange(cut, n)}  # Keras: validation = first rows
    column = np.asarray(column).astype(str)
    rows = {"train": np.flatnonzero(np.isin(column, data.train_values)),
            "val": np.flatnonzero(np.isin(column, data.val_values))}
    if data.test_values:
        rows["test"] = np.flatnonzero(np.isin(column, data.test_values))
    for split in ("train", "val"):
        if not len(rows[split]):
            values = sorted(set(column.tolist()))[:20]
            raise DataError(f"{where}: no rows for {split} (data.{split}_values="
                            f"{getattr(data, split + '_values')}); the split column holds {values}")
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


def _read_dataframe(data: DataFrameData) -> dict[str, ImageTable]:
    path = Path(data.path).expanduser()
    df = _read_table(path)
    _require_columns(df, path, [data.x_col, data.y_col, data.split_col])
    base = Path(data.directory).expanduser() if data.directory else path.parent
    y = df[data.y_col].astype(str).to_numpy()
    classes = list(data.classes) if data.classes else sorted(set(y.tolist()))
    unknown = np.flatnonzero(~np.isin(y, classes))
    if len(unknown):
        row = int(unknown[0])
        raise DataError(f"{path} row {row + 2}: label {y[row]!r} in column {data.y_col!r} is not one of "
                        f"data.classes={classes} ({len(unknown)} such rows)")
    files = [str(base / str(x)) for x in df[data.x_col].tolist()]
    exists = np.array([Path(f).is_file() for f in files])
    if not exists.all():  # flow_from_dataframe drops these too, but fer_exp says which
        gone = np.flatnonzero(~exists)
        log.warning("%s: %d listed image file(s) not found, dropped: %s%s", path, len(gone),
                    ", ".join(files[i] for i in gone[:5]), " ..." if len(gone) > 5 else "")
    labels = np.array([classes.index(v) for v in y], dtype=np.int64)
    ids = [f"{path.name} row {i + 2} ({f})" for i, f in enumerate(files)]
    split_rows = _split_rows(len(df), df[data.split_col] if data.split_col else None, data, str(path))
    tables = {}
    for split, rows in split_rows.items():
        rows = rows[exists[rows]]
        tables[split] = ImageTable(labels[rows], tuple(classes), paths=tuple(files[i] for i in rows),
                                   ids=tuple(ids[i] for i in rows))
    return tables


def _read_fer2013_csv(data: Fer2013CsvData) -> dict[str, ImageTable]:
    path = Path(data.path).expanduser()
    df = _read_table(path)
    _require_columns(df, path, ["emotion", "pixels", data.split_col])
    emotion = df["emotion"].to_numpy()
    k = len(data.emotion_names)
    bad = np.flatnonzero(~np.isin(emotion, np.arange(k)))
    if len(bad):
        raise DataError(f"{path} row {bad[0] + 2}: emotion {emotion[bad[0]].item()!r} is not an index 0..{k - 1} "
                        f"of data.emotion_names ({len(bad)} such rows)")
    images = np.empty((len(df), 48, 48), dtype=np.uint8)
    for i, text in enumerate(df["pixels"].astype(str)):
        try:
            values = np.array(text.split(), dtype=np.int64)
        except ValueError:
            raise DataError(f"{path} row {i + 2}: pixels must be space-separated integers") from None
        if values.size != 48 * 48 or values.min() < 0 or values.max() > 255:
            raise DataError(f"{path} row {i + 2}: expected 2304 pixel values in 0..255, got {values.size} "
                            f"values in {values.min()}..{values.max()}")
        images[i] = values.reshape(48, 48)
    # Class indices follow the sorted names, as for class folders: runs on either are comparable.
    classes = sorted(data.emotion_names)
    labels = np.array([classes.index(data.emotion_names[e]) for e in emotion], dtype=np.int64)
    split_rows = _split_rows(len(df), df[data.split_col] if data.split_col else None, data, str(path))
    ids = [f"{path.name} row {i + 2}" for i in range(len(df))]
    return {split: ImageTable(labels[rows], tuple(classes), images=images[rows][..., None],
                              ids=tuple(ids[i] for i in rows)) for split, rows in split_rows.items()}


def _read_arrays(data: ArraysData) -> dict[str, ImageTable]:
    path = Path(data.path).expanduser()
    if path.is_dir():
        store = {p.stem: p for p in path.glob("*.npy")}
        load = lambda key: np.load(store[key], allow_pickle=False)  # noqa: E731
    elif path.is_file():
        npz = np.load(path, allow_pickle=False)
        store, load = {k: k for k in npz.files}, npz.__getitem__
    else:
        raise DataError(f"data.path not found: {path} (expected an .npz file or a folder of .npy files)")
    pairs = {"train": (data.x_train, data.y_train), "val": (data.x_val, data.y_val),
             "test": (data.x_test, data.y_test)}
    for split in ("train", "val"):
        for key in pairs[split]:
            if key not in store:
                raise DataError(f"{path}: no array {key!r} (found {sorted(store)}); set data.{split}-keys")
    raw = {s: (load(x), load(y)) for s, (x, y) in pairs.items() if x in store and y in store}
    k = max(int(_int_labels(y, s).max()) for s, (_, y) in raw.items()) + 1
    names = data.class_names or ([str(n) for n in load("class_names")] if "class_names" in store
                                 else [str(i) for i in range(k)])
    if len(names) < k:
        raise DataError(f"{path}: labels go up to {k - 1} but there are only {len(names)} class names")
    return {s: ImageTable(_int_labels(y, s), tuple(names), images=_to_uint8(x, path, s),
                          ids=tuple(f"{path.name}[{pairs[s][0]}][{i}]" for i in range(len(y))))
            for s, (x, y) in raw.items()}


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


# --------------------------------------------------------------------------- decoding


def _decode(splits: Splits, data) -> None:
    """Files -> the decoded cache; arrays -> the configured size and colour mode."""
    cache = cache_dir_for(data.cache_dir)
    for name, table in list(splits.items()):
        if table.paths is not None:
            images, bad = decoded_images(table, data.pic_size, data.color_mode, data.interpolation, cache,
                                         data.threads or 2)
            table = _replace_images(table, images)
            if bad:
                messages = [msg for _, msg in bad]
                if data.on_bad_image == "error":
                    listed = "\n  ".join(messages[:20]) + ("\n  ..." if len(messages) > 20 else "")
                    raise DataError(f"{len(bad)} unreadable image(s) in the {name} split:\n  {listed}\n"
                                    "Fix or remove them, or pass data.on_bad_image=skip to train without them")
                log.warning("skipping %d unreadable image(s) in the %s split: %s", len(bad), name,
                            "; ".join(messages[:5]))
                keep = np.ones(len(table), dtype=bool)
                keep[[i for i, _ in bad]] = False
                table = table.subset(keep)
                splits.bad_images[name] = messages
                splits.dropped[f"bad_images.{name}"] = len(bad)
                splits.directory_layout = False
        else:
            table = _replace_images(table, _convert(table.images, data))
        setattr(splits, name, table)


def _replace_images(table: ImageTable, images: np.ndarray) -> ImageTable:
    from dataclasses import replace

    return replace(table, images=images)


def _convert(images: np.ndarray, data) -> np.ndarray:
    """In-memory images of another size or channel count are converted, never rejected."""
    n, rows, cols, channels = images.shape
    target = CHANNELS[data.color_mode]
    if (rows, cols, channels) == (data.pic_size, data.pic_size, target):
        return images
    modes = {1: "L", 3: "RGB", 4: "RGBA"}
    out = np.empty((n, data.pic_size, data.pic_size, target), dtype=np.uint8)
    for i, img in enumerate(images):
        pil = Image.fromarray(img[..., 0] if channels == 1 else img, modes.get(channels, "L"))
        pil = pil.convert(modes[target])
        if pil.size != (data.pic_size, data.pic_size):
            pil = pil.resize((data.pic_size, data.pic_size), _RESAMPLE[data.interpolation])
        arr = np.asarray(pil)
        out[i] = arr[..., None] if arr.ndim == 2 else arr
    return out


# --------------------------------------------------------------------------- duplicates


def image_hashes(table: ImageTable) -> np.ndarray:
    """Exact content hash of every decoded image (equal pixels = equal hash)."""
    return np.array([hashlib.blake2b(np.ascontiguousarray(img).tobytes(), digest_size=16).hexdigest()
                     for img in table.images])


def _find_duplicates(splits: Splits, dedupe: str) -> None:
    hashes = {name: image_hashes(table) for name, table in splits.items()}
    train_set = set(hashes["train"].tolist())
    for name, h in hashes.items():
        splits.duplicates[f"{name}.files"] = len(h)
        splits.duplicates[f"{name}.distinct"] = len(set(h.tolist()))
        if name != "train":
            splits.duplicates[f"train_{name}.shared_distinct"] = len(train_set & set(h.tolist()))
    splits.val_in_train = np.isin(hashes["val"], hashes["train"])
    if dedupe == "none":
        return
    for name, h in hashes.items():
        _, first = np.unique(h, return_index=True)
        keep = np.zeros(len(h), dtype=bool)
        keep[first] = True
        if dedupe == "cross_split" and name != "train":
            keep &= ~np.isin(h, hashes["train"])
        splits.dropped[f"dedupe.{name}"] = int((~keep).sum())
        setattr(splits, name, getattr(splits, name).subset(keep))
        if name == "val":
            splits.val_in_train = splits.val_in_train[keep]
    splits.directory_layout = False
    log.info("data.dedupe=%s dropped %s", dedupe, {k: v for k, v in splits.dropped.items() if k.startswith("dedupe")})
