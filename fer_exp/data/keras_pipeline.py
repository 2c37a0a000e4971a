"""Input pipeline through Keras's ImageDataGenerator.flow_from_directory, as in the notebook."""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np

from fer_exp.augment import keras_idg
from fer_exp.config import RunConfig
from fer_exp.data.inputs import InputData
from fer_exp.data.sources import Splits

log = logging.getLogger(__name__)


def build(cfg: RunConfig, splits: Splits) -> InputData:
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

    train_gen = ImageDataGenerator(**keras_idg.train_kwargs(cfg.augmentation))
    val_gen = ImageDataGenerator(**keras_idg.val_kwargs(cfg.augmentation))
    if keras_idg.needs_fit(cfg.augmentation):
        log.info("fitting featurewise statistics on %d training images", len(splits.train))
        train_gen.fit(_load_images(splits.train.paths, size, data.color_mode, data.interpolation))
        val_gen.mean, val_gen.std = train_gen.mean, train_gen.std

    def train_flow():
        return train_gen.flow_from_directory(
            str(splits.root / data.train_dir), shuffle=True, seed=cfg.seed, **flow_args
        )

    train = train_flow()
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


def _load_images(paths, size, color_mode, interpolation) -> np.ndarray:
    from tensorflow.keras.preprocessing.image import img_to_array, load_img

    return np.stack([
        img_to_array(load_img(p, color_mode=color_mode, target_size=size, interpolation=interpolation))
        for p in paths
    ])
