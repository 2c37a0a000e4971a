"""Learning-rate schedules have the documented shape, and a checkpoint with one loads again."""

from __future__ import annotations

import numpy as np
import pytest

from fer_exp.config import compose


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

    from fer_exp.training.fit import build_optimizer

    cfg = compose(["schedule=onecycle", "optimizer=adamw"])
    model = cfg.model.build((48, 48, 1), 7)
    model.compile(optimizer=build_optimizer(cfg, 10), loss="categorical_crossentropy", jit_compile=False)
    model.train_on_batch(np.zeros((2, 48, 48, 1), "float32"), keras.utils.to_categorical([0, 1], 7))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert int(loaded.optimizer.iterations) == 1


def _fitted(overrides, steps_per_epoch=10, epochs=10):
    from fer_exp.training.keras_objects import BudgetFittedSchedule

    cfg = compose(overrides + [f"epochs={epochs}", "optimizer.learning_rate=0.01", "time_budget_min=60"])
    inner = cfg.schedule.learning_rate(cfg.optimizer.learning_rate, steps_per_epoch, epochs)
    return inner, BudgetFittedSchedule(inner, steps_per_epoch * epochs)


def _lr(schedule, step):
    import keras

    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_budget_fitted_cosine_anneals_fully_in_the_epochs_that_fit():
    inner, fitted = _fitted(["schedule=cosine", "schedule.warmup_epochs=1", "schedule.alpha=0.1"])
    assert [_lr(fitted, s) for s in range(0, 100, 7)] == pytest.approx([_lr(inner, s) for s in range(0, 100, 7)])
    before = _lr(fitted, 20)
    fitted.refit(step=20, total_steps=60)  # after 2 epochs: only 6 of the 10 epochs fit
    assert _lr(fitted, 20) == pytest.approx(before, rel=1e-5)  # no jump
    tail = np.array([_lr(fitted, s) for s in range(20, 61)])
    assert np.all(np.diff(tail) < 0)
    assert tail[-1] == pytest.approx(0.001, rel=1e-3)  # alpha x base, reached at step 60, not 100
    assert _lr(inner, 60) > 0.004  # the plain schedule would have been cut off half-way
    assert _lr(fitted, 90) == pytest.approx(0.001, rel=1e-3)  # past the plan it stays at the end


def test_budget_fitted_schedule_is_checkpointed_with_its_fit(tmp_path):
    import keras

    from fer_exp.training.fit import build_optimizer

    cfg = compose(["schedule=onecycle", "optimizer=adamw", "epochs=10", "time_budget_min=5"])
    model = cfg.model.build((48, 48, 1), 7)
    model.compile(optimizer=build_optimizer(cfg, 10), loss="categorical_crossentropy", jit_compile=False)
    model.train_on_batch(np.zeros((2, 48, 48, 1), "float32"), keras.utils.to_categorical([0, 1], 7))
    model.optimizer._learning_rate.refit(step=1, total_steps=40)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    schedule = loaded.optimizer._learning_rate
    assert type(schedule).__name__ == "BudgetFittedSchedule"
    assert schedule.get_config() == model.optimizer._learning_rate.get_config()
    assert _lr(schedule, 25) == pytest.approx(_lr(model.optimizer._learning_rate, 25))


def test_time_budget_plans_epochs_refits_and_stops(monkeypatch):

    from fer_exp.training import callbacks
    from fer_exp.training.fit import build_optimizer

    cfg = compose(["schedule=cosine", "schedule.warmup_epochs=0", "epochs=10", "time_budget_min=1"])
    model = cfg.model.build((48, 48, 1), 7)
    model.compile(optimizer=build_optimizer(cfg, 5), loss="categorical_crossentropy", jit_compile=False)
    clock = [0.0]
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: clock[0])
    budget = callbacks.TimeBudget(minutes=1, max_epochs=10, steps_per_epoch=5)
    budget.set_model(model)
    budget.on_train_begin()
    planned = []
    for epoch in range(10):
        model.optimizer.iterations.assign((epoch + 1) * 5)
        clock[0] += 14.0  # 14 s an epoch: 4 epochs fit in 60 s
        logs = {}
        budget.on_epoch_end(epoch, logs)
        planned.append(logs["budget_epochs"])
        if model.stop_training:
            break
    assert planned == [4, 4, 4, 4] and epoch == 3
    assert _lr(model.optimizer._learning_rate, 20) == pytest.approx(0.0, abs=1e-7)  # cosine ended at epoch 4


def test_without_a_budget_or_when_switched_off_the_schedule_is_not_wrapped():
    from fer_exp.training.fit import build_optimizer

    for overrides in (["schedule=cosine"], ["schedule=cosine", "time_budget_min=5", "time_budget_fit_schedule=false"]):
        opt = build_optimizer(compose(overrides), 10)
        assert type(opt._learning_rate).__name__ == "CosineDecay"
