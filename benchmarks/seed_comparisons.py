"""Replicated comparisons on FER-2013, recorded for the benchmark page: settings x seeds, each
setting against a baseline with intervals and verdicts (:mod:`fer_exp.analysis.groups`).

    python -m fer_exp experiment=fer2013_augmentation_seeds data.root=/path/to/fer2013
    python -m benchmarks.seed_comparisons --tracking-uri sqlite:///$PWD/mlflow.db \\
        --experiment fer2013_augmentation_seeds --baseline none

reads the experiment's finished runs, compares them for accuracy and for macro-F1, and puts
the result in ``docs/bench_seed_comparisons.json`` (one entry per experiment, replaced when it
is recorded again) with its forest plot in ``docs/images/<experiment>.png``;
``scripts/benchmark_table.py`` renders every entry on the benchmark page (:func:`render`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from fer_exp.analysis.compare import compare_runs, select_runs
from fer_exp.analysis.group_report import markdown_tables, summary
from fer_exp.analysis.groups import Grouped

DOCS = Path(__file__).resolve().parents[1] / "docs"
RECORD = DOCS / "bench_seed_comparisons.json"
METRICS = ("best_val_accuracy", "val_macro_f1")
CALIBRATION_FIGURES = ("coverage_one_point", "coverage_zero", "coverage_mean", "aa_false_verdicts")


def record(client, experiment: str, baseline: str | None, images: Path, command: str, note: str = "") -> dict:
    """One entry: the experiment's runs, and per metric its groups, differences, notes and summary;
    ``note`` says what a reader must know of how the runs were made."""
    runs, _ = select_runs(client, experiment=experiment)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    entry = {
        "experiment": experiment,
        "date": datetime.now(UTC).date().isoformat(),
        "command": command,
        "note": note,
        "cpu": _common(finished, "env.cpu"),
        "precision": _common(finished, "env.precision"),
        "epochs": _common(finished, "epochs"),
        "model": _common(finished, "model.name"),
        "validation_images": _common(finished, "data.found.val"),
        "runs": [
            {
                "run_id": r.info.run_id,
                "seed": r.data.params.get("seed"),
                "augmentation": r.data.params.get("preset.augmentation"),
                **{k: r.data.metrics.get(k) for k in (*METRICS, "train_time_s", "epochs_run")},
            }
            for r in finished
        ],
        "comparisons": {},
    }
    with tempfile.TemporaryDirectory(prefix="fer_exp-record-") as tmp:
        for metric in METRICS:
            report = compare_runs(client, finished, metric, Path(tmp) / metric, baseline=baseline)
            grouped = report.grouped
            entry["comparisons"][metric] = {
                "baseline": grouped.baseline,
                "groups": grouped.groups,
                "differences": grouped.differences,
                "notes": grouped.notes,
                "summary": report.summary,
            }
            if metric == METRICS[0]:
                images.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(tmp) / metric / "comparison.png", images / f"{experiment}.png")
                entry["image"] = f"images/{experiment}.png"
    return json.loads(json.dumps(entry, default=float).replace("NaN", "null"))


def _common(runs, param: str) -> str:
    """The value most runs logged for ``param`` (a record names one CPU, one precision)."""
    values = Counter(r.data.params.get(param, "?") for r in runs)
    return values.most_common(1)[0][0] if values else "?"


def render(entries: list[dict]) -> str:
    """The benchmark page's section: per entry, how it was run, its forest plot, the two tables
    (accuracy, then macro-F1) and the summary in words."""
    if not entries:
        return ""
    parts = [
        "\n## Augmentation over seeds\n",
        "Each setting trained under three seeds on an equal budget (the same epochs), every run scored on the same "
        "validation faces: the differences are paired over the faces and their intervals count both the seeds' "
        "and the faces' noise ([how to read an interval](sweeps.md#how-to-read-an-interval)). Verdicts are "
        "Holm-corrected for the number of settings compared. No design was chosen on these runs: every seed is "
        "held out.\n",
    ]
    for e in entries:
        parts.append(
            f"### {e['experiment']}\n\n`{e['command']}`: {e['model']}, {e['epochs']} epochs, {e['precision']}, "
            f"{len(e['runs'])} runs on {e['cpu']} ({e['date']}), {e['validation_images']} validation images.\n"
        )
        if e.get("note"):
            parts.append(f"{e['note']}\n")
        if e.get("image"):
            parts.append(f"![{e['experiment']}: intervals per setting and differences]({e['image']})\n")
        for metric, c in e["comparisons"].items():
            grouped = Grouped(metric, c["baseline"], _nan(c["groups"]), _nan(c["differences"]), {}, c["notes"])
            parts += [f"**{metric}**\n", markdown_tables(grouped), "```text\n" + summary(grouped) + "\n```\n"]
        parts.append(
            "Runs (for `python -m fer_exp.compare --runs ...`): "
            + ", ".join(f"`{r['run_id'][:8]}` ({r['augmentation']}, seed {r['seed']})" for r in e["runs"])
            + "\n"
        )
    return "\n".join(parts)


def _nan(rows: list[dict]) -> list[dict]:
    """A record's rows with its nulls as NaN again, as the tables expect."""
    return [{k: float("nan") if v is None else v for k, v in row.items()} for row in rows]


def main(argv: list[str] | None = None) -> int:
    """Record the comparison of an experiment's runs (see the module's docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--experiment", default="fer2013_augmentation_seeds")
    p.add_argument("--baseline", default="none")
    p.add_argument("--command", default=None, help="the command that made the runs (default: the experiment's)")
    p.add_argument("--record", type=Path, default=RECORD)
    p.add_argument("--note", default="", help="what a reader must know of how the runs were made")
    args = p.parse_args(argv)
    from fer_exp.tracking.store import open_client

    command = args.command or f"python -m fer_exp experiment={args.experiment} data.root=/path/to/fer2013"
    images = args.record.parent / "images"
    entry = record(open_client(args.tracking_uri), args.experiment, args.baseline, images, command, args.note)
    earlier = json.loads(args.record.read_text()) if args.record.exists() else []
    entries = [e for e in earlier if e["experiment"] != args.experiment] + [entry]
    args.record.write_text(json.dumps(entries, indent=1) + "\n")
    print(entry["comparisons"][METRICS[0]]["summary"])
    print(f"recorded {args.experiment} in {args.record}; python scripts/benchmark_table.py renders the page")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def render_calibration(result: dict | None) -> str:
    """The benchmark page's section on the comparison method itself, from ``python -m
    benchmarks.comparison``'s JSON (``docs/bench_comparison.json``): coverage and false verdicts
    on simulated experiments per method and seed count, and the time a comparison takes."""
    if not result:
        return ""
    world, sim, speed = result["world"], result["simulated"], result["speed"]
    n = result["sizes"]["experiments"]
    lines = [
        "\n## Comparisons: calibration\n",
        f"`python -m benchmarks.comparison` on {result['cpu']['model']} ({result['cpu']['cores']} cores), "
        f"{result['date'][:10]}: {n} simulated experiments per row, each of {world['images']:,} validation faces in "
        f"{world['classes']} classes at {100 * sim['accuracy']:.0f} % accuracy, runs of one setting varying by "
        f"{sim['seed_std_points']:.2f} points between seeds and agreeing on {100 * sim['agree_same_setting']:.0f} % of "
        'the faces, settings differing in which faces they get right. The truth is known: "cover" is how often the '
        '95 % interval of a difference holds the true difference (goal 90–97 %), "A/A false" how often four '
        "settings that are all the same get any verdict but `indistinguishable` (goal at most 10 %), with the "
        f"binomial standard error. {result.get('notes', '')}.\n",
        "| method | seeds | cover, true +1 point | cover, true 0 | cover, a setting's mean | A/A false | "
        "called better at +1 point |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {
        "fer_exp": "fer_exp",
        "welch_seeds_only": "Welch t, seeds only",
        "naive_bootstrap": "two-level percentile bootstrap",
    }
    for method, by_seeds in result["calibration"].items():
        for seeds, c in by_seeds.items():
            cells = [f"{100 * c[k]['rate']:.1f} ± {100 * c[k]['se']:.1f} %" for k in CALIBRATION_FIGURES]
            lines.append(f"| {names.get(method, method)} | {seeds} | {' | '.join(cells)} | {100 * c['power']:.0f} % |")
    lines.append(
        f"\nWith one seed per setting the interval counts the faces' noise only (the summary says so): it covers "
        "too rarely and calls too many differences, which is why a sweep should run each setting under three or "
        f"more seeds. Comparing {speed['runs']} runs × {speed['images']:,} faces with {speed['resamples']:,} "
        f"bootstrap draws took {speed['accuracy']['best_s']:.2f} s on accuracy and {speed['macro_f1']['best_s']:.2f} s "
        "on macro-F1 (best of three; goal at most 10 s).\n"
    )
    return "\n".join(lines)
