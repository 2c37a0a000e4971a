"""Labels as each Keras ``class_mode`` delivers them."""

from __future__ import annotations

import numpy as np


def targets(labels: np.ndarray, num_classes: int, class_mode: str) -> np.ndarray:
    """categorical: one-hot float32; sparse: class index (float32, as Keras's iterators
    yield it); binary: 0./1. for two classes."""
    if class_mode == "categorical":
        return np.eye(num_classes, dtype=np.float32)[labels]
    return labels.astype(np.float32)


def target_shape(num_classes: int, class_mode: str) -> tuple[int | None, ...]:
    """The batch shape of :func:`targets`' output, which tf.data needs declared up front.

    >>> target_shape(7, "categorical"), target_shape(7, "sparse")
    ((None, 7), (None,))
    """
    return (None, num_classes) if class_mode == "categorical" else (None,)


def to_labels(y: np.ndarray) -> np.ndarray:
    """Any class_mode's targets back to integer labels."""
    y = np.asarray(y)
    return y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else np.rint(y.reshape(-1)).astype(np.int64)
