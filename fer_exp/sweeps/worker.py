"""Asynchronous workers: each asks the shared study for a trial, runs it as a Hydra job,
tells the study how it ended, and asks again — no batch barrier, so a short or pruned trial
never waits for a long one.

``n_jobs`` workers run as processes (one runs in the sweep's own process when ``n_jobs`` is 1),
or as submitit jobs when the sweep's launcher is hydra-submitit-launcher's (Slurm, local;
:mod:`fer_exp.sweeps.submit`);
a worker that dies does not stop the others, and its trial in flight is marked FAIL by the
heartbeat on a later ask (:mod:`fer_exp.sweeps.study`). Each job goes through Hydra's
``run_job`` as the joblib launcher's do, with ``hydra.job.num`` = the trial's number, so job
folders never collide across reruns. Ctrl-C or SIGTERM: the trials in flight are told FAIL
and their runs end KILLED.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobStatus, run_job, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict

from fer_exp.sweeps import trial as trials
from fer_exp.sweeps.settings import objectives
from fer_exp.sweeps.space import SearchSpace
from fer_exp.sweeps.study import COUNTED, STATE_TAG, counted, open_storage, open_study, trial_run_ids
from fer_exp.sweeps.submit import submit_workers, submitit_cluster
from fer_exp.tracking.store import open_client

log = logging.getLogger("fer_exp.sweeps")
State = optuna.trial.TrialState
# A worker stops after this many of its trials failed one after the other (failed trials do
# not count toward n_trials, so a job that always fails would otherwise be retried forever).
MAX_FAILED_IN_A_ROW = 3


@dataclass
class Launch:
    """What every worker needs, picklable (cloudpickle) for worker processes."""

    hydra_context: Any
    config: DictConfig  # the sweep's config: hydra node, overrides, sweep folder
    task_function: Any
    singleton_state: dict
    settings: dict[str, Any]  # hydra.sweeper.*, resolved
    space: SearchSpace
    cwd: Path
    optimized_metric: str
    tracking_uri: str | None
    # TensorFlow and input threads of each run (a Slurm job's CPUs); None: cores / n_jobs
    threads: int | None = None


class Stopped(KeyboardInterrupt):
    """SIGTERM as Ctrl-C; remembers the signal for the exit status (see fer_exp.cli.run)."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


def _stop(signum, frame):
    raise Stopped(signum)


def run_workers(launch: Launch) -> list[int]:
    """Run the study to ``n_trials`` with ``n_jobs`` workers; returns each worker's exit code
    (0 for one that ran in this process and ended normally). With a submitit launcher the
    workers are ``n_jobs`` submitit jobs (:func:`fer_exp.sweeps.submit.submit_workers`)."""
    cluster = submitit_cluster(launch.config)
    if cluster:  # checked before (settings.check_launcher)
        return submit_workers(launch, cluster, work, _stop)
    n_jobs = int(launch.settings.get("n_jobs") or 1)
    if n_jobs == 1:
        work(launch, 0)
        return [0]
    import cloudpickle

    payload = cloudpickle.dumps(launch)
    ctx = multiprocessing.get_context("spawn")  # no forked TensorFlow or sqlite handles
    procs = [ctx.Process(target=_process_main, args=(payload, i), name=f"optuna-worker-{i}") for i in range(n_jobs)]
    for p in procs:
        p.start()
    previous = signal.signal(signal.SIGTERM, _stop) if threading.current_thread() is threading.main_thread() else None
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:  # the workers end their runs KILLED and tell their trials FAIL
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    for i, p in enumerate(procs):
        if p.exitcode:
            how = f"signal {-p.exitcode}" if p.exitcode < 0 else f"exit status {p.exitcode}"
            log.warning("worker %d stopped (%s); the others went on", i, how)
    return [p.exitcode or 0 for p in procs]


def _process_main(payload: bytes, worker: int) -> None:
    import cloudpickle

    launch = cloudpickle.loads(payload)
    signal.signal(signal.SIGTERM, _stop)
    try:
        work(launch, worker)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def work(launch: Launch, worker: int) -> int:
    """One worker's loop: ask, run, tell until the study holds ``n_trials`` trials that count
    (finished, pruned or running); returns how many trials this worker ran."""
    setup_globals()
    Singleton.set_state(launch.singleton_state)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
    s = launch.settings
    storage = open_storage(str(s["storage"]), launch.cwd, s.get("heartbeat_s"), launch.tracking_uri)
    probe = open_study(s, launch.optimized_metric, storage)
    study = open_study(s, launch.optimized_metric, storage, seed_offset=7919 * worker + len(probe.trials))
    n_trials, ran, failed = int(s["n_trials"]), 0, 0
    while True:
        with warnings.catch_warnings():  # heartbeats outside Study.optimize: this module beats them
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            optuna.storages.fail_stale_trials(study)
            if counted(study) >= n_trials:
                return ran
            trial = study.ask(dict(launch.space.distributions))
        ahead = [t for t in study.get_trials(deepcopy=False, states=COUNTED) if t.number < trial.number]
        if len(ahead) >= n_trials:  # another worker took the last trial meanwhile
            trial.set_user_attr("fer_exp.surplus", True)
            study.tell(trial, state=State.FAIL)
            return ran
        failed = failed + 1 if run_trial(launch, study, storage, trial) == State.FAIL else 0
        ran += 1
        if failed >= MAX_FAILED_IN_A_ROW:  # every trial failing: a problem no new values will fix
            log.error("worker %d: %d trials failed in a row; it stops (see the runs' error tags)", worker, failed)
            return ran


def run_trial(launch: Launch, study: optuna.Study, storage, trial: optuna.Trial) -> State:
    """Run ``trial`` as a Hydra job and tell the study COMPLETE (its objectives), PRUNED or FAIL."""
    names, _ = objectives(launch.settings, launch.optimized_metric)
    overrides = launch.space.overrides(trial.params)
    pruner = launch.settings.get("pruner") or {}
    monitor, report = str(pruner.get("monitor", "val_accuracy")), str(pruner.get("report", "best"))
    active = trials.ActiveTrial(trial, trial.number, dict(trial.params), study.study_name, monitor, report)
    state, values = State.FAIL, None
    log.info("trial #%d: %s", trial.number, " ".join(overrides))
    try:
        with _Heartbeat(storage, study, trial), trials.active(active):
            ret = launch_job(launch, overrides, trial.number)
        if active.pruned:
            state = State.PRUNED
        elif ret.status == JobStatus.COMPLETED:
            values = [active.metrics.get(n) for n in names]  # the metrics the job stored (fer_exp.cli.run)
            if None in values:
                missing = [n for n, v in zip(names, values) if v is None]
                log.error("trial #%d: the job reported no %s", trial.number, ", ".join(missing))
            else:
                state = State.COMPLETE
    finally:  # also on Ctrl-C / SIGTERM: the trial in flight is told FAIL
        try:
            if active.run_id:
                trial.set_user_attr("mlflow_run_id", active.run_id)
            study.tell(trial, values if state == State.COMPLETE else None, state=state)
        except optuna.exceptions.UpdateFinishedTrialError:  # marked FAIL meanwhile (a late heartbeat)
            state = State.FAIL
        _tag_state(active, state)
    return state


def launch_job(launch: Launch, overrides: list[str], number: int):
    """Run one Hydra job of the sweep in this process: ``overrides`` on the sweep's config, job
    number ``number`` (its folder under the sweep folder); returns Hydra's ``JobReturn``."""
    hydra_context = launch.hydra_context
    sweep_config = hydra_context.config_loader.load_sweep_config(launch.config, overrides)
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{number}"
        sweep_config.hydra.job.num = number
        give_threads(sweep_config, launch.threads)
    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        config=sweep_config,
        task_function=launch.task_function,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


def give_threads(job_config: DictConfig, threads: int | None) -> None:
    """A job's TensorFlow and input threads = ``threads`` (a Slurm job's CPUs), unless the
    config sets ``threads.intra_op`` (then nothing changes) or ``data.threads`` (kept); None
    leaves them to fer_exp.cli.run, which gives each worker cores / n_jobs."""
    if not threads or OmegaConf.select(job_config, "threads.intra_op"):
        return
    with open_dict(job_config):
        job_config.threads.intra_op, job_config.threads.inter_op = threads, 1
        job_config.data.threads = job_config.data.threads or min(threads, 256)  # data.threads <= 256


def _tag_state(active: trials.ActiveTrial, state: State) -> None:
    """Tag the trial's run with how the study recorded it (a run that failed before it returned
    its id is found by its trial tags)."""
    if not active.tracking_uri:
        return
    try:
        client = open_client(active.tracking_uri)
        ids = [active.run_id] if active.run_id else trial_run_ids(client, active.study_name, active.number)
        for run_id in ids:
            client.set_tag(run_id, STATE_TAG, state.name)
    except Exception as exc:  # the study's record counts; a missing tag must not stop the sweep
        log.warning("trial #%d: could not tag its MLflow run: %s", active.number, type(exc).__name__)


class _Heartbeat:
    """Record the trial's heartbeat every ``heartbeat_s`` while its job runs (as
    ``Study.optimize`` does), so that only a dead worker's trial goes stale."""

    def __init__(self, storage, study: optuna.Study, trial: optuna.Trial):
        self.interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
        self.storage = storage
        self.trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(study.study_name), trial.number
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name="optuna-heartbeat")

    def _beat(self) -> None:
        while True:
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a busy database: the next beat will do
                pass
            if self.stop.wait(self.interval):
                return

    def __enter__(self):
        if self.interval:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
