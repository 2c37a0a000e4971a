"""The recipe of one run: data -> class weights -> model -> fit -> evaluate -> MLflow.

Each step is one call and one log line. Layout problems surface before the MLflow run is
created; once it exists, every exit path ends it FINISHED, FAILED or KILLED.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from fer_exp import __version__
from fer_exp.class_weights import balanced_class_weights, by_name
from fer_exp.config import RunConfig
from fer_exp.data.sources import Splits, load_splits
from fer_exp.errors import ConfigError
from fer_exp.tracking import Tracker, flatten, git_commit, tracked_run

log = logging.getLogger("fer_exp")


@dataclass(frozen=True)
class JobInfo:
    """Where this job writes and how Hydra launched it."""

    output_dir: Path
    overrides: tuple[str, ...] = ()
    job_num: int | None = None
    sweep_dir: str | None = None
    hydra_dir: Path | None = None  # Hydra's .hydra/ folder (config.yaml, overrides.yaml)
    log_file: Path | None = None
    extra_tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    best_val_accuracy: float
    val_macro_f1: float
    best_epoch: int
    epochs_run: int
    output_dir: Path


def run(cfg: RunConfig, job: JobInfo) -> RunResult:
    splits = load_splits(cfg.data)
    log.info("data: %s train / %s validation images in %d classes from %s",
             len(splits.train), len(splits.val), len(splits.class_names), splits.root)
    if cfg.batch_size > len(splits.train):
        raise ConfigError(f"batch_size={cfg.batch_size} is larger than the train split "
                          f"({len(splits.train)} images): pass a smaller batch_size")

    tracker = Tracker.start(cfg.tracking_uri, cfg.experiment_name, cfg.run_name, _tags(job))
    log.info("MLflow run %s in experiment %r at %s", tracker.run_id, cfg.experiment_name, cfg.tracking_uri)
    try:
        with tracked_run(tracker):
            return _train_and_log(cfg, job, splits, tracker)
    finally:
        if job.log_file:
            _quietly(tracker.log_artifact, job.log_file)


def _train_and_log(cfg: RunConfig, job: JobInfo, splits: Splits, tracker: Tracker) -> RunResult:
    out = job.output_dir
    for sub in ("plots", "reports", "checkpoints"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    config_tree = cfg.to_tree()
    tracker.log_params(flatten(config_tree))
    tracker.log_text(OmegaConf.to_yaml(config_tree), "config/config.yaml")
    tracker.log_text("\n".join(job.overrides) + "\n", "config/overrides.txt")
    if job.hydra_dir:
        tracker.log_artifact(job.hydra_dir, "config/hydra")

    from fer_exp import train  # imports TensorFlow (~8 s)

    train.setup_tensorflow(cfg)
    inputs = _build_inputs(cfg, splits)
    names = inputs.class_names

    weights = None
    if cfg.class_weight == "balanced":
        weights = balanced_class_weights(inputs.train_labels, len(names))
        log.info("class weights (balanced): %s",
                 ", ".join(f"{n} {w:.4f}" for n, w in by_name(weights, names).items()))
    model = cfg.model.build(inputs.input_shape, len(names))
    param_count = model.count_params()
    log.info("model %s: %s parameters", cfg.model.name, f"{param_count:,}")
    _log_derived_params(tracker, splits, weights, param_count)
    _write_model_summary(model, out / "reports" / "model_summary.txt")

    if cfg.preview_images:
        from fer_exp.plots import image_grid_png

        images, labels = inputs.preview(cfg.preview_images)
        image_grid_png(images, labels, names, out / "plots" / "augmented_samples.png",
                       "first training images, augmented exactly as fit sees them")

    start = time.perf_counter()
    history = train.fit(model, inputs, cfg, weights, out / "checkpoints", tracker)
    train_time = time.perf_counter() - start

    best = out / "checkpoints" / "best.keras"
    if best.exists():
        model.load_weights(best)
    result = _evaluate_and_log(model, inputs, cfg, tracker, out, history, train_time)
    tracker.log_artifact(best, "model")
    _print_summary(cfg, tracker, result)
    return result


def _build_inputs(cfg: RunConfig, splits: Splits):
    if cfg.data.pipeline == "keras":
        from fer_exp.data import keras_pipeline

        return keras_pipeline.build(cfg, splits)
    from fer_exp.data import tf_pipeline

    return tf_pipeline.build(cfg, splits)


def _evaluate_and_log(model, inputs, cfg: RunConfig, tracker: Tracker, out: Path,
                      history: dict, train_time: float) -> RunResult:
    from fer_exp.evaluate import evaluate, predict
    from fer_exp.plots import confusion_matrix_png, learning_curves_png

    n_batches = min(inputs.val_batches, cfg.limit_val_batches or inputs.val_batches)
    y_true, y_prob = predict(model, inputs.val, n_batches)
    ev = evaluate(y_true, y_prob, inputs.class_names)
    val_acc = history.get("val_accuracy", [])
    best_epoch = int(max(range(len(val_acc)), key=val_acc.__getitem__)) + 1 if val_acc else 0
    final = {
        **ev.metrics("val_"),
        "best_val_accuracy": ev.accuracy,
        "best_epoch": best_epoch,
        "epochs_run": len(history.get("loss", [])),
        "train_time_s": train_time,
    }
    tracker.log_metrics(final)

    (out / "reports" / "classification_report.txt").write_text(ev.report_text)
    (out / "reports" / "metrics.json").write_text(json.dumps(final, indent=2))
    title = f"{cfg.model.name} — val accuracy {ev.accuracy:.3f}, macro-F1 {ev.macro_f1:.3f}"
    confusion_matrix_png(ev.confusion, inputs.class_names, out / "plots" / "confusion_matrix.png", title)
    learning_curves_png(history, out / "plots" / "learning_curves.png", f"{cfg.model.name} learning curves")
    tracker.log_artifact(out / "plots", "plots")
    tracker.log_artifact(out / "reports", "reports")
    log.info("classification report (best weights, validation):\n%s", ev.report_text)
    return RunResult(tracker.run_id, ev.accuracy, ev.macro_f1, best_epoch, final["epochs_run"], out)


def _log_derived_params(tracker: Tracker, splits: Splits, weights, param_count: int) -> None:
    import keras
    import tensorflow as tf

    names = splits.class_names
    derived = {
        "data.n_train": len(splits.train),
        "data.n_val": len(splits.val),
        "data.classes": ",".join(names),
        "data.resolved_root": str(splits.root),
        "model.param_count": param_count,
        "env.tensorflow": tf.__version__,
        "env.keras": keras.__version__,
        "env.python": platform.python_version(),
        "env.fer_exp": __version__,
    }
    derived.update({f"data.n_train.{n}": c for n, c in splits.train.counts().items()})
    if weights:
        derived.update({f"class_weights.{n}": f"{w:.6f}" for n, w in by_name(weights, names).items()})
    tracker.log_params(derived)


def _tags(job: JobInfo) -> dict[str, str]:
    tags = {
        "overrides": " ".join(job.overrides) or "(defaults)",
        "output_dir": str(job.output_dir),
        "mlflow.source.name": "fer_exp",
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


def _write_model_summary(model, path: Path) -> None:
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    path.write_text("\n".join(lines) + "\n")


def _print_summary(cfg: RunConfig, tracker: Tracker, r: RunResult) -> None:
    print(
        f"\nfer_exp run finished: best val accuracy {r.best_val_accuracy:.4f} (epoch {r.best_epoch} "
        f"of {r.epochs_run}), val macro-F1 {r.val_macro_f1:.4f}\n"
        f"  MLflow run {r.run_id} in experiment '{cfg.experiment_name}' ({cfg.tracking_uri})\n"
        f"  outputs: {r.output_dir}\n"
        f"  compare runs: mlflow ui --backend-store-uri {cfg.tracking_uri}\n",
        flush=True,
    )


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("could not log %s to MLflow", args)
