"""The study's workers as submitit jobs, when the sweep's ``hydra/launcher`` is one of
hydra-submitit-launcher's (``slurm``, ``submitit_slurm``, ``submitit_local``).

``hydra.sweeper.n_jobs`` jobs, each one asynchronous worker of the study (not one job per
trial): every job runs the worker loop (:func:`fer_exp.sweeps.worker.work`, handed in by
:func:`~fer_exp.sweeps.worker.run_workers`: this module imports no worker), and the sweep's
process waits for them all, as Hydra's submitit launcher does. ``hydra.launcher.*`` becomes the executor's
parameters exactly as the launcher maps them (:func:`executor_parameters`); submitit's files
and logs go to ``hydra.launcher.submitit_folder`` (``<sweep folder>/.submitit/<job id>``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fer_exp.sweeps.settings import SUBMITIT_CLUSTERS
from fer_exp.tracking.redact import redact_text

log = logging.getLogger("fer_exp.sweeps")
POLL_S = 2.0  # between two looks at the jobs; Slurm's own state is read at most once a minute


def submitit_cluster(config: DictConfig | None) -> str | None:
    """``slurm`` or ``local`` when the sweep's launcher is hydra-submitit-launcher's, else None."""
    target = OmegaConf.select(config, "hydra.launcher._target_", default=None) if config is not None else None
    return SUBMITIT_CLUSTERS.get(str(target))


def executor_parameters(cluster: str, launcher: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``hydra.launcher.*`` (resolved) as ``AutoExecutor(cluster, **init)`` and
    ``update_parameters(**update)`` take them: a copy of ``BaseSubmititLauncher.launch``'s
    mapping (generic keys as they are, the others prefixed with the cluster's name)."""
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    params = {k: v for k, v in launcher.items() if k != "_target_"}  # Hydra's instantiate drops it
    init = {"folder": params["submitit_folder"]}
    specific_init_keys = {"max_num_timeout"}
    init.update({f"{cluster}_{k}": v for k, v in params.items() if k in specific_init_keys})
    init_keys = specific_init_keys | {"submitit_folder"}
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    update = {k if k in base else f"{cluster}_{k}": v for k, v in params.items() if k not in init_keys}
    return init, update


def worker_threads(cluster: str, cpus_per_task: int | None, environ: Mapping[str, str]) -> int | None:
    """The TensorFlow and input threads of a worker in a job: on Slurm the CPUs the job was
    given (``$SLURM_CPUS_PER_TASK``, else ``cpus_per_task``, else the CPUs this process may
    use); None for local jobs, which share this machine's cores as local workers do."""
    if cluster != "slurm":
        return None
    granted = environ.get("SLURM_CPUS_PER_TASK") or cpus_per_task
    return int(granted) if granted else len(os.sched_getaffinity(0))


def submit_workers(launch, cluster: str, work: Callable[[Any, int], int], stop: Callable) -> list[int]:
    """Submit ``n_jobs`` jobs that each run ``work(launch, worker)``, wait for every one, and
    return 0 per job that ended normally, 1 per job that failed (a warning names it and its
    log). SIGTERM while waiting calls ``stop`` (which raises KeyboardInterrupt); Ctrl-C or
    SIGTERM cancels the jobs and is raised again."""
    import cloudpickle
    import submitit
    from submitit.core.utils import JobPaths

    launcher = OmegaConf.to_container(launch.config.hydra.launcher, resolve=True)
    init, update = executor_parameters(cluster, launcher)
    folder = JobPaths.get_first_id_independent_folder(init["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # the payload holds the config as typed: its owner's only, as .hydra/
    executor = submitit.AutoExecutor(cluster=cluster, **init)
    executor.update_parameters(**update)
    # No resolved storage URL or tracking URI on disk: each job resolves them again (_job_main).
    private = dataclasses.replace(launch, settings={**launch.settings, "storage": None}, tracking_uri=None)
    payload, n_jobs = cloudpickle.dumps(private), int(launch.settings["n_jobs"])
    cpus = launcher.get("cpus_per_task")
    each = [[payload] * n_jobs, range(n_jobs), [cluster] * n_jobs, [cpus] * n_jobs, [work] * n_jobs]
    jobs = executor.map_array(_job_main, *each)  # work: pickled by reference, imported in the job
    log.info("%d worker job(s) submitted (%s): %s; logs in %s", n_jobs, cluster, _ids(jobs), folder)
    wait_for(jobs, stop)
    return [outcome(i, job) for i, job in enumerate(jobs)]


def wait_for(jobs: list, stop: Callable) -> None:
    """Wait until every job has ended; Ctrl-C, or SIGTERM (handled by ``stop``, which raises
    KeyboardInterrupt), meanwhile cancels them all (each worker then tells its trial in flight
    FAIL and ends its run KILLED) and is raised again."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if main else None
    try:
        while not all(job.done() for job in jobs):
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        for job in jobs:
            _cancel(job)
        deadline = time.monotonic() + 60  # local jobs: let them end their trials, as local workers
        while any(_is_local(job) and not job.done() for job in jobs) and time.monotonic() < deadline:
            time.sleep(0.5)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _is_local(job) -> bool:
    from submitit.local.local import LocalJob

    return isinstance(job, LocalJob)


def _cancel(job) -> None:
    """Slurm: ``scancel`` (SIGTERM, then SIGKILL after Slurm's KillWait). A local job: SIGTERM
    to its controller, which passes it on to the worker; submitit's own cancel of a local job
    kills the worker one second after SIGINT, before it can tell its trial FAIL."""
    if _is_local(job):
        try:
            os.kill(int(job.job_id), signal.SIGTERM)  # a local job's id is its controller's pid
        except ProcessLookupError:
            pass
    else:
        job.cancel(check=False)


def _ids(jobs) -> str:
    return ", ".join(str(job.job_id) for job in jobs)


def outcome(worker: int, job) -> int:
    """0 for a job that ended normally; else 1 and one warning line naming it and its log."""
    from submitit.core.utils import FailedJobError

    error = job.exception()
    if error is None:
        return 0
    if not isinstance(error, FailedJobError):  # killed, out of time: no result written
        reason = f"no result, state {job.state}"
    else:  # an exception in the job: "... with trace:\n-----\n<trace>\n-----\n<where the logs are>"
        parts = str(error).split("-" * 22)
        trace = parts[1] if len(parts) > 2 else str(error)
        reason = next((line for line in reversed(trace.splitlines()) if line.strip()), type(error).__name__)
    log.warning(
        "worker %d (submitit job %s) stopped (%s); the others went on. Its log: %s",
        worker,
        job.job_id,
        redact_text(reason.strip()[:200]),
        job.paths.stderr,
    )
    return 1


def _job_main(payload: bytes, worker: int, cluster: str, cpus_per_task: int | None, work: Callable) -> int:
    """One submitit job: the worker loop with its storage and tracking URI resolved here,
    from the config as typed (``${oc.env:OPTUNA_STORAGE}`` from the job's environment)."""
    import cloudpickle
    import submitit
    from hydra.core.singleton import Singleton

    from fer_exp.tracking.store import default_tracking_uri

    launch = cloudpickle.loads(payload)
    Singleton.set_state(launch.singleton_state)  # ${hydra:runtime.cwd} in tracking_uri
    storage = OmegaConf.select(launch.config, "hydra.sweeper.storage")
    tracking_uri = OmegaConf.select(launch.config, "tracking_uri") or default_tracking_uri()
    env = submitit.JobEnvironment()
    threads = worker_threads(cluster, cpus_per_task, os.environ)
    # several tasks per job (tasks_per_node, nodes): each task is a worker of its own
    number = worker * env.num_tasks + env.global_rank
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    shown = f"{threads} thread(s)" if threads else "cores / n_jobs threads"
    log.info("worker %d: submitit job %s, %s per run", number, env.job_id, shown)
    launch = dataclasses.replace(
        launch, settings={**launch.settings, "storage": storage}, tracking_uri=tracking_uri, threads=threads
    )
    try:
        return work(launch, number)
    except KeyboardInterrupt as exc:  # cancelled, or Slurm's SIGTERM at the time limit: a result saying so
        raise RuntimeError(f"worker {number} stopped by {str(exc) or 'SIGINT'}") from None
