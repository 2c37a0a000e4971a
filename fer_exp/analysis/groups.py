"""Runs grouped by setting over seeds: which settings differ from a baseline, and how sure that is.

A sweep such as ``augmentation=none,light,seed,heavy seed=1,2,3`` has twelve runs and four
settings. :func:`grouped_comparison` groups finished runs by every differing param but the seed
(or by one param, ``by``), reads each run's validation predictions (``predictions/validation.npz``,
:mod:`fer_exp.analysis.predictions`) and hands them to :mod:`fer_exp.analysis.stats`: each
setting's mean with its interval, and each setting's difference to the baseline with its
interval, probability of improvement and verdict. :mod:`fer_exp.analysis.group_report` writes
the tables, says in words what differs, and puts it on the MLflow parent run.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_exp.analysis import stats
from fer_exp.analysis.predictions import PREDICTIONS_FILE, load_predictions
from fer_exp.errors import UserError

log = logging.getLogger(__name__)

SEED_KEYS = ("seed",)
PRUNED_TAG = "fer_exp.trial_state"  # PRUNED: stopped early by the study's pruner (fer_exp.sweeps.pruning)
# Params that describe the environment, bookkeeping or what a setting implies, not a setting.
NOT_SETTINGS = (
    "env.",
    "data.resolved_root",
    "run_name",
    "resume",
    "tracking_uri",
    "data.cache_dir",
    "data.found.",
    "data.dropped.",
    "data.keras_reader",
    "class_weights.",
    "model.param_count",
    "compare.",
)
# Metrics the predictions can recompute on every bootstrap draw of the images.
RECOMPUTED = {"best_val_accuracy": ("accuracy", False), "val_macro_f1": ("macro_f1", False)}
RECOMPUTED_TTA = {"val_accuracy_tta": ("accuracy", True), "val_macro_f1_tta": ("macro_f1", True)}


@dataclass
class Grouped:
    """A grouped comparison: its tables, the baseline, and what qualifies them.

    Attributes:
        metric: the compared metric (the sweep's optimized metric by default).
        baseline: the baseline setting's label.
        groups: one row per setting (``groups.csv``).
        differences: one row per setting but the baseline (``differences.csv``).
        settings: each setting's label -> the run ids in it.
        notes: sentences a reader must see with the numbers (unpaired runs, no predictions).
    """

    metric: str
    baseline: str
    groups: list[dict[str, Any]]
    differences: list[dict[str, Any]]
    settings: dict[str, list[str]]
    notes: list[str] = field(default_factory=list)

    def groups_for_plot(self) -> list[dict[str, Any]]:
        """The group rows keyed as :mod:`fer_exp.analysis.comparison_plots` reads them (``group``)."""
        return [{"group": row["setting"], **row} for row in self.groups]

    def differences_for_plot(self) -> list[dict[str, Any]]:
        """The difference rows keyed as the pictures read them (``group``)."""
        return [{"group": row["setting"], **row} for row in self.differences]


def setting_of(runs, by: str | None = None) -> dict[str, str]:
    """Each run's setting label (run id -> label): its differing params but the seed, a preset
    standing for the keys it sets (``augmentation=heavy``, not every ``augmentation.*``), or
    with ``by`` the one param ``by`` (``augmentation`` finds ``preset.augmentation``). A param
    that some runs lack and the others agree on (a key added by a newer fer_exp) differs in nothing."""
    if by is not None:
        key = _param_key(runs, by)
        return {r.info.run_id: f"{by}={r.data.params.get(key, '(unset)')}" for r in runs}
    keys = sorted({k for r in runs for k in r.data.params if not k.startswith(NOT_SETTINGS)})
    # a key only some runs logged, with one value among them, is newer than the other runs' fer_exp
    # (they ran with its default): it splits no group
    differ = [k for k in keys if k not in SEED_KEYS and len({r.data.params.get(k) for r in runs} - {None}) > 1]
    presets = {k.removeprefix("preset.") for k in differ if k.startswith("preset.")}
    shown = [k for k in differ if k.startswith("preset.") or k.split(".")[0] not in presets]
    return {
        r.info.run_id: stats.group_label({k.removeprefix("preset."): r.data.params.get(k, "(unset)") for k in shown})
        for r in runs
    }


def _job_order(run) -> tuple[int, int]:
    """Sweep jobs by number (job 0 holds the swept keys' first values), other runs oldest first."""
    job = run.data.tags.get("hydra.job_num", "")
    return (int(job) if job.isdigit() else 1 << 30, run.info.start_time or 0)


def _param_key(runs, by: str) -> str:
    params = {k for r in runs for k in r.data.params}
    for key in (by, f"preset.{by}"):
        if key in params:
            return key
    near = sorted(k for k in params if by in k)[:8]
    raise UserError(
        f"--by {by}: no run has a param {by!r}"
        + (f"; params like it: {', '.join(near)}" if near else "; pass a param key the runs logged")
    )


def pick_baseline(runs, settings: dict[str, str], baseline: str | None) -> str:
    """The baseline's label: the setting of ``baseline`` (a label, or a value such as ``none``
    that exactly one setting holds), else the first job's setting (the swept keys' first
    values), else the oldest run's."""
    labels = list(dict.fromkeys(settings.values()))
    if baseline is None or len(labels) == 1:  # one setting: it is its own baseline, nothing to compare
        return settings[min(runs, key=_job_order).info.run_id]
    matches = [g for g in labels if g == baseline] or [
        g for g in labels if baseline in g.split() or baseline in {t.split("=", 1)[-1] for t in g.split()}
    ]
    if len(matches) == 1:
        return matches[0]
    what = "matches several settings" if matches else "is none of the settings"
    raise UserError(f"baseline {baseline!r} {what}: {'; '.join(matches or labels)}. Name one of them")


def grouped_comparison(
    client,
    runs,
    metric: str,
    baseline: str | None = None,
    by: str | None = None,
    resamples: int = stats.RESAMPLES,
    labels: dict[str, str] | None = None,
) -> Grouped:
    """Group the finished ``runs`` by setting and compare each setting with the baseline.

    Args:
        client: an ``MlflowClient``: the runs' predictions are read from their artifacts.
        runs: MLflow runs; those not FINISHED are left out.
        metric: what is compared; recomputed from the predictions on every bootstrap draw when
            it is accuracy, macro-F1 (``val_macro_f1``), a class's F1 (``val_f1.<class>``) or
            their TTA twins, else the logged value (seed noise only).
        baseline: the baseline setting (:func:`pick_baseline`); None: the first job's.
        by: group by this one param instead of every differing one.
        resamples: bootstrap draws.
        labels: run id -> setting label, instead of grouping by params (confirmation runs by trial).
    """
    # a pruned trial's run ends FINISHED but trained less than the budget: not a fair member
    pruned = [r for r in runs if r.data.tags.get(PRUNED_TAG) == "PRUNED"]
    finished = sorted((r for r in runs if r.info.status == "FINISHED" and r not in pruned), key=_job_order)
    if not finished:
        raise UserError("no finished runs to compare")
    settings = {r.info.run_id: labels[r.info.run_id] for r in finished} if labels else setting_of(finished, by)
    base = pick_baseline(finished, settings, baseline)
    predictions, notes = _predictions(client, finished)
    class_names = next((p.class_names for p in predictions.values() if p is not None), None)
    _require_metric(finished, metric)
    rare = rarest_class(finished)
    columns = {"best_val_accuracy": "best_val_accuracy", "val_macro_f1": "val_macro_f1"}
    if rare:
        columns[f"f1_{rare}"] = f"val_f1.{rare}"
    tables = {}
    for key in dict.fromkeys([metric, *columns.values()]):
        scored = [_scores(r, settings, key, predictions.get(r.info.run_id), class_names) for r in finished]
        tables[key] = stats.compare_settings(
            scored, base, _metric_kind(key, class_names), len(class_names or ()) or 2, resamples
        )
    main = tables[metric]
    groups = []
    for i, row in enumerate(main.groups):
        members = [r for r in finished if settings[r.info.run_id] == row["group"]]
        out = {"setting": row["group"], **_setting_params(row["group"]), "n": row["n"]}
        out["seeds"] = " ".join(sorted({r.data.params.get("seed", "?") for r in members}, key=_natural))
        out.update({k: row[k] for k in ("mean", "std", "ci_low", "ci_high", "noise")})
        for name, key in columns.items():
            extra = tables[key].groups[i]
            out.update({name: extra["mean"], f"{name}_ci_low": extra["ci_low"], f"{name}_ci_high": extra["ci_high"]})
        out["run_ids"] = " ".join(r.info.run_id for r in members)
        groups.append(out)
    differences = [
        {"setting": row["group"], **{k: v for k, v in row.items() if k != "group"}} for row in main.differences
    ]
    notes += _noise_notes(differences)
    if pruned:
        notes.append(f"{len(pruned)} pruned trial(s) left out: they trained less than the others")
    settings_runs = {g: [rid for rid, s in settings.items() if s == g] for g in dict.fromkeys(settings.values())}
    return Grouped(metric, base, groups, differences, settings_runs, notes)


def _predictions(client, runs) -> tuple[dict, list[str]]:
    """Each run's predictions (None without the artifact), and the notes on pairing."""
    out, notes = {}, []
    with tempfile.TemporaryDirectory(prefix="fer_exp-compare-") as tmp:
        for r in runs:
            out[r.info.run_id] = None
            try:
                local = client.download_artifacts(r.info.run_id, f"predictions/{PREDICTIONS_FILE}", tmp)
            except Exception:  # an older run: no predictions artifact
                continue
            try:
                out[r.info.run_id] = load_predictions(Path(local))
            except UserError as exc:  # one damaged file: that run is compared without it, the rest as usual
                notes.append(f"run {_names([r])}: {exc}; it is compared by its logged value")
            Path(local).unlink()
    missing = [r for r in runs if out[r.info.run_id] is None]
    if missing:
        notes.append(
            f"{len(missing)} run(s) kept no validation predictions (runs of fer_exp before they were kept): "
            f"{_names(missing)}; their image noise is not counted and they are not paired"
        )
    prints: dict[str, list] = {}
    for r in runs:
        if out[r.info.run_id] is not None:  # an unknown fingerprint ("") pairs with nothing
            prints.setdefault(out[r.info.run_id].fingerprint or f"unknown {r.info.run_id}", []).append(r)
    if len(prints) > 1:
        sets = sorted(prints.values(), key=len, reverse=True)
        notes.append(
            "not paired: the runs were evaluated on different validation images (other data, data.dedupe or "
            "limit_val_batches): "
            + "; ".join(f"{_names(rs)} on set {fp[:8]}" for fp, rs in sorted(prints.items(), key=lambda i: -len(i[1])))
            + f". Each set is resampled on its own, so differences between sets ({len(sets)}) have wider intervals"
        )
    return out, notes


def _names(runs) -> str:
    shown = [r.info.run_name or r.info.run_id[:8] for r in runs[:4]]
    return ", ".join(shown) + (f" and {len(runs) - 4} more" if len(runs) > 4 else "")


def _metric_kind(key: str, class_names) -> str:
    if key in RECOMPUTED or key in RECOMPUTED_TTA:
        return {**RECOMPUTED, **RECOMPUTED_TTA}[key][0]
    if key.startswith("val_f1.") and class_names and key.removeprefix("val_f1.") in class_names:
        return f"f1:{class_names.index(key.removeprefix('val_f1.'))}"
    return "accuracy"  # unused: such a metric comes from the logged values


def _scores(run, settings, key: str, pred, class_names) -> stats.RunScores:
    """The run as the statistics see it: its predictions when ``key`` can be recomputed from them."""
    value = run.data.metrics.get(key)
    recomputable = key in RECOMPUTED or key in RECOMPUTED_TTA or key.startswith("val_f1.")
    tta = key in RECOMPUTED_TTA
    if pred is None or not recomputable or (tta and pred.tta is None) or pred.class_names != class_names:
        return stats.RunScores(run.info.run_id, settings[run.info.run_id], value)
    y_pred = pred.tta.argmax(axis=1) if tta else pred.y_pred
    return stats.RunScores(run.info.run_id, settings[run.info.run_id], value, pred.labels, y_pred, pred.fingerprint)


def _require_metric(runs, metric: str) -> None:
    lacking = [r for r in runs if metric not in r.data.metrics]
    if lacking:
        known = sorted({k for r in runs for k in r.data.metrics if "." not in k})
        raise UserError(
            f"metric {metric!r} is missing from {len(lacking)} of {len(runs)} finished runs ({_names(lacking)}); "
            f"the runs have: {', '.join(known)}"
        )


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


def _setting_params(label: str) -> dict[str, str]:
    return dict(t.split("=", 1) for t in label.split() if "=" in t)


def _natural(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _noise_notes(differences: list[dict]) -> list[str]:
    notes = []
    if any(d["noise"] == stats.IMAGES_ONLY for d in differences):
        notes.append(
            "one run per setting: the intervals and verdicts count only the noise of the validation images, "
            "not of training (another seed moves a run by about as much); run each setting under 3 or more seeds "
            "(seed=1,2,3) before trusting a verdict"
        )
    return notes
