"""Class-per-folder datasets: list images and labels exactly as ``flow_from_directory`` does.

Pure filesystem work (no TensorFlow), so layout problems are reported before a run starts.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_exp.errors import DataError

log = logging.getLogger(__name__)

# Keras's white list of image extensions (DirectoryIterator.white_list_formats).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageTable:
    """Image files of one split with integer labels indexing ``class_names``."""

    paths: tuple[str, ...]
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> dict[str, int]:
        per_class = np.bincount(self.labels, minlength=len(self.class_names))
        return dict(zip(self.class_names, per_class.tolist()))


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
    paths: list[str] = []
    labels: list[int] = []
    for index, name in enumerate(class_names):
        files = list_images(split_dir / name) if (split_dir / name).is_dir() else []
        paths.extend(files)
        labels.extend([index] * len(files))
    return ImageTable(tuple(paths), np.asarray(labels, dtype=np.int64), tuple(class_names))


def _require_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise DataError(f"{what} not found: {path} (expected a folder with one sub-folder per class)")
    if not path.is_dir():
        raise DataError(f"{what} is not a folder: {path} (expected a folder with one sub-folder per class)")


def scan_dataset(root: str | Path, train_dir: str, val_dir: str) -> tuple[ImageTable, ImageTable]:
    """Train and validation tables with the same classes, or a DataError naming the problem."""
    root = Path(root).expanduser()
    _require_dir(root, "data.root")
    train_path, val_path = root / train_dir, root / val_dir
    _require_dir(train_path, f"train split folder (data.train_dir={train_dir!r})")
    _require_dir(val_path, f"validation split folder (data.val_dir={val_dir!r})")

    train_classes, val_classes = list_class_dirs(train_path), list_class_dirs(val_path)
    if not train_classes:
        raise DataError(f"no class folders in {train_path}: expected {train_path}/<class>/<image files>")
    if train_classes != val_classes:
        raise DataError(
            "train and validation have different class folders:\n"
            f"  {train_path}: {train_classes}\n  {val_path}: {val_classes}\n"
            f"  only in train: {sorted(set(train_classes) - set(val_classes))}; "
            f"only in validation: {sorted(set(val_classes) - set(train_classes))}"
        )
    train = scan_split(train_path, train_classes)
    val = scan_split(val_path, train_classes)
    empty = [name for name, n in train.counts().items() if n == 0]
    if empty:
        raise DataError(
            f"class folders without images in {train_path}: {empty} "
            f"(allowed extensions: {', '.join(IMAGE_EXTENSIONS)}); add images or remove the folders"
        )
    if len(val) == 0:
        raise DataError(f"no images in the validation split {val_path}")
    return train, val
