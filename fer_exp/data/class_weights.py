"""Class weights that make every class count equally in the loss."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """``sklearn``'s ``compute_class_weight('balanced')``: n_samples / (n_classes * count).

    >>> balanced_class_weights(np.array([0, 0, 0, 1]), 2)
    {0: 0.6666666666666666, 1: 2.0}
    """
    from sklearn.utils.class_weight import compute_class_weight

    classes = np.arange(num_classes)
    weights = compute_class_weight("balanced", classes=classes, y=np.asarray(labels))
    return {int(c): float(w) for c, w in zip(classes, weights)}


def by_name(weights: dict[int, float], class_names: Sequence[str]) -> dict[str, float]:
    """The weights keyed by class name instead of index.

    >>> by_name({0: 0.5, 1: 2.0}, ["happy", "sad"])
    {'happy': 0.5, 'sad': 2.0}
    """
    return {class_names[i]: w for i, w in weights.items()}


def as_array(weights: dict[int, float] | None, num_classes: int) -> np.ndarray | None:
    """The weights as a float32 vector indexed by class (per-sample weights of mixed batches).

    >>> as_array({0: 0.5, 1: 2.0}, 2)
    array([0.5, 2. ], dtype=float32)
    """
    return np.array([weights[i] for i in range(num_classes)], np.float32) if weights else None
