"""Write docs/benchmarks.md from the MLflow runs of the FER-2013 benchmark (no hand-typed numbers).

    python scripts/benchmark_table.py --tracking-uri sqlite:///runs/mlflow.db \\
        --experiment fer2013 --ablation fer2013_ablation

Benchmarks take hours and are run on different days and machines, so each finished run is
copied into a committed record (``docs/benchmark_runs.json``, one entry per MLflow run id,
with the machine it ran on); the Markdown is rendered from the whole record. Without
``--tracking-uri`` the page is rendered from the record alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from fer_exp.evaluate import tta_label

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _metric(name):
    return lambda r: r.data.metrics.get(name)


def _param(name, default=None):
    return lambda r: r.data.params.get(name, default)


# record field -> how to read it from an MLflow run
FIELDS = {
    "recipe": lambda r: r.data.params.get("preset.experiment") or r.info.run_name,
    "model": _param("model.name"),
    "parameters": lambda r: int(float(r.data.params["model.param_count"])) if "model.param_count" in r.data.params
    else None,
    "augmentation": _param("preset.augmentation", ""),
    "epochs": _metric("epochs_run"),
    "train_time_s": _metric("train_time_s"),
    "best_val_accuracy": _metric("best_val_accuracy"),
    # an ensemble built with --tta has only its TTA accuracy: show it in that column too
    "val_accuracy_tta": lambda r: r.data.metrics.get("val_accuracy_tta", r.data.metrics.get("best_val_accuracy")
                                                     if r.data.params.get("ensemble.tta") == "True" else None),
    "tta_views": lambda r: _tta_views(r.data.params),
    "val_macro_f1": _metric("val_macro_f1"),
    "val_f1_disgust": _metric("val_f1.disgust"),
    "val_accuracy_leakfree": _metric("val_accuracy_leakfree"),
    "precision": _param("env.precision"),
    "cpu": lambda r: " · ".join(v for v in (r.data.params.get("env.cpu"), r.data.params.get("env.cores")
                                             and f"{r.data.params['env.cores']} cores") if v),
    "date": lambda r: datetime.fromtimestamp(r.info.start_time / 1000, timezone.utc).strftime("%Y-%m-%d"),
}


def _tta_views(params: dict) -> str | None:
    """How the TTA column's accuracy was averaged: "flip", or "flip + 2 px shifts"."""
    tta = params.get("ensemble.tta", params.get("tta", "")).lower() == "true"
    shift = int(float(params.get("ensemble.tta_shift", params.get("tta_shift", 0))))
    return tta_label(shift) if tta else None


def _pct(v):
    return "" if v is None else f"{100 * v:.2f} %"


def _num(digits, scale=1.0):
    return lambda v: "" if v is None else f"{v * scale:.{digits}f}"


# column title -> (record field, format)
COLUMNS = [
    ("recipe", "recipe", str),
    ("model", "model", str),
    ("parameters", "parameters", lambda v: "" if v is None else f"{v:,}"),
    ("augmentation", "augmentation", str),
    ("epochs", "epochs", lambda v: "" if v is None else str(int(v))),
    ("train time (min)", "train_time_s", _num(1, 1 / 60)),
    ("best val acc", "best_val_accuracy", _pct),
    ("val acc, TTA", "val_accuracy_tta", _pct),
    ("TTA views", "tta_views", str),
    ("val macro-F1", "val_macro_f1", _num(4)),
    ("F1 disgust", "val_f1_disgust", _num(4)),
    ("leak-free val acc", "val_accuracy_leakfree", _pct),
    ("compute", "precision", lambda v: v.removeprefix("mixed_")),
    ("CPU", "cpu", str),
    ("date", "date", str),
]


def record_of(run, section: str) -> dict:
    if run.data.tags.get("fer_exp.kind") == "ensemble":
        section = "main"  # an ensemble is a recipe of its own, whichever experiment it is logged in
    return {"run_id": run.info.run_id, "section": section, **{k: get(run) for k, get in FIELDS.items()}}


def finished_runs(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED'",
                              max_results=1000)
    return [r for r in runs if r.data.tags.get("fer_exp.sweep_role") != "parent"]


def table(records: list[dict], columns=COLUMNS) -> str:
    lines = ["| " + " | ".join(title for title, _, _ in columns) + " |", "|" + "---|" * len(columns)]
    for rec in sorted(records, key=lambda r: -(r.get("best_val_accuracy") or 0)):
        lines.append("| " + " | ".join(fmt(rec.get(key)) if rec.get(key) is not None else ""
                                       for _, key, fmt in columns) + " |")
    return "\n".join(lines) + "\n"


def _signed_pp(v):
    return f"{100 * v:+.2f}"


def ablation_rows(records: list[dict]) -> list[dict]:
    """Add what each augmentation costs and gains: seconds per epoch, and accuracy relative to
    `none` and to `light` (the preset every light_<family> extends), in percentage points."""
    latest = {r["augmentation"]: r for r in records}  # records are in date order
    rows = []
    for rec in records:
        row = dict(rec)
        if rec.get("epochs") and rec.get("train_time_s"):
            row["s_per_epoch"] = rec["train_time_s"] / rec["epochs"]
        for ref in ("none", "light"):
            base = latest.get(ref, {}).get("best_val_accuracy")
            if base is not None and rec.get("best_val_accuracy") is not None:
                row[f"delta_{ref}"] = rec["best_val_accuracy"] - base
        rows.append(row)
    return rows


COLUMN = {key: (title, key, fmt) for title, key, fmt in COLUMNS}
ABLATION_COLUMNS = [
    COLUMN["augmentation"],
    ("epochs in budget", "epochs", COLUMN["epochs"][2]),
    ("s / epoch", "s_per_epoch", _num(0)),
    COLUMN["best_val_accuracy"],
    ("vs none (pp)", "delta_none", _signed_pp),
    ("vs light (pp)", "delta_light", _signed_pp),
    *(COLUMN[key] for key in ("val_accuracy_tta", "tta_views", "val_macro_f1", "val_f1_disgust", "val_accuracy_leakfree", "date")),
]


def render(records: list[dict]) -> str:
    main = [r for r in records if r["section"] == "main"]
    ablation = [r for r in records if r["section"] == "ablation"]
    parts = [
        "# FER-2013 benchmark\n",
        "Generated by `scripts/benchmark_table.py` from MLflow runs (kept in `docs/benchmark_runs.json`)"
        " — do not edit by hand. Data: the shared FER-2013 split (train 28,821 → validation 7,066),"
        " trained on a CPU with 2 cores and no GPU. TTA (test-time augmentation) averages the predictions of each"
        " image and its mirror (\"flip\"), and with \"N px shifts\" also of both moved N pixels up, down,"
        " left and right. \"Leak-free\" is validation without the images whose pixels also occur in"
        " train (see `python -m fer_exp.audit`).\n",
        "## Recipes\n",
        table(main),
    ]
    if ablation:
        first = ablation[0]
        minutes = max(r.get("train_time_s") or 0 for r in ablation) / 60
        parts += ["\n## Augmentation ablation\n",
                  f"Recipe `{first['recipe']}`: every run trains `{first['model']}`"
                  f" ({COLUMN['parameters'][2](first['parameters'])} parameters) with the same optimizer and"
                  f" schedule for the same training time (~{minutes:.0f} min on {first['cpu']}); only the"
                  " augmentation preset differs. The epochs that fit the budget vary with the machine's speed"
                  " as well as with the preset's cost (`scripts/bench_augmentation.py` measures the cost"
                  " alone). `light_<family>` is `light`"
                  " plus that family, so \"vs light\" is what the family adds (positive) or costs (negative)."
                  " Each row is one run with one seed, so differences of a few tenths of a point may be noise.\n",
                  table(ablation_rows(ablation), ABLATION_COLUMNS)]
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", help="MLflow store with new runs (omit to render the record alone)")
    parser.add_argument("--experiment", default="fer2013", help="experiment holding the recipe runs")
    parser.add_argument("--ablation", default=None, help="experiment holding the augmentation ablation sweep")
    parser.add_argument("--record", type=Path, default=DOCS / "benchmark_runs.json")
    parser.add_argument("--out", type=Path, default=DOCS / "benchmarks.md")
    args = parser.parse_args(argv)

    records = {r["run_id"]: r for r in json.loads(args.record.read_text())} if args.record.exists() else {}
    for rec in records.values():  # recorded before runs logged env.precision (all float32 then)
        rec.setdefault("precision", "float32")  # and before shifted TTA views existed
        rec.setdefault("tta_views", tta_label() if rec.get("val_accuracy_tta") is not None else None)
    added = 0
    if args.tracking_uri:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(args.tracking_uri)
        for section, experiment in (("main", args.experiment), ("ablation", args.ablation)):
            for run in finished_runs(client, experiment) if experiment else []:
                added += run.info.run_id not in records
                records[run.info.run_id] = record_of(run, section)
    if not records:
        print(f"no finished runs in experiment {args.experiment!r} and no record at {args.record}", file=sys.stderr)
        return 2
    ordered = sorted(records.values(), key=lambda r: (r["date"], r["run_id"]))
    args.record.parent.mkdir(parents=True, exist_ok=True)
    args.record.write_text(json.dumps(ordered, indent=1) + "\n")
    args.out.write_text(render(ordered))
    print(f"written {args.out} ({len(ordered)} runs, {added} new) and {args.record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
