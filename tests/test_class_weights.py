from __future__ import annotations

import numpy as np
import pytest

from fer_exp.data.class_weights import balanced_class_weights, by_name
from tests.conftest import FER2013_TRAIN_COUNTS


def test_balanced_weights_by_hand():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    # n / (k * count): 10 / (3 * 6), 10 / (3 * 3), 10 / (3 * 1)
    assert balanced_class_weights(labels, 3) == pytest.approx({0: 10 / 18, 1: 10 / 9, 2: 10 / 3})


def test_fer2013_counts_give_the_known_weights():
    counts = FER2013_TRAIN_COUNTS
    labels = np.repeat(np.arange(7), list(counts.values()))
    weights = by_name(balanced_class_weights(labels, 7), list(counts))
    assert weights["disgust"] == pytest.approx(9.4433, abs=1e-4)
    assert weights["happy"] == pytest.approx(0.5747, abs=1e-4)
    assert weights["angry"] == pytest.approx(1.0311, abs=1e-4)


def test_absent_class_is_rejected():
    with pytest.raises(ValueError):
        balanced_class_weights(np.array([0, 0, 1]), 3)
