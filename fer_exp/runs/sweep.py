"""Sweeps as one group in MLflow: a parent run per sweep, each job a child run.

A Hydra callback opens the parent run when the sweep starts and leaves its id in the sweep
folder, where every job — in this process, a joblib worker, a submitit/SLURM job — finds it
and tags its own run with ``mlflow.parentRunId`` (MLflow's nesting), ``fer_exp.sweep_id``,
its job number and overrides. When the sweep ends (also when a job failed and Hydra is about
to exit non-zero), the parent gets its status, a summary of failures is printed, and the
comparison report (:mod:`fer_exp.analysis.compare`) and the best job's metric
(:func:`best_metric_name`) are logged to it.

With fer_exp's Optuna sweeper the parent run is the study's: tagged ``fer_exp.study=<name>``
and found again when the same command runs again (same experiment, study name and storage),
so a resumed study keeps one parent with every trial under it. Its params are the study's
settings (storage redacted); a setting changed by a rerun (``n_trials`` raised) is a tag
``fer_exp.study.<key>`` then, params being write-once. When the sweep ends, the parent gets
the study's best value (``best_<metric>``) and params (tags ``fer_exp.best.<param>``), the
best trial's run the tag ``fer_exp.best_trial=true`` (every Pareto-optimal trial's with two
objectives), and the study's pictures (:mod:`fer_exp.analysis.study_plots`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from fer_exp.analysis.compare import compare_runs, record_comparison
from fer_exp.analysis.study_plots import study_plots
from fer_exp.errors import UserError
from fer_exp.runs.confirmed import record_confirmation
from fer_exp.runs.context import redacted_overrides
from fer_exp.sweeps import settings as sweeper_settings
from fer_exp.sweeps.pruning import describe as describe_pruner
from fer_exp.sweeps.study import STUDY_TAG, TRIAL_TAG
from fer_exp.tracking import Tracker
from fer_exp.tracking.redact import redact_text, secret_keys
from fer_exp.tracking.store import child_runs, get_or_create_experiment, log_files, open_client, runs_table_url

log = logging.getLogger("fer_exp.sweep")

SWEEP_FILE = ".fer_exp_sweep.json"
STORAGE_TAG = "fer_exp.study_storage"  # redacted: a study is found again by name and storage
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
        tags = {
            "fer_exp.sweep_role": "parent",
            "fer_exp.sweep_dir": str(sweep_dir.resolve()),
            "overrides": " ".join(overrides) or "(defaults)",
            "hydra.sweeper": config.hydra.sweeper._target_,
            "hydra.launcher": config.hydra.launcher._target_,
        }
        metric = OmegaConf.select(config, "optimized_metric") or "best_val_accuracy"
        study = study_settings(config, metric)
        if study is None:
            tracker = Tracker.start(tracking_uri, experiment, f"sweep {sweep_dir.parent.name}/{sweep_dir.name}", tags)
        else:
            tracker = open_study_parent(tracking_uri, experiment, study, tags)
        tracker.set_tags({"fer_exp.sweep_id": tracker.run_id})
        info = {
            "parent_run_id": tracker.run_id,
            "tracking_uri": tracking_uri,
            "experiment": experiment,
            "experiment_id": tracker.experiment_id,
            "sweep_dir": str(sweep_dir.resolve()),
            "started": time.time(),
            "metric": metric,
            "compare": {k: OmegaConf.select(config, f"compare.{k}") for k in ("baseline", "by")},
        }
        if study is not None:  # the storage URL stays in this process: it may hold a password
            info["study"] = {k: v for k, v in study.items() if k != "storage_url"}
        (sweep_dir / SWEEP_FILE).write_text(json.dumps(info, indent=1))
        _open_sweeps.append({**info, "study": study} if study else info)
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
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per job's predictions
    children = child_runs(client, parent)
    study = info.get("study")
    # a study's parent also holds the trials of its earlier runs: this sweep answers for its own
    ran = [r for r in children if r.info.start_time >= info["started"] * 1000 - 1000] if study else children
    failed = [r for r in ran if r.info.status != "FINISHED"]
    print(
        f"\nsweep {parent}: {len(ran)} jobs, {len(ran) - len(failed)} finished, {len(failed)} failed or stopped",
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
            choices = info.get("compare") or {}
            out = Path(info["sweep_dir"]) / "comparison"
            report = compare_runs(
                client, children, info["metric"], out, baseline=choices.get("baseline"), by=choices.get("by")
            )
            best = report.best
            if best is not None and not study:  # a study's best is the study's (below): pruned runs cannot be
                client.log_metric(parent, best_metric_name(info["metric"]), best[1])
                client.set_tag(parent, "fer_exp.best_run_id", best[0])
            print(report.markdown, flush=True)
            print(f"\n{report.summary}", flush=True)
            log_files(client, parent, report.files, "comparison")
            record_comparison(client, parent, report.grouped)
        except UserError as exc:  # a choice of the user's (compare.baseline=...): one line
            print(f"no sweep comparison: {exc}", flush=True)
        except Exception:  # a report problem must not hide the sweep's status
            log.exception("could not build the sweep comparison")
    if children and study:
        try:
            out = Path(info["sweep_dir"]) / "comparison"
            log_files(client, parent, finish_study(client, parent, study, children, out), "comparison")
        except Exception:  # nor a problem reading the study
            log.exception("could not record the study's result")
    # a study another run of the command had completed: nothing left to run is no failure
    client.set_terminated(parent, status="FAILED" if failed or (not ran and not study) else "FINISHED")
    where = f"  MLflow parent run {parent}; comparison in {Path(info['sweep_dir']) / 'comparison'}\n"
    if info.get("experiment_id") is not None:  # the link opens the runs table, not MLflow 3's GenAI pages
        table = redact_text(runs_table_url(info["tracking_uri"], info["experiment_id"]))
        where += f"  runs table (expand the parent for its jobs): {table}\n"
    print(where, flush=True)
    return len(failed)


# ---------------------------------------------------------------------------- studies


def study_settings(config: DictConfig, metric: str) -> dict[str, Any] | None:
    """The study a sweep runs when the sweeper is fer_exp's Optuna sweeper, else None: name,
    storage URL (relative sqlite made absolute) and its redacted form, sampler, pruner,
    ``n_trials``, objectives and directions."""
    if OmegaConf.select(config, "hydra.sweeper._target_") != sweeper_settings.TARGET:
        return None
    sweeper = OmegaConf.to_container(config.hydra.sweeper, resolve=True)
    url = str(sweeper.get("storage") or "sqlite:///optuna.db")
    if url.startswith("sqlite"):  # as typed otherwise: the same study whichever driver a machine has
        url = sweeper_settings.storage_url(url, Path.cwd())
    names, directions = sweeper_settings.objectives(sweeper, metric)
    sampler = dict(sweeper.get("sampler") or {})
    sampler_args = ", ".join(f"{k}={v}" for k, v in sampler.items() if k != "name")
    pruner = sweeper.get("pruner") or {}
    return {
        "name": str(sweeper["study_name"]),
        "storage_url": url,
        "storage": redact_text(url),
        "sampler": f"{sampler.get('name', 'tpe')}({sampler_args})",
        "pruner": describe_pruner(pruner),
        "monitor": str(pruner.get("monitor", "val_accuracy")),
        "n_trials": int(sweeper["n_trials"]),
        "objectives": names,
        "directions": directions,
    }


def open_study_parent(tracking_uri: str, experiment: str, study: dict[str, Any], tags: dict[str, str]) -> Tracker:
    """The study's parent run: the one an earlier run of the same command opened (same
    experiment, study name and storage), RUNNING again, or a new one."""
    client = open_client(tracking_uri)
    experiment_id = get_or_create_experiment(client, experiment)
    tags = {**tags, STUDY_TAG: study["name"], STORAGE_TAG: study["storage"], "fer_exp.study_monitor": study["monitor"]}
    params = {f"study.{k}": study[k] for k in ("name", "sampler", "pruner", "storage", "n_trials")}
    params.update(
        {"study.objectives": ", ".join(study["objectives"]), "study.directions": ", ".join(study["directions"])}
    )
    earlier = _study_parents(client, experiment_id, study)
    if not earlier:
        tracker = Tracker.start(tracking_uri, experiment, f"study {study['name']}", tags)
        tracker.log_params(params)
        # Machines that start one study at the same moment each found none and opened one: all
        # keep the oldest (the same for each of them), the others delete theirs.
        earlier = _study_parents(client, experiment_id, study)
        if earlier[0].info.run_id == tracker.run_id:
            return tracker
        client.set_terminated(tracker.run_id, status="KILLED")
        client.delete_run(tracker.run_id)
    logged = earlier[0].data.params
    tracker = Tracker.open(tracking_uri, earlier[0].info.run_id)
    tracker.reopen()
    tracker.set_tags({**tags, **{f"fer_exp.{k}": v for k, v in params.items() if logged.get(k, str(v)) != str(v)}})
    tracker.log_params({k: v for k, v in params.items() if k not in logged})
    log.info("study %r continues under MLflow parent run %s", study["name"], tracker.run_id)
    return tracker


def _study_parents(client, experiment_id: str, study: dict[str, Any]) -> list:
    """The parent runs of this study (same name and storage) in the experiment, oldest first."""
    parents = client.search_runs([experiment_id], "tags.`fer_exp.sweep_role` = 'parent'")
    mine = [
        r
        for r in parents
        if r.data.tags.get(STUDY_TAG) == study["name"] and r.data.tags.get(STORAGE_TAG) == study["storage"]
    ]
    return sorted(mine, key=lambda r: (r.info.start_time, r.info.run_id))


def finish_study(client, parent: str, study: dict[str, Any], children: list, out_dir: Path) -> list[Path]:
    """The study's result on its parent run and trials' runs (best value and params, the best
    trial tagged, the confirmed best when the sweeper trained confirmation runs), and its
    pictures written to ``out_dir``; returns the files written."""
    import optuna

    from fer_exp.sweeps.study import open_storage, results

    loaded = optuna.load_study(study_name=study["name"], storage=open_storage(study["storage_url"], Path.cwd(), None))
    names = study["objectives"]
    summary = results(loaded, names)
    if "best_trial" in summary:
        best = {str(summary["best_trial"])}
        client.log_metric(parent, best_metric_name(names[0]), summary["best_value"])
        for key, value in summary["best_params"].items():
            client.set_tag(parent, f"fer_exp.best.{key}", value)
        client.set_tag(parent, "fer_exp.best_trial_number", summary["best_trial"])
        print(f"study {study['name']}: best {names[0]} {summary['best_value']:.4f} (trial {summary['best_trial']})")
    else:
        best = {str(t["number"]) for t in summary.get("best_trials", [])}
        client.set_tag(parent, "fer_exp.pareto_trials", ", ".join(sorted(best, key=int)))
    confirmed = record_confirmation(
        client, parent, study, children, summary.get("best_trial"), out_dir, best_metric_name(names[0])
    )
    for run in children:
        if run.data.tags.get(TRIAL_TAG) in best and run.data.tags.get(STUDY_TAG) == study["name"]:
            client.set_tag(run.info.run_id, "fer_exp.best_trial", "true")
            if len(best) == 1:
                client.set_tag(parent, "fer_exp.best_run_id", run.info.run_id)
        elif run.data.tags.get("fer_exp.best_trial") == "true":  # the best of an earlier run of the study
            client.set_tag(run.info.run_id, "fer_exp.best_trial", "false")
    return [*study_plots(loaded, names, out_dir, study["monitor"]), *confirmed]
