"""Train a study's best trial again under other training seeds: what its settings are worth
apart from the luck of its one run.

    python scripts/confirm_best.py runs/study_none runs/study_pruned --repeats 3
    python scripts/confirm_best.py FOLDER ... --repeats 3 --label unpruned --label pruned --record

A study's best value is the highest of its trials' figures, and each figure is one training
run: the more trials train to the end, the higher that maximum climbs on luck alone, and a
pruned study trains few to the end. So two studies' best values differ by their luck as well
as by the settings they found. This script takes each FOLDER (a sweep's launch folder: its
``optuna.db`` holding one study, its trials' job folders under ``multirun/``), finds the best
trial, and trains it again ``--repeats`` times in a fresh folder (``--workdir``), with
``seed=1..K`` and every other override as the trial had it. The mean of those runs'
``best_val_accuracy`` is what the settings are worth; their spread is the noise one run has.
Two folders with the same best settings share their runs.

Prints a table and, as its last line, one JSON object (also ``--json PATH``). ``--record`` adds
the result, dated, to ``docs/bench_confirm.json``, which ``scripts/benchmark_table.py`` renders
on the benchmark page (:func:`render_confirm`).
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean, stdev

from benchmark_study import cpu, publish  # scripts/ is on the path

RECORD = Path(__file__).resolve().parents[1] / "docs" / "bench_confirm.json"


def best_trial(folder: Path) -> dict:
    """The best finished trial of the one study in ``folder/optuna.db``: study, number, value, params."""
    import optuna

    db = folder / "optuna.db"
    if not db.exists():
        sys.exit(f"error: {folder} has no optuna.db: pass a sweep's launch folder (where `-m` ran)")
    storage = f"sqlite:///{db}"
    names = sorted(optuna.get_all_study_names(storage))
    if len(names) != 1:
        sys.exit(f"error: {db} holds {len(names)} studies ({', '.join(names) or 'none'}): one study per folder")
    study = optuna.load_study(study_name=names[0], storage=storage)
    try:
        best = study.best_trial
    except ValueError:
        sys.exit(f"error: study {names[0]!r} in {db} has no finished trial to confirm")
    return {"study": names[0], "number": best.number, "value": best.value, "params": best.params}


def trial_overrides(folder: Path, number: int) -> list[str]:
    """The overrides trial ``number`` ran with: its job folder's ``.hydra/overrides.yaml``
    (the job folder is ``multirun/<date>/<time>/<number>``, as the sweeper names it)."""
    import yaml

    found = sorted(folder.glob(f"multirun/*/*/{number}/.hydra/overrides.yaml"))
    if len(found) != 1:
        what = "no job folder" if not found else f"{len(found)} job folders"
        sys.exit(
            f"error: {what} for trial {number} under {folder / 'multirun'}: confirm the study in the folder"
            " its sweep ran in (with Hydra's default hydra.sweep.dir and subdir)"
        )
    return [str(o) for o in yaml.safe_load(found[0].read_text())]


def retrain_overrides(overrides: list[str], seed: int, experiment: str) -> list[str]:
    """A trial's overrides for one run of its own: the training ``seed`` and MLflow experiment
    replaced, everything else (data, epochs, the sampled values) as the trial had it."""
    replaced = ("seed=", "experiment_name=")
    kept = [o for o in overrides if not o.lstrip("+~").startswith(replaced)]
    return [*kept, f"seed={seed}", f"experiment_name={experiment}"]


def retrain(workdir: Path, overrides: list[str], seeds: list[int], key: str) -> list[dict]:
    """Train ``overrides`` once per seed in ``workdir`` (one run folder each, one mlflow.db);
    each run's final metrics (its ``reports/metrics.json``). A run folder that already holds a
    finished run of the same overrides (an earlier, interrupted call) is read, not trained again."""
    import yaml

    from fer_exp.runs.folder import FINAL_METRICS

    runs = []
    for seed in seeds:
        run_dir = workdir / key / f"seed{seed}"
        wanted = retrain_overrides(overrides, seed, "confirm")
        metrics, ran = run_dir / "reports" / FINAL_METRICS, run_dir / ".hydra" / "overrides.yaml"
        if ran.exists() and yaml.safe_load(ran.read_text()) != wanted:
            sys.exit(f"error: {run_dir} holds a run of other overrides: remove it or pass another --workdir")
        if not metrics.exists():
            args = [*wanted, f"hydra.run.dir={run_dir}"]
            proc = subprocess.run([sys.executable, "-m", "fer_exp", *args], cwd=workdir, capture_output=True, text=True)
            if proc.returncode != 0 or not metrics.exists():
                sys.exit(f"error: the run in {run_dir} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        runs.append(json.loads(metrics.read_text()))
        print(f"  {key} seed {seed}: {runs[-1]['best_val_accuracy']:.4f}", flush=True)
    return runs


def summary(runs: list[dict]) -> dict:
    """The runs' best_val_accuracy (each, their mean and sample standard deviation, None for
    one run) and the means of their macro-F1 and per-class F1 (the rare class's is the one
    accuracy hides)."""
    values = [r["best_val_accuracy"] for r in runs]
    f1 = {k: mean(r[k] for r in runs) for k in runs[0] if k == "val_macro_f1" or k.startswith("val_f1.")}
    return {"values": values, "mean": mean(values), "sd": stdev(values) if len(values) > 1 else None, "f1": f1}


def confirm(found: list[tuple[str, dict, list[str]]], repeats: int, workdir: Path) -> list[dict]:
    """Each (label, best trial, its overrides), trained ``repeats`` more times; identical
    settings train once."""
    seeds = list(range(1, repeats + 1))
    done: dict[str, list[dict]] = {}  # the trial's overrides, joined -> its runs' metrics
    out = []
    for label, best, overrides in found:
        key = " ".join(retrain_overrides(overrides, 0, "confirm"))
        if key not in done:
            print(f"{label}: trial {best['number']} of {best['study']} ({best['value']:.4f})", flush=True)
            done[key] = retrain(workdir, overrides, seeds, f"{len(done)}")
        params = {k: round(v, 6) if isinstance(v, float) else v for k, v in best["params"].items()}
        out.append({"label": label, **best, "params": params, "seeds": seeds, **summary(done[key])})
    return out


def main(argv=None) -> int:
    """Confirm each folder's best trial; print the table and the JSON object."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+", help="sweep launch folders, one study each")
    parser.add_argument("--label", action="append", default=None, help="a name per folder (default: its path)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per best trial, seeds 1..K (default 3)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: removed at exit)")
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON object here")
    parser.add_argument("--note", default=None, help="what the studies are (kept in the record)")
    parser.add_argument(
        "--record", nargs="?", type=Path, const=RECORD, default=None, help=f"add the result to a record ({RECORD.name})"
    )
    args = parser.parse_args(argv)
    labels = args.label or [str(f) for f in args.folders]
    if len(labels) != len(args.folders):
        parser.error(f"{len(labels)} --label for {len(args.folders)} folders: give one per folder, or none")
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: must be at least 1")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    found = []  # every folder read (and checked) before the first run trains
    for folder, label in zip(args.folders, labels):
        best = best_trial(folder)
        found.append((label, best, trial_overrides(folder, best["number"])))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="confirm-best-"))
    if args.workdir is None:
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu()}; runs in {workdir}", flush=True)

    studies = confirm(found, args.repeats, workdir)
    print(f"\n{'study':24s} {'trial':>5s} {'best value':>10s} {'retrained':>10s} {'sd':>7s}")
    for s in studies:
        sd = "—" if s["sd"] is None else f"{100 * s['sd']:.2f}"
        print(f"{s['label']:24s} {s['number']:5d} {s['value']:10.4f} {s['mean']:10.4f} {sd:>7s}")
    result = {"cpu": cpu(), "date": time.strftime("%Y-%m-%d"), "repeats": args.repeats, "studies": studies}
    if args.note:
        result["note"] = args.note
    publish(result, args.json, args.record)
    return 0


def _f1(study: dict, key: str) -> str:
    """A retrained mean F1 for the page (— in records made before they kept it)."""
    value = study.get("f1", {}).get(key)
    return "—" if value is None else f"{value:.3f}"


def _settings(params: dict) -> str:
    """A trial's sampled values, short: the key's last part, floats to 3 significant digits."""
    return ", ".join(f"`{k.rsplit('.', 1)[-1]}={f'{v:.3g}' if isinstance(v, float) else v}`" for k, v in params.items())


def render_confirm(records: list[dict]) -> str:
    """The benchmark page's section on retrained best trials: one table per record, each study's
    best value beside the mean and spread of its best trial trained again."""
    if not records:
        return ""
    parts = [
        "\n### The best trials, trained again\n",
        "Generated from `docs/bench_confirm.json`, the records of `python scripts/confirm_best.py --record`."
        " A study's best value is its luckiest finished trial, so a study that finishes more trials reaches a"
        " higher best on luck alone. Each study's best trial is trained again with other training seeds"
        ' (everything else as the trial had it): "retrained" is the mean of those runs, "sd" their standard'
        " deviation in points, the noise of one run; macro-F1 and disgust F1 are the same runs' means (accuracy"
        " hardly sees the rare class).\n",
    ]
    for r in records:
        parts += [
            f"\n{r['date']}, {r['cpu']}, {r['repeats']} runs each" + (f": {r['note']}" if r.get("note") else ""),
            "\n| study | best trial | its value | retrained | sd (points) | difference to the first (points)"
            " | macro-F1 | disgust F1 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        first = r["studies"][0]["mean"]
        for s in r["studies"]:
            sd = "—" if s["sd"] is None else f"{100 * s['sd']:.2f}"
            parts.append(
                f"| {s['label']} | #{s['number']} | {100 * s['value']:.2f} % | {100 * s['mean']:.2f} % | {sd}"
                f" | {100 * (s['mean'] - first):+.2f} | {_f1(s, 'val_macro_f1')} | {_f1(s, 'val_f1.disgust')} |"
            )
        parts.append("")
        parts += [f"- {s['label']} #{s['number']}: {_settings(s['params'])}" for s in r["studies"]]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
