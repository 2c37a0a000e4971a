"""Record an Optuna study of the FER-2013 benchmark and render its section of docs/benchmarks.md.

    python scripts/benchmark_study.py --storage sqlite:///runs/optuna.db \\
        --study fer2013_augmentation_study --tracking-uri sqlite:///runs/mlflow.db
    python scripts/benchmark_table.py        # renders the page, this study's section included

A study takes an hour or more, so what it found is copied into a committed record
(``docs/benchmark_study.json``) with its pictures (``docs/images/study/``): every trial's sampled
values, state, per-epoch validation accuracy and MLflow run, the sampler and pruner, the machine,
and the parameter importances. ``scripts/benchmark_table.py`` renders the section from the record
alone (:func:`render_study`), so the page never needs the study's database.

Importances are Optuna's fANOVA (seeded, so the record renders the same twice) at two points:
**at the cut**, on every trial's accuracy at the pruner's first cut (all trials have one), and
**at the end**, on the trials that trained to the end (Optuna's own view, fewer trials). A
family's importance is the sum over its settings. "direction" is Spearman's rank correlation
between a setting and the accuracy, across the same trials: positive means more of it did better.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
RECORD = DOCS / "benchmark_study.json"
PICTURES = DOCS / "images" / "study"
# search-space key -> the augmentation family it belongs to (the others are their own family)
FAMILIES = {
    "augmentation.rotation_range": "geometry",
    "augmentation.width_shift_range": "geometry",
    "augmentation.height_shift_range": "geometry",
    "augmentation.zoom_range": "geometry",
    "augmentation.horizontal_flip": "geometry",
    "augmentation.crop_prob": "random crop",
    "augmentation.erasing_prob": "random erasing",
    "augmentation.mixup_prob": "mixup",
    "augmentation.cutmix_prob": "cutmix",
    "augmentation.contrast_prob": "contrast and gamma",
    "optimizer.learning_rate": "learning rate",
}


def cpu() -> str:
    """The processor's model name and the cores this process may use."""
    from fer_exp.training.hardware import cpu_name

    return f"{cpu_name()}, {len(os.sched_getaffinity(0))} cores"


def publish(result: dict, json_path: Path | None, record: Path | None) -> None:
    """A benchmark script's result: printed as one JSON line, also written to ``json_path``, and
    added to the list kept in ``record`` (created when missing)."""
    text = json.dumps(result)
    if json_path:
        json_path.write_text(text + "\n")
    if record:
        earlier = json.loads(record.read_text()) if record.exists() else []
        record.write_text(json.dumps([*earlier, result], indent=1) + "\n")
    print(text)


def _number(value):
    """A sampled value as the record keeps it: bools as bools, floats rounded to 6 digits."""
    return round(value, 6) if isinstance(value, float) else value


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rank correlation (scipy; average ranks for ties), rounded; None when either
    side is constant.

    >>> spearman([1, 2, 3, 4], [10, 20, 30, 25])
    0.8
    >>> spearman([1, 1, 1], [1, 2, 3]) is None
    True
    """
    from scipy.stats import spearmanr

    if len(set(xs)) < 2 or len(set(ys)) < 2:  # scipy warns and answers nan there
        return None
    return round(float(spearmanr([float(x) for x in xs], [float(y) for y in ys]).statistic), 4)


def importances(trials: list[dict], distributions: dict, target: str) -> dict[str, float]:
    """Optuna's fANOVA importances (seed 0) of the settings for ``target`` of ``trials``; {}
    when fewer than two trials differ in it."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    usable = [t for t in trials if t.get(target) is not None]
    if len({t[target] for t in usable}) < 2:
        return {}
    study = optuna.create_study(direction="maximize")
    for t in usable:
        study.add_trial(optuna.trial.create_trial(params=t["params"], distributions=distributions, value=t[target]))
    found = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    return {k: round(v, 4) for k, v in found.items()}


def directions(trials: list[dict], target: str) -> dict[str, float | None]:
    """Each setting's Spearman correlation with ``target`` across the trials that have it."""
    usable = [t for t in trials if t.get(target) is not None]
    keys = sorted({k for t in usable for k in t["params"]})
    return {k: spearman([float(t["params"][k]) for t in usable], [t[target] for t in usable]) for k in keys}


def trial_records(study, runs_by_number: dict[int, object]) -> list[dict]:
    """One dict per finished or pruned trial: values, state, per-epoch accuracy, its run."""
    from optuna.trial import TrialState

    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        run = runs_by_number.get(t.number)
        metrics = run.data.metrics if run is not None else {}
        per_epoch = {int(step): round(v, 4) for step, v in sorted(t.intermediate_values.items())}
        out.append(
            {
                "number": t.number,
                "state": t.state.name,
                "params": {k: _number(v) for k, v in t.params.items()},
                # Optuna gives a pruned trial its last reported value: not a value at the end
                "value": round(t.value, 4) if t.state == TrialState.COMPLETE else None,
                "per_epoch": per_epoch,
                "epochs": max(per_epoch) if per_epoch else None,
                "best_val_accuracy": _number(metrics.get("best_val_accuracy")),
                "train_time_s": _number(metrics.get("train_time_s")),
                "run_id": run.info.run_id if run is not None else None,
            }
        )
    return out


def rank_by_epoch(trials: list[dict]) -> dict[int, float | None]:
    """For each epoch, Spearman's correlation between the accuracy then and at the end, over
    the trials that trained to the end: how well a cut after that epoch would have ranked them."""
    finished = [t for t in trials if t["state"] == "COMPLETE"]
    if len(finished) < 3:
        return {}
    last = min(max(t["per_epoch"]) for t in finished)
    return {e: spearman([t["per_epoch"][e] for t in finished], [t["value"] for t in finished]) for e in range(1, last)}


def better_half(trials: list[dict]) -> list[dict]:
    """The finished trials whose value at the end is in the better half of the finished ones
    (the study maximizes): the trials a pruner has to rank, once it has cut the poor ones."""
    finished = sorted((t for t in trials if t["state"] == "COMPLETE"), key=lambda t: t["value"], reverse=True)
    return finished[: len(finished) // 2]


def categorical(params: dict) -> dict:
    """The sampled values that are choices (a bool or a name), not numbers.

    >>> categorical({"flip": True, "fill": "nearest", "lr": 0.1, "rot": 10})
    {'flip': True, 'fill': 'nearest'}
    """
    return {k: v for k, v in params.items() if isinstance(v, bool | str)}


def choices_after_startup(trials: list[dict], startup: int) -> dict[str, dict[str, int]]:
    """How often the sampler chose each value of each categorical setting (a bool or a name)
    in the trials numbered ``startup`` and later: what TPE sampled once its random start was
    over, i.e. what it learned from the trials before.

    >>> choices_after_startup([{"number": n, "params": {"flip": n % 3 == 0, "lr": 0.1}} for n in range(6)], 2)
    {'flip': {'false': 3, 'true': 1}}
    """
    counted: dict[str, dict[str, int]] = {}
    for t in trials:
        if t["number"] < startup:
            continue
        for key, value in categorical(t["params"]).items():
            shown = str(value).lower() if isinstance(value, bool) else value
            counted.setdefault(key, {}).setdefault(shown, 0)
            counted[key][shown] += 1
    return {key: dict(sorted(found.items())) for key, found in sorted(counted.items())}


def first_cut(trials: list[dict]) -> int | None:
    """The epoch of the pruner's first cut: the earliest epoch a pruned trial stopped at."""
    stops = [t["epochs"] for t in trials if t["state"] == "PRUNED" and t["epochs"]]
    return min(stops) if stops else None


def record_study(study, client, experiment: str, cpu: str) -> dict:
    """The study's record: its settings (from its MLflow parent run), its trials with their
    runs, and the importances and directions at the first cut and at the end."""
    settings, runs_by_number = {}, {}
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"error: no experiment {experiment!r} in the MLflow store: pass --experiment")
    for run in client.search_runs([exp.experiment_id], f"tags.`fer_exp.study` = '{study.study_name}'"):
        if run.data.tags.get("fer_exp.sweep_role") == "parent":
            settings = {k.removeprefix("study."): v for k, v in run.data.params.items() if k.startswith("study.")}
        elif (number := run.data.tags.get("fer_exp.trial_number")) is not None and run.info.status == "FINISHED":
            runs_by_number[int(number)] = run
    trials = trial_records(study, runs_by_number)
    cut = first_cut(trials)
    for t in trials:
        t["at_cut"] = t["per_epoch"].get(cut) if cut else None
    distributions = next(t.distributions for t in study.trials if t.distributions)
    return {
        "study": study.study_name,
        "experiment": experiment,
        "cpu": cpu,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "settings": settings,
        "cut_epoch": cut,
        "trials": trials,
        "importances": {
            "at_cut": importances(trials, distributions, "at_cut"),
            "at_end": importances(trials, distributions, "value"),
        },
        "directions": {"at_cut": directions(trials, "at_cut"), "at_end": directions(trials, "value")},
        "rank_by_epoch": rank_by_epoch(trials),
    }


def family_importances(found: dict[str, float]) -> dict[str, float]:
    """Importances summed per family (fANOVA's importances add up to one over the settings).

    >>> family_importances({"augmentation.zoom_range": 0.2, "augmentation.rotation_range": 0.1, "x.y": 0.7})
    {'geometry': 0.3, 'x.y': 0.7}
    """
    out: dict[str, float] = {}
    for key, value in found.items():
        family = FAMILIES.get(key, key)
        out[family] = round(out.get(family, 0.0) + value, 4)
    return out


def draw_families(record: dict, path: Path) -> Path | None:
    """A bar chart of each family's importance at the cut and at the end (the directions are in
    the page's table); None when there are no importances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    at_cut = family_importances(record["importances"]["at_cut"])
    at_end = family_importances(record["importances"]["at_end"])
    families = sorted(set(at_cut) | set(at_end), key=lambda f: at_cut.get(f, 0) + at_end.get(f, 0))
    if not families:
        return None
    n_all, n_end = counts(record)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    ys = range(len(families))
    ax.barh([y + 0.2 for y in ys], [at_cut.get(f, 0) for f in families], 0.4, label=f"at the cut ({n_all} trials)")
    ax.barh([y - 0.2 for y in ys], [at_end.get(f, 0) for f in families], 0.4, label=f"at the end ({n_end} trials)")
    ax.set_yticks(list(ys), families)
    ax.set_xlabel("importance (fANOVA, summed over the family's settings)")
    ax.set_title(f"study {record['study']}: which families mattered for validation accuracy")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def counts(record: dict) -> tuple[int, int]:
    """(trials with an accuracy at the cut, trials that trained to the end)."""
    trials = record["trials"]
    return sum(t.get("at_cut") is not None for t in trials), sum(t["state"] == "COMPLETE" for t in trials)


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.2f} %"


def _signed(v) -> str:
    return "—" if v is None else f"{v:+.2f}"


def _value(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def reproduce(record: dict, trial: dict) -> str:
    """The command that trains ``trial``'s settings as one run (no study, no pruner)."""
    values = " ".join(f"{k}={_value(v)}" for k, v in trial["params"].items())
    return f"python -m fer_exp experiment={record['experiment']} hydra.mode=RUN data.root=/path/to/fer2013 {values}"


def render_study(record: dict, pictures: str = "images/study") -> str:
    """The Markdown section of the benchmark page for a study's record."""
    trials = record["trials"]
    n_all, n_end = counts(record)
    cut = record.get("cut_epoch")
    finished = [t for t in trials if t["state"] == "COMPLETE"]
    best = max(finished, key=lambda t: t["value"]) if finished else None
    minutes = sum(t.get("train_time_s") or 0 for t in trials) / 60
    settings = record.get("settings", {})
    parts = [
        "\n## Augmentation study\n",
        f"`experiment={record['experiment']}` (see [Studies](studies.md)): {len(trials)} trials, sampler"
        f" `{settings.get('sampler', '?')}`, pruner `{settings.get('pruner', '?')}`; {n_end} trained to the end"
        + (f", {len(trials) - n_end} were pruned (the first cut after epoch {cut})" if cut else "")
        + f". {minutes:.0f} min of training in all, on {record['cpu']}, {record['date']}.\n",
    ]
    if best is not None:
        parts += [
            f"**Best trial: #{best['number']}**, validation accuracy {_pct(best['value'])} after"
            f" {best['epochs']} epochs (run `{(best.get('run_id') or '?')[:8]}`). To train its settings as one run:\n",
            f"```bash\n{reproduce(record, best)}\n```\n",
        ]
    ranks = record.get("rank_by_epoch") or {}
    if ranks:
        parts += [
            "### Did the cut rank the trials well?\n",
            f"For each epoch, Spearman's correlation between the accuracy after it and at the end, over the"
            f" {n_end} trials that trained to the end (1: the same order). A cut after an epoch whose"
            " correlation is low judges trials on noise. Only the survivors count (a narrower range of"
            " accuracies), which tends to lower the correlations.\n",
            "| epoch | " + " | ".join(str(e) for e in ranks) + " |",
            "|---" * (len(ranks) + 1) + "|",
            "| correlation with the end | " + " | ".join(_signed(v) for v in ranks.values()) + " |\n",
        ]
    at_cut, at_end = (family_importances(record["importances"][k]) for k in ("at_cut", "at_end"))
    if at_cut or at_end:
        parts += [
            "### Which families mattered\n",
            f"Importance is Optuna's fANOVA summed over a family's settings: at the cut, on all {n_all} trials'"
            f" accuracy after epoch {cut}; at the end, on the {n_end} trials that trained to the end. Direction is"
            " Spearman's rank correlation of a setting with the accuracy (positive: more of it did better); a"
            " family of several settings shows each. With this few trials, read the order, not the decimals.\n",
            "| family | importance at the cut | importance at the end | direction at the cut | direction at the end |",
            "|---|---|---|---|---|",
        ]
        dirs = record["directions"]
        for family in sorted(set(at_cut) | set(at_end), key=lambda f: -(at_cut.get(f, 0) + at_end.get(f, 0))):
            keys = [k for k in sorted(dirs["at_cut"]) if FAMILIES.get(k, k) == family]

            def shown(where, keys=keys):
                return ", ".join(
                    (f"{k.rsplit('.', 1)[-1]} " if len(keys) > 1 else "") + _signed(dirs[where].get(k)) for k in keys
                )

            parts.append(
                f"| {family} | {at_cut.get(family, 0):.2f} | {at_end.get(family, 0):.2f}"
                f" | {shown('at_cut')} | {shown('at_end')} |"
            )
        parts.append(f"\n![importances per family]({pictures}/families.png)\n")
    keys = list(trials[0]["params"]) if trials else []
    short = [k.rsplit(".", 1)[-1].removesuffix("_range").removesuffix("_prob") for k in keys]
    parts += [
        "### Every trial\n",
        "Ordered by the accuracy at the end, then at the cut. The settings are the sampled values.\n",
        f"| trial | state | epochs | val acc after epoch {cut} | val acc at the end | {' | '.join(short)} | run |",
        "|---" * (6 + len(short)) + "|",
    ]
    order = sorted(trials, key=lambda t: (t["value"] is not None, t["value"] or 0, t.get("at_cut") or 0), reverse=True)
    for t in order:
        cells = [f"#{t['number']}", t["state"].lower(), str(t["epochs"]), _pct(t.get("at_cut")), _pct(t["value"])]
        cells += [_value(t["params"].get(k)) for k in keys]
        cells.append(f"`{(t.get('run_id') or '?')[:8]}`")
        parts.append("| " + " | ".join(cells) + " |")
    parts += [
        "\nEvery trial's validation accuracy per epoch (the pruned ones stop at the cut), and Optuna's own"
        " pictures of the trials that trained to the end:\n",
        f"![per-epoch accuracy]({pictures}/intermediate_values.png)\n",
        f"![optimization history]({pictures}/optimization_history.png)\n",
        f"![importances at the end]({pictures}/param_importances.png)\n",
    ]
    return "\n".join(parts)


def main(argv=None) -> int:
    """Record the study and draw its pictures; benchmark_table.py renders the page."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", required=True, help="the study's Optuna storage URL")
    parser.add_argument("--study", default="fer2013_augmentation_study", help="the study's name")
    parser.add_argument("--tracking-uri", required=True, help="the MLflow store the study's runs are in")
    parser.add_argument("--experiment", default=None, help="its MLflow experiment (default: the study's name)")
    parser.add_argument("--record", type=Path, default=RECORD)
    parser.add_argument("--pictures", type=Path, default=PICTURES)
    args = parser.parse_args(argv)

    import optuna
    from mlflow.tracking import MlflowClient

    from fer_exp.analysis.study_plots import study_plots
    from fer_exp.sweeps.study import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=args.study, storage=open_storage(args.storage, Path.cwd(), None))
    except KeyError:
        print(f"error: no study {args.study!r} in {args.storage}: pass --study and --storage", file=sys.stderr)
        return 2
    record = record_study(study, MlflowClient(args.tracking_uri), args.experiment or args.study, cpu())
    study_plots(study, ["best_val_accuracy"], args.pictures)
    draw_families(record, args.pictures / "families.png")
    args.record.write_text(json.dumps(record, indent=1) + "\n")
    print(f"written {args.record} ({len(record['trials'])} trials) and the pictures in {args.pictures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
