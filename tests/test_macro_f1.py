"""The per-epoch macro-F1 (``f1``, ``val_f1``): the number sklearn gives for the final
``val_macro_f1``, for every ``data.class_mode``, and kept through a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from fer_exp.config import compose


def _batched(metric, y_true, y_prob, batch=64) -> float:
    for i in range(0, len(y_true), batch):
        metric.update_state(y_true[i : i + batch], y_prob[i : i + batch])
    return float(metric.result())


def _predictions(n=600, classes=7, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    y[:3] = 1  # class 0 never true below: its F1 must count as 0, as sklearn's zero_division=0
    y[y == 0] = 2
    prob = rng.random((n, classes)).astype("float32")
    prob[np.arange(n), y] += rng.random(n).astype("float32")
    prob[:40] = 1.0 / classes  # ties: one class predicted (the first), as argmax does, not all seven
    return y, prob


@pytest.mark.parametrize("class_mode", ["categorical", "sparse"])
def test_per_epoch_macro_f1_is_sklearns_macro_f1_of_the_argmax(class_mode):
    from fer_exp.training.keras_objects import MacroF1

    y, prob = _predictions()
    labels = np.eye(7, dtype="float32")[y] if class_mode == "categorical" else y
    expected = f1_score(y, prob.argmax(1), labels=range(7), average="macro", zero_division=0)
    assert _batched(MacroF1(class_mode), labels, prob) == pytest.approx(expected, abs=1e-5)


def test_binary_macro_f1_scores_the_sigmoid_as_two_classes():
    from fer_exp.training.keras_objects import MacroF1

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1).astype("float32")[:, None]
    expected = f1_score(y, (p[:, 0] > 0.5).astype(int), average="macro")
    assert _batched(MacroF1("binary"), y.astype("float32")[:, None], p) == pytest.approx(expected, abs=1e-5)


def test_an_unknown_class_mode_is_refused():
    from fer_exp.training.keras_objects import MacroF1

    with pytest.raises(ValueError, match="class_mode='onehot'"):
        MacroF1("onehot")


def test_a_compiled_run_model_reports_f1_and_keeps_it_through_a_checkpoint(tmp_path):
    import keras

    from fer_exp.training.fit import compile_model, load_checkpoint

    cfg = compose(["data.class_mode=sparse"])
    model = cfg.model.build((48, 48, 1), 7)
    compile_model(model, cfg, steps=10)
    x = np.random.default_rng(2).random((8, 48, 48, 1)).astype("float32")
    y = np.arange(8) % 7
    assert "f1" in model.train_on_batch(x, y, return_dict=True)
    model.save(tmp_path / "m.keras")
    loaded = load_checkpoint(tmp_path / "m.keras")
    scores = loaded.evaluate(x, y, return_dict=True, verbose=0)
    expected = f1_score(y, loaded.predict(x, verbose=0).argmax(1), labels=range(7), average="macro", zero_division=0)
    assert scores["f1"] == pytest.approx(expected, abs=1e-5)
    assert isinstance(keras.saving.get_registered_object("fer_exp>MacroF1"), type)
