"""The study a sweep runs: Optuna's RDB storage (persistent, shared by workers and reruns,
with a heartbeat), the sampler, the pruner, and what the study says once it has ended.

A trial whose worker died (SIGKILL, a lost machine) stays RUNNING in the storage until its
heartbeat is ``2 x heartbeat_s`` old; the next worker that asks for a trial then marks it FAIL
(:func:`optuna.storages.fail_stale_trials`) and ends its MLflow run KILLED
(:func:`kill_stale_run`), so a rerun of the same command finishes the study.
"""

from __future__ import annotations

import logging
import random
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy.exc import IntegrityError, ProgrammingError

from fer_exp.sweeps.pruning import make_pruner
from fer_exp.sweeps.ranking import SharedEpochTPESampler
from fer_exp.sweeps.settings import objectives, storage_url
from fer_exp.tracking.redact import redact_text
from fer_exp.tracking.store import open_client

log = logging.getLogger("fer_exp.sweeps")

STUDY_TAG, TRIAL_TAG, STATE_TAG = "fer_exp.study", "fer_exp.trial_number", "fer_exp.trial_state"
CONFIRM_TAG = "fer_exp.confirm_of_trial"  # a run that trains a trial's settings again under a new seed
COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)


def open_storage(url: str, cwd: Path, heartbeat_s: int | None, tracking_uri: str | None = None):
    """Optuna's RDB storage at ``url`` (a relative sqlite path against ``cwd``), with a
    heartbeat every ``heartbeat_s`` seconds (none for 0/None) whose stale trials end their
    MLflow run KILLED in ``tracking_uri``."""
    kwargs: dict[str, Any] = {}
    if heartbeat_s:
        kwargs = {
            "heartbeat_interval": int(heartbeat_s),
            "grace_period": 2 * int(heartbeat_s),
            "heartbeat_stale_trial_callback": _StaleRunKiller(tracking_uri),
        }
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its per-trial INFO lines repeat ours
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
                return optuna.storages.RDBStorage(storage_url(url, cwd), engine_kwargs=engine, **kwargs)
        except (IntegrityError, ProgrammingError):
            # two machines creating the tables of a new database at once: the loser finds them next time
            if attempt == 4:
                raise
            time.sleep(1 + random.random())
    raise AssertionError("unreachable")


def make_sampler(cfg: Mapping[str, Any], seed_offset: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler ``cfg`` names (``tpe``, ``random``, ``cmaes``, ``nsga2``); ``ranking:
    shared_epoch`` makes TPE's :class:`~fer_exp.sweeps.ranking.SharedEpochTPESampler`; its other
    keys are the sampler's arguments. ``seed_offset`` keeps workers and reruns from replaying one
    another's draws while the whole sweep stays reproducible from ``seed``."""
    args = {k: v for k, v in cfg.items() if k not in ("name", "seed", "ranking")}
    seed = cfg.get("seed")
    if seed is not None:
        args["seed"] = int(seed) + seed_offset
    shared_epoch = cfg.get("ranking", "finished_first") == "shared_epoch"
    classes = {
        "tpe": SharedEpochTPESampler if shared_epoch else optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "nsga2": optuna.samplers.NSGAIISampler,
    }
    return classes[str(cfg.get("name", "tpe"))](**args)


def open_study(settings: Mapping[str, Any], optimized_metric: str, storage, seed_offset: int = 0) -> optuna.Study:
    """Create the study, or load it when a rerun or another worker already made it."""
    _, directions = objectives(settings, optimized_metric)
    return optuna.create_study(
        storage=storage,
        study_name=str(settings["study_name"]),
        directions=directions,
        sampler=make_sampler(settings.get("sampler") or {}, seed_offset),
        pruner=make_pruner(settings.get("pruner") or {}),
        load_if_exists=True,
    )


def counted(study: optuna.Study) -> int:
    """Trials that count toward ``n_trials``: finished, pruned or still running (not FAIL)."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def results(study: optuna.Study, names: list[str]) -> dict[str, Any]:
    """What ``optimization_results.yaml`` says: the best value and params (single objective),
    or the Pareto front's trials (several objectives)."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    out: dict[str, Any] = {"name": "optuna", "study_name": study.study_name, "n_complete": len(done)}
    if not done:
        return out
    if len(names) == 1:
        best = study.best_trial
        return {**out, "best_trial": best.number, "best_value": best.value, "best_params": best.params}
    front = [{"number": t.number, "values": dict(zip(names, t.values)), "params": t.params} for t in study.best_trials]
    return {**out, "objectives": names, "best_trials": front}


class _StaleRunKiller:
    """Heartbeat callback: the MLflow run of a trial marked FAIL for a silent worker ends KILLED."""

    def __init__(self, tracking_uri: str | None):
        self.tracking_uri = tracking_uri

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        log.warning("trial %d of study %r: its worker stopped answering; marked FAIL", trial.number, study.study_name)
        if self.tracking_uri:
            try:
                kill_stale_run(self.tracking_uri, study.study_name, trial.number)
            except Exception as exc:  # the study must go on even when MLflow cannot be told
                log.warning("could not end the MLflow run of trial %d: %s", trial.number, redact_text(str(exc)))


def kill_stale_run(tracking_uri: str, study_name: str, number: int) -> list[str]:
    """End the still-running MLflow runs of trial ``number`` of ``study_name`` KILLED, tagged
    ``fer_exp.trial_state=FAIL``; returns their ids."""
    client = open_client(tracking_uri)
    killed = []
    for run_id in trial_run_ids(client, study_name, number, running_only=True):
        client.set_tag(run_id, STATE_TAG, "FAIL")
        client.set_terminated(run_id, status="KILLED")
        killed.append(run_id)
    return killed


def trial_run_ids(client, study_name: str, number: int, running_only: bool = False) -> list[str]:
    """The MLflow runs of trial ``number`` of ``study_name`` (by their trial tags), in any experiment."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    name = study_name.replace("'", "\\'")
    query = f"tags.`{STUDY_TAG}` = '{name}' and tags.`{TRIAL_TAG}` = '{number}'"
    if running_only:
        query += " and attributes.status = 'RUNNING'"
    return [r.info.run_id for r in client.search_runs(experiments, query)] if experiments else []
