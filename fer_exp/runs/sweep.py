"""Sweeps as one group in MLflow: a parent run per sweep, each job a child run.

A Hydra callback opens the parent run when the sweep starts and leaves its id in the sweep
folder, where every job — in this process, a joblib worker, a submitit/SLURM job — finds it
and tags its own run with ``mlflow.parentRunId`` (MLflow's nesting), ``fer_exp.sweep_id``,
its job number and overrides. When the sweep ends (also when a job failed and Hydra is about
to exit non-zero), the parent gets its status, a summary of failures is printed, and the
comparison report (:mod:`fer_exp.analysis.compare`) and the best job's metric
(:func:`best_metric_name`) are logged to it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from fer_exp.analysis.compare import compare_runs
from fer_exp.runs.context import redacted_overrides
from fer_exp.tracking import Tracker
from fer_exp.tracking.redact import redact_text, secret_keys
from fer_exp.tracking.store import child_runs, log_files, open_client, runs_table_url

log = logging.getLogger("fer_exp.sweep")

SWEEP_FILE = ".fer_exp_sweep.json"
_open_sweeps: list[dict[str, Any]] = []  # finalized at exit even when Hydra raises


def read_sweep(sweep_dir: str | Path) -> dict[str, Any] | None:
    """The sweep's parent run (``parent_run_id``, tracking URI, ...) left in its folder, if any."""
    path = Path(sweep_dir) / SWEEP_FILE
    return json.loads(path.read_text()) if path.exists() else None


class MlflowSweepCallback(Callback):
    """Hydra callback (``hydra.callbacks`` in conf/config.yaml): one MLflow parent run per sweep."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Open the parent run and leave its id in the sweep folder for the jobs."""
        HydraConfig.instance().set_config(config)  # ${hydra:runtime.cwd} in tracking_uri
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        tracking_uri = OmegaConf.select(config, "tracking_uri")
        experiment = OmegaConf.select(config, "experiment_name") or "fer_exp"
        # as typed (unresolved: ``run_name=${oc.env:API_TOKEN}`` must not turn into the token)
        typed = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        overrides = redacted_overrides(typed, secret_keys(config))
        tracker = Tracker.start(
            tracking_uri,
            experiment,
            f"sweep {sweep_dir.parent.name}/{sweep_dir.name}",
            {
                "fer_exp.sweep_role": "parent",
                "fer_exp.sweep_dir": str(sweep_dir.resolve()),
                "overrides": " ".join(overrides) or "(defaults)",
                "hydra.sweeper": config.hydra.sweeper._target_,
                "hydra.launcher": config.hydra.launcher._target_,
            },
        )
        tracker.set_tags({"fer_exp.sweep_id": tracker.run_id})
        info = {
            "parent_run_id": tracker.run_id,
            "tracking_uri": tracking_uri,
            "experiment": experiment,
            "experiment_id": tracker.experiment_id,
            "sweep_dir": str(sweep_dir.resolve()),
            "started": time.time(),
            "metric": OmegaConf.select(config, "optimized_metric") or "best_val_accuracy",
        }
        (sweep_dir / SWEEP_FILE).write_text(json.dumps(info, indent=1))
        _open_sweeps.append(info)
        log.info("sweep %s: MLflow parent run %s in experiment %r", sweep_dir, tracker.run_id, experiment)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Close the sweep (status, failures, comparison)."""
        finalize_open_sweeps()


def best_metric_name(metric: str) -> str:
    """The parent run's name for the best job's ``metric``: ``best_`` once.

    >>> best_metric_name("val_macro_f1"), best_metric_name("best_val_accuracy")
    ('best_val_macro_f1', 'best_val_accuracy')
    """
    return metric if metric.startswith("best_") else f"best_{metric}"


def finalize_open_sweeps() -> int:
    """Close every sweep this process opened; returns the number of failed jobs."""
    failed = 0
    while _open_sweeps:
        failed += finalize(_open_sweeps.pop())
    return failed


def finalize(info: dict[str, Any]) -> int:
    """Give a sweep's parent run its status, print the failed jobs, log the comparison;
    returns the number of jobs that did not finish."""
    parent = info["parent_run_id"]
    client = open_client(info["tracking_uri"])
    children = child_runs(client, parent)
    failed = [r for r in children if r.info.status != "FINISHED"]
    print(
        f"\nsweep {parent}: {len(children)} jobs, {len(children) - len(failed)} finished, "
        f"{len(failed)} failed or stopped",
        flush=True,
    )
    for r in failed:
        print(
            f"  job {r.data.tags.get('hydra.job_num', '?')} [{r.info.status}] {r.data.tags.get('overrides', '')}: "
            f"{r.data.tags.get('error', 'no error recorded')[:300]}",
            flush=True,
        )
    if children:
        try:
            report = compare_runs(client, children, info["metric"], Path(info["sweep_dir"]) / "comparison")
            log_files(client, parent, report.files, "comparison")
            best = report.best
            if best is not None:
                client.log_metric(parent, best_metric_name(info["metric"]), best[1])
                client.set_tag(parent, "fer_exp.best_run_id", best[0])
            print(report.markdown, flush=True)
        except Exception:  # a report problem must not hide the sweep's status
            log.exception("could not build the sweep comparison")
    client.set_terminated(parent, status="FAILED" if failed or not children else "FINISHED")
    where = f"  MLflow parent run {parent}; comparison in {Path(info['sweep_dir']) / 'comparison'}\n"
    if info.get("experiment_id") is not None:  # the link opens the runs table, not MLflow 3's GenAI pages
        table = redact_text(runs_table_url(info["tracking_uri"], info["experiment_id"]))
        where += f"  runs table (expand the parent for its jobs): {table}\n"
    print(where, flush=True)
    return len(failed)
