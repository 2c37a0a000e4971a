"""Input pipeline through Keras's ImageDataGenerator.flow_from_directory, as in the notebook."""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np

from fer_exp.augment import keras_idg
from fer_exp.augment.warp import featurewise_stats
from fer_exp.config import RunConfig
from fer_exp.data.cache import cache_dir_for, decoded_images
from fer_exp.data.inputs import InputData
from fer_exp.data.sources import Splits

log = logging.getLogger(__name__)


def build(cfg: RunConfig, splits: Splits, initial_epoch: int = 0) -> InputData:
    from tensorflow.keras.preprocessing.image import ImageDataGenerator

    data = cfg.data
    channels = 1 if data.color_mode == "grayscale" else 3
    size = (data.pic_size, data.pic_size)
    classes = list(splits.class_names)
    flow_args = dict(
        target_size=size,
        color_mode=data.color_mode,
        classes=classes,
        class_mode=data.class_mode,
        batch_size=cfg.batch_size,
        interpolation=data.interpolation,
    )

    # Decoding every image once up front (cached, ~3 s for FER-2013) names an unreadable
    # file by its path now, instead of a nameless PIL error in the middle of an epoch.
    cache_dir = cache_dir_for(data.cache_dir)
    train_images = decoded_images(splits.train, data.pic_size, data.color_mode, data.interpolation, cache_dir)
    decoded_images(splits.val, data.pic_size, data.color_mode, data.interpolation, cache_dir)

    train_gen = ImageDataGenerator(**keras_idg.train_kwargs(cfg.augmentation))
    val_gen = ImageDataGenerator(**keras_idg.val_kwargs(cfg.augmentation))
    if keras_idg.needs_fit(cfg.augmentation):
        # What ImageDataGenerator.fit computes, in float64 chunks instead of a float32 copy.
        train_gen.mean, train_gen.std = featurewise_stats(train_images, cfg.augmentation.rescale)
        val_gen.mean, val_gen.std = train_gen.mean, train_gen.std

    def train_flow():
        return train_gen.flow_from_directory(
            str(splits.root / data.train_dir), shuffle=True, seed=cfg.seed, **flow_args
        )

    train = train_flow()
    # A resumed run continues the seeded augmentation stream where it stopped (the shuffle
    # order of the resumed epochs differs from an uninterrupted run's).
    train.total_batches_seen = initial_epoch * len(train)
    val = val_gen.flow_from_directory(str(splits.root / data.val_dir), shuffle=False, **flow_args)
    # flow_from_directory lists files itself; it must agree with the table the run logged.
    if not np.array_equal(train.classes, splits.train.labels) or not np.array_equal(val.classes, splits.val.labels):
        raise RuntimeError("flow_from_directory found different files than fer_exp's scan")

    def preview(n: int) -> tuple[np.ndarray, np.ndarray]:
        # A fresh iterator with the run's seed yields exactly the first batches fit will see.
        with contextlib.redirect_stdout(io.StringIO()):  # not a second "Found N images" line
            flow = train_flow()
        images, labels = [], []
        for i in range(len(flow)):
            x, y = flow[i]
            images.append(x)
            labels.append(y.argmax(axis=1))
            if sum(len(b) for b in images) >= n:
                break
        return np.concatenate(images)[:n], np.concatenate(labels)[:n]

    return InputData(
        class_names=splits.class_names,
        train_labels=splits.train.labels,
        val_labels=splits.val.labels,
        input_shape=(data.pic_size, data.pic_size, channels),
        train=train,
        val=val,
        train_batches=len(train),
        val_batches=len(val),
        preview=preview,
        pipeline="keras",
    )

