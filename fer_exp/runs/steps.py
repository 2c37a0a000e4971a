"""The steps of a run's recipe (:mod:`fer_exp.runs.recipe`), one function each, all reading
the frozen :class:`~fer_exp.runs.context.RunContext`.

This module is longer than 300 lines: it holds every step, in the order the recipe runs them,
so that a step is found in one place.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import time
from pathlib import Path

from fer_exp import __version__, faults
from fer_exp.analysis.evaluate import Evaluation, evaluate, leak_free, predict
from fer_exp.analysis.plots import confusion_matrix_png, image_grid_png, learning_curves_png
from fer_exp.analysis.predictions import PREDICTIONS_FILE, dataset_input, evaluated_fingerprint, save_predictions
from fer_exp.analysis.stats import run_intervals
from fer_exp.config import RunConfig
from fer_exp.data.audit import audit, audit_metrics
from fer_exp.data.class_weights import balanced_class_weights, by_name
from fer_exp.data.inputs import InputData
from fer_exp.data.sources import Splits, load_splits
from fer_exp.errors import ConfigError
from fer_exp.runs.context import JobInfo, RunContext, RunResult
from fer_exp.runs.folder import FINAL_METRICS, Stage
from fer_exp.tracking import Tracker, flatten
from fer_exp.tracking.redact import redact_text, redact_tree, to_yaml
from fer_exp.tracking.store import runs_table_url
from fer_exp.training.hardware import cpu_name
from fer_exp.training.monitors import epoch_of_best

log = logging.getLogger("fer_exp")


def load_data(cfg: RunConfig) -> Splits:
    """The splits, checked against the config (before any MLflow run exists)."""
    splits = load_splits(cfg.data)
    faults.point("data_load")
    log.info(
        "data: %s train / %s validation%s images in %d classes from %s",
        len(splits.train),
        len(splits.val),
        f" / {len(splits.test)} test" if splits.test is not None else "",
        len(splits.class_names),
        splits.root,
    )
    if cfg.data.class_mode == "binary" and len(splits.class_names) != 2:
        raise ConfigError(
            f"data.class_mode=binary needs exactly 2 classes, found {len(splits.class_names)}: "
            f"{list(splits.class_names)}; use categorical"
        )
    if cfg.batch_size > len(splits.train):
        raise ConfigError(
            f"batch_size={cfg.batch_size} is larger than the train split "
            f"({len(splits.train)} images): pass a smaller batch_size"
        )
    return splits


def run_tags(job: JobInfo, out: Path) -> dict[str, str]:
    """The MLflow tags of a new run: its overrides, folder, host, sweep membership, commit."""
    tags = {
        "overrides": " ".join(job.redacted_overrides()) or "(defaults)",
        "output_dir": str(out.resolve()),
        "mlflow.source.name": "fer_exp",
        "fer_exp.host": platform.node(),
        "fer_exp.pid": str(os.getpid()),
        **job.extra_tags,
    }
    if job.job_num is not None:
        tags["hydra.job_num"] = str(job.job_num)
    if job.sweep_dir:
        tags["hydra.sweep_dir"] = job.sweep_dir
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def git_commit() -> str | None:
    """The commit of the fer_exp checkout in use, if it is a git work tree."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def log_config(ctx: RunContext) -> None:
    """The resolved config as params (secrets masked), the presets chosen, and the config,
    overrides and Hydra runtime as artifacts."""
    tree = redact_tree(ctx.cfg.to_tree(), ctx.job.secret_keys)
    ctx.tracker.log_params(flatten(tree))
    ctx.tracker.log_params({f"preset.{group}": option for group, option in ctx.job.choices.items()})
    ctx.tracker.log_text(to_yaml(tree), "config/config.yaml")
    ctx.tracker.log_text("\n".join(ctx.job.redacted_overrides()) + "\n", "config/overrides.txt")
    if ctx.job.hydra_yaml:
        ctx.tracker.log_text(ctx.job.hydra_yaml, "config/hydra.yaml")


def log_audit(ctx: RunContext) -> None:
    """The data audit's numbers (``python -m fer_exp.audit`` prints them) as metrics and a report."""
    splits = ctx.splits
    report = audit(splits, ctx.cfg.class_weight, ctx.cfg.data.dedupe)
    ctx.tracker.log_metrics(audit_metrics(report))
    ctx.tracker.log_params({f"data.dropped.{k}": v for k, v in splits.dropped.items()})
    ctx.tracker.log_text(json.dumps(report, indent=1), "audit/audit.json")
    d = splits.duplicates
    log.info(
        "audit: train %d files / %d distinct; train and validation share %d distinct images%s",
        d["train.files"],
        d["train.distinct"],
        d["train_val.shared_distinct"],
        f"; dropped {splits.dropped}" if splits.dropped else "",
    )


def log_datasets(ctx: RunContext) -> None:
    """The train and validation splits as MLflow dataset inputs (the UI's Datasets column), named
    ``<data>/train`` and ``<data>/validation``: runs whose digests are equal saw the same
    images with the same labels, so their scores compare."""
    root, source = ctx.splits.root, ctx.cfg.data.source
    label = source if source == "synthetic" or root is None else (root.stem if root.is_file() else root.name)
    where = str(root.resolve()) if root is not None else source
    splits = (("train", ctx.splits.train), ("validation", ctx.splits.val))
    ctx.tracker.log_inputs([dataset_input(table, f"{label}/{name}", where, name) for name, table in splits])


def class_weights(ctx: RunContext) -> dict[int, float] | None:
    """Balanced class weights from the train labels (``class_weight=balanced``), else None."""
    if ctx.cfg.class_weight != "balanced":
        return None
    names = ctx.splits.class_names
    weights = balanced_class_weights(ctx.splits.train.labels, len(names))
    log.info("class weights (balanced): %s", ", ".join(f"{n} {w:.4f}" for n, w in by_name(weights, names).items()))
    return weights


def build_inputs(cfg: RunConfig, splits: Splits, initial_epoch: int, weights) -> InputData:
    """Batches for fit and evaluation from the pipeline ``data.pipeline`` names."""
    if cfg.data.pipeline == "keras":
        from fer_exp.data import keras_pipeline as pipeline
    else:
        from fer_exp.data import tf_pipeline as pipeline
    return pipeline.build(cfg, splits, initial_epoch, weights)


def write_input_spec(ctx: RunContext, inputs: InputData) -> None:
    """``checkpoints/input_spec.json``: what the model's input is (size, colour mode,
    standardization with the training set's statistics), for the logged model and
    :func:`fer_exp.inference.loading.load_predictor` (a resumed run writes it again: same content)."""
    from fer_exp.inference import InputSpec

    InputSpec.from_run(ctx.cfg, inputs.class_names, inputs.mean, inputs.std).save(ctx.folder.checkpoints)


def new_model(ctx: RunContext, inputs: InputData, weights):
    """The configured architecture, untrained; its parameters and summary are logged."""
    model = ctx.cfg.model.build(inputs.input_shape, len(inputs.class_names), ctx.cfg.data.class_mode)
    log_derived_params(ctx.tracker, ctx.splits, weights, model.count_params())
    write_model_summary(model, ctx.folder.reports / "model_summary.txt")
    return model


def preview(ctx: RunContext, inputs: InputData) -> None:
    """``augmented_samples.png``: the first training images exactly as fit sees them."""
    if ctx.cfg.preview_images:
        images, labels = inputs.preview(ctx.cfg.preview_images)
        image_grid_png(
            images,
            labels,
            inputs.class_names,
            ctx.folder.plots / "augmented_samples.png",
            "first training images, augmented exactly as fit sees them",
        )


def final_metrics(
    ctx: RunContext, model, inputs: InputData, history: dict, train_time: float
) -> tuple[Evaluation, dict[str, float]]:
    """Evaluate the best weights on validation (and test): the run's final metrics, reports and plots."""
    faults.point("final_evaluation")
    cfg, folder = ctx.cfg, ctx.folder
    n_batches = inputs.val_steps(cfg.limit_val_batches)
    n_classes, extra = len(inputs.class_names), {}
    y_tta = t_true = t_prob = None
    if cfg.tta:
        y_true, y_prob, y_tta = predict(model, inputs.val, n_batches, tta=True, tta_shift=cfg.tta_shift)
        tta = evaluate(y_true, y_tta, inputs.class_names)
        extra.update({"val_accuracy_tta": tta.accuracy, "val_macro_f1_tta": tta.macro_f1})
        tta_names = {"best_val_accuracy": "val_accuracy_tta", "val_macro_f1": "val_macro_f1_tta"}
        for key, value in run_intervals(y_true, tta.y_pred, n_classes).items():  # ..._ci_low, ..._ci_high
            name, bound = key.rsplit("_ci_", 1)
            extra[f"{tta_names[name]}_ci_{bound}"] = value
    else:
        y_true, y_prob = predict(model, inputs.val, n_batches)
    ev = evaluate(y_true, y_prob, inputs.class_names)
    extra.update(run_intervals(y_true, ev.y_pred, n_classes))  # 95 % over resampled validation images
    extra.update(leak_free(y_true, ev.y_pred, ctx.splits.val_in_train))
    if inputs.test is not None:
        t_true, t_prob = predict(model, inputs.test, inputs.test_steps(cfg.limit_val_batches))
        test_ev = evaluate(t_true, t_prob, inputs.class_names)
        extra.update({"test_accuracy": test_ev.accuracy, **test_ev.metrics("test_")})
        (folder.reports / "test_classification_report.txt").write_text(test_ev.report_text)
        confusion_matrix_png(
            test_ev.confusion,
            inputs.class_names,
            folder.plots / "test_confusion_matrix.png",
            f"{cfg.model.name} — test accuracy {test_ev.accuracy:.3f}",
        )
    best_epoch = epoch_of_best(history, cfg.callbacks.checkpoint_monitor)
    final = {
        **ev.metrics("val_"),
        "best_val_accuracy": ev.accuracy,
        "best_epoch": best_epoch,
        "epochs_run": len(history.get("loss", [])),
        "train_time_s": train_time,
        **extra,
    }
    # which images the predictions are of, in their order: flow_from_directory lists its own files
    fp = evaluated_fingerprint(ctx.splits.val, y_true, getattr(inputs.val, "filepaths", None))
    save_predictions(
        folder.predictions / PREDICTIONS_FILE, y_true, y_prob, inputs.class_names, fp, y_tta, t_true, t_prob
    )
    (folder.reports / "classification_report.txt").write_text(ev.report_text)
    (folder.reports / FINAL_METRICS).write_text(json.dumps(final, indent=2))
    title = f"{cfg.model.name} — val accuracy {ev.accuracy:.3f}, macro-F1 {ev.macro_f1:.3f}"
    confusion_matrix_png(ev.confusion, inputs.class_names, folder.plots / "confusion_matrix.png", title)
    learning_curves_png(history, folder.plots / "learning_curves.png", f"{cfg.model.name} learning curves")
    log.info("classification report (best weights, validation):\n%s", ev.report_text)
    return ev, final


def log_final_metrics(ctx: RunContext, final: dict[str, float]) -> None:
    """The final metrics, to MLflow (once: an evaluation repeated after an interrupt adds none),
    and the run folder records the run as evaluated."""
    ctx.tracker.log_metrics_once({0: final})
    ctx.folder.record_stage(Stage.EVALUATED)


def upload_results(ctx: RunContext) -> None:
    """The plots, the reports, the validation predictions and the best model (as an MLflow
    Model, :mod:`fer_exp.serving`), to MLflow: each one the run folder does not record as
    uploaded yet (a resumed run sends only what its interrupted upload missed)."""
    from fer_exp.serving.logged import log_best_model

    done = ctx.folder.uploaded()
    for name, path in ctx.folder.results().items():
        if name not in done:
            if name == "model":
                log_best_model(ctx.tracker, ctx.folder.checkpoints, ctx.folder.root / "model")
            else:
                ctx.tracker.log_artifact(path, name)
            ctx.folder.record_upload(name)
            faults.point("artifact_upload")


def log_derived_params(tracker: Tracker, splits: Splits, weights, param_count: int) -> None:
    """What the config implies but does not say: images found, class weights, model size,
    library versions, processor and the precision ``mixed_precision=auto`` chose."""
    import keras
    import tensorflow as tf

    names = splits.class_names
    derived = {
        "data.found.train": len(splits.train),
        "data.found.val": len(splits.val),
        "data.found.test": len(splits.test) if splits.test is not None else 0,
        "data.found.classes": ",".join(names),
        "data.resolved_root": str(splits.root),
        "data.keras_reader": "flow_from_directory" if splits.directory_layout else "dataframe/arrays",
        "model.param_count": param_count,
        "env.tensorflow": tf.__version__,
        "env.keras": keras.__version__,
        "env.python": platform.python_version(),
        "env.fer_exp": __version__,
        "env.cpu": cpu_name(),
        "env.cores": os.cpu_count() or 0,
        "env.precision": keras.mixed_precision.global_policy().name,
    }
    derived.update({f"data.found.train.{n}": c for n, c in splits.train.counts().items()})
    if weights:
        derived.update({f"class_weights.{n}": f"{w:.6f}" for n, w in by_name(weights, names).items()})
    tracker.log_params(derived)


def write_model_summary(model, path: Path) -> None:
    """Keras's ``model.summary()`` as a text file."""
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    path.write_text("\n".join(lines) + "\n")


def upload_log(ctx: RunContext) -> None:
    """The job's log file, under ``logs/`` (a resumed run's under ``logs/resume-<time>``); a
    failure here is reported, never raised: the run's status matters more."""
    if not ctx.job.log_file:
        return
    name = "logs" if ctx.start.fresh else f"logs/resume-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        ctx.tracker.log_artifact(ctx.job.log_file, name)
    except Exception:
        log.exception("could not log %s to MLflow", ctx.job.log_file)


def print_summary(ctx: RunContext, r: RunResult) -> None:
    """The closing lines of a run: its metrics, MLflow run, outputs, and how to compare."""
    uri = redact_text(ctx.tracker.uri)
    serve = "" if uri.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri {uri}, then "
    table = ""
    if ctx.tracker.experiment_id is not None:  # the link opens the runs table, not MLflow 3's GenAI pages
        table = redact_text(runs_table_url(ctx.tracker.uri, ctx.tracker.experiment_id))
    print(
        f"\nfer_exp run finished: best val accuracy {r.best_val_accuracy:.4f} (epoch {r.best_epoch} "
        f"of {r.epochs_run}), val macro-F1 {r.val_macro_f1:.4f}\n"
        f"  MLflow run {r.run_id} in experiment '{ctx.cfg.experiment_name}' ({uri})\n"
        f"  outputs: {r.output_dir}\n"
        f"  compare runs: {serve}open {table or 'the UI at its Model training tab'}\n",
        flush=True,
    )
