"""Glue between Hydra and the runner: validate, collect the job's context, run."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fer_exp.config import RunConfig, validate
from fer_exp.sweep import read_sweep


def compose(overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The validated config for command-line style overrides, without running anything.

    >>> compose(["augmentation=seed", "batch_size=128"]).augmentation.rotation_range
    20.0
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from fer_exp.__main__ import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # ${hydra:...} interpolations resolve as in a real run
        return validate(cfg)


def run_job(cfg: DictConfig) -> float:
    run_cfg = validate(cfg)  # before TensorFlow is imported: a bad value fails in ~1 s

    from fer_exp.redact import redact_text, secret_keys
    from fer_exp.runner import JobInfo, run

    _sigterm_interrupts()
    hc = HydraConfig.get()
    output_dir = Path(hc.runtime.output_dir)
    is_sweep = hc.mode.name == "MULTIRUN"
    log_file = output_dir / f"{hc.job.name}.log"
    hydra_summary = {
        "mode": hc.mode.name,
        "job": {"name": hc.job.name, "num": hc.job.num if is_sweep else None},
        "runtime": {"cwd": hc.runtime.cwd, "output_dir": hc.runtime.output_dir,
                    "choices": OmegaConf.to_container(hc.runtime.choices)},
        "overrides": {"task": list(hc.overrides.task), "hydra": list(hc.overrides.hydra)},
        "sweeper": hc.sweeper._target_,
        "launcher": hc.launcher._target_,
    }
    extra_tags = {}
    sweep = read_sweep(hc.sweep.dir) if is_sweep else None
    if sweep:  # nest under the sweep's parent run (see fer_exp.sweep)
        extra_tags = {"mlflow.parentRunId": sweep["parent_run_id"], "fer_exp.sweep_id": sweep["parent_run_id"]}
    job = JobInfo(
        output_dir=output_dir,
        overrides=tuple(hc.overrides.task),
        job_num=hc.job.num if is_sweep else None,
        sweep_dir=str(Path(hc.sweep.dir).resolve()) if is_sweep else None,
        log_file=log_file if log_file.exists() else None,
        hydra_yaml=redact_text(OmegaConf.to_yaml(hydra_summary)),
        secret_keys=frozenset(secret_keys(cfg)),
        extra_tags=extra_tags,
        choices={k: str(v) for k, v in OmegaConf.to_container(hc.runtime.choices).items()
                 if not k.startswith("hydra/") and v is not None},
    )
    run_cfg = _share_cores(run_cfg, hc)
    result = run(run_cfg, job)
    return result.metrics[run_cfg.optimized_metric]  # what a sweeper (Optuna) optimizes


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
    import os

    n_jobs = OmegaConf.select(hc, "launcher.n_jobs", default=None) if "Joblib" in hc.launcher._target_ else None
    if not n_jobs or cfg.threads.intra_op:
        return cfg
    cores = os.cpu_count() or 1
    n_jobs = cores if n_jobs < 0 else n_jobs
    per_job = max(1, cores // n_jobs)
    threads = cfg.threads.model_copy(update={"intra_op": per_job, "inter_op": 1})
    data = cfg.data.model_copy(update={"threads": cfg.data.threads or per_job})
    return cfg.model_copy(update={"threads": threads, "data": data})
