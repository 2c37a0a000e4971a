"""``python -m fer_exp [overrides]`` / ``fer-exp``: the Hydra app that runs one job or a sweep.

Hydra composes the config; this module validates it (before TensorFlow is imported, so a bad
value fails at once), collects how Hydra launched the job, and hands both to the
recipe (:func:`fer_exp.runs.run`). Signals end the run KILLED with its checkpoints kept.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fer_exp.config import RunConfig, config_dir, validate
from fer_exp.config.compose import CONFIG_NAME
from fer_exp.runs import JobInfo, run
from fer_exp.runs.sweep import finalize_open_sweeps, read_sweep
from fer_exp.tracking.redact import redact_text, secret_keys


@hydra.main(version_base="1.3", config_path=config_dir(), config_name=CONFIG_NAME)
def main(cfg: DictConfig) -> float:
    """One job: validate, run, and return the metric a sweeper (Optuna) optimizes."""
    return run_job(cfg)


def cli() -> None:
    """Entry point: the Hydra app, then close any sweep it opened — also when a job failed
    and Hydra is exiting non-zero (its on_multirun_end is skipped then)."""
    try:
        main()
    except KeyboardInterrupt as exc:
        # The run has already ended KILLED with its checkpoints kept and said how to resume it
        # (tracking.tracked_run): the stack of wherever the signal landed would only bury that.
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"fer_exp: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        raise SystemExit(128 + signum) from None
    finally:
        if finalize_open_sweeps():
            raise SystemExit(1)


def run_job(cfg: DictConfig) -> float:
    """Validate Hydra's config, describe the job (:class:`~fer_exp.runs.JobInfo`), run it, and
    return its ``optimized_metric``."""
    run_cfg = validate(cfg)  # before TensorFlow is imported, so a bad value fails at once
    _sigterm_interrupts()
    hc = HydraConfig.get()
    run_cfg = _share_cores(run_cfg, hc)
    result = run(run_cfg, job_info(cfg, hc))
    return result.metrics[run_cfg.optimized_metric]


def job_info(cfg: DictConfig, hc: DictConfig) -> JobInfo:
    """How Hydra launched this job: its folder, overrides, sweep membership and presets."""
    output_dir = Path(hc.runtime.output_dir)
    is_sweep = hc.mode.name == "MULTIRUN"
    log_file = output_dir / f"{hc.job.name}.log"
    hydra_summary = {
        "mode": hc.mode.name,
        "job": {"name": hc.job.name, "num": hc.job.num if is_sweep else None},
        "runtime": {
            "cwd": hc.runtime.cwd,
            "output_dir": hc.runtime.output_dir,
            "choices": OmegaConf.to_container(hc.runtime.choices),
        },
        "overrides": {"task": list(hc.overrides.task), "hydra": list(hc.overrides.hydra)},
        "sweeper": hc.sweeper._target_,
        "launcher": hc.launcher._target_,
    }
    sweep = read_sweep(hc.sweep.dir) if is_sweep else None
    extra_tags = {}
    if sweep:  # nest under the sweep's parent run (see fer_exp.runs.sweep)
        extra_tags = {"mlflow.parentRunId": sweep["parent_run_id"], "fer_exp.sweep_id": sweep["parent_run_id"]}
    return JobInfo(
        output_dir=output_dir,
        overrides=tuple(hc.overrides.task),
        job_num=hc.job.num if is_sweep else None,
        sweep_dir=str(Path(hc.sweep.dir).resolve()) if is_sweep else None,
        log_file=log_file if log_file.exists() else None,
        hydra_yaml=redact_text(OmegaConf.to_yaml(hydra_summary)),
        secret_keys=frozenset(secret_keys(cfg)),
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
    """Jobs running side by side (joblib launcher) split the cores instead of each taking all."""
    n_jobs = OmegaConf.select(hc, "launcher.n_jobs", default=None) if "Joblib" in hc.launcher._target_ else None
    if not n_jobs or cfg.threads.intra_op:
        return cfg
    cores = os.cpu_count() or 1
    n_jobs = cores if n_jobs < 0 else n_jobs
    per_job = max(1, cores // n_jobs)
    threads = cfg.threads.model_copy(update={"intra_op": per_job, "inter_op": 1})
    data = cfg.data.model_copy(update={"threads": cfg.data.threads or per_job})
    return cfg.model_copy(update={"threads": threads, "data": data})
