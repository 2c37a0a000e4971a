"""The recipe of one run: data -> class weights -> model -> fit -> evaluate -> MLflow.

Each step is one call and one log line. Layout problems surface before the MLflow run is
created; once it exists, every exit path ends it FINISHED, FAILED or KILLED. A run
interrupted after some epochs continues with ``resume=<run folder or MLflow run id>``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fer_exp import __version__
from fer_exp.class_weights import balanced_class_weights, by_name
from fer_exp.config import RunConfig, validate
from fer_exp.data.sources import Splits, load_splits
from fer_exp.errors import ConfigError, UserError
from fer_exp.hardware import cpu_name
from fer_exp.redact import redact_text, redact_tree, to_yaml
from fer_exp.tracking import Tracker, flatten, git_commit, tracked_run

log = logging.getLogger("fer_exp")

RUN_INFO = "run.json"  # MLflow run id, tracking URI and the resolved config: for resume and sync
CLAIM = ".fer_exp_run"


@dataclass(frozen=True)
class JobInfo:
    """Where this job writes and how Hydra launched it."""

    output_dir: Path
    overrides: tuple[str, ...] = ()
    job_num: int | None = None
    sweep_dir: str | None = None
    log_file: Path | None = None
    hydra_yaml: str | None = None  # Hydra's runtime config of this job, already redacted
    secret_keys: frozenset[str] = frozenset()
    extra_tags: dict[str, str] = field(default_factory=dict)
    choices: dict[str, str] = field(default_factory=dict)  # config group -> option (augmentation: seed)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    best_val_accuracy: float
    val_macro_f1: float
    best_epoch: int
    epochs_run: int
    output_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)  # every final metric logged


def run(cfg: RunConfig, job: JobInfo) -> RunResult:
    """Train one config from scratch, or continue an interrupted run when ``cfg.resume`` is set."""
    if cfg.resume:
        return _resume(cfg, job)
    splits = _load_splits(cfg)
    out = claim_output_dir(Path(job.output_dir))
    tracker = _start_tracker(cfg, job, out)
    info = {"run_id": tracker.run_id, "tracking_uri": tracker.uri, "config": cfg.to_tree()}
    (out / RUN_INFO).write_text(json.dumps(info, indent=1))
    return _execute(cfg, job, splits, tracker, out, state=None)


def _load_splits(cfg: RunConfig) -> Splits:
    splits = load_splits(cfg.data)
    log.info("data: %s train / %s validation%s images in %d classes from %s", len(splits.train), len(splits.val),
             f" / {len(splits.test)} test" if splits.test is not None else "", len(splits.class_names), splits.root)
    if cfg.data.class_mode == "binary" and len(splits.class_names) != 2:
        raise ConfigError(f"data.class_mode=binary needs exactly 2 classes, found {len(splits.class_names)}: "
                          f"{list(splits.class_names)}; use categorical")
    if cfg.batch_size > len(splits.train):
        raise ConfigError(f"batch_size={cfg.batch_size} is larger than the train split "
                          f"({len(splits.train)} images): pass a smaller batch_size")
    return splits


def claim_output_dir(out: Path) -> Path:
    """Make ``out`` this run's own folder; if another run got it first (same second, same
    name), use a fresh sub-folder, so two runs never write over each other's files."""
    while True:
        out.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(out / CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            out = out / uuid.uuid4().hex[:8]
            continue
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        return out


def _start_tracker(cfg: RunConfig, job: JobInfo, out: Path) -> Tracker:
    run_name = cfg.run_name
    if run_name is None and job.job_num is not None:  # readable in the MLflow UI's sweep group
        run_name = f"#{job.job_num} " + " ".join(_redacted_overrides(job))[:200]
    try:
        tracker = Tracker.start(cfg.tracking_uri, cfg.experiment_name, run_name, _tags(job, out))
    except UserError:
        if cfg.tracking_fallback != "local":
            raise
        fallback = f"sqlite:///{Path.cwd() / 'mlflow.db'}"
        log.warning("MLflow at %s is unreachable: tracking_fallback=local, logging to %s instead",
                    redact_text(cfg.tracking_uri), fallback)
        tracker = Tracker.start(fallback, cfg.experiment_name, run_name, _tags(job, out))
    tracker.use_journal(out)
    log.info("MLflow run %s in experiment %r at %s", tracker.run_id, cfg.experiment_name, redact_text(tracker.uri))
    return tracker


def _execute(cfg: RunConfig, job: JobInfo, splits: Splits, tracker: Tracker, out: Path,
             state: dict | None) -> RunResult:
    try:
        with tracked_run(tracker):
            if state is None:
                _log_config(cfg, job, tracker)
                _log_audit(cfg, splits, tracker, out)
            return _train_and_log(cfg, job, splits, tracker, out, state)
    finally:
        if job.log_file:
            name = "logs" if state is None else f"logs/resume-{time.strftime('%Y%m%d-%H%M%S')}"
            _quietly(tracker.log_artifact, job.log_file, name)


def _log_config(cfg: RunConfig, job: JobInfo, tracker: Tracker) -> None:
    tree = redact_tree(cfg.to_tree(), job.secret_keys)
    tracker.log_params(flatten(tree))
    tracker.log_params({f"preset.{group}": option for group, option in job.choices.items()})
    tracker.log_text(to_yaml(tree), "config/config.yaml")
    tracker.log_text("\n".join(_redacted_overrides(job)) + "\n", "config/overrides.txt")
    if job.hydra_yaml:
        tracker.log_text(job.hydra_yaml, "config/hydra.yaml")


def _log_audit(cfg: RunConfig, splits: Splits, tracker: Tracker, out: Path) -> None:
    """The data audit's numbers at the start of every run (python -m fer_exp.audit prints them)."""
    from fer_exp import audit

    report = audit.audit(splits, cfg.class_weight, cfg.data.dedupe)
    tracker.log_metrics(audit.metrics(report))
    tracker.log_params({f"data.dropped.{k}": v for k, v in splits.dropped.items()})
    tracker.log_text(json.dumps(report, indent=1), "audit/audit.json")
    d = splits.duplicates
    log.info("audit: train %d files / %d distinct; train and validation share %d distinct images%s",
             d["train.files"], d["train.distinct"], d["train_val.shared_distinct"],
             f"; dropped {splits.dropped}" if splits.dropped else "")


def _train_and_log(cfg: RunConfig, job: JobInfo, splits: Splits, tracker: Tracker, out: Path,
                   state: dict | None) -> RunResult:
    for sub in ("plots", "reports", "checkpoints"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    from fer_exp import train  # imports TensorFlow (~8 s)

    train.setup_tensorflow(cfg)
    epochs_done = (state or {}).get("epochs_done", 0)
    names = splits.class_names
    weights = None
    if cfg.class_weight == "balanced":
        weights = balanced_class_weights(splits.train.labels, len(names))
        log.info("class weights (balanced): %s",
                 ", ".join(f"{n} {w:.4f}" for n, w in by_name(weights, names).items()))
    inputs = build_inputs(cfg, splits, epochs_done, weights)
    if state is None:
        model = cfg.model.build(inputs.input_shape, len(names), cfg.data.class_mode)
        _log_derived_params(tracker, splits, weights, model.count_params())
        _write_model_summary(model, out / "reports" / "model_summary.txt")
    else:
        model = train.load_checkpoint(out / "checkpoints" / state["last_checkpoint"])
        log.info("resuming MLflow run %s after epoch %d of %d", tracker.run_id, epochs_done, cfg.epochs)
    log.info("model %s: %s parameters", cfg.model.name, f"{model.count_params():,}")

    if cfg.preview_images and state is None:
        from fer_exp.plots import image_grid_png

        images, labels = inputs.preview(cfg.preview_images)
        image_grid_png(images, labels, names, out / "plots" / "augmented_samples.png",
                       "first training images, augmented exactly as fit sees them")

    start = time.perf_counter()
    history = train.fit(model, inputs, cfg, weights, out / "checkpoints", tracker, state)
    train_time = time.perf_counter() - start + (state or {}).get("train_time_s", 0.0)

    best = out / "checkpoints" / "best.keras"
    if best.exists():
        model.load_weights(best)
    result = _evaluate_and_log(model, inputs, cfg, tracker, out, history, train_time, splits)
    tracker.log_artifact(best, "model")
    _print_summary(cfg, tracker, result)
    return result


def build_inputs(cfg: RunConfig, splits: Splits, initial_epoch: int, weights):
    if cfg.data.pipeline == "keras":
        from fer_exp.data import keras_pipeline as pipeline
    else:
        from fer_exp.data import tf_pipeline as pipeline
    return pipeline.build(cfg, splits, initial_epoch, weights)


def _evaluate_and_log(model, inputs, cfg: RunConfig, tracker: Tracker, out: Path,
                      history: dict, train_time: float, splits: Splits) -> RunResult:
    from fer_exp.evaluate import evaluate, leak_free, predict
    from fer_exp.plots import confusion_matrix_png, learning_curves_png

    n_batches = min(inputs.val_batches, cfg.limit_val_batches or inputs.val_batches)
    extra: dict[str, float] = {}
    if cfg.tta:
        y_true, y_prob, y_tta = predict(model, inputs.val, n_batches, tta=True, tta_shift=cfg.tta_shift)
        tta = evaluate(y_true, y_tta, inputs.class_names)
        extra.update({"val_accuracy_tta": tta.accuracy, "val_macro_f1_tta": tta.macro_f1})
    else:
        y_true, y_prob = predict(model, inputs.val, n_batches)
    ev = evaluate(y_true, y_prob, inputs.class_names)
    extra.update(leak_free(y_true, ev.y_pred, splits.val_in_train))
    if inputs.test is not None:
        n_test = min(inputs.test_batches, cfg.limit_val_batches or inputs.test_batches)
        t_true, t_prob = predict(model, inputs.test, n_test)
        test_ev = evaluate(t_true, t_prob, inputs.class_names)
        extra.update({"test_accuracy": test_ev.accuracy, **test_ev.metrics("test_")})
        (out / "reports" / "test_classification_report.txt").write_text(test_ev.report_text)
        confusion_matrix_png(test_ev.confusion, inputs.class_names, out / "plots" / "test_confusion_matrix.png",
                             f"{cfg.model.name} — test accuracy {test_ev.accuracy:.3f}")
    val_acc = history.get("val_accuracy", [])
    best_epoch = int(max(range(len(val_acc)), key=val_acc.__getitem__)) + 1 if val_acc else 0
    final = {
        **ev.metrics("val_"),
        "best_val_accuracy": ev.accuracy,
        "best_epoch": best_epoch,
        "epochs_run": len(history.get("loss", [])),
        "train_time_s": train_time,
        **extra,
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
    return RunResult(tracker.run_id, ev.accuracy, ev.macro_f1, best_epoch, final["epochs_run"], out, final)


# --------------------------------------------------------------------------- resume


def locate_run(resume: str, tracking_uri: str) -> Path:
    """The output folder of the run to resume, from a folder path or an MLflow run id."""
    path = Path(resume).expanduser()
    if path.is_dir():
        for candidate in (path, path.parent):
            if (candidate / RUN_INFO).exists():
                return candidate
        raise ConfigError(f"resume={resume}: not a fer_exp run folder (no {RUN_INFO} in it)")
    if re.fullmatch(r"[0-9a-f]{32}", resume):
        from mlflow.tracking import MlflowClient

        try:
            tags = MlflowClient(tracking_uri).get_run(resume).data.tags
        except Exception as exc:
            raise ConfigError(f"resume={resume}: no such MLflow run at {redact_text(tracking_uri)} ({exc})") from None
        if "output_dir" not in tags or not Path(tags["output_dir"]).is_dir():
            raise ConfigError(f"resume={resume}: the run's output folder {tags.get('output_dir')} is gone")
        return Path(tags["output_dir"])
    raise ConfigError(f"resume={resume!r} is neither a run folder nor an MLflow run id")


def _resume(cli_cfg: RunConfig, job: JobInfo) -> RunResult:
    from fer_exp.callbacks import read_state

    out = locate_run(cli_cfg.resume, cli_cfg.tracking_uri)
    info = json.loads((out / RUN_INFO).read_text())
    cfg = validate(info["config"])
    ignored = [o for o in job.overrides if not o.startswith(("resume=", "tracking_uri="))]
    if ignored:
        log.warning("resume continues with the run's own config; ignoring overrides %s", ignored)
    _refuse_if_running(out)
    state = read_state(out / "checkpoints")
    if state is None:
        raise UserError(f"{out} has no complete epoch to resume from (it stopped during epoch 1): "
                        "start the run again")
    run_id = info["run_id"]
    if state["epochs_done"] >= cfg.epochs:
        raise UserError(f"run {run_id} in {out} already trained all {cfg.epochs} epochs: nothing to resume")
    splits = _load_splits(cfg)
    tracker = Tracker.attach(info["tracking_uri"], run_id)
    tracker.use_journal(out)
    log.info("resuming MLflow run %s from %s (%d epochs done)", run_id, out, state["epochs_done"])
    _backfill_metrics(tracker, state)
    return _execute(cfg, job, splits, tracker, out, state)


def _refuse_if_running(out: Path) -> None:
    """Two processes training into one folder would corrupt it: the first must have stopped."""
    try:
        pid = int((out / CLAIM).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if pid != os.getpid() and _alive(pid):
        raise UserError(f"the run in {out} is still being trained by process {pid}: stop it first "
                        f"(Ctrl-C or kill {pid}), then resume")
    (out / CLAIM).write_text(f"{os.getpid()}\n")  # this process continues it


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _backfill_metrics(tracker: Tracker, state: dict) -> None:
    """Epochs the checkpoint holds but MLflow never heard of (killed between the two)."""
    logged = {m.step for m in tracker.client.get_metric_history(tracker.run_id, "loss")}
    history = state["history"]
    for epoch in range(1, state["epochs_done"] + 1):
        if epoch not in logged:
            tracker.log_metrics({k: v[epoch - 1] for k, v in history.items() if len(v) >= epoch}, step=epoch)


# --------------------------------------------------------------------------- small helpers


def _log_derived_params(tracker: Tracker, splits: Splits, weights, param_count: int) -> None:
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
        "env.precision": keras.mixed_precision.global_policy().name,  # what mixed_precision=auto chose
    }
    derived.update({f"data.found.train.{n}": c for n, c in splits.train.counts().items()})
    if weights:
        derived.update({f"class_weights.{n}": f"{w:.6f}" for n, w in by_name(weights, names).items()})
    tracker.log_params(derived)


def _redacted_overrides(job: JobInfo) -> list[str]:
    out = []
    for o in job.overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        out.append(f"{o.split('=', 1)[0]}=***" if key in job.secret_keys else redact_text(o))
    return out


def _tags(job: JobInfo, out: Path) -> dict[str, str]:
    tags = {
        "overrides": " ".join(_redacted_overrides(job)) or "(defaults)",
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


def _write_model_summary(model, path: Path) -> None:
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    path.write_text("\n".join(lines) + "\n")


def _print_summary(cfg: RunConfig, tracker: Tracker, r: RunResult) -> None:
    uri = redact_text(tracker.uri)
    print(
        f"\nfer_exp run finished: best val accuracy {r.best_val_accuracy:.4f} (epoch {r.best_epoch} "
        f"of {r.epochs_run}), val macro-F1 {r.val_macro_f1:.4f}\n"
        f"  MLflow run {r.run_id} in experiment '{cfg.experiment_name}' ({uri})\n"
        f"  outputs: {r.output_dir}\n"
        f"  compare runs: mlflow ui --backend-store-uri {uri}\n",
        flush=True,
    )


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("could not log %s to MLflow", args)
