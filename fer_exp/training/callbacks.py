"""Keras callbacks of a run: crash-safe checkpoints, resumable early stopping and LR plateau,
and per-epoch MLflow metrics.

After every epoch, :class:`Checkpointer` writes ``last-<epoch>.keras`` (model + optimizer),
``best.keras`` when the monitored value improved, and then ``state.json`` — each written to a
temporary file and renamed, so an interrupt or ``kill -9`` at any moment leaves the previous
complete epoch intact. ``state.json`` is the commit point: it names the last checkpoint and
holds the history and every callback's counters, which is all a resumed run needs, and it says
whether training ended with that epoch (all epochs, early stopping, the time budget), so that a
resume never trains a run further than it would have gone (:func:`fer_exp.runs.folder.training_ended`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
from typing_extensions import override

from fer_exp import faults
from fer_exp.models.layers import load_saved_model
from fer_exp.training.keras_objects import BudgetFittedSchedule

STATE_FILE = "state.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file and a rename, so a reader, or a resume after a
    crash, sees the old content or the new one, never half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_save_model(model, path: Path) -> None:
    """Save ``model`` to ``path`` (a ``.keras`` file) through a temporary file and a rename, so
    an interrupted save never leaves a truncated checkpoint under the real name."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # Keras wants the .keras suffix
    model.save(tmp)
    os.replace(tmp, path)


def current_learning_rate(model) -> float:
    """The optimizer's learning rate now (a schedule's value at the current step)."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose counters survive a restart (Keras resets them in on_train_begin)."""

    def __init__(self, *args, initial_state: dict | None = None, best_weights_path: Path | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._initial_state = initial_state or {}
        self._best_weights_path = best_weights_path

    @override
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for key in ("wait", "stopped_epoch", "best", "best_epoch"):
            if key in self._initial_state:
                setattr(self, key, self._initial_state[key])
        if self._initial_state and self.restore_best_weights and self._best_weights_path:
            # The best weights lived in memory; best.keras holds the same epoch's weights.
            best = load_saved_model(self._best_weights_path, compile=False)
            self.best_weights = best.get_weights()

    def state(self) -> dict[str, Any]:
        """The counters a resumed run needs back (its ``initial_state``), JSON-ready."""
        return {k: _jsonable(getattr(self, k)) for k in ("wait", "stopped_epoch", "best", "best_epoch")}


class ResumableReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau whose counters survive a restart (Keras resets them in on_train_begin)."""

    def __init__(self, *args, initial_state: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._initial_state = initial_state or {}

    @override
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for key in ("wait", "best", "cooldown_counter"):
            if key in self._initial_state:
                setattr(self, key, self._initial_state[key])

    def state(self) -> dict[str, Any]:
        """The counters a resumed run needs back (its ``initial_state``), JSON-ready."""
        return {k: _jsonable(getattr(self, k)) for k in ("wait", "best", "cooldown_counter")}


class Checkpointer(keras.callbacks.Callback):
    """Crash-safe ``last-<epoch>.keras`` / ``best.keras`` / ``state.json`` after every epoch."""

    def __init__(
        self,
        directory: Path,
        monitor: str,
        mode: str,
        stateful: dict[str, Any],
        initial_state: dict | None = None,
        extra_state: dict | None = None,
    ):
        super().__init__()
        self.directory = directory
        self.monitor, self.mode = monitor, mode
        self.stateful = stateful  # name -> callback with .state()
        state = initial_state or {}
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch", 0)
        self.history: dict[str, list[float]] = {k: list(v) for k, v in state.get("history", {}).items()}
        self.extra_state = extra_state or {}
        self.trained_before = state.get("train_time_s", 0.0)  # by the runs this one resumes

    @override
    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    @override
    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        logs["learning_rate"] = current_learning_rate(self.model)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        last = self.directory / f"last-{epoch + 1:04d}.keras"
        atomic_save_model(self.model, last)
        value = logs.get(self.monitor)
        if value is not None and self._improved(value):
            self.best, self.best_epoch = value, epoch + 1
            atomic_save_model(self.model, self.directory / "best.keras")
        state = {
            "epochs_done": epoch + 1,
            # the callbacks before this one (early stopping, time budget) have decided by now
            "training_ended": bool(self.model.stop_training) or epoch + 1 >= self.params["epochs"],
            "last_checkpoint": last.name,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "monitor": self.monitor,
            "history": self.history,
            "callbacks": {name: cb.state() for name, cb in self.stateful.items()},
            "train_time_s": self.trained_before + time.perf_counter() - self._start,
            "saved_at": time.time(),
            **self.extra_state,
        }
        atomic_write_text(self.directory / STATE_FILE, json.dumps(state, indent=1))
        faults.point("checkpoint_write")  # the epoch is committed; MLflow has not heard of it yet
        for old in self.directory.glob("last-*.keras"):  # only after state.json moved on
            if old.name != last.name:
                old.unlink(missing_ok=True)


class MlflowEpochMetrics(keras.callbacks.Callback):
    """Every epoch's logs plus learning rate and epoch time, at step = epoch number (1-based)."""

    def __init__(self, tracker):
        super().__init__()
        self.tracker = tracker

    @override
    def on_epoch_begin(self, epoch, logs=None):
        faults.point("epoch_start")
        self._start = time.perf_counter()

    @override
    def on_train_batch_end(self, batch, logs=None):
        faults.point("mid_epoch")  # fault-injection tests (fer_exp.faults); a dict lookup otherwise

    @override
    def on_epoch_end(self, epoch, logs=None):
        metrics = {k: float(v) for k, v in (logs or {}).items()}
        metrics["learning_rate"] = current_learning_rate(self.model)
        metrics["epoch_time_s"] = time.perf_counter() - self._start
        self.tracker.log_metrics(metrics, step=epoch + 1)


class TimeBudget(keras.callbacks.Callback):
    """Stop after the epoch that leaves too little time for another one within ``minutes``
    (counting the time already trained before a resume).

    After every epoch it plans how many epochs fit (``budget_epochs`` in the logs, hence in
    MLflow) from the mean epoch time so far, and refits a
    :class:`~fer_exp.training.keras_objects.BudgetFittedSchedule` to end exactly there.
    """

    def __init__(self, minutes: float, max_epochs: int, steps_per_epoch: int, already_s: float = 0.0):
        super().__init__()
        self.budget_s, self.already_s = minutes * 60, already_s
        self.max_epochs, self.steps_per_epoch = max_epochs, steps_per_epoch
        self.planned = max_epochs

    @override
    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()
        self._epochs = 0
        # Keras keeps an optimizer's schedule in _learning_rate (the public property is its value).
        schedule = getattr(self.model.optimizer, "_learning_rate", None)
        self.schedule = schedule if isinstance(schedule, BudgetFittedSchedule) else None

    @override
    def on_epoch_end(self, epoch, logs=None):
        self._epochs += 1
        elapsed = time.perf_counter() - self._start
        used = self.already_s + elapsed
        per_epoch = elapsed / self._epochs
        done = epoch + 1
        planned = min(self.max_epochs, done + int(max(0.0, self.budget_s - used) // per_epoch))
        if logs is not None:
            logs["budget_epochs"] = float(planned)
        if planned <= done:
            if done < self.max_epochs:
                print(
                    f"\nEpoch {done}: time budget of {self.budget_s / 60:.0f} min reached "
                    f"({used / 60:.1f} min trained); stopping"
                )
                self.model.stop_training = True
            return
        if planned != self.planned:
            fitted = " (learning-rate schedule fitted to it)" if self.schedule is not None else ""
            # leading newline: Keras's progress bar has not ended its line yet
            print(
                f"\nEpoch {done}: {planned} of {self.max_epochs} epochs fit the time budget of "
                f"{self.budget_s / 60:.0f} min at {per_epoch:.0f} s per epoch{fitted}"
            )
        self.planned = planned
        if self.schedule is not None:
            self.schedule.refit(int(self.model.optimizer.iterations), planned * self.steps_per_epoch)
