"""A grouped comparison (:mod:`fer_exp.analysis.groups`) for its readers: ``groups.csv`` and
``differences.csv``, the summary in words printed at the end of a sweep, and the metrics and
tags its MLflow parent run gets so that the UI sorts and filters by them."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from fer_exp.analysis import stats
from fer_exp.analysis.groups import Grouped


def summary(grouped: Grouped) -> str:
    """The comparison in words: each setting's difference to the baseline with its interval and
    verdict, which settings differ and which cannot be told apart, and what to add."""
    points = _is_fraction(grouped.groups)
    unit = " points" if points else ""
    scale = 100.0 if points else 1.0
    n = len(grouped.differences)
    lines = [
        f"{grouped.metric} by setting against {grouped.baseline} (baseline): mean over seeds, 95 % intervals; "
        f"verdicts Holm-corrected over {n} comparison{'s' if n != 1 else ''}"
    ]
    width = max((len(d["setting"]) for d in grouped.differences), default=0)
    for g in grouped.groups:
        if g["setting"] == grouped.baseline:
            mean = f"{_fmt(g['mean'] * scale)}{' %' if points else ''}"
            lines.append(f"  {g['setting']:<{width}}  {mean} (n={g['n']}): the baseline")
    for d in grouped.differences:
        interval = (
            f"[{_fmt(d['ci_low'] * scale, True)}, {_fmt(d['ci_high'] * scale, True)}]"
            if not np.isnan(d["ci_low"])
            else "[no interval]"
        )
        lines.append(
            f"  {d['setting']:<{width}}  {_fmt(d['difference'] * scale, True)}{unit} {interval}  "
            f"P(better) {d['p_improvement']:.2f}  {d['verdict']}"
        )
    differ = [f"{d['setting']} ({d['verdict']})" for d in grouped.differences if d["verdict"] != "indistinguishable"]
    same = [d["setting"] for d in grouped.differences if d["verdict"] == "indistinguishable"]
    lines.append(f"  differ from the baseline: {', '.join(differ) or 'none'}")
    lines.append(f"  cannot be told apart from it: {', '.join(same) or 'none'}")
    lines.extend(f"  note: {note}" for note in grouped.notes + _seeds_advice(grouped, scale, unit))
    return "\n".join(lines)


def _seeds_advice(grouped: Grouped, scale: float, unit: str) -> list[str]:
    spread = [g["std"] for g in grouped.groups if g["n"] > 1 and not np.isnan(g["std"])]
    unsure = [d for d in grouped.differences if d["verdict"] == "indistinguishable" and d["difference"] != 0]
    if not spread or not unsure:
        return []
    std = float(np.sqrt(np.mean(np.square(spread))))
    largest = max(unsure, key=lambda d: abs(d["difference"]))
    k = stats.seeds_needed(std, largest["difference"])
    if k is None:
        return []
    return [
        f"runs of one setting differ by {_fmt(std * scale)}{unit} (std over seeds); to tell a difference of "
        f"{_fmt(abs(largest['difference']) * scale)}{unit} ({largest['setting']}) apart, about {k} seeds per "
        "setting are needed"
    ]


def _is_fraction(groups: list[dict]) -> bool:
    return all(0.0 <= g["mean"] <= 1.0 for g in groups if not np.isnan(g["mean"]))


def _fmt(value: float, signed: bool = False) -> str:
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def write_grouped(grouped: Grouped, out_dir: Path) -> list[Path]:
    """``groups.csv``, ``differences.csv`` and both as Markdown (``groups.md``, with the notes) in
    ``out_dir``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in (("groups.csv", grouped.groups), ("differences.csv", grouped.differences)):
        columns = list(dict.fromkeys(k for row in rows for k in row)) or ["setting"]
        with open(out_dir / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        paths.append(out_dir / name)
    notes = "".join(f"\n- {note}" for note in grouped.notes)
    (out_dir / "groups.md").write_text(markdown_tables(grouped) + (f"\nNotes:{notes}\n" if notes else ""))
    return [*paths, out_dir / "groups.md"]


def parent_metrics(grouped: Grouped) -> tuple[dict[str, float], dict[str, str]]:
    """What the parent run gets, so that the MLflow UI can sort and filter by it: per setting its
    mean and interval, its difference and P(better) as metrics, its verdict as a tag."""
    metrics: dict[str, float] = {}
    tags = {"fer_exp.compare.baseline": grouped.baseline, "fer_exp.compare.metric": grouped.metric}
    for g in grouped.groups:
        key = metric_key(g["setting"])
        metrics.update({f"group.{key}.{k}": g[k] for k in ("mean", "ci_low", "ci_high") if not np.isnan(g[k])})
    for d in grouped.differences:
        key = metric_key(d["setting"])
        metrics.update(
            {
                f"diff.{key}.{k}": d[k]
                for k in ("difference", "ci_low", "ci_high", "p_improvement")
                if not np.isnan(d[k])
            }
        )
        tags[f"fer_exp.verdict.{key}"] = d["verdict"]
    for verdict in ("better", "worse", "indistinguishable"):
        metrics[f"compare.{verdict}"] = float(sum(d["verdict"] == verdict for d in grouped.differences))
    return metrics, tags


def metric_key(label: str) -> str:
    """A setting's label as MLflow accepts it in a metric or tag name.

    >>> metric_key("augmentation=heavy optimizer.learning_rate=0.001")
    'augmentation:heavy_optimizer.learning_rate:0.001'
    """
    return re.sub(r"[^\w\-./: ]", "_", label.replace("=", ":").replace(" ", "_"))[:200]


def markdown_tables(grouped: Grouped) -> str:
    """The groups and the differences as two Markdown tables: a fraction (accuracy, F1) as a
    percentage with its 95 % interval, a difference in points, the verdict and what it counts."""
    points = _is_fraction(grouped.groups)
    scale, unit = (100.0, " %") if points else (1.0, "")
    rare = next((k for k in grouped.groups[0] if k.startswith("f1_") and not k.endswith(("_low", "_high"))), None)

    def cell(row: dict, key: str, signed: bool = False) -> str:
        value, low, high = (
            row[key],
            row[f"{key}_ci_low" if key not in ("mean", "difference") else "ci_low"],
            row[f"{key}_ci_high" if key not in ("mean", "difference") else "ci_high"],
        )
        text = f"{_fmt(value * scale, signed)}{'' if signed else unit}"
        return text if np.isnan(low) else f"{text} [{_fmt(low * scale, signed)}, {_fmt(high * scale, signed)}]"

    head = ["setting", "runs", "seeds", f"{grouped.metric} [95 % interval]", "std over seeds"]
    extra = [k for k in ("val_macro_f1", rare) if k and k in grouped.groups[0] and k != grouped.metric]
    lines = ["| " + " | ".join([*head, *extra, "noise counted"]) + " |", "|" + "---|" * (len(head) + len(extra) + 1)]
    for g in grouped.groups:
        std = "—" if np.isnan(g["std"]) else _fmt(g["std"] * scale)
        name = f"{g['setting']} (baseline)" if g["setting"] == grouped.baseline else g["setting"]
        cells = [name, str(g["n"]), g["seeds"], cell(g, "mean"), std, *(cell(g, k) for k in extra), g["noise"]]
        lines.append("| " + " | ".join(cells) + " |")
    if grouped.differences:
        lines += [
            "",
            f"| setting | difference to {grouped.baseline}{' (points)' if points else ''} [95 % interval] "
            "| P(better) | p (Holm) | verdict | noise counted |",
            "|---|---|---|---|---|---|",
        ]
        for d in grouped.differences:
            p_adj = "—" if np.isnan(d["p_adjusted"]) else f"{d['p_adjusted']:.3f}"
            lines.append(
                f"| {d['setting']} | {cell(d, 'difference', True)} | {d['p_improvement']:.2f} | {p_adj} "
                f"| {d['verdict']} | {d['noise']} |"
            )
    return "\n".join(lines) + "\n"
