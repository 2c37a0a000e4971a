"""Compare runs: which setting helped? A table (CSV + Markdown) and a picture.

The command is ``python -m fer_exp.compare`` (:mod:`fer_exp.cli.compare`). One row per run: the
params that differ between the runs, the chosen metric, best validation accuracy, validation
macro-F1, F1 of the rarest class, epochs run, training and wall time. The CSV keeps the raw
numbers; the Markdown table formats each column alike (scores with 4 decimals, epochs as
whole numbers, times in one unit per column). The PNG holds a bar chart of the metric per
setting, drawn from zero, and every run's validation-accuracy curve. For a sweep, the files
are also logged to its MLflow parent run."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer_exp.analysis.plots import integer_epochs, new_figure, save
from fer_exp.analysis.table import markdown_table, run_label, shared_overrides
from fer_exp.errors import UserError
from fer_exp.tracking.redact import redact_text
from fer_exp.tracking.store import child_runs
from fer_exp.training.monitors import monitor_mode

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The picture's title for the per-epoch metrics users draw most.
CURVE_TITLES = {"val_accuracy": "validation accuracy", "val_f1": "validation macro-F1", "val_loss": "validation loss"}
# Params that describe the environment or bookkeeping rather than a setting under comparison.
_IGNORED = ("env.", "data.resolved_root", "run_name", "resume", "tracking_uri", "data.cache_dir")


@dataclass
class Report:
    """What :func:`compare_runs` made: the table, the files it wrote and the best run.

    Attributes:
        rows: one dict per run, best first by the chosen metric.
        columns: the table's columns in order (the CSV header).
        markdown: the table as Markdown, as ``comparison.md`` holds it.
        files: the CSV, Markdown and PNG files written.
        best: ``(run_id, metric value)`` of the best run, or None when no run has the metric.
    """

    rows: list[dict[str, Any]]
    columns: list[str]
    markdown: str
    files: list[Path] = field(default_factory=list)
    best: tuple[str, float] | None = None


def differing_params(runs) -> list[str]:
    """The param keys, sorted, whose value is not the same in every run (a missing param counts
    as a value of its own): the settings under comparison. Environment and bookkeeping params
    (``env.*``, data paths, run name, resume target, tracking URI) are left out."""
    keys = sorted({k for r in runs for k in r.data.params if not k.startswith(_IGNORED)})
    return [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1]


def rarest_class(runs) -> str | None:
    """The class with the fewest training images, from the first run's ``data.found.train.<class>``
    params (the runs of a comparison share their data); None when the runs did not log them.
    Its F1 gets a column of its own: it is the class a setting most easily helps or hurts."""
    counts = {
        k.removeprefix("data.found.train."): int(v)
        for r in runs[:1]
        for k, v in r.data.params.items()
        if k.startswith("data.found.train.")
    }
    return min(counts, key=counts.get) if counts else None


def compare_runs(client, runs, metric: str, out_dir: Path, curves: str = "val_accuracy") -> Report:
    """Write the comparison of ``runs``: ``comparison.csv``, ``comparison.md`` and ``comparison.png``.

    Args:
        client: an ``MlflowClient``; the picture reads every run's ``curves`` history from it.
        runs: the MLflow runs to compare, as :func:`select_runs` returns them.
        metric: the metric that ranks the runs, highest first; runs without it come last.
        out_dir: the folder for the three files, created if missing.
        curves: the per-epoch metric the picture draws for every run (``val_accuracy``,
            ``val_f1``: macro-F1, ``val_loss``).

    Returns:
        The table, the files written and the best run by ``metric``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
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
            "status": r.info.status,
        }
        row.update({p: r.data.params.get(p, "") for p in params})
        row.update(
            {
                metric: m.get(metric),
                "best_val_accuracy": m.get("best_val_accuracy"),
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
    png = _plot(client, rows, params, metric, out_dir / "comparison.png", curves)
    scored = [row for row in rows if row[metric] is not None]
    best = (scored[0]["run_id"], float(scored[0][metric])) if scored else None
    return Report(rows, columns, markdown, [out_dir / "comparison.csv", out_dir / "comparison.md", png], best)


def comparison_figure(
    rows, histories: dict[str, list[tuple[int, float]]], params, metric: str, curves: str = "val_accuracy"
) -> Figure:
    """The comparison picture: a bar of ``metric`` per run (best first; grey: not finished;
    the axis starts at zero, so bar lengths compare honestly) and every run's ``curves`` per epoch.

    Args:
        rows: the table's rows, as :func:`compare_runs` makes them (best first).
        histories: run id -> ``(epoch, value of curves)`` pairs.
        params: the differing params, to label runs without overrides.
        metric: the metric of the bars.
        curves: the per-epoch metric of the lines.
    """
    fig = new_figure(figsize=(15, max(4.5, 0.45 * len(rows) + 2)), layout="constrained")
    bars, lines = fig.subplots(1, 2)
    shared = shared_overrides(rows)
    labels = [run_label(row, params, shared) for row in rows][::-1]
    values = [row[metric] for row in rows][::-1]
    colors = ["tab:blue" if row["status"] == "FINISHED" else "tab:gray" for row in rows][::-1]
    bars.barh(range(len(values)), [v or 0.0 for v in values], color=colors)
    bars.set_yticks(range(len(values)), labels, fontsize=8)
    for y, v in enumerate(values):
        bars.text(v or 0.0, y, f" {v:.3f}" if v is not None else " no value", va="center", fontsize=8)
    bars.set_xlabel(metric)
    bars.set_xlim(0, max([v for v in values if v is not None] + [0]) * 1.12 or 1)  # from zero: lengths compare
    bars.set_title(f"{metric} per setting")
    for row in rows:
        history = histories.get(row["run_id"], [])
        if history:
            steps, values = zip(*history)
            lines.plot(steps, values, marker="o", ms=2.5, label=run_label(row, params, shared))
    integer_epochs(lines)
    lines.set_ylabel(curves)
    lines.set_title(f"{CURVE_TITLES.get(curves, curves)} ({len(rows)} runs)")
    lines.grid(alpha=0.3)
    if lines.lines:
        lines.legend(fontsize=7, loc="lower right" if monitor_mode(curves) == "max" else "upper right")
    return fig


def _plot(client, rows, params, metric, path: Path, curves: str) -> Path:
    histories = {
        row["run_id"]: sorted((m.step, m.value) for m in client.get_metric_history(row["run_id"], curves))
        for row in rows
    }
    return save(comparison_figure(rows, histories, params, metric, curves), path)


def select_runs(
    client, experiment: str | None = None, sweep: str | None = None, study: str | None = None
) -> tuple[list, str | None]:
    """The runs to compare and the sweep parent they belong to (None for a whole experiment):
    the children of ``sweep``; else the trials of the Optuna ``study`` (its latest parent run);
    else every training run of ``experiment``; else the latest sweep."""
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
            r for r in client.search_runs(ids, max_results=10000) if r.data.tags.get("fer_exp.sweep_role") != "parent"
        ]
    if not runs:
        raise UserError("no runs to compare")
    return runs, parent
