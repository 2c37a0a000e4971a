"""Pruning inside a run: report the monitored validation metric to the Optuna trial after
every epoch and stop training when the study's pruner says so.

A pruned run is not a failed run: it stops after the epoch the pruner judged, then evaluates
its best weights as usual, keeps its metrics and its checkpoint folder, and ends FINISHED in
MLflow with the tag ``fer_exp.trial_state=PRUNED`` (the study marks the trial PRUNED). FINISHED
rather than KILLED because everything the run logged is complete and valid for the epochs it
trained; KILLED would mix pruned trials with runs a signal or ``kill -9`` cut short.

The recipe hands the trial in (:func:`fer_exp.sweeps.trial.current`, None outside an Optuna
sweep: then there is no callback); training does not import :mod:`fer_exp.sweeps`, whose
settings read the config, which reads training's schedules. Two-objective studies cannot
prune (Optuna refuses ``Trial.report`` there): the callback is left out and the trial trains
to its end.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import keras
from typing_extensions import override

if TYPE_CHECKING:
    from fer_exp.sweeps.trial import ActiveTrial

log = logging.getLogger(__name__)

PRUNED_TAG = "fer_exp.trial_state"


def can_prune(active: ActiveTrial) -> bool:
    """Whether the trial's study can prune: one objective (Optuna cannot prune more)."""
    study = getattr(active.trial, "study", None)
    return study is None or len(study.directions) == 1


class OptunaPruning(keras.callbacks.Callback):
    """After each epoch: ``trial.report(value, epoch)``, and when ``should_prune()``, stop
    training after this epoch, tag the run and :meth:`~ActiveTrial.mark_pruned`.

    ``value`` is ``logs[monitor]`` when the trial's ``report`` is ``last``; for ``best`` (the
    default) it is the best ``logs[monitor]`` so far in the study's direction, so a rung judges
    what the trial would score had it stopped there, not one epoch's dip.

    Args:
        active: the trial in flight.
        tracker: the run's tracker, for the ``fer_exp.trial_state=PRUNED`` tag.
    """

    def __init__(self, active: ActiveTrial, tracker=None):
        super().__init__()
        self.active, self.tracker = active, tracker
        self._warned = False
        self._best: float | None = None
        study = getattr(active.trial, "study", None)
        self._better = min if study is not None and study.direction.name == "MINIMIZE" else max

    @override
    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.active.monitor)
        if value is None:
            if not self._warned:  # a monitor the run does not log: nothing to prune on
                log.warning("no %s in the logs: trial %d is not pruned", self.active.monitor, self.active.number)
                self._warned = True
            return
        done = epoch + 1  # steps are 1-based epochs, as in MLflow
        value = float(value)
        self._best = value if self._best is None else self._better(self._best, value)
        reported = self._best if self.active.report == "best" else value
        self.active.trial.report(reported, done)
        if not self.active.trial.should_prune():
            return
        what = f"best {self.active.monitor} so far" if self.active.report == "best" else self.active.monitor
        # leading newline: Keras's progress bar has not ended its line yet
        print(f"\nEpoch {done}: trial {self.active.number} pruned ({what} {reported:.4f}); stopping")
        self.active.mark_pruned(done)
        self.model.stop_training = True
        if self.tracker is not None:
            self.tracker.set_tags({PRUNED_TAG: "PRUNED", "fer_exp.pruned_epoch": done})


def pruning_callbacks(active: ActiveTrial | None, tracker=None) -> list[keras.callbacks.Callback]:
    """The pruning callback when ``active`` is a prunable Optuna trial, else none."""
    if active is None or active.confirming or not can_prune(active):
        return []
    return [OptunaPruning(active, tracker)]
