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


class _NoTracking:
    run_id = "no-run"

    def log_metrics(self, metrics, step=None):
        pass


def test_balanced_class_weights_reach_the_loss(tmp_path):
    """fit hands the run's class weights to Keras: from the same start, the first epoch's loss
    differs with and without them (the synthetic faces are as imbalanced as FER-2013)."""
    from fer_exp.config import compose
    from fer_exp.data.sources import load_splits
    from fer_exp.runs.steps import build_inputs
    from fer_exp.training.fit import fit
    from fer_exp.training.setup import setup_tensorflow

    cfg = compose(
        [
            "epochs=1",
            "limit_train_batches=3",
            "limit_val_batches=1",
            "augmentation=none",
            "model.filters=[8]",
            "callbacks.early_stopping.enabled=false",
            "preview_images=0",
        ]
    )
    splits = load_splits(cfg.data)
    balanced = balanced_class_weights(splits.train.labels, len(splits.class_names))
    losses = {}
    for name, weights in (("balanced", balanced), ("none", None)):
        setup_tensorflow(cfg)  # the same seed: the same initial weights and batches
        inputs = build_inputs(cfg, splits, 0, weights)
        model = cfg.model.build(inputs.input_shape, len(splits.class_names))
        losses[name] = fit(model, inputs, cfg, weights, tmp_path / name, _NoTracking())["loss"][0]
    assert losses["balanced"] != pytest.approx(losses["none"], rel=1e-3), losses
