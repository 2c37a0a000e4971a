"""What training consumes: batches for fit/evaluate plus the facts about the data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


def limited(batches: int, limit: int | None) -> int:
    """The batches an epoch or an evaluation uses: all of them, or the debug ``limit_*_batches``.

    >>> limited(10, None), limited(10, 3), limited(10, 30)
    (10, 3, 10)
    """
    return min(batches, limit or batches)


@dataclass
class InputData:
    """What a pipeline (:mod:`~fer_exp.data.tf_pipeline`, :mod:`~fer_exp.data.keras_pipeline`) hands to training."""

    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]
    train: Any  # iterable of (images, one-hot labels) batches accepted by model.fit
    val: Any
    train_batches: int  # batches in one pass over the split
    val_batches: int
    # (n) -> (images, int labels): the first n training images exactly as augmented for fit
    preview: Callable[[int], tuple[np.ndarray, np.ndarray]]
    pipeline: str
    # training batches carry per-sample weights (mixup/cutmix): fit gets no class_weight then
    weights_in_batches: bool = False
    test: Any = None  # batches of the test split, when the source has one
    test_batches: int = 0
    # featurewise statistics of the training images (None unless the augmentation standardizes
    # featurewise): a logged model must standardize new images with the very same numbers
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def train_steps(self, limit: int | None = None) -> int:
        """Training batches per epoch: the whole split (never ``n // batch_size``), or ``limit``."""
        return limited(self.train_batches, limit)

    def val_steps(self, limit: int | None = None) -> int:
        """Validation batches per evaluation: all of them, or ``limit``."""
        return limited(self.val_batches, limit)

    def test_steps(self, limit: int | None = None) -> int:
        """Test batches: all of them, or ``limit``."""
        return limited(self.test_batches, limit)
