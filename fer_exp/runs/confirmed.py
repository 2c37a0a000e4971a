"""A study's confirmed best, on its parent run: the best trials' settings trained again under new
seeds (:mod:`fer_exp.sweeps.confirm`), each with its mean and 95 % interval over those runs
alone (none of which the study chose, so none is flattered by the choice), beside the value
the study's own run of it had."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from fer_exp.analysis.groups import grouped_comparison
from fer_exp.sweeps.study import CONFIRM_TAG, TRIAL_TAG

CONFIRM_FILE = "confirmation.csv"


def record_confirmation(
    client, parent: str, study: dict[str, Any], children: list, raw_best: int | None, out_dir: Path, best_name: str
) -> list[Path]:
    """Compare the study's confirmation runs by trial, log the confirmed best to the parent run
    (``confirmed_<best_name>`` with ``_ci_low``/``_ci_high``, where ``best_name`` is the parent's
    name of the raw best, e.g. ``best_val_accuracy``; tag ``fer_exp.confirmed_best_trial``),
    write ``confirmation.csv`` and print the result; returns the files written (none without
    confirmation runs)."""
    runs = [r for r in children if CONFIRM_TAG in r.data.tags and r.data.tags.get("fer_exp.study") == study["name"]]
    if not runs:
        return []
    metric, maximize = study["objectives"][0], study["directions"][0] == "maximize"
    labels = {r.info.run_id: f"trial {r.data.tags[CONFIRM_TAG]}" for r in runs}
    baseline = f"trial {raw_best}" if f"trial {raw_best}" in labels.values() else None
    grouped = grouped_comparison(client, runs, metric, baseline, labels=labels)
    own = {
        r.data.tags[TRIAL_TAG]: r.data.metrics.get(metric)
        for r in children
        if TRIAL_TAG in r.data.tags and r.info.status == "FINISHED"
    }
    rows = []
    for g in grouped.groups:
        number = g["setting"].removeprefix("trial ")
        rows.append(
            {
                "trial": int(number),
                "study_value": own.get(number),
                "n": g["n"],
                "seeds": g["seeds"],
                "mean": g["mean"],
                "ci_low": g["ci_low"],
                "ci_high": g["ci_high"],
                "noise": g["noise"],
                "raw_best": int(number) == raw_best,
            }
        )
    best = (max if maximize else min)(rows, key=lambda row: row["mean"])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / CONFIRM_FILE
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for suffix in ("", "_ci_low", "_ci_high"):
        value = best["mean" if not suffix else suffix.removeprefix("_")]
        if not math.isnan(value):
            client.log_metric(parent, f"confirmed_{best_name}{suffix}", value)
    client.set_tag(parent, "fer_exp.confirmed_best_trial", best["trial"])
    print(confirmation_text(rows, best, metric))
    return [path]


def confirmation_text(rows: list[dict], best: dict, metric: str) -> str:
    """The confirmation in words: each confirmed trial's own value and its mean over the new seeds.

    >>> row = {"trial": 3, "study_value": 0.9, "n": 3, "mean": 0.88, "ci_low": 0.87, "ci_high": 0.89, "raw_best": True}
    >>> print(confirmation_text([row], row, "best_val_accuracy"))
    confirmation of the study's best trials under new seeds (best_val_accuracy, mean over the new seeds, 95 % interval):
      trial 3: the study's run 0.9000 (the study's best), new seeds 0.8800 [0.8700, 0.8900] n=3
      confirmed best: trial 3
    """
    lines = [
        f"confirmation of the study's best trials under new seeds ({metric}, mean over the new seeds, 95 % interval):"
    ]  # noqa: E501
    for row in rows:
        raw = f"{row['study_value']:.4f}" if row["study_value"] is not None else "?"
        mark = " (the study's best)" if row["raw_best"] else ""
        lines.append(
            f"  trial {row['trial']}: the study's run {raw}{mark}, new seeds {row['mean']:.4f} "
            f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}] n={row['n']}"
        )
    lines.append(f"  confirmed best: trial {best['trial']}")
    return "\n".join(lines)
