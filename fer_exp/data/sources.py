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

from fer_exp.config.data import CHANNELS, DataConfig
from fer_exp.data.cache import RESAMPLE_FILTERS, cache_dir_for, decoded_images
from fer_exp.data.readers import read_source
from fer_exp.data.table import ImageTable
from fer_exp.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class Splits:
    """A run's data: the decoded train / validation (/ test) tables, and what loading found out
    about them (unreadable images, duplicates, what was dropped) for the audit and MLflow."""

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
        """The class names in label order; every split shares the training split's."""
        return self.train.class_names

    def items(self) -> Iterable[tuple[str, ImageTable]]:
        """``(name, table)`` for each split present: train, val, then test when there is one."""
        return ((n, t) for n, t in (("train", self.train), ("val", self.val), ("test", self.test)) if t is not None)


def load_splits(data: DataConfig) -> Splits:
    """Read the source, decode, check, and (if asked) de-duplicate."""
    tables, root = read_source(data)
    splits = Splits(**tables, root=root)
    splits.directory_layout = data.source in ("directory", "synthetic") and not data.validation_split
    _decode(splits, data)
    _find_duplicates(splits, data.dedupe)
    if data.val_holdout:
        hold_out(splits, data.val_holdout)
    for name, table in splits.items():
        if len(table) == 0:
            raise DataError(f"the {name} split is empty after filtering ({splits.dropped})")
    if len(splits.class_names) < 2:
        raise DataError(
            f"a classifier needs at least 2 classes, found {len(splits.class_names)}: "
            f"{', '.join(splits.class_names) or 'none'} (in {splits.root or data.source}); "
            "add a folder (or label) per class"
        )
    missing = [c for c, n in splits.train.counts().items() if n == 0]
    if missing:
        raise DataError(f"classes without training images: {missing}")
    return splits


# --------------------------------------------------------------------------- decoding


def _decode(splits: Splits, data) -> None:
    """Files -> the decoded cache; arrays -> the configured size and colour mode."""
    cache = cache_dir_for(data.cache_dir)
    for name, table in list(splits.items()):
        if table.paths is not None:
            images, bad = decoded_images(
                table, data.pic_size, data.color_mode, data.interpolation, cache, data.threads or 2
            )
            table = _replace_images(table, images)
            if bad:
                messages = [msg for _, msg in bad]
                if data.on_bad_image == "error":
                    listed = "\n  ".join(messages[:20]) + ("\n  ..." if len(messages) > 20 else "")
                    raise DataError(
                        f"{len(bad)} unreadable image(s) in the {name} split:\n  {listed}\n"
                        "Fix or remove them, or pass data.on_bad_image=skip to train without them"
                    )
                log.warning(
                    "skipping %d unreadable image(s) in the %s split: %s", len(bad), name, "; ".join(messages[:5])
                )
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
            pil = pil.resize((data.pic_size, data.pic_size), RESAMPLE_FILTERS[data.interpolation])
        arr = np.asarray(pil)
        out[i] = arr[..., None] if arr.ndim == 2 else arr
    return out


HOLDOUT_SEED = 20131  # one fixed draw: every run, whatever its seed, holds out the same images


def hold_out(splits: Splits, fraction: float) -> None:
    """Move a stratified ``fraction`` of the validation images into the test split (``data.val_holdout``):
    the same images for every run, each class split alike, the order of both parts kept."""
    if splits.test is not None:
        raise DataError(
            f"data.val_holdout={fraction} but the data has a test split already ({len(splits.test)} images): "
            "it scores the chosen checkpoint as it is; set data.val_holdout=0"
        )
    rng = np.random.default_rng(HOLDOUT_SEED)
    held = np.zeros(len(splits.val), dtype=bool)
    for k in range(len(splits.class_names)):
        members = np.flatnonzero(splits.val.labels == k)
        held[rng.choice(members, size=int(round(fraction * len(members))), replace=False)] = True
    if held.all() or not held.any():
        raise DataError(
            f"data.val_holdout={fraction} leaves {'no validation' if held.all() else 'no held-out'} images "
            f"of {len(splits.val)}: choose a fraction between them"
        )
    splits.test = splits.val.subset(held)
    splits.val = splits.val.subset(~held)
    if splits.val_in_train is not None:
        splits.val_in_train = splits.val_in_train[~held]
    splits.directory_layout = False  # the validation folder is no longer one split
    log.info("data.val_holdout=%s: %d validation images held out as the test split", fraction, int(held.sum()))


# --------------------------------------------------------------------------- duplicates


def image_hashes(table: ImageTable) -> np.ndarray:
    """Exact content hash of every decoded image (equal pixels = equal hash)."""
    return pixel_hashes(table.images)


def pixel_hashes(images: np.ndarray) -> np.ndarray:
    """Exact content hash (hex) of each image of an (N, rows, cols, channels) array."""
    return np.array(
        [hashlib.blake2b(np.ascontiguousarray(img).tobytes(), digest_size=16).hexdigest() for img in images]
    )


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
