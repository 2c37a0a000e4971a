"""Training: compile, and ``model.fit`` with the run's callbacks; load checkpoints back."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer_exp.errors import ConfigError
from fer_exp.training.callbacks import (
    Checkpointer,
    MlflowEpochMetrics,
    ResumableEarlyStopping,
    TimeBudget,
)
from fer_exp.training.keras_objects import BudgetFittedSchedule, MacroF1
from fer_exp.training.monitors import monitor_mode
from fer_exp.training.pruning import pruning_callbacks
from fer_exp.training.setup import progress_bar

if TYPE_CHECKING:
    from fer_exp.config import RunConfig
    from fer_exp.data.inputs import InputData
    from fer_exp.sweeps.trial import ActiveTrial
    from fer_exp.tracking import Tracker

log = logging.getLogger(__name__)


def load_checkpoint(path: Path):
    """A model saved by :class:`~fer_exp.training.callbacks.Checkpointer`, with its optimizer
    state (:func:`fer_exp.models.layers.load_saved_model`: a Lambda layer is refused)."""
    from fer_exp.models.layers import load_saved_model

    return load_saved_model(path)


def load_best_weights(model, checkpoint_dir: Path) -> None:
    """Give ``model`` the weights of the best epoch (``best.keras``), when one was saved."""
    best = checkpoint_dir / "best.keras"
    if best.exists():
        model.load_weights(best)


def build_optimizer(cfg: RunConfig, steps: int):
    """The configured Keras optimizer, its learning rate or schedule planned for ``steps``
    batches per epoch. With a time budget that may shorten the run, the schedule is wrapped in
    a :class:`~fer_exp.training.keras_objects.BudgetFittedSchedule`. A setting the optimizer
    rejects raises a ConfigError naming it, not a Hydra traceback."""
    from hydra.utils import instantiate

    kwargs = cfg.optimizer_kwargs()
    schedule = cfg.schedule.learning_rate(cfg.optimizer.learning_rate, steps, cfg.epochs)
    if cfg.time_budget_min and cfg.time_budget_fit_schedule and not isinstance(schedule, float):
        schedule = BudgetFittedSchedule(schedule, planned_steps=steps * cfg.epochs)
    kwargs["learning_rate"] = schedule
    try:
        return instantiate(kwargs)
    except Exception as exc:  # a kwarg the Keras class does not take, a misspelt class
        cause = exc.__cause__ or exc
        raise ConfigError(f"optimizer: cannot build {cfg.optimizer.target}: {cause}") from None


def compile_model(model, cfg: RunConfig, steps: int) -> None:
    """Compile a new model: :func:`build_optimizer`, the loss of :func:`loss_for`, accuracy and
    macro-F1 (:class:`~fer_exp.training.keras_objects.MacroF1`: ``f1``, ``val_f1``), without
    XLA (slower, not faster, for these models on CPU). Resumed models keep the compiled state
    their checkpoint holds."""
    model.compile(
        optimizer=build_optimizer(cfg, steps),
        loss=loss_for(cfg),
        metrics=["accuracy", MacroF1(cfg.data.class_mode)],
        jit_compile=False,  # XLA made these models slower, not faster, on CPU
    )


def loss_for(cfg: RunConfig):
    """The cross-entropy that matches ``data.class_mode``."""
    import keras

    mode, smoothing = cfg.data.class_mode, cfg.label_smoothing
    if mode == "binary":
        return keras.losses.BinaryCrossentropy(label_smoothing=smoothing)
    if mode == "sparse":
        return keras.losses.SparseCategoricalCrossentropy()
    return keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)


def make_callbacks(
    cfg: RunConfig,
    checkpoint_dir: Path,
    tracker: Tracker,
    state: dict | None,
    steps_per_epoch: int,
    trial: ActiveTrial | None = None,
) -> tuple[list[Any], Checkpointer]:
    """The run's callbacks in the order they must run, and the checkpointer among them (it
    keeps the whole run's history); ``trial``: the Optuna trial this run is, for its pruner."""
    saved = (state or {}).get("callbacks", {})
    stateful: dict[str, Any] = {}
    es = cfg.callbacks.early_stopping
    if es.enabled:
        stateful["early_stopping"] = ResumableEarlyStopping(
            monitor=es.monitor,
            mode=monitor_mode(es.monitor),
            patience=es.patience,
            min_delta=es.min_delta,
            restore_best_weights=es.restore_best_weights,
            verbose=1,
            initial_state=saved.get("early_stopping"),
            best_weights_path=checkpoint_dir / "best.keras",
        )
    stateful.update(cfg.schedule.callbacks(saved))
    monitor = cfg.callbacks.checkpoint_monitor
    checkpointer = Checkpointer(
        checkpoint_dir,
        monitor,
        monitor_mode(monitor),
        stateful,
        initial_state=state,
        extra_state={"run_id": tracker.run_id},
    )
    # Order matters: the budget plans (and adds budget_epochs to the logs), counters update, an
    # Optuna trial's pruner decides, then the checkpoint commits the epoch (and whether training
    # ended with it, so a resume never trains a pruned trial further), then MLflow hears of it.
    callbacks = [*stateful.values(), *pruning_callbacks(trial, tracker), checkpointer, MlflowEpochMetrics(tracker)]
    if cfg.time_budget_min:
        callbacks.insert(
            0, TimeBudget(cfg.time_budget_min, cfg.epochs, steps_per_epoch, (state or {}).get("train_time_s", 0.0))
        )
    return callbacks, checkpointer


def fit(
    model,
    inputs: InputData,
    cfg: RunConfig,
    class_weight: dict[int, float] | None,
    checkpoint_dir: Path,
    tracker: Tracker,
    state: dict | None = None,
    trial: ActiveTrial | None = None,
) -> dict[str, list[float]]:
    """Train from scratch, or from ``state`` (a checkpoint's state.json) when resuming;
    ``trial``: the Optuna trial this run is (its pruner may stop training early).

    Returns the per-epoch history of the whole run, resumed epochs included.
    """
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    steps = inputs.train_steps(cfg.limit_train_batches)
    if state is None:
        compile_model(model, cfg, steps)
    callbacks, checkpointer = make_callbacks(cfg, checkpoint_dir, tracker, state, steps, trial)
    model.fit(
        inputs.train,
        validation_data=inputs.val,
        initial_epoch=(state or {}).get("epochs_done", 0),
        epochs=cfg.epochs,
        steps_per_epoch=steps,
        validation_steps=inputs.val_steps(cfg.limit_val_batches),
        class_weight=None if inputs.weights_in_batches else class_weight,
        shuffle=False,  # both pipelines shuffle images themselves, per epoch, from the run's seed
        callbacks=callbacks,
        verbose=1 if progress_bar() else 2,
    )
    return checkpointer.history
