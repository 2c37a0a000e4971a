"""Confirm a study's winner: train its best trials' settings again under new seeds.

A study's best value is the highest of its trials' single runs, so it is also the luckiest:
the more trials, the more the maximum climbs on the noise of one run. With
``hydra.sweeper.confirm.top_k=K`` and ``confirm.seeds=S``, when the study has ended the sweeper
trains each of the K best trials' settings again under S new seeds (the trial's own seed + 1 ...
+ S), in the sweep's process, as child runs of the study's parent tagged
``fer_exp.confirm_of_trial=<number>``. Only these runs, none of which the study chose, count for
the confirmed value (:func:`fer_exp.analysis.groups.confirmation`); a command run again trains only
the confirmations that have not finished yet.
"""

from __future__ import annotations

import logging

import optuna
from omegaconf import OmegaConf

from fer_exp.sweeps import trial as trials
from fer_exp.sweeps.study import CONFIRM_TAG, STUDY_TAG
from fer_exp.sweeps.worker import Launch, launch_job
from fer_exp.tracking.store import open_client

log = logging.getLogger("fer_exp.sweeps")


def top_trials(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """The ``k`` best finished trials of a one-objective study, best first."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    return sorted(done, key=lambda t: -t.value if maximize else t.value)[:k]


def confirm_seeds(base: int, count: int) -> list[int]:
    """The new seeds of a confirmation: the ``count`` seeds after the trial's own.

    >>> confirm_seeds(42, 3)
    [43, 44, 45]
    """
    return [base + i for i in range(1, count + 1)]


def confirm_best(launch: Launch, study: optuna.Study) -> int:
    """Train the top ``confirm.top_k`` trials again under ``confirm.seeds`` new seeds each;
    returns how many runs were trained (those a previous command finished are not trained again)."""
    settings = launch.settings.get("confirm") or {}
    k, count = int(settings.get("top_k") or 0), int(settings.get("seeds") or 0)
    if not k or not count:
        return 0
    base = int(OmegaConf.select(launch.config, "seed") or 0)
    done = finished_confirmations(launch.tracking_uri, study.study_name)
    number = max((t.number for t in study.get_trials(deepcopy=False)), default=0) + 1
    trained = 0
    for t in top_trials(study, k):
        for seed in confirm_seeds(base, count):
            if (t.number, seed) in done:
                continue
            overrides = [*launch.space.overrides(t.params), f"seed={seed}"]
            shown = " ".join(overrides)
            log.info("confirming trial #%d (value %.4f) under seed %d: %s", t.number, t.value, seed, shown)
            active = trials.ActiveTrial(None, t.number, dict(t.params), study.study_name, confirm_seed=seed)
            with trials.active(active):
                launch_job(launch, overrides, number + trained)
            trained += 1
    return trained


def finished_confirmations(tracking_uri: str | None, study_name: str) -> set[tuple[int, int]]:
    """``(trial number, seed)`` of the confirmation runs of ``study_name`` that finished."""
    if not tracking_uri:
        return set()
    client = open_client(tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        ids, f"tags.`{STUDY_TAG}` = '{study_name}' and attributes.status = 'FINISHED'", max_results=10000
    )
    return {
        (int(r.data.tags[CONFIRM_TAG]), int(r.data.params.get("seed", -1))) for r in runs if CONFIRM_TAG in r.data.tags
    }
