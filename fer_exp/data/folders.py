"""Class-per-folder datasets: list images and labels exactly as ``flow_from_directory`` does.

Pure filesystem work (no TensorFlow), so layout problems are reported before a run starts.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from fer_exp.data.table import ImageTable
from fer_exp.errors import DataError

log = logging.getLogger(__name__)

# Keras's white list of image extensions (DirectoryIterator.white_list_formats).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")


def list_class_dirs(split_dir: Path) -> list[str]:
    """Sorted names of the class sub-folders of ``split_dir`` (hidden folders skipped)."""
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))


def list_images(class_dir: Path) -> list[str]:
    """Image files under ``class_dir`` (recursively), in Keras's order."""
    found = []
    for root, _, files in sorted(os.walk(class_dir)):
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.join(root, name))
    return found


def scan_split(split_dir: Path, class_names: list[str]) -> ImageTable:
    """The images of ``split_dir``'s class folders as one table, labels indexing ``class_names``
    (a missing class folder contributes no images). Files come in Keras's order, so the labels
    match ``flow_from_directory``'s ``classes`` row for row."""
    paths: list[str] = []
    labels: list[int] = []
    for index, name in enumerate(class_names):
        files = list_images(split_dir / name) if (split_dir / name).is_dir() else []
        paths.extend(files)
        labels.extend([index] * len(files))
    return ImageTable(np.asarray(labels, dtype=np.int64), tuple(class_names), paths=tuple(paths))


def _require_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise DataError(f"{what} not found: {path} (expected a folder with one sub-folder per class)")
    if not path.is_dir():
        raise DataError(f"{what} is not a folder: {path} (expected a folder with one sub-folder per class)")


def scan_dataset(
    root: str | Path, train_dir: str, val_dir: str, test_dir: str | None = None, validation_split: float = 0.0
) -> dict[str, ImageTable]:
    """``{"train", "val"[, "test"]}`` tables with the same classes, or a DataError naming the
    problem. With ``validation_split``, validation comes out of ``train_dir`` as Keras's
    ``subset="validation"`` takes it: the first fraction of each class's files."""
    root = Path(root).expanduser()
    _require_dir(root, "data.root")
    train_path = root / train_dir
    _require_dir(train_path, f"train split folder (data.train_dir={train_dir!r})")
    classes = list_class_dirs(train_path)
    if not classes:
        raise DataError(f"no class folders in {train_path}: expected {train_path}/<class>/<image files>")
    others = {} if validation_split else {"val": (val_dir, "data.val_dir")}
    if test_dir:
        others["test"] = (test_dir, "data.test_dir")
    for split, (name, key) in others.items():
        _require_dir(root / name, f"{'validation' if split == 'val' else 'test'} split folder ({key}={name!r})")
        found = list_class_dirs(root / name)
        if found != classes:
            raise DataError(
                f"{train_dir} and {name} have different class folders:\n"
                f"  {train_path}: {classes}\n  {root / name}: {found}\n"
                f"  only in {train_dir}: {sorted(set(classes) - set(found))}; "
                f"only in {name}: {sorted(set(found) - set(classes))}"
            )
    tables = {"train": scan_split(train_path, classes)}
    empty = [c for c, n in tables["train"].counts().items() if n == 0]
    if empty:
        raise DataError(
            f"class folders without images in {train_path}: {empty} "
            f"(allowed extensions: {', '.join(IMAGE_EXTENSIONS)}); add images or remove the folders"
        )
    if validation_split:
        is_val = np.zeros(len(tables["train"]), dtype=bool)
        for c in range(len(classes)):
            rows = np.flatnonzero(tables["train"].labels == c)
            is_val[rows[: int(validation_split * len(rows))]] = True
        tables["val"], tables["train"] = tables["train"].subset(is_val), tables["train"].subset(~is_val)
    for split, (name, _) in others.items():
        tables[split] = scan_split(root / name, classes)
    for split, table in tables.items():
        if len(table) == 0:
            raise DataError(f"no images in the {split} split under {root}")
    return tables
