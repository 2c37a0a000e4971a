"""Compare runs: which setting helped, and how sure is that? Tables (CSV + Markdown) and a picture.

The command is ``python -m fer_exp.compare`` (:mod:`fer_exp.cli.compare`). ``comparison.csv``
has one row per run: the params that differ between the runs, the chosen metric, best
validation accuracy, validation macro-F1, F1 of the rarest class, epochs run, training and wall
time; the Markdown table formats each column alike. The runs grouped by setting over seeds
(:mod:`fer_exp.analysis.groups`) give ``groups.csv`` (each setting's mean with its interval)
and ``differences.csv`` (each setting against the baseline: difference, interval, probability
of improvement, verdict). The PNG (:mod:`fer_exp.analysis.comparison_plots`) is a forest plot of
both and the learning curves with a band over seeds. For a sweep, the files are also logged to
its MLflow parent run."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_exp.analysis.comparison_plots import comparison_png
from fer_exp.analysis.group_report import parent_metrics, summary, write_grouped
from fer_exp.analysis.groups import Grouped, grouped_comparison, rarest_class
from fer_exp.analysis.table import markdown_table
from fer_exp.errors import UserError
from fer_exp.tracking.redact import redact_text
from fer_exp.tracking.store import child_runs

# Params that describe the environment or bookkeeping rather than a setting under comparison.
COMPARISON_ROLE = "comparison"  # the run python -m fer_exp.compare makes for runs outside one sweep
_IGNORED = ("env.", "data.resolved_root", "run_name", "resume", "tracking_uri", "data.cache_dir")


@dataclass
class Report:
    """What :func:`compare_runs` made: the tables, the files it wrote and the best run.

    Attributes:
        rows: one dict per run, best first by the chosen metric.
        columns: the table's columns in order (the CSV header).
        markdown: the table as Markdown, as ``comparison.md`` holds it.
        files: the CSV, Markdown and PNG files written.
        best: ``(run_id, metric value)`` of the best run, or None when no run has the metric.
        grouped: the runs grouped by setting over seeds, compared with the baseline (None when
            no run finished).
        summary: the grouped comparison in words (:func:`fer_exp.analysis.groups.summary`).
    """

    rows: list[dict[str, Any]]
    columns: list[str]
    markdown: str
    files: list[Path] = field(default_factory=list)
    best: tuple[str, float] | None = None
    grouped: Grouped | None = None
    summary: str = ""


def differing_params(runs) -> list[str]:
    """The param keys, sorted, whose value is not the same in every run (a missing param counts
    as a value of its own): the settings under comparison. Environment and bookkeeping params
    (``env.*``, data paths, run name, resume target, tracking URI) are left out."""
    keys = sorted({k for r in runs for k in r.data.params if not k.startswith(_IGNORED)})
    return [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1]


def compare_runs(
    client,
    runs,
    metric: str,
    out_dir: Path,
    curves: str = "val_accuracy",
    baseline: str | None = None,
    by: str | None = None,
) -> Report:
    """Write the comparison of ``runs``: ``comparison.csv`` and ``.md`` (one row per run),
    ``groups.csv`` and ``differences.csv`` (per setting, over seeds) and ``comparison.png``.

    Args:
        client: an ``MlflowClient``; the predictions and every run's ``curves`` history are read from it.
        runs: the MLflow runs to compare, as :func:`select_runs` returns them.
        metric: the metric that ranks the runs, highest first, and that the settings are compared by.
        out_dir: the folder for the files, created if missing.
        curves: the per-epoch metric the picture draws (``val_accuracy``, ``val_f1``: macro-F1, ``val_loss``).
        baseline: the setting the others are compared with (:func:`fer_exp.analysis.groups.pick_baseline`).
        by: group by this one param instead of every differing one but the seed.

    Returns:
        The tables, the files written and the best run by ``metric``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    # with every job failed there is nothing to group; the table still says what happened
    finished = any(r.info.status == "FINISHED" for r in runs)
    grouped = grouped_comparison(client, runs, metric, baseline, by) if finished else None
    setting = {rid: label for label, ids in grouped.settings.items() for rid in ids} if grouped else {}
    params = differing_params(runs)
    rare = rarest_class(runs)
    rows = []
    for r in runs:
        m = r.data.metrics
        wall = ((r.info.end_time or r.info.start_time) - r.info.start_time) / 1000 if r.info.start_time else None
        row = {
            "run": r.info.run_name,
            "job": r.data.tags.get("hydra.job_num", ""),
            "overrides": r.data.tags.get("overrides", ""),
            "setting": setting.get(r.info.run_id, ""),
            "seed": r.data.params.get("seed", ""),
            "status": r.info.status,
        }
        row.update({p: r.data.params.get(p, "") for p in params if p != "seed"})
        row.update(
            {
                metric: m.get(metric),
                "best_val_accuracy": m.get("best_val_accuracy"),
                "ci_low": m.get("best_val_accuracy_ci_low"),
                "ci_high": m.get("best_val_accuracy_ci_high"),
                "val_macro_f1": m.get("val_macro_f1"),
                f"f1_{rare}": m.get(f"val_f1.{rare}") if rare else None,
                "epochs": m.get("epochs_run"),
                "train_time_s": m.get("train_time_s"),
                "wall_time_s": wall,
                "run_id": r.info.run_id,
            }
        )
        rows.append(row)
    rows.sort(key=lambda row: -(row[metric] if row[metric] is not None else float("-inf")))
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(out_dir / "comparison.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    markdown = markdown_table(rows, columns)
    (out_dir / "comparison.md").write_text(markdown)
    scored = [row for row in rows if row[metric] is not None]
    best = (scored[0]["run_id"], float(scored[0][metric])) if scored else None
    files = [out_dir / "comparison.csv", out_dir / "comparison.md"]
    if grouped is None:
        return Report(rows, columns, markdown, files, best, None, "no run finished: nothing to compare over seeds")
    files += write_grouped(grouped, out_dir)
    histories = {
        label: [sorted((m.step, m.value) for m in client.get_metric_history(rid, curves)) for rid in ids]
        for label, ids in grouped.settings.items()
    }
    title = f"{len(runs)} runs, {len(grouped.settings)} settings"
    files.append(
        comparison_png(
            grouped.groups_for_plot(),
            grouped.differences_for_plot(),
            histories,
            metric,
            out_dir / "comparison.png",
            curves,
            grouped.baseline,
            title,
        )
    )
    return Report(rows, columns, markdown, files, best, grouped, summary(grouped))


def _get_run(client, run_id: str):
    try:
        return client.get_run(run_id)
    except Exception as exc:
        why = redact_text(str(exc)).splitlines()[0][:200]
        raise UserError(f"run {run_id} is not in the store at {redact_text(client.tracking_uri)}: {why}") from None


def comparison_run(client, runs) -> str:
    """A run that holds a comparison of runs outside one sweep (an experiment, run ids), in the
    first run's experiment, tagged ``fer_exp.sweep_role=comparison`` (never compared itself)."""
    experiment_id = runs[0].info.experiment_id
    run = client.create_run(
        experiment_id,
        run_name=f"comparison of {len(runs)} runs",
        tags={
            "fer_exp.sweep_role": COMPARISON_ROLE,
            "fer_exp.compared_runs": " ".join(r.info.run_id for r in runs)[:5000],
        },
    )
    return run.info.run_id


def record_comparison(client, parent: str, grouped: Grouped | None) -> None:
    """The grouped comparison on the MLflow runs: the parent gets each setting's mean, interval,
    difference and P(better) as metrics and its verdict as a tag (the UI sorts and filters by
    them); every compared run gets its setting as the tag ``fer_exp.setting`` (the UI groups by it)."""
    from mlflow.entities import Metric, RunTag

    if grouped is None:
        return
    metrics, tags = parent_metrics(grouped)
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    tags = [RunTag(k, str(v)) for k, v in tags.items()]
    for i in range(0, max(len(metrics), len(tags)), 100):  # within MLflow's batch limits
        client.log_batch(parent, metrics=metrics[i : i + 100], tags=tags[i : i + 100])
    for label, ids in grouped.settings.items():
        for run_id in ids:
            client.set_tag(run_id, "fer_exp.setting", label)


def select_runs(
    client,
    experiment: str | None = None,
    sweep: str | None = None,
    study: str | None = None,
    run_ids: list[str] | None = None,
) -> tuple[list, str | None]:
    """The runs to compare and the sweep parent they belong to (None for a whole experiment):
    the runs ``run_ids``; else the children of ``sweep``; else the trials of the Optuna ``study``
    (its latest parent run); else every training run of ``experiment``; else the latest sweep."""
    if run_ids:
        return [_get_run(client, run_id) for run_id in run_ids], None
    experiments = [client.get_experiment_by_name(experiment)] if experiment else client.search_experiments()
    experiments = [e for e in experiments if e is not None]
    if not experiments:
        raise UserError(f"no experiment {experiment!r} at {redact_text(client.tracking_uri)}")
    ids = [e.experiment_id for e in experiments]
    parent = sweep
    if parent is None and (study is not None or experiment is None):
        # a study's parent is reused by every run of its command: the latest update, not start, is the latest sweep
        sweeps = client.search_runs(
            ids, filter_string="tags.`fer_exp.sweep_role` = 'parent'", order_by=["attributes.start_time DESC"]
        )
        if study is not None:
            studies = sorted({r.data.tags["fer_exp.study"] for r in sweeps if "fer_exp.study" in r.data.tags})
            sweeps = [r for r in sweeps if r.data.tags.get("fer_exp.study") == study]
            if not sweeps:
                known = f"the studies are: {', '.join(studies)}" if studies else "no sweep ran a study"
                raise UserError(f"no study {study!r} at {redact_text(client.tracking_uri)}: {known}")
        if not sweeps:
            raise UserError("no sweep found: pass --experiment NAME to compare all its runs")
        parent = max(sweeps, key=lambda r: r.info.end_time or r.info.start_time or 0).info.run_id
    if parent:
        runs = child_runs(client, parent)
    else:
        runs = [
            r
            for r in client.search_runs(ids, max_results=10000)
            if r.data.tags.get("fer_exp.sweep_role") not in ("parent", COMPARISON_ROLE)
        ]
    if not runs:
        raise UserError("no runs to compare")
    return runs, parent
