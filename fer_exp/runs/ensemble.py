"""Ensembles: average the class probabilities of several finished runs' best models.

The command is ``python -m fer_exp.ensemble`` (:mod:`fer_exp.cli.ensemble`). Each member is
evaluated on the validation split through its own run's config (so its own standardization),
the probabilities are averaged (with ``--tta`` over each image and its mirror too, with
``--tta-shift`` also over their shifted copies), and the result is logged as a new MLflow run
with the final metrics of a training run, with the same meaning: ``best_val_accuracy``,
``val_macro_f1``, ``val_f1.<class>`` and ``val_accuracy_leakfree`` of the plain averaged
probabilities, and with ``--tta`` also ``val_accuracy_tta`` and ``val_macro_f1_tta`` of the
view-averaged ones; every member's own accuracy (``member_accuracy.<i>``, with ``--tta`` also
``member_accuracy_tta.<i>``), and ``train_time_s`` / ``epochs_run`` added up over the members:
an ensemble of three 60-minute runs is a 180-minute recipe, and the benchmark table shows it as
one."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_exp.analysis.evaluate import evaluate, leak_free, predict
from fer_exp.analysis.plots import confusion_matrix_png
from fer_exp.augment.tta import tta_label
from fer_exp.config import RunConfig, validate
from fer_exp.data.sources import load_splits
from fer_exp.errors import UserError
from fer_exp.runs.folder import RunFolder, locate_run
from fer_exp.runs.steps import build_inputs
from fer_exp.tracking import Tracker, tracked_run
from fer_exp.tracking.store import open_client

log = logging.getLogger("fer_exp.ensemble")

# Data keys that change how images are read, not which images or labels: members may differ in them.
_DATA_KEYS_FREE = {"pipeline", "threads", "cache_dir"}


@dataclass(frozen=True)
class Member:
    """A finished run taking part in an ensemble: its folder, config, metrics and params."""

    run_id: str
    output_dir: Path
    cfg: RunConfig
    metrics: dict[str, float]
    params: dict[str, str]
    experiment_id: str

    @property
    def recipe(self) -> str:
        """The experiment config it was trained with, else its model."""
        return self.params.get("preset.experiment") or self.cfg.model.name


def find_members(client, tracking_uri: str, run_ids: list[str]) -> list[Member]:
    """The runs' output folders and configs; each must have finished with a best checkpoint."""
    members = []
    for run_id in run_ids:
        run = client.get_run(run_id)
        if run.info.status != "FINISHED":
            raise UserError(f"run {run_id} is {run.info.status}: only finished runs can be ensemble members")
        out = locate_run(run_id, tracking_uri)
        if not (out / "checkpoints" / "best.keras").exists():
            raise UserError(f"run {run_id} has no checkpoints/best.keras in {out}")
        cfg = validate(RunFolder(out).read_info()["config"])
        members.append(Member(run_id, out, cfg, dict(run.data.metrics), dict(run.data.params), run.info.experiment_id))
    _same_data(members)
    return members


def top_runs(client, experiment: str, recipe: str | None, top: int) -> list[str]:
    """The ``top`` finished training runs of an experiment by best_val_accuracy (ensembles left out)."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise UserError(f"no MLflow experiment {experiment!r}")
    query = "attributes.status = 'FINISHED' and metrics.best_val_accuracy > 0"
    if recipe:
        query += f" and params.`preset.experiment` = '{recipe}'"
    runs = [
        r
        for r in client.search_runs([exp.experiment_id], query, order_by=["metrics.best_val_accuracy DESC"])
        if r.data.tags.get("fer_exp.kind") != "ensemble" and r.data.tags.get("fer_exp.sweep_role") != "parent"
    ]
    if len(runs) < 2:
        raise UserError(
            f"experiment {experiment!r}{f' recipe {recipe!r}' if recipe else ''} has "
            f"{len(runs)} finished run(s): an ensemble needs at least 2"
        )
    return [r.info.run_id for r in runs[:top]]


def _same_data(members: list[Member]) -> None:
    def data(m: Member) -> dict:
        return {k: v for k, v in m.cfg.data.model_dump().items() if k not in _DATA_KEYS_FREE}

    first = data(members[0])
    for m in members[1:]:
        other = data(m)
        differ = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
        if differ:
            raise UserError(
                f"run {m.run_id} was trained on other data than {members[0].run_id} "
                f"(data.{', data.'.join(differ)} differ): ensemble members must share the data"
            )


def predict_members(members: list[Member], tta: bool, tta_shift: int = 0):
    """(y_true, per-member probabilities, per-member view-averaged probabilities (empty without
    ``tta``), splits) on the validation split."""
    from fer_exp.training.fit import load_checkpoint  # TensorFlow
    from fer_exp.training.setup import setup_tensorflow

    setup_tensorflow(members[0].cfg)
    splits = load_splits(members[0].cfg.data)
    y_true, probs, views = None, [], []
    for m in members:
        inputs = build_inputs(m.cfg, splits, 0, None)
        model = load_checkpoint(m.output_dir / "checkpoints" / "best.keras")
        labels, *p = predict(model, inputs.val, inputs.val_batches, tta=tta, tta_shift=tta_shift)
        if y_true is not None and not np.array_equal(labels, y_true):
            raise UserError(f"run {m.run_id} sees the validation images in another order or with other labels")
        y_true = labels
        probs.append(p[0])
        views += p[1:]  # the view-averaged probabilities with tta
        log.info(
            "member %s (%s): val accuracy %.4f%s",
            m.run_id,
            m.recipe,
            _accuracy(p[0], labels),
            f", {_accuracy(p[1], labels):.4f} with TTA" if tta else "",
        )
    return y_true, probs, views, splits


def _accuracy(probs: np.ndarray, y_true: np.ndarray) -> float:
    return float(np.mean(probs.argmax(1) == y_true))


def run_ensemble(
    tracking_uri: str,
    run_ids: list[str],
    tta: bool = False,
    experiment: str | None = None,
    out_dir: Path | None = None,
    tta_shift: int = 0,
) -> tuple[str, dict[str, float]]:
    """Evaluate the ensemble of ``run_ids`` and log it as a new MLflow run; returns (run id, metrics)."""
    if tta_shift and not tta:
        raise UserError("--tta-shift shifts the test-time views: add --tta")
    if len(set(run_ids)) < 2:
        raise UserError("an ensemble needs at least 2 different runs")
    client = open_client(tracking_uri)
    members = find_members(client, tracking_uri, list(dict.fromkeys(run_ids)))
    experiment = experiment or client.get_experiment(members[0].experiment_id).name
    out = Path(out_dir or Path("ensembles") / time.strftime("%Y-%m-%d/%H-%M-%S"))
    out.mkdir(parents=True, exist_ok=True)

    y_true, member_probs, member_views, splits = predict_members(members, tta, tta_shift)
    names = splits.class_names
    ev = evaluate(y_true, np.mean(member_probs, axis=0), names)  # without TTA, as a run's own metrics
    ev_tta = evaluate(y_true, np.mean(member_views, axis=0), names) if tta else None
    recipes = sorted({m.recipe for m in members})
    models = sorted({m.cfg.model.name for m in members})

    def total(key: str) -> float:  # the members' budgets add up
        return float(sum(m.metrics.get(key, 0.0) for m in members))

    metrics = {
        "best_val_accuracy": ev.accuracy,
        **ev.metrics("val_"),
        **leak_free(y_true, ev.y_pred, splits.val_in_train),
        "train_time_s": total("train_time_s"),
        "epochs_run": total("epochs_run"),
        **{f"member_accuracy.{i}": _accuracy(p, y_true) for i, p in enumerate(member_probs)},
    }
    if ev_tta is not None:  # named as a training run with tta=true names them
        metrics.update(
            {
                "val_accuracy_tta": ev_tta.accuracy,
                "val_macro_f1_tta": ev_tta.macro_f1,
                **{f"member_accuracy_tta.{i}": _accuracy(p, y_true) for i, p in enumerate(member_views)},
            }
        )
    params = {
        "ensemble.members": ",".join(m.run_id for m in members),
        "ensemble.size": len(members),
        "ensemble.tta": tta,
        "ensemble.tta_shift": tta_shift,
        "preset.experiment": f"ensemble of {len(members)} × {' + '.join(recipes)}",
        "preset.augmentation": " + ".join(sorted({m.params.get("preset.augmentation", "?") for m in members})),
        "model.name": f"{len(members)} × {' + '.join(models)}",
        "model.param_count": sum(int(float(m.params.get("model.param_count", 0))) for m in members),
        **{k: m.params[k] for m in members[:1] for k in ("env.cpu", "env.cores", "env.precision") if k in m.params},
    }
    tracker = Tracker.start(
        tracking_uri,
        experiment,
        f"ensemble of {len(members)}",
        {"fer_exp.kind": "ensemble", "output_dir": str(out.resolve())},
    )
    with tracked_run(tracker):
        tracker.log_params(params)
        tracker.log_metrics(metrics)
        (out / "classification_report.txt").write_text(ev.report_text)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        confusion_matrix_png(
            ev.confusion,
            names,
            out / "confusion_matrix.png",
            f"ensemble of {len(members)} — val accuracy {ev.accuracy:.3f}, macro-F1 {ev.macro_f1:.3f}",
        )
        tracker.log_artifact(out, "ensemble")

    def each(key: str) -> str:
        return ", ".join(f"{metrics[f'{key}.{i}']:.4f}" for i in range(len(members)))

    with_tta = (
        (
            f"; with {tta_label(tta_shift)} TTA: val accuracy {ev_tta.accuracy:.4f} (members "
            f"{each('member_accuracy_tta')}), macro-F1 {ev_tta.macro_f1:.4f}"
        )
        if ev_tta
        else ""
    )
    print(
        f"\nensemble of {len(members)} ({', '.join(recipes)}): without TTA: val accuracy "
        f"{ev.accuracy:.4f} (members {each('member_accuracy')}), macro-F1 {ev.macro_f1:.4f}{with_tta}\n"
        f"  MLflow run {tracker.run_id} in experiment '{experiment}'\n  outputs: {out}"
    )
    return tracker.run_id, metrics


def member_spec(m: Member):
    """A member's input spec: the one its run wrote (``checkpoints/input_spec.json``), else made
    again from its config and data (a run of fer_exp before 0.3)."""
    from fer_exp.inference import SPEC_FILE, InputSpec

    written = m.output_dir / "checkpoints" / SPEC_FILE
    if written.exists():
        return InputSpec.load(written)
    splits = load_splits(m.cfg.data)
    inputs = build_inputs(m.cfg, splits, 0, None)
    return InputSpec.from_run(m.cfg, splits.class_names, inputs.mean, inputs.std)


def log_ensemble_model(
    tracking_uri: str, run_ids: list[str], experiment: str | None = None, out_dir: Path | None = None
) -> str:
    """One MLflow Model averaging the members' probabilities (each member preparing the images
    its own way), logged as ``model`` of a new run (``fer_exp.kind=ensemble_model``); returns its run id."""
    from fer_exp.serving.logged import log_model_folder
    from fer_exp.serving.model_dir import save_model_dir

    if len(set(run_ids)) < 2:
        raise UserError("an ensemble needs at least 2 different runs")
    client = open_client(tracking_uri)
    members = find_members(client, tracking_uri, list(dict.fromkeys(run_ids)))
    specs = [member_spec(m) for m in members]
    if len({s.class_names for s in specs}) > 1:
        raise UserError("the members predict different classes: an ensemble averages the same classes")
    experiment = experiment or client.get_experiment(members[0].experiment_id).name
    out = Path(out_dir or Path("ensembles") / time.strftime("%Y-%m-%d/%H-%M-%S"))
    out.mkdir(parents=True, exist_ok=True)
    tracker = Tracker.start(
        tracking_uri,
        experiment,
        f"ensemble model of {len(members)}",
        {"fer_exp.kind": "ensemble_model", "output_dir": str(out.resolve())},
    )
    with tracked_run(tracker):
        tracker.log_params({"ensemble.members": ",".join(m.run_id for m in members), "ensemble.size": len(members)})
        keras_files = [m.output_dir / "checkpoints" / "best.keras" for m in members]
        model_dir = save_model_dir(out / "model", list(zip(keras_files, specs)), tracker.run_id)
        log_model_folder(tracker, model_dir, f"ensemble_of_{len(members)}")
    return tracker.run_id
