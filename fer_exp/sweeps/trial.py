"""The trial this process is running, for the code that runs it.

The sweeper's worker (:mod:`fer_exp.sweeps.worker`) asks Optuna for a trial and runs the job
inside :func:`active`; the job (``fer_exp.cli.run.run_job``) names its MLflow run after it and
stores its run id and final metrics here; the pruning callback reports the monitored metric
each epoch through :attr:`ActiveTrial.trial` and calls :meth:`ActiveTrial.mark_pruned` when
the pruner says stop. The worker then tells the study COMPLETE (with the metrics) or PRUNED.

One trial per process at a time (workers are processes), so a module-level slot is enough.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fer_exp.tracking.redact import redact_text

_current: ActiveTrial | None = None
# Short names of the usual search-space keys in a trial's run name (others: their last part).
_SHORT = {
    "learning_rate": "lr",
    "rotation_range": "rot",
    "width_shift_range": "wshift",
    "height_shift_range": "hshift",
    "zoom_range": "zoom",
    "horizontal_flip": "flip",
}


@dataclass
class ActiveTrial:
    """A trial in flight: Optuna's handle, what it samples, and what its run has produced.

    Attributes:
        trial: the ``optuna.Trial`` (``report``/``should_prune`` for pruning).
        number: the trial's number in its study (also the job's ``hydra.job.num``).
        params: the sampled values as overrides, ``{"optimizer.learning_rate": 0.0012}``.
        study_name: the study the trial belongs to.
        monitor: the metric reported to the pruner each epoch (``val_accuracy``).
        report: ``best`` (the best value of ``monitor`` so far, in the study's direction) or
            ``last`` (that epoch's value).
        run_id: the MLflow run of the job, once it has started.
        metrics: the job's final metrics (``reports/metrics.json``), once it has ended.
        pruned_epoch: the epoch after which the pruner stopped the trial, None if it was not.
        tracking_uri: where the job's run lives (the worker tags its final state there).
        confirm_seed: set for a confirmation run of the trial's settings under a new seed.
    """

    trial: Any
    number: int
    params: dict[str, Any] = field(default_factory=dict)
    study_name: str = ""
    monitor: str = "val_accuracy"
    report: str = "best"
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    pruned_epoch: int | None = None
    tracking_uri: str | None = None
    confirm_seed: int | None = None  # a confirmation run of this trial's settings under this seed

    @property
    def confirming(self) -> bool:
        """Whether this is a confirmation run (:mod:`fer_exp.sweeps.confirm`): no pruner, no study result."""
        return self.confirm_seed is not None

    def mark_pruned(self, epoch: int) -> None:
        """Record that the pruner stopped this trial after ``epoch`` (1-based)."""
        self.pruned_epoch = epoch

    def run_name(self) -> str:
        """The MLflow run's name: the trial's number and sampled values, short.

        >>> ActiveTrial(None, 3, {"optimizer.learning_rate": 0.001234, "augmentation.horizontal_flip": True}).run_name()
        '#3 lr=0.0012 flip=true'
        """
        parts = [f"confirm #{self.number} seed={self.confirm_seed}" if self.confirming else f"#{self.number}"]
        for key, value in self.params.items():
            leaf = key.rsplit(".", 1)[-1]
            if isinstance(value, bool):
                shown = str(value).lower()
            elif isinstance(value, float):
                shown = f"{value:.2g}"
            else:
                shown = str(value)
            parts.append(f"{_SHORT.get(leaf, leaf)}={shown}")
        return redact_text(" ".join(parts))[:200]  # MLflow's UI cuts long names anyway

    @property
    def pruned(self) -> bool:
        """Whether the pruner stopped this trial."""
        return self.pruned_epoch is not None


def current() -> ActiveTrial | None:
    """The trial this process is running, None outside an Optuna sweep."""
    return _current


@contextmanager
def active(t: ActiveTrial) -> Iterator[ActiveTrial]:
    """Make ``t`` the current trial while the block runs (the job runs inside it)."""
    global _current
    previous, _current = _current, t
    try:
        yield t
    finally:
        _current = previous
