"""The fast input pipeline: decoded-once uint8 images, one fused augmentation per batch, tf.data.

Batches are a pure function of (seed, step): step ``s`` belongs to epoch ``s // steps`` and
takes the ``s % steps``-th slice of that epoch's permutation, with transform parameters from
a generator seeded by (seed, s). So the images fit sees do not depend on how many threads
built them or in which order, and a resumed run can start at any epoch.
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np

from fer_exp.augment import extra
from fer_exp.augment import params as transform_params
from fer_exp.augment.pipeline import (
    apply_transform,
    featurewise_stats,
    is_geometric,
    needs_featurewise_stats,
    standardize,
)
from fer_exp.config import AugmentationConfig, RunConfig
from fer_exp.data.class_weights import as_array
from fer_exp.data.inputs import InputData, limited
from fer_exp.data.sources import Splits
from fer_exp.data.targets import target_shape, targets, to_labels

log = logging.getLogger(__name__)


def default_threads() -> int:
    """Batch builders. The numba kernel builds batches far faster per thread than a model
    consumes them (``scripts/bench_input.py`` measures both), with the GIL released, so the
    threads idle most of the time: one per core up to four is plenty on 2 cores as on 16."""
    return max(1, min(4, os.cpu_count() or 1))


class TrainBatches:
    """Builds training batch ``step`` (augmented images, one-hot labels) on demand."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        num_classes: int,
        aug: AugmentationConfig,
        batch_size: int,
        steps_per_epoch: int,
        seed: int,
        mean=None,
        std=None,
        class_mode: str = "categorical",
        class_weights: np.ndarray | None = None,
    ):
        self.images, self.labels, self.aug, self.class_mode = images, labels, aug, class_mode
        self.class_weights = class_weights
        # mixup/cutmix: soft targets, and class weights delivered as per-sample weights
        self.sample_weights = extra.has_mixing(aug)
        self.num_classes, self.batch_size, self.steps = num_classes, batch_size, steps_per_epoch
        self.seed, self.mean, self.std = seed, mean, std
        self._augments = bool(is_geometric(aug) or aug.channel_shift_range or aug.brightness_range)
        self._perms: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def permutation(self, epoch: int) -> np.ndarray:
        """The shuffled image order of ``epoch``, seeded by (seed, epoch). Thread-safe; the
        previous epoch's order is kept too, as builders of neighbouring epochs overlap."""
        with self._lock:
            if epoch not in self._perms:
                self._perms = {e: p for e, p in self._perms.items() if e >= epoch - 1}  # keep it small
                self._perms[epoch] = np.random.default_rng([self.seed, 0, epoch]).permutation(len(self.images))
            return self._perms[epoch]

    def indices(self, step: int) -> np.ndarray:
        """The image indices of global ``step``: its slice of its epoch's permutation (the
        epoch's last batch may be shorter)."""
        epoch, batch = divmod(int(step), self.steps)
        return self.permutation(epoch)[batch * self.batch_size : (batch + 1) * self.batch_size]

    def __call__(self, step) -> tuple[np.ndarray, ...]:
        """Batch ``step``: ``(images, targets)``, or ``(images, soft targets, sample weights)``
        with mixup/cutmix. A pure function of (seed, step), whichever thread builds it."""
        idx = self.indices(step)
        raw = self.images[np.sort(idx)][np.argsort(np.argsort(idx))]  # sorted reads from the memmap
        rng = np.random.default_rng([self.seed, 1, int(step)])
        if self._augments:
            p = transform_params.draw(self.aug, len(idx), raw.shape[1:], rng)
            x = apply_transform(raw, p, self.aug, self.mean, self.std, rng)
        else:
            x = raw.astype(np.float32)
            if extra.has_per_image(self.aug):
                x = extra.apply_per_image(x, self.aug, rng)
            x = standardize(x, self.aug, self.mean, self.std)
        y = targets(self.labels[idx], self.num_classes, self.class_mode)
        if self.sample_weights:
            return extra.mix_batch(x, y, self.aug, rng, self.class_weights)
        return x, y


class EvalBatches:
    """Validation batch ``i``, in file order, standardized but never augmented."""

    def __init__(
        self, images, labels, num_classes, aug, batch_size, mean=None, std=None, class_mode: str = "categorical"
    ):
        self.images, self.labels, self.num_classes, self.class_mode = images, labels, num_classes, class_mode
        self.aug, self.batch_size, self.mean, self.std = aug, batch_size, mean, std

    def __call__(self, i) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``i``: ``(standardized images, targets)``."""
        sl = slice(int(i) * self.batch_size, (int(i) + 1) * self.batch_size)
        x = standardize(np.asarray(self.images[sl], dtype=np.float32), self.aug, self.mean, self.std)
        return x, targets(self.labels[sl], self.num_classes, self.class_mode)


def _dataset(fn, steps, shape, y_shape, threads: int, start: int = 0, weighted: bool = False):
    import tensorflow as tf

    def call(step):
        out = tf.numpy_function(fn, [step], (tf.float32,) * (3 if weighted else 2), stateful=False)
        out[0].set_shape((None, *shape))
        out[1].set_shape(y_shape)
        if weighted:
            out[2].set_shape((None,))
        return tuple(out)

    ds = tf.data.Dataset.range(start, start + steps if steps else np.iinfo(np.int64).max)
    ds = ds.map(call, num_parallel_calls=threads, deterministic=True)
    return ds.prefetch(max(2, threads))


def build(
    cfg: RunConfig, splits: Splits, initial_epoch: int = 0, class_weights: dict[int, float] | None = None
) -> InputData:
    """The run's inputs as tf.data datasets: training batches built on demand by
    :class:`TrainBatches` as one endless stream (``fit``'s ``steps_per_epoch`` cuts it into
    epochs), validation and test batches by :class:`EvalBatches`.

    Args:
        cfg: the run config (``data``, ``augmentation``, ``batch_size``, ``seed``,
            ``limit_train_batches`` are read).
        splits: the loaded and checked splits (:func:`fer_exp.data.sources.load_splits`).
        initial_epoch: epochs already trained, when resuming: the stream starts at that epoch's first step.
        class_weights: per-class loss weights; used here only when mixup/cutmix turn them into
            per-sample weights (otherwise ``fit`` gets them).

    Returns:
        The datasets, their batch counts and a ``preview`` of the first training batches.
    """
    data, aug = cfg.data, cfg.augmentation
    threads = data.threads or default_threads()
    train_x = splits.train.images
    for _, table in splits.items():  # the line users know from flow_from_directory
        print(f"Found {len(table)} images belonging to {len(splits.class_names)} classes.")
    mean = std = None
    if needs_featurewise_stats(aug):
        mean, std = featurewise_stats(train_x, aug.rescale)

    k, mode = len(splits.class_names), data.class_mode
    train_batches = -(-len(train_x) // cfg.batch_size)
    steps = limited(train_batches, cfg.limit_train_batches)
    weights = as_array(class_weights, k)
    make_train = TrainBatches(
        train_x, splits.train.labels, k, aug, cfg.batch_size, steps, cfg.seed, mean, std, mode, weights
    )
    shape, y_shape = train_x.shape[1:], target_shape(k, mode)

    def evaluation(table):
        batches = EvalBatches(table.images, table.labels, k, aug, cfg.batch_size, mean, std, mode)
        return _dataset(batches, -(-len(table) // cfg.batch_size), shape, y_shape, threads)

    def preview(n: int):
        images, labels, step = [], [], 0
        while sum(len(b) for b in images) < n and step < steps:
            x, y = make_train(step)[:2]
            images.append(x)
            labels.append(to_labels(y))
            step += 1
        return np.concatenate(images)[:n], np.concatenate(labels)[:n]

    return InputData(
        class_names=splits.class_names,
        input_shape=shape,
        train=_dataset(
            make_train, None, shape, y_shape, threads, start=initial_epoch * steps, weighted=make_train.sample_weights
        ),
        val=evaluation(splits.val),
        train_batches=train_batches,
        val_batches=-(-len(splits.val) // cfg.batch_size),
        preview=preview,
        pipeline="tfdata",
        weights_in_batches=make_train.sample_weights,
        test=evaluation(splits.test) if splits.test is not None else None,
        test_batches=-(-len(splits.test) // cfg.batch_size) if splits.test is not None else 0,
        mean=mean,
        std=std,
    )
