"""``python -m fer_exp [overrides]`` / ``fer-exp``: the Hydra app that runs one job or a sweep.

Before Hydra starts, :func:`preflight` composes and validates every job the command line would
launch (each combination of a sweep), in this process and without TensorFlow: a config error
is one ``error:`` line and exit status 2, with no Hydra wrapper lines and no output folder left
behind. Hydra then composes the config again; this module collects how Hydra launched the job
and hands both to the recipe (:func:`fer_exp.runs.run`). A problem of the user's found while a
single run goes on (data, resume) ends the same way; in a sweep, Hydra reports it for its job
and the other jobs go on. Signals end the run KILLED with its checkpoints kept.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra._internal.utils import get_args_parser  # Hydra's own flags, parsed as Hydra parses them
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fer_exp.cli.common import EXIT_USAGE
from fer_exp.config import RunConfig, config_dir, validate
from fer_exp.config.compose import CONFIG_NAME, compose_sweep
from fer_exp.errors import ConfigError, UserError
from fer_exp.paths import cache_root
from fer_exp.runs import JobInfo, run
from fer_exp.runs.context import redacted_overrides
from fer_exp.runs.folder import CLAIM, locate_run
from fer_exp.runs.sweep import finalize_open_sweeps, read_sweep
from fer_exp.sweeps import trial as trials
from fer_exp.sweeps.settings import TARGET as OPTUNA_SWEEPER
from fer_exp.sweeps.settings import check_settings
from fer_exp.sweeps.space import parse_space
from fer_exp.sweeps.study import CONFIRM_TAG, STUDY_TAG, TRIAL_TAG
from fer_exp.tracking.redact import redact_log_records, redact_streams, redact_text, secret_keys
from fer_exp.training.setup import quiet_tensorflow

# The user's problem that ended a single run (Hydra's run mode), printed once Hydra has returned.
_user_errors: list[str] = []


@hydra.main(version_base="1.3", config_path=config_dir(), config_name=CONFIG_NAME)
def main(cfg: DictConfig) -> float | None:
    """One job: validate, run, and return the metric a sweeper (Optuna) optimizes."""
    try:
        return run_job(cfg)
    except UserError as exc:
        if HydraConfig.get().mode.name == "MULTIRUN":
            raise  # Hydra names the failed job; the sweep's other jobs go on
        _user_errors.append(str(exc))  # raised, Hydra would wrap it in "Error executing job ..."
        _drop_unclaimed(Path(HydraConfig.get().runtime.output_dir))
        return None


# `fer-exp predict ...` is `python -m fer_exp.predict ...` (no Hydra override is a bare word)
COMMANDS = ("audit", "compare", "ensemble", "export", "predict", "register", "sync")


def cli() -> None:
    """Entry point: check the command line, run the Hydra app, then close any sweep it opened
    — also when a job failed and Hydra is exiting non-zero (its on_multirun_end is skipped then).
    A first argument naming another command (:data:`COMMANDS`) runs that command instead."""
    if len(sys.argv) > 1 and sys.argv[1] in COMMANDS:
        command = importlib.import_module(f"fer_exp.cli.{sys.argv[1]}")
        raise SystemExit(command.main(sys.argv[2:]))
    redact_log_records()
    redact_streams()
    message = preflight(sys.argv[1:])
    if message:
        _fail(message)
    _leave_home_alone()
    try:
        main()
        if _user_errors:
            _fail(_user_errors[-1])
    except KeyboardInterrupt as exc:
        # The run has already ended KILLED with its checkpoints kept and said how to resume it
        # (tracking.tracked_run): the stack of wherever the signal landed would only bury that.
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"fer_exp: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        raise SystemExit(128 + signum) from None
    except BrokenPipeError:  # `--help | head`: the reader has gone, there is no one to tell
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    finally:
        if finalize_open_sweeps():
            raise SystemExit(1)


def preflight(argv: Sequence[str]) -> str | None:
    """The one message for a command line whose config is wrong; None when every job it would
    launch composes and validates (and ``resume=<folder>`` is a run's folder), or when it asks
    for no job (``--help``, ``--cfg``, ``--info``, other config folders: Hydra answers those).

    In this process, without TensorFlow, before Hydra creates an output folder. The message is
    redacted: it may echo the command line's values.

    >>> preflight(["batch_sise=64"])
    'batch_sise is not a fer_exp setting: did you mean batch_size?'
    """
    if "--version" in argv:
        return None
    parser = get_args_parser()
    parser.exit_on_error = False  # a usage error is Hydra's to report, once
    try:
        args, unknown = parser.parse_known_args(list(argv))
    except (argparse.ArgumentError, SystemExit):
        return None
    no_job = args.help or args.hydra_help or args.cfg or args.info or args.shell_completion
    other_configs = args.config_path or args.config_name or args.config_dir or args.experimental_rerun
    if unknown or no_job or other_configs:
        return None
    try:
        jobs, sweeper = compose_sweep(args.overrides, multirun=args.multirun)
        for _, cfg in jobs:
            if cfg.resume and not re.fullmatch(r"[0-9a-f]{32}", cfg.resume):  # a run id: MLflow knows
                locate_run(cfg.resume, cfg.tracking_uri)
        if sweeper and sweeper.get("_target_") == OPTUNA_SWEEPER:
            check_study(sweeper, args.overrides)
    except ConfigError as exc:
        return redact_text(str(exc))
    except Exception:  # a check that cannot run must not stop a run: Hydra and validate() still guard it
        return None
    return None


def check_study(settings: dict, overrides: Sequence[str]) -> None:
    """The Optuna sweeper's own checks (sampler, pruner, objectives, storage reached, the search
    space parsed), in the launch folder, before any trial or folder: a ConfigError."""
    check_settings(settings, settings.get("optimized_metric") or "best_val_accuracy", Path.cwd())
    parse_space(settings.get("params"), [o for o in overrides if not o.startswith(("hydra.", "+hydra.", "~hydra."))])


def _leave_home_alone() -> None:
    """A run writes in its launch folder and fer_exp's cache only: libraries that make their
    folder in the home folder on first use (matplotlib's font cache, Keras's ``keras.json``)
    make it in the cache when the user has none yet, and MLflow's telemetry (whose id file lives
    in ``~/.config/mlflow``) is off. Variables the user set win."""
    home, cache = Path.home(), cache_root()
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache")
    if not (config_home / "matplotlib").exists() and not (cache_home / "matplotlib").exists():
        os.environ.setdefault("MPLCONFIGDIR", str(cache / "matplotlib"))
    if not (home / ".keras" / "keras.json").exists():
        os.environ.setdefault("KERAS_HOME", str(cache / "keras"))
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _drop_unclaimed(out: Path) -> None:
    """Remove the folder Hydra made for a run that stopped before it claimed it (no run started
    in it): only Hydra's own files are deleted, and folders only when that leaves them empty
    (``outputs/<date>/`` and ``outputs/`` too, up to the launch folder)."""
    if (out / CLAIM).exists():
        return
    hc = HydraConfig.get()
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (out / ".hydra" / name).unlink(missing_ok=True)
    (out / f"{hc.job.name}.log").unlink(missing_ok=True)
    launch = Path(hc.runtime.cwd).resolve()
    folders = [out / ".hydra", out.resolve()]
    folders += [p for p in out.resolve().parents if launch in p.parents]  # between out and the launch folder
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty: something else lives there
            return


def _fail(message: str) -> None:
    """End as the argparse commands do (:mod:`fer_exp.cli.common`): one line, exit status 2."""
    print(f"error: {redact_text(message)}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def run_job(cfg: DictConfig) -> float:
    """Validate Hydra's config, describe the job (:class:`~fer_exp.runs.JobInfo`), run it, and
    return its ``optimized_metric``."""
    redact_log_records()  # again: a launcher's worker process starts here, not in cli()
    redact_streams()
    run_cfg = validate(cfg)  # before TensorFlow is imported, so a bad value fails at once
    quiet_tensorflow(run_cfg.verbose)  # before TensorFlow is imported: its start-up lines
    _sigterm_interrupts()
    hc = HydraConfig.get()
    run_cfg = _share_cores(run_cfg, hc)
    job = job_info(cfg, hc)
    if job.secret_keys or redact_text(" ".join(job.overrides)) != " ".join(job.overrides):
        keep_private(Path(hc.runtime.output_dir) / ".hydra")
    active = trials.current()
    if active is not None:  # an Optuna trial: its run says which trial and what it sampled
        active.tracking_uri = run_cfg.tracking_uri
        if not run_cfg.run_name:
            run_cfg = run_cfg.model_copy(update={"run_name": active.run_name()})
    result = run(run_cfg, job)
    if active is not None:  # what the worker tells the study
        active.run_id, active.metrics = result.run_id, dict(result.metrics)
    return result.metrics[run_cfg.optimized_metric]


def keep_private(folder: Path) -> None:
    """Hydra's copies of the config keep secrets as typed (so that the job can be re-run):
    readable by their owner only."""
    for path in folder.glob("*.yaml"):
        path.chmod(0o600)


def job_info(cfg: DictConfig, hc: DictConfig) -> JobInfo:
    """How Hydra launched this job: its folder, overrides, sweep membership and presets."""
    output_dir = Path(hc.runtime.output_dir)
    is_sweep = hc.mode.name == "MULTIRUN"
    keys = frozenset(secret_keys(cfg))
    # as typed: iterating Hydra's list would resolve ${oc.env:...} into the secret itself
    task = [str(o) for o in OmegaConf.to_container(hc.overrides.task, resolve=False)]
    hydra_overrides = [str(o) for o in OmegaConf.to_container(hc.overrides.hydra, resolve=False)]
    log_file = output_dir / f"{hc.job.name}.log"
    hydra_summary = {
        "mode": hc.mode.name,
        "job": {"name": hc.job.name, "num": hc.job.num if is_sweep else None},
        "runtime": {
            "cwd": hc.runtime.cwd,
            "output_dir": hc.runtime.output_dir,
            "choices": OmegaConf.to_container(hc.runtime.choices),
        },
        "overrides": {"task": redacted_overrides(task, keys), "hydra": redacted_overrides(hydra_overrides, keys)},
        "sweeper": hc.sweeper._target_,
        "launcher": hc.launcher._target_,
    }
    sweep = read_sweep(hc.sweep.dir) if is_sweep else None
    extra_tags = {}
    if sweep:  # nest under the sweep's parent run (see fer_exp.runs.sweep)
        extra_tags = {"mlflow.parentRunId": sweep["parent_run_id"], "fer_exp.sweep_id": sweep["parent_run_id"]}
    active = trials.current()
    if active is not None and active.confirming:  # a confirmation run: not one of the study's trials
        extra_tags.update({STUDY_TAG: active.study_name, CONFIRM_TAG: str(active.number)})
    elif active is not None:  # found again by these when its worker dies (fer_exp.sweeps.study)
        extra_tags.update({STUDY_TAG: active.study_name, TRIAL_TAG: str(active.number)})
    return JobInfo(
        output_dir=output_dir,
        overrides=tuple(task),
        job_num=hc.job.num if is_sweep else None,
        sweep_dir=str(Path(hc.sweep.dir).resolve()) if is_sweep else None,
        log_file=log_file if log_file.exists() else None,
        hydra_yaml=redact_text(OmegaConf.to_yaml(hydra_summary)),
        secret_keys=keys,
        extra_tags=extra_tags,
        choices={
            k: str(v)
            for k, v in OmegaConf.to_container(hc.runtime.choices).items()
            if not k.startswith("hydra/") and v is not None
        },
    )


def _sigterm_interrupts() -> None:
    """Treat SIGTERM (a scheduler's or ``kill``'s stop) like Ctrl-C: the MLflow run ends KILLED."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C's exception, raised for SIGTERM too; remembers the signal for the exit status."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(f"signal {signum}")
        self.signum = signum


def _raise_interrupt(signum, frame):
    raise Interrupted(signum)


def _share_cores(cfg: RunConfig, hc) -> RunConfig:
    """Jobs running side by side (joblib launcher, the Optuna sweeper's workers) split the
    cores instead of each taking all."""
    n_jobs = OmegaConf.select(hc, "launcher.n_jobs", default=None) if "Joblib" in hc.launcher._target_ else None
    if hc.sweeper._target_ == OPTUNA_SWEEPER:  # one worker alone takes every core, as a single run
        n_jobs = OmegaConf.select(hc, "sweeper.n_jobs", default=None)
        n_jobs = n_jobs if n_jobs and n_jobs > 1 else None
    if not n_jobs or cfg.threads.intra_op:
        return cfg
    cores = os.cpu_count() or 1
    n_jobs = cores if n_jobs < 0 else n_jobs
    per_job = max(1, cores // n_jobs)
    threads = cfg.threads.model_copy(update={"intra_op": per_job, "inter_op": 1})
    data = cfg.data.model_copy(update={"threads": cfg.data.threads or per_job})
    return cfg.model_copy(update={"threads": threads, "data": data})
