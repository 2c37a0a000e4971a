"""Write docs/benchmarks.md from the MLflow runs of the FER-2013 benchmark (no hand-typed numbers).

    python scripts/benchmark_table.py --tracking-uri sqlite:///runs/mlflow.db \\
        --experiment fer2013 --ablation fer2013_ablation

Benchmarks take hours and are run on different days and machines, so each finished run is
copied into a committed record (``docs/benchmark_runs.json``, one entry per MLflow run id,
with the machine it ran on); the Markdown is rendered from the whole record. Without
``--tracking-uri`` the page is rendered from the record alone.

Every record holds what it takes to make its row again: ``config`` (the run's full resolved
config as it logged it: the artifact ``config/config.yaml``, else its folder's ``run.json``),
``overrides`` (its command line), for an ensemble ``members`` (run ids), ``tta`` and
``tta_shift``, and ``reproduce`` (the command). Records made before the record kept these are
brought to this format once with ``--migrate`` (see ``migrate``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's benchmarks package
from bench_sweeps import RECORD as SWEEPS_RECORD
from bench_sweeps import render_sweeps
from benchmark_study import RECORD as STUDY_RECORD
from benchmark_study import render_study
from confirm_best import RECORD as CONFIRM_RECORD
from confirm_best import render_confirm

from benchmarks.seed_comparisons import RECORD as SEEDS_RECORD  # noqa: E402
from benchmarks.seed_comparisons import render as render_seed_comparisons  # noqa: E402
from benchmarks.seed_comparisons import render_calibration  # noqa: E402
from fer_exp.augment.tta import tta_label

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
RUN_CLI = "python -m fer_exp"
ENSEMBLE_CLI = "python -m fer_exp.ensemble"
SHARED_ROOT = "../shared/data/fer2013"  # the shared split beside the checkout, as reconstructed configs read it
NOT_BOTH = "recorded before ensembles logged both their plain and their TTA accuracy"
# an ensemble's metric measured on the view-averaged probabilities, in old records, -> its TTA name
TTA_OF = {
    "best_val_accuracy": "val_accuracy_tta",
    "val_macro_f1": "val_macro_f1_tta",
    "val_f1_disgust": "val_f1_disgust_tta",
    "val_accuracy_leakfree": "val_accuracy_leakfree_tta",
}


def _metric(name):
    return lambda r: r.data.metrics.get(name)


def _param(name, default=None):
    return lambda r: r.data.params.get(name, default)


# record field -> how to read it from an MLflow run
FIELDS = {
    "recipe": lambda r: r.data.params.get("preset.experiment") or r.info.run_name,
    "model": _param("model.name"),
    "parameters": lambda r: (
        int(float(r.data.params["model.param_count"])) if "model.param_count" in r.data.params else None
    ),
    "augmentation": _param("preset.augmentation", ""),
    "epochs": _metric("epochs_run"),
    "train_time_s": _metric("train_time_s"),
    "best_val_accuracy": _metric("best_val_accuracy"),
    "val_accuracy_tta": _metric("val_accuracy_tta"),
    "tta_views": lambda r: _tta_views(r.data.params),
    "val_macro_f1": _metric("val_macro_f1"),
    "val_macro_f1_tta": _metric("val_macro_f1_tta"),
    "val_f1_disgust": _metric("val_f1.disgust"),
    "val_accuracy_leakfree": _metric("val_accuracy_leakfree"),
    "precision": _param("env.precision"),
    "cpu": lambda r: " · ".join(
        v
        for v in (
            r.data.params.get("env.cpu"),
            r.data.params.get("env.cores") and f"{r.data.params['env.cores']} cores",
        )
        if v
    ),
    "date": lambda r: datetime.fromtimestamp(r.info.start_time / 1000, UTC).strftime("%Y-%m-%d"),
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
    ("val acc", "best_val_accuracy", _pct),
    ("val acc, TTA", "val_accuracy_tta", _pct),
    ("TTA views", "tta_views", str),
    ("val macro-F1", "val_macro_f1", _num(4)),
    ("val macro-F1, TTA", "val_macro_f1_tta", _num(4)),
    ("F1 disgust", "val_f1_disgust", _num(4)),
    ("leak-free val acc", "val_accuracy_leakfree", _pct),
    ("compute", "precision", lambda v: v.removeprefix("mixed_")),
    ("CPU", "cpu", str),
    ("date", "date", str),
    ("run", "run_id", lambda v: f"`{v[:8]}`"),
]
UNKNOWN = "—"  # a measured figure the record does not hold
MEASURED = {
    "best_val_accuracy",
    "val_accuracy_tta",
    "val_macro_f1",
    "val_macro_f1_tta",
    "val_f1_disgust",
    "val_accuracy_leakfree",
}


def record_of(run, section: str, experiment: str | None = None, client=None) -> dict:
    """One MLflow run as a record: its figures, its resolved config and the command that reproduces it."""
    ensemble = run.data.tags.get("fer_exp.kind") == "ensemble"
    if ensemble:
        section = "main"  # an ensemble is a recipe of its own, whichever experiment it is logged in
    rec = {
        "run_id": run.info.run_id,
        "section": section,
        "experiment": experiment,
        "kind": "ensemble" if ensemble else "run",
        **{k: get(run) for k, get in FIELDS.items()},
    }
    if ensemble:
        params = run.data.params
        members = [m for m in params.get("ensemble.members", "").split(",") if m]
        rec.update(
            members=members or None,
            members_source="logged" if members else None,
            tta=params.get("ensemble.tta", "").lower() == "true",
            tta_shift=int(float(params.get("ensemble.tta_shift", 0))),
            overrides=None,
        )
        rec.update(config=_ensemble_config(rec), config_source="logged")
        if rec["tta"] and "val_accuracy_tta" not in run.data.metrics:
            _tta_only(rec)  # logged by fer_exp before ensembles logged both accuracies
    else:
        rec["overrides"] = run.data.tags.get("overrides")
        rec["config"] = logged_config(run, client)
        rec["config_source"] = "logged" if rec["config"] is not None else None
    rec["reproduce"] = reproduce_command(rec)
    return rec


def logged_config(run, client=None) -> dict | None:
    """The run's full resolved config: its MLflow artifact config/config.yaml (secrets already
    masked), else its run folder's run.json "config" (masked here); None when neither is reachable."""
    import yaml
    from mlflow.exceptions import MlflowException

    if client is not None:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                return yaml.safe_load(
                    Path(client.download_artifacts(run.info.run_id, "config/config.yaml", tmp)).read_text()
                )
            except (MlflowException, OSError):  # not logged, or its artifact store is gone: try the folder
                pass
    folder = run.data.tags.get("output_dir")
    info = Path(folder) / "run.json" if folder else None
    if info is None or not info.is_file():
        return None
    from omegaconf import OmegaConf

    from fer_exp.tracking.redact import redact_tree, secret_keys

    tree = json.loads(info.read_text()).get("config")
    return redact_tree(tree, secret_keys(OmegaConf.create(tree))) if tree else None


def _ensemble_config(rec: dict) -> dict:
    """An ensemble's whole config is its command: the members (each with its own record) and the views."""
    return {
        "ensemble": {"members": rec.get("members"), "tta": rec.get("tta"), "tta_shift": rec.get("tta_shift")},
        "experiment_name": rec.get("experiment"),
    }


def _tta_only(rec: dict) -> None:
    """An ensemble averaged over TTA views that logged only those figures, under the plain metrics'
    names: move them to their TTA names and leave the plain ones unknown."""
    for plain, tta in TTA_OF.items():
        rec[tta], rec[plain] = rec.get(plain), None


def is_ensemble(rec: dict) -> bool:
    return rec.get("kind") == "ensemble" or str(rec.get("recipe", "")).startswith("ensemble of ")


def reproduce_command(rec: dict) -> str | None:
    """The command that makes this row again; None when it is not known (an ensemble whose members
    are not recorded, a run whose command line is not)."""
    if rec.get("reproduce"):
        return rec["reproduce"]
    if is_ensemble(rec):
        if not rec.get("members"):
            return None
        views = (
            (" --tta" + (f" --tta-shift {rec['tta_shift']}" if rec.get("tta_shift") else "")) if rec.get("tta") else ""
        )
        where = f" --experiment {rec['experiment']}" if rec.get("experiment") else ""
        return f"{ENSEMBLE_CLI} {' '.join(rec['members'])}{views}{where}"
    overrides = rec.get("overrides")
    if overrides is None:
        return None
    return RUN_CLI if overrides in ("", "(defaults)") else f"{RUN_CLI} {overrides}"


# --------------------------------------------------------------------------- records made before configs were kept


def migrate(records: list[dict]) -> int:
    """One-off: bring records made before the record kept configs to today's format; returns how many.

    A single run gets the config composed from its recipe (``experiment=<recipe>``, the shared split,
    and the swept value where the record names it: an ablation run's augmentation), marked
    ``config_source: "reconstructed from ..."``; keys it cannot know (a sweep's seed, the tracking URI)
    are null and listed in ``config_unknown``. An ensemble averaged over TTA views logged only TTA
    figures then: they move to their TTA names and the plain ones become null. Its members are the
    only set of recorded runs of its recipe whose epochs, training time and parameters add up to its
    own (an ensemble logs these summed over its members), else null."""
    old = [r for r in records if "config_source" not in r]
    for rec in old:  # single runs first: the ensembles look for their members among them
        if not is_ensemble(rec):
            _migrate_run(rec)
    for rec in old:
        if is_ensemble(rec):
            _migrate_ensemble(rec, records)
    return len(old)


def _compose(overrides: list[str]) -> dict:
    from fer_exp.config import compose

    return compose(overrides).to_tree()


def _sweep_params(recipe: str) -> dict[str, str]:
    """What the recipe's own Hydra sweep varies: {"seed": "1,2,3"}; {} for a single run."""
    from hydra import compose, initialize_config_dir

    from fer_exp.config import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={recipe}"], return_hydra_config=True)
    return {str(k): str(v) for k, v in (cfg.hydra.sweeper.get("params") or {}).items()}


def _migrate_run(rec: dict) -> None:
    recipe = rec["recipe"]
    overrides = [f"experiment={recipe}", f"data.root={SHARED_ROOT}"]
    unknown, notes = ["tracking_uri"], []
    for key, values in _sweep_params(recipe).items():
        if key == "augmentation" and rec.get("augmentation"):
            overrides.append(f"augmentation={rec['augmentation']}")  # the record names the sweep's value
        else:
            unknown.append(key)
            notes.append(
                f"`{key}` not recorded: the recipe sweeps {key}={values}, and its command runs the whole sweep"
            )
    config = _compose(overrides)
    for key in unknown:
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node[p]
        node[leaf] = None
    for what, recorded, composed in (
        ("model", rec.get("model"), config["model"]["name"]),
        ("TTA views", rec.get("tta_views"), tta_label(config["tta_shift"]) if config["tta"] else None),
    ):
        if recorded != composed:
            notes.append(f"the recorded {what} ({recorded}) differs from the reconstructed config's ({composed})")
    rec.update(
        kind="run",
        experiment=config["experiment_name"],
        overrides=None,
        config=config,
        config_source="reconstructed from " + " ".join(overrides),
        config_unknown=unknown,
        reproduce=f"{RUN_CLI} {' '.join(overrides)}",
    )
    if notes:
        rec.setdefault("notes", []).extend(notes)


def _tta_shift_of(views: str | None) -> int:
    found = re.search(r"\+ (\d+) px shifts", views or "")
    return int(found[1]) if found else 0


def _migrate_ensemble(rec: dict, records: list[dict]) -> None:
    size, recipes = re.fullmatch(r"ensemble of (\d+) × (.+)", rec["recipe"]).groups()
    pool = [r for r in records if not is_ensemble(r) and r["recipe"] in recipes.split(" + ")]
    fits = [
        c
        for c in itertools.combinations(pool, int(size))
        if sum(r.get("epochs") or 0 for r in c) == rec.get("epochs")
        and sum(r.get("parameters") or 0 for r in c) == rec.get("parameters")
        and math.isclose(sum(r.get("train_time_s") or 0 for r in c), rec.get("train_time_s") or -1, rel_tol=1e-12)
    ]
    members = [r["run_id"] for r in fits[0]] if len(fits) == 1 else None
    tta = rec.get("tta_views") is not None
    rec.update(
        kind="ensemble",
        experiment=fits[0][0].get("experiment") if members else None,
        members=members,
        tta=tta,
        tta_shift=_tta_shift_of(rec.get("tta_views")),
        overrides=None,
    )
    rec["members_source"] = (
        f"inferred: the only {size} recorded runs of {recipes} whose epochs, training time"
        " and parameters add up to this ensemble's (it logged their sums, not their ids)"
        if members
        else None
    )
    rec.update(config=_ensemble_config(rec), config_source="reconstructed from the record")
    if tta:
        _tta_only(rec)
    rec["reproduce"] = reproduce_command(rec)


def finished_runs(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED'", max_results=1000)
    return [r for r in runs if r.data.tags.get("fer_exp.sweep_role") != "parent"]


def best_accuracy(rec: dict) -> float:
    """The higher of a row's accuracies, plain or with TTA: the main table's order."""
    return max((v for v in (rec.get("best_val_accuracy"), rec.get("val_accuracy_tta")) if v is not None), default=0)


def table(records: list[dict], columns=COLUMNS, rank=lambda r: r.get("best_val_accuracy") or 0) -> str:
    lines = ["| " + " | ".join(title for title, _, _ in columns) + " |", "|" + "---|" * len(columns)]
    for rec in sorted(records, key=lambda r: -rank(r)):
        lines.append(
            "| "
            + " | ".join(
                fmt(rec.get(key)) if rec.get(key) is not None else UNKNOWN if key in MEASURED else ""
                for _, key, fmt in columns
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def _signed_pp(v):
    return f"{100 * v:+.2f}"


VALIDATION_IMAGES = 7066  # the shared split's validation folder, every recorded run evaluated all of it


def faces_interval(accuracy: float | None, n: int) -> str:
    """The 95 % interval of one run's accuracy over the validation faces alone (Clopper-Pearson,
    scipy's): what another sample of faces would change, not another seed.

    >>> faces_interval(0.6, 7066)
    '58.85–61.15 %'
    """
    if accuracy is None:
        return ""
    from scipy.stats import binomtest

    ci = binomtest(round(accuracy * n), n).proportion_ci(0.95)
    return f"{100 * ci.low:.2f}–{100 * ci.high:.2f} %"


def ablation_rows(records: list[dict]) -> list[dict]:
    """Add what each augmentation costs and gains: seconds per epoch, and accuracy relative to
    `none` and to `light` (the preset every light_<family> extends), in percentage points."""
    latest = {r["augmentation"]: r for r in records}  # records are in date order
    rows = []
    for rec in records:
        row = dict(rec)
        if rec.get("epochs") and rec.get("train_time_s"):
            row["s_per_epoch"] = rec["train_time_s"] / rec["epochs"]
        row["faces_interval"] = faces_interval(rec.get("best_val_accuracy"), VALIDATION_IMAGES)
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
    ("95 % interval, faces only", "faces_interval", str),
    ("vs none (pp)", "delta_none", _signed_pp),
    ("vs light (pp)", "delta_light", _signed_pp),
    *(
        COLUMN[key]
        for key in (
            "val_accuracy_tta",
            "tta_views",
            "val_macro_f1",
            "val_f1_disgust",
            "val_accuracy_leakfree",
            "date",
            "run_id",
        )
    ),
]


def _top_picks(rec: dict, records: list[dict]) -> tuple[str, list[str]] | None:
    """What ``--top N --recipe R`` would pick from this record today, for an ensemble of one recipe."""
    found = re.fullmatch(r"ensemble of (\d+) × ([^+]+)", str(rec.get("recipe", "")))
    if not found:
        return None
    size, recipe = int(found[1]), found[2]
    runs = [
        r
        for r in records
        if not is_ensemble(r)
        and r.get("recipe") == recipe
        and r.get("experiment") == rec.get("experiment")
        and (r.get("best_val_accuracy") or 0) > 0
    ]
    runs.sort(key=lambda r: -r["best_val_accuracy"])
    return f"--top {size} --recipe {recipe}", [r["run_id"] for r in runs[:size]]


def row_notes(rec: dict, records: list[dict]) -> list[str]:
    """What a reader of the reproduce command needs to know about this row."""
    notes = []
    source = rec.get("config_source")
    if source is None and not is_ensemble(rec):
        notes.append("resolved config not found (no config/config.yaml artifact, no run folder)")
    elif source and source.startswith("reconstructed from ") and not is_ensemble(rec):
        notes.append(
            "config reconstructed from this command with today's `conf/`: recorded before the record"
            " kept each run's config"
        )
    if is_ensemble(rec) and rec.get("best_val_accuracy") is None and rec.get("val_accuracy_tta") is not None:
        notes.append(
            f"plain (no TTA) figures not recorded: {NOT_BOTH}; with TTA, F1 disgust"
            f" {_num(4)(rec.get('val_f1_disgust_tta')) or UNKNOWN}, leak-free val acc"
            f" {_pct(rec.get('val_accuracy_leakfree_tta')) or UNKNOWN}"
        )
    if is_ensemble(rec):
        members = rec.get("members")
        top = _top_picks(rec, records)
        if not members:
            notes.append(
                "members not recorded: `--top N` picks the best runs of the experiment when it is run,"
                " so it is not a reproduction of this ensemble"
            )
        else:
            if rec.get("members_source", "logged") != "logged":
                notes.append(f"members {rec['members_source']}")
            known = {r["run_id"] for r in records}
            notes += [f"member `{m}` is not in this record" for m in members if m not in known]
            if top and sorted(top[1]) != sorted(members):
                notes.append(f"`{top[0]}` picks other runs from this record today: name the members")
            elif top:
                notes.append(
                    f"`{top[0]}` picks the same runs from this record today, but not once better runs"
                    " of the recipe are logged: name the members"
                )
    return notes + list(rec.get("notes") or [])


def reproduce_list(records: list[dict], label, rank, everything: list[dict]) -> str:
    """One item per row, in the table's order: the command that makes it again, and its caveats
    (``everything``: the whole record, where an ensemble's members are looked up)."""
    lines = []
    for rec in sorted(records, key=lambda r: -rank(r)):
        cmd = reproduce_command(rec)
        lines.append(f"- `{rec['run_id'][:8]}` {label(rec)}: " + (f"`{cmd}`" if cmd else "no command reproduces it"))
        lines += [f"  - {note}" for note in row_notes(rec, everything)]
    return "\n".join(lines) + "\n"


def render(
    records: list[dict],
    study: dict | None = None,
    sweeps: list[dict] | None = None,
    confirms: list[dict] | None = None,
    seed_comparisons: list[dict] | None = None,
    calibration: dict | None = None,
) -> str:
    """The benchmark page: the recipes, the ablation, and the study, the sweep benchmark and the
    retrained best trials when there are records of them."""
    main = [r for r in records if r["section"] == "main"]
    ablation = [r for r in records if r["section"] == "ablation"]
    parts = [
        "# FER-2013 benchmark\n",
        "Generated by `scripts/benchmark_table.py` from MLflow runs (kept in `docs/benchmark_runs.json`)"
        " — do not edit by hand. Data: the shared FER-2013 split (train 28,821 → validation 7,066),"
        " trained on a CPU with 2 cores and no GPU. TTA (test-time augmentation) averages the predictions of each"
        ' image and its mirror ("flip"), and with "N px shifts" also of both moved N pixels up, down,'
        ' left and right. "Leak-free" is validation without the images whose pixels also occur in'
        " train (see `python -m fer_exp.audit`).\n",
        (
            '"val acc" and "val macro-F1" are without TTA, for a single run and an ensemble alike (a run: its'
            " best checkpoint; an ensemble: its members' averaged probabilities); the TTA columns beside them average"
            f' the views named in "TTA views". {UNKNOWN} is a figure the record does not hold: ensembles {NOT_BOTH}'
            " have only TTA figures, so their plain accuracy, macro-F1, disgust F1 and leak-free accuracy are unknown"
            " (their TTA disgust F1 and leak-free accuracy are in the notes under the table). Rows are ordered by"
            ' the higher of their two accuracies. Every "val acc" here chose its best epoch on the same validation'
            " faces it is scored on, which flatters it a little (the noisiest runs most); no recorded run held faces"
            " out (`data.val_holdout`, whose `test_accuracy` would be free of that).\n"
        ),
        "## Recipes\n",
        table(main, rank=best_accuracy),
        "\n### How to reproduce each row\n",
        (
            "Each run's record in `docs/benchmark_runs.json` holds its full resolved config (`config`, with"
            " `config_source`), its command-line overrides and, for an ensemble, its member run ids; the command"
            " below is its `reproduce`. An ensemble averages its members' checkpoints: to make it anew, train each"
            " member with the command of its own row, then name the new run ids.\n"
        ),
        reproduce_list(main, lambda r: r["recipe"], best_accuracy, records),
    ]
    if ablation:
        first = ablation[0]
        minutes = max(r.get("train_time_s") or 0 for r in ablation) / 60
        parts += [
            "\n## Augmentation ablation\n",
            f"Recipe `{first['recipe']}`: every run trains `{first['model']}`"
            f" ({COLUMN['parameters'][2](first['parameters'])} parameters) with the same optimizer and"
            f" schedule for the same training time (~{minutes:.0f} min on {first['cpu']}); only the"
            " augmentation preset differs. The epochs that fit the budget vary with the machine's speed"
            " as well as with the preset's cost (`scripts/bench_augmentation.py` measures the cost"
            " alone). `light_<family>` is `light`"
            ' plus that family, so "vs light" is what the family adds (positive) or costs (negative).'
            " **Each row is one run with one seed: no difference here is a finding.** The interval beside each"
            " accuracy counts only the validation faces' noise (another sample of faces), and another seed moves a"
            " run about as much again; the runs kept no predictions, so they cannot be paired or compared over seeds."
            " Which augmentation helps, with intervals and verdicts, is in"
            " [Augmentation over seeds](#augmentation-over-seeds).\n",
            table(ablation_rows(ablation), ABLATION_COLUMNS),
            "\n### How to reproduce each row\n",
            reproduce_list(
                ablation,
                lambda r: f"augmentation `{r.get('augmentation')}`",
                lambda r: r.get("best_val_accuracy") or 0,
                records,
            ),
        ]
    if seed_comparisons:
        parts.append(render_seed_comparisons(seed_comparisons))
    parts.append(render_calibration(calibration))
    if study is not None:
        parts.append(render_study(study))
    confirmed = render_confirm(confirms or [])
    if sweeps:  # the retrained best trials belong with the pruning tables they qualify
        parts.append(render_sweeps(sweeps, after_pruning=confirmed))
    elif confirmed:
        parts.append(confirmed)
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", help="MLflow store with new runs (omit to render the record alone)")
    parser.add_argument("--experiment", default="fer2013", help="experiment holding the recipe runs")
    parser.add_argument("--ablation", default=None, help="experiment holding the augmentation ablation sweep")
    parser.add_argument("--record", type=Path, default=DOCS / "benchmark_runs.json")
    parser.add_argument("--out", type=Path, default=DOCS / "benchmarks.md")
    parser.add_argument(
        "--study-record", type=Path, default=STUDY_RECORD, help="a study's record (scripts/benchmark_study.py)"
    )
    parser.add_argument(
        "--sweeps-record", type=Path, default=SWEEPS_RECORD, help="the sweep benchmark's record (bench_sweeps.py)"
    )
    parser.add_argument(
        "--confirm-record",
        type=Path,
        default=CONFIRM_RECORD,
        help="the retrained best trials' record (confirm_best.py)",
    )
    parser.add_argument(
        "--migrate",
        action="store_true",
        help="once: bring records made before the record kept configs to today's format",
    )
    args = parser.parse_args(argv)

    records = {r["run_id"]: r for r in json.loads(args.record.read_text())} if args.record.exists() else {}
    for rec in records.values():  # recorded before runs logged env.precision (all float32 then)
        rec.setdefault("precision", "float32")  # and before shifted TTA views existed
        rec.setdefault("tta_views", tta_label() if rec.get("val_accuracy_tta") is not None else None)
    if args.migrate:
        print(f"migrated {migrate(list(records.values()))} records made before the record kept configs")
    added = 0
    if args.tracking_uri:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(args.tracking_uri)
        for section, experiment in (("main", args.experiment), ("ablation", args.ablation)):
            for run in finished_runs(client, experiment) if experiment else []:
                added += run.info.run_id not in records
                records[run.info.run_id] = record_of(run, section, experiment, client)
    if not records:
        print(f"no finished runs in experiment {args.experiment!r} and no record at {args.record}", file=sys.stderr)
        return 2
    for rec in records.values():
        rec["reproduce"] = reproduce_command(rec)
    ordered = sorted(records.values(), key=lambda r: (r["date"], r["run_id"]))
    args.record.parent.mkdir(parents=True, exist_ok=True)
    args.record.write_text(json.dumps(ordered, indent=1) + "\n")
    study = json.loads(args.study_record.read_text()) if args.study_record.exists() else None
    sweeps = json.loads(args.sweeps_record.read_text()) if args.sweeps_record.exists() else None
    confirms = json.loads(args.confirm_record.read_text()) if args.confirm_record.exists() else None
    seeds = json.loads(SEEDS_RECORD.read_text()) if SEEDS_RECORD.exists() else None
    calibration = DOCS / "bench_comparison.json"  # python -m benchmarks.comparison --out ...
    calibration = json.loads(calibration.read_text()) if calibration.exists() else None
    args.out.write_text(render(ordered, study, sweeps, confirms, seeds, calibration))
    print(f"written {args.out} ({len(ordered)} runs, {added} new) and {args.record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
