"""How the TPE sampler ranks pruned trials against finished ones (``hydra.sweeper.sampler.ranking``).

TPE samples near its "good" trials, the best ~10 % of the study. Optuna's TPESampler ranks
every finished trial above every pruned one (``finished_first``). Under successive halving a
study's first trials finish because they met no rivals at the cuts, not because they were
good, so early in a pruned study TPE's good trials are simply the first ones, and it samples
near them (measured on the benchmark page; docs/studies.md).

``shared_epoch`` ranks each trial by how many of the others it beats where the two can be
compared fairly: two finished trials by the study's objective, any other pair by their reports
at the last epoch both reached (a tie counts half). A first trial that finished unopposed then
ranks by how it did against the later trials at the cuts they shared. In a study where nothing
was pruned, the ranking is the objective's, so TPE samples exactly what it samples with
``finished_first``.

It needs one objective (Optuna prunes nothing in a study with two) and the TPE sampler; the
choices are :data:`fer_exp.sweeps.settings.RANKINGS`, checked there before any trial.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState


def beats(a: FrozenTrial, b: FrozenTrial, maximize: bool) -> float:
    """1 if trial ``a`` is better than ``b``, 0 if worse, 0.5 for a tie or no shared epoch:
    two finished trials by their value, any other pair at the last epoch both reported.
    A NaN is worse than any number."""
    if a.state == TrialState.COMPLETE and b.state == TrialState.COMPLETE:
        x, y = a.value, b.value
    else:
        shared = a.intermediate_values.keys() & b.intermediate_values.keys()
        if not shared:
            return 0.5
        step = max(shared)
        x, y = a.intermediate_values[step], b.intermediate_values[step]
    if x is None or y is None or (math.isnan(x) and math.isnan(y)) or x == y:
        return 0.5
    if math.isnan(x) or math.isnan(y):
        return 0.0 if math.isnan(x) else 1.0
    return 1.0 if (x > y) == maximize else 0.0


def shared_epoch_scores(trials: Sequence[FrozenTrial], maximize: bool) -> dict[int, float]:
    """Each finished or pruned trial's number → how many of the others it beats (:func:`beats`).

    >>> from optuna.trial import create_trial
    >>> early = create_trial(value=0.5, intermediate_values={1: 0.2, 2: 0.5})  # finished unopposed
    >>> late = create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.4})
    >>> early.number, late.number = 0, 1
    >>> shared_epoch_scores([early, late], maximize=True)
    {0: 0.0, 1: 1.0}
    """
    ranked = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    return {a.number: sum(beats(a, b, maximize) for b in ranked if b is not a) for a in ranked}


def ranked_view(trials: Sequence[FrozenTrial], maximize: bool) -> list[FrozenTrial]:
    """``trials`` as TPE should see them: each finished or pruned trial as a finished trial whose
    value is its :func:`shared_epoch_scores` score (negated when the study minimizes), other
    trials (running ones, for ``constant_liar``) as they are."""
    scores = shared_epoch_scores(trials, maximize)
    view = []
    for t in trials:
        if t.number in scores:
            t = copy.copy(t)  # a shallow copy: only its state and value change, never the storage's
            t.state = TrialState.COMPLETE
            t.values = [scores[t.number] if maximize else -scores[t.number]]
        view.append(t)
    return view


class _RankedStudy:
    """The study as TPE reads it, its trials through :func:`ranked_view`; everything else is the
    study's own. TPESampler reads trials only through ``Study._get_trials`` (tested against the
    installed Optuna in tests/test_sampler_ranking.py)."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study
        self._maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=False, states=states, use_cache=use_cache)
        return ranked_view(trials, self._maximize)

    def get_trials(self, deepcopy: bool = True, states=None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)


class SharedEpochTPESampler(optuna.samplers.TPESampler):
    """Optuna's TPESampler with ``shared_epoch`` ranking (module docstring); its arguments are
    TPESampler's. A study with two objectives is sampled as TPESampler does."""

    def _view(self, study: optuna.Study):
        return study if study._is_multi_objective() else _RankedStudy(study)

    # infer_relative_search_space is TPESampler's own: the search space reads the trials'
    # distributions, which the ranked view leaves as they are, so it needs no ranking

    def sample_relative(self, study, trial, search_space):  # noqa: D102 (TPESampler's)
        return super().sample_relative(self._view(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):  # noqa: D102
        return super().sample_independent(self._view(study), trial, param_name, param_distribution)
