"""Input pipeline through Keras's ImageDataGenerator, as in the notebook.

Untouched class folders go through ``flow_from_directory`` exactly as the notebook did; a
filtered file list (skipped images, de-duplication, CSV/parquet sources) through
``flow_from_dataframe``; in-memory sources (fer2013.csv, arrays) through ``flow``.
"""

from __future__ import annotations

import contextlib
import io
import logging

import keras
import numpy as np
from typing_extensions import override

from fer_exp.augment import extra, keras_idg
from fer_exp.augment.pipeline import featurewise_stats, needs_featurewise_stats
from fer_exp.config import RunConfig
from fer_exp.data.class_weights import as_array
from fer_exp.data.inputs import InputData
from fer_exp.data.sources import Splits
from fer_exp.data.table import ImageTable
from fer_exp.data.targets import targets, to_labels

log = logging.getLogger(__name__)


def build(
    cfg: RunConfig, splits: Splits, initial_epoch: int = 0, class_weights: dict[int, float] | None = None
) -> InputData:
    """The run's inputs through ``ImageDataGenerator``: training batches augmented and shuffled
    with ``cfg.seed``; validation and test batches standardized only, in file order.

    Args:
        cfg: the run config (``data``, ``augmentation``, ``batch_size``, ``seed`` are read).
        splits: the loaded and checked splits (:func:`fer_exp.data.sources.load_splits`).
        initial_epoch: epochs already trained, when resuming: the augmentation stream goes on from there.
        class_weights: per-class loss weights; used here only when mixup/cutmix turn them into
            per-sample weights (otherwise ``fit`` gets them).

    Returns:
        The iterators, their batch counts and a ``preview`` of the first training batches.
    """
    from tensorflow.keras.preprocessing.image import ImageDataGenerator

    data = cfg.data
    train_gen = ImageDataGenerator(**keras_idg.train_kwargs(cfg.augmentation))
    eval_gen = ImageDataGenerator(**keras_idg.val_kwargs(cfg.augmentation))
    if needs_featurewise_stats(cfg.augmentation):
        # What ImageDataGenerator.fit computes, in float64 chunks instead of a float32 copy.
        train_gen.mean, train_gen.std = featurewise_stats(splits.train.images, cfg.augmentation.rescale)
        eval_gen.mean, eval_gen.std = train_gen.mean, train_gen.std
    k = len(splits.class_names)

    def flow(gen, table: ImageTable, split_dir: str | None, shuffle: bool):
        common = dict(batch_size=cfg.batch_size, shuffle=shuffle, seed=cfg.seed if shuffle else None)
        files = dict(
            target_size=(data.pic_size, data.pic_size),
            color_mode=data.color_mode,
            class_mode=data.class_mode,
            interpolation=data.interpolation,
            **common,
        )
        if splits.directory_layout and split_dir is not None:
            it = gen.flow_from_directory(str(splits.root / split_dir), classes=list(splits.class_names), **files)
            if not np.array_equal(it.classes, table.labels):  # it lists the folders itself
                raise RuntimeError(f"flow_from_directory found other files in {split_dir} than fer_exp's scan")
            return it
        if table.paths is not None:
            import pandas as pd

            frame = pd.DataFrame({"filename": table.paths, "class": [splits.class_names[i] for i in table.labels]})
            return gen.flow_from_dataframe(
                frame,
                x_col="filename",
                y_col="class",
                classes=list(splits.class_names),
                validate_filenames=False,
                **files,
            )
        return gen.flow(table.images.astype(np.float32), targets(table.labels, k, data.class_mode), **common)

    dirs = {
        "train": getattr(data, "train_dir", None),
        "val": getattr(data, "val_dir", None),
        "test": getattr(data, "test_dir", None),
    }
    train = flow(train_gen, splits.train, dirs["train"], shuffle=True)
    # A resumed run continues the seeded augmentation stream where it stopped (the shuffle
    # order of the resumed epochs differs from an uninterrupted run's).
    train.total_batches_seen = initial_epoch * len(train)
    mixing = extra.has_mixing(cfg.augmentation)
    if mixing:  # batch ops after the generator: soft labels and per-sample class weights
        train = Mixed(train, cfg.augmentation, cfg.seed, as_array(class_weights, k))
    val = flow(eval_gen, splits.val, dirs["val"], shuffle=False)
    test = flow(eval_gen, splits.test, dirs["test"], shuffle=False) if splits.test is not None else None

    def preview(n: int) -> tuple[np.ndarray, np.ndarray]:
        # A fresh iterator with the run's seed yields exactly the first batches fit will see.
        with contextlib.redirect_stdout(io.StringIO()):  # not a second "Found N images" line
            it = flow(train_gen, splits.train, dirs["train"], shuffle=True)
        if mixing:
            it = Mixed(it, cfg.augmentation, cfg.seed, None)
        images, labels = [], []
        for i in range(len(it)):
            x, y = it[i][:2]
            images.append(x)
            labels.append(to_labels(y))
            if sum(len(b) for b in images) >= n:
                break
        return np.concatenate(images)[:n], np.concatenate(labels)[:n]

    return InputData(
        class_names=splits.class_names,
        input_shape=splits.train.images.shape[1:],
        train=train,
        val=val,
        train_batches=len(train),
        val_batches=len(val),
        preview=preview,
        pipeline="keras",
        weights_in_batches=mixing,
        test=test,
        test_batches=len(test) if test is not None else 0,
        mean=getattr(eval_gen, "mean", None),
        std=getattr(eval_gen, "std", None),
    )


class Mixed(keras.utils.PyDataset):
    """A generator's batches with mixup/cutmix applied (:func:`fer_exp.augment.extra.mix_batch`),
    seeded per batch so a resumed run continues the same stream."""

    def __init__(self, source, aug, seed: int, class_weights):
        super().__init__()
        self.source, self.aug, self.seed, self.class_weights = source, aug, seed, class_weights
        self.total_batches_seen = 0

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        x, y = self.source[i]
        rng = np.random.default_rng([self.seed, 2, self.total_batches_seen])
        self.total_batches_seen += 1
        return extra.mix_batch(x, y, self.aug, rng, self.class_weights)

    @override
    def on_epoch_end(self):
        self.source.on_epoch_end()
