"""Optuna pruners from a study's ``pruner`` config: ``none``, ``median``,
``successive_halving`` (asynchronous successive halving, ASHA) and ``hyperband``.

A trial reports its monitored validation metric once per epoch at step = epoch number
(1-based, as in MLflow), so every "step" or "resource" below is an epoch. What it reports is
``report``: ``best`` (the default), the best value so far, which is what the trial would score
as ``best_val_accuracy`` had it stopped there, so one unlucky epoch at a rung does not cut a
trial; or ``last``, that epoch's value, as Optuna's own Keras callback reports. ``warmup_epochs``
is the number of epochs every trial trains: the first pruning decision comes after that epoch
(after the first one for 0), with each pruner (``n_warmup_steps`` of the median pruner,
``min_resource`` of successive halving and hyperband). ``monitor`` (the metric reported: one
of :data:`fer_exp.training.monitors.MONITORS`, e.g. ``val_f1`` to judge trials by macro-F1) and
``report`` are the trial's business (:mod:`fer_exp.training.pruning`), checked here.

Pruning needs one objective: Optuna refuses ``trial.report`` in a multi-objective study, so a
two-objective study trains every trial to its end whatever pruner is configured.

>>> type(make_pruner({"name": "successive_halving", "warmup_epochs": 2})).__name__
'SuccessiveHalvingPruner'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fer_exp.config.suggest import close_names, unknown_name
from fer_exp.errors import ConfigError
from fer_exp.training.monitors import MONITORS

if TYPE_CHECKING:
    import optuna

PRUNERS = ("none", "median", "successive_halving", "hyperband")
REPORTS = ("best", "last")
# The knobs each pruner reads besides its name; defaults are Optuna's unless noted.
_KNOBS: dict[str, dict[str, Any]] = {
    "none": {"warmup_epochs": 0},
    # n_startup_trials: 5 finished trials before the median means anything
    "median": {"warmup_epochs": 0, "n_startup_trials": 5, "interval_epochs": 1},
    # reduction_factor 3 (Optuna: 4) keeps a third of the trials at each rung: with 10-30
    # epochs a trial, 4 leaves too few rungs for the first cut to be informed.
    # bootstrap_count b: the first b trials to reach a rung stop there (no rivals to beat yet),
    # so the first trials of a study cannot train to the end unopposed (docs/studies.md)
    "successive_halving": {
        "warmup_epochs": 0,
        "reduction_factor": 3,
        "min_early_stopping_rate": 0,
        "bootstrap_count": 0,
    },
    "hyperband": {"warmup_epochs": 0, "max_epochs": "auto", "reduction_factor": 3},
}


def default_settings() -> dict[str, Any]:
    """Every pruner setting with its default: the sweeper's ``pruner`` section before the
    config's, so ``hydra.sweeper.pruner.reduction_factor=4`` works on the command line.

    >>> default_settings()["reduction_factor"], default_settings()["report"]
    (3, 'best')
    """
    settings: dict[str, Any] = {"name": "none", "monitor": "val_accuracy", "report": "best"}
    for knobs in _KNOBS.values():
        settings.update(knobs)  # a knob two pruners share has one default (see _KNOBS)
    return settings


def _check(cfg: Mapping) -> tuple[str, dict[str, Any]]:
    """The pruner's name and its knobs with defaults filled in; a ConfigError for an unknown
    name or knob, or a value out of range."""
    name = str(cfg.get("name", "none"))
    if name not in _KNOBS:
        close = close_names(name, PRUNERS)
        guess = f": did you mean {' or '.join(close)}?" if close else ""
        raise ConfigError(f"pruner.name={name} is not a pruner{guess} (pruners: {', '.join(sorted(PRUNERS))})")
    knobs = dict(_KNOBS[name])
    # A knob of another pruner is ignored, not refused: `pruner.name=none` on the command line
    # must work on a config written for successive halving.
    known = {k for each in _KNOBS.values() for k in each}
    monitor = str(cfg.get("monitor", "val_accuracy"))
    if monitor not in MONITORS:
        raise ConfigError(unknown_name("pruner.monitor", monitor, MONITORS, "per-epoch value"))
    report = cfg.get("report", "best")
    if report not in REPORTS:
        raise ConfigError(f"pruner.report={report} is not one of: best (the best value so far), last (that epoch's)")
    for key, value in cfg.items():
        if key in ("name", "monitor", "report"):
            continue
        if key not in known:
            close = close_names(str(key), known)
            hint = f"did you mean pruner.{close[0]}?" if close else f"the keys are: name, {', '.join(sorted(known))}"
            raise ConfigError(f"pruner.{key} is not a pruner setting: {hint}")
        if key in knobs:
            knobs[key] = value
    for key, value in knobs.items():
        if value == "auto":
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"pruner.{key}={value!r} must be a whole number")
        least = {"reduction_factor": 2, "interval_epochs": 1, "max_epochs": 1}.get(key, 0)
        if value < least:
            raise ConfigError(f"pruner.{key}={value} must be at least {least}")
    return name, knobs


def make_pruner(cfg: Mapping) -> optuna.pruners.BasePruner:
    """The Optuna pruner a study's ``pruner`` section describes.

    Args:
        cfg: ``name`` (one of :data:`PRUNERS`), ``warmup_epochs`` (epochs before any pruning)
            and the pruner's own knobs: ``n_startup_trials`` and ``interval_epochs`` (median),
            ``reduction_factor``, ``min_early_stopping_rate`` and ``bootstrap_count``
            (successive halving),
            ``max_epochs`` and ``reduction_factor`` (hyperband).

    Raises:
        ConfigError: an unknown pruner or knob (with the closest name), or a value out of range.
    """
    from optuna import pruners  # not at import: the sweeper's settings read the defaults at Hydra's plugin scan

    name, knobs = _check(cfg)
    if name == "none":
        return pruners.NopPruner()
    if name == "median":
        return pruners.MedianPruner(
            n_startup_trials=knobs["n_startup_trials"],
            n_warmup_steps=knobs["warmup_epochs"],
            interval_steps=knobs["interval_epochs"],
        )
    if name == "successive_halving":
        return pruners.SuccessiveHalvingPruner(
            min_resource=max(1, knobs["warmup_epochs"]),  # epochs are 1-based steps: 0 means 1
            reduction_factor=knobs["reduction_factor"],
            min_early_stopping_rate=knobs["min_early_stopping_rate"],
            bootstrap_count=knobs["bootstrap_count"],
        )
    return pruners.HyperbandPruner(
        min_resource=max(1, knobs["warmup_epochs"]),
        max_resource=knobs["max_epochs"],
        reduction_factor=knobs["reduction_factor"],
    )


def describe(cfg: Mapping) -> str:
    """A one-line description of the pruner for MLflow params and summaries, e.g.
    ``successive_halving(warmup_epochs=1, reduction_factor=3, min_early_stopping_rate=0, bootstrap_count=0,
    report=best)``."""
    name, knobs = _check(cfg)
    if name == "none":
        return name
    knobs["report"] = cfg.get("report", "best")
    return f"{name}({', '.join(f'{k}={v}' for k, v in knobs.items())})"
