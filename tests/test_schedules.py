"""Learning-rate schedules have the documented shape, and a checkpoint with one loads again."""

from __future__ import annotations

import numpy as np
import pytest

from fer_exp.app import compose


def _curve(overrides, steps_per_epoch=10, epochs=10):
    import keras

    cfg = compose(overrides + [f"epochs={epochs}", "optimizer.learning_rate=0.01"])
    lr = cfg.schedule.learning_rate(cfg.optimizer.learning_rate, steps_per_epoch, epochs)
    steps = np.arange(steps_per_epoch * epochs)
    if isinstance(lr, float):
        return np.full(len(steps), lr), cfg
    return np.array([float(keras.ops.convert_to_numpy(lr(s))) for s in steps]), cfg


def test_cosine_warms_up_then_decays_to_alpha():
    lr, _ = _curve(["schedule=cosine", "schedule.warmup_epochs=2", "schedule.alpha=0.1"])
    peak = int(np.argmax(lr))
    assert 18 <= peak <= 20 and lr[peak] == pytest.approx(0.01, rel=1e-3)
    assert np.all(np.diff(lr[:peak]) > 0) and np.all(np.diff(lr[peak:]) <= 1e-12)
    assert lr[-1] == pytest.approx(0.001, rel=0.05)


def test_onecycle_rises_and_anneals():
    lr, _ = _curve(["schedule=onecycle", "schedule.warmup_pct=0.3"])
    assert lr[0] == pytest.approx(0.01 / 25, rel=1e-3)
    assert int(np.argmax(lr)) == pytest.approx(30, abs=1) and lr.max() == pytest.approx(0.01, rel=1e-3)
    assert lr[-1] < 0.01 / 1000


def test_step_multiplies_by_gamma():
    lr, _ = _curve(["schedule=step", "schedule.step_epochs=3", "schedule.gamma=0.5"])
    assert sorted(set(np.round(lr, 8)), reverse=True) == pytest.approx([0.01, 0.005, 0.0025, 0.00125])


def test_constant_and_plateau():
    lr, cfg = _curve(["schedule=constant"])
    assert np.all(lr == 0.01) and cfg.schedule.callbacks() == {}
    _, cfg = _curve(["schedule=plateau", "schedule.patience=5"])
    (callback,) = cfg.schedule.callbacks().values()
    assert isinstance(callback, __import__("keras").callbacks.ReduceLROnPlateau) and callback.patience == 5


def test_model_compiled_with_onecycle_saves_and_loads(tmp_path):
    import keras

    from fer_exp.train import build_optimizer

    cfg = compose(["schedule=onecycle", "optimizer=adamw"])
    model = cfg.model.build((48, 48, 1), 7)
    model.compile(optimizer=build_optimizer(cfg, 10), loss="categorical_crossentropy", jit_compile=False)
    model.train_on_batch(np.zeros((2, 48, 48, 1), "float32"), keras.utils.to_categorical([0, 1], 7))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert int(loaded.optimizer.iterations) == 1
