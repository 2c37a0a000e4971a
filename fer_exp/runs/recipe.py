"""The recipe of one run: data -> class weights -> inputs -> model -> fit -> evaluate -> MLflow.

:func:`run` reads top to bottom; each step is one call (:mod:`fer_exp.runs.steps`) and one
log line. Data problems surface before the MLflow run is created; once it exists, every exit
path ends it FINISHED, FAILED or KILLED. A run interrupted after some epochs continues with
``resume=<run folder or MLflow run id>``: :func:`resume_context` prepares the same context
from the run's checkpoint, and the same recipe goes on from there.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from fer_exp.config import RunConfig, validate
from fer_exp.errors import UserError
from fer_exp.runs import steps
from fer_exp.runs.context import JobInfo, RunContext, RunResult, Start, run_name
from fer_exp.runs.folder import RunFolder, claim_output_dir, locate_run, take_over
from fer_exp.tracking import Tracker, tracked_run
from fer_exp.tracking.redact import redact_text
from fer_exp.tracking.store import local_tracking_uri

log = logging.getLogger("fer_exp")


def run(cfg: RunConfig, job: JobInfo) -> RunResult:
    """Train one config from scratch, or continue an interrupted run when ``cfg.resume`` is set.

    Args:
        cfg: the validated config (:func:`fer_exp.config.compose` makes one).
        job: where to write and how the job was launched (``JobInfo(output_dir=...)`` suffices).

    Returns:
        The run's id, headline metrics and output folder.
    """
    ctx = resume_context(cfg, job) if cfg.resume else new_context(cfg, job)
    try:
        with tracked_run(ctx.tracker):
            return train_and_evaluate(ctx)
    finally:
        steps.upload_log(ctx)


def train_and_evaluate(ctx: RunContext) -> RunResult:
    """The recipe, top to bottom, for a new run or a resumed one (``ctx.start``)."""
    from fer_exp.training import fit, setup  # imports TensorFlow (slow): only once the data is known to be good

    cfg, start = ctx.cfg, ctx.start
    if start.fresh:
        steps.log_config(ctx)
        steps.log_audit(ctx)
    setup.setup_tensorflow(cfg)  # seeds, threads, precision: before TensorFlow runs any op
    weights = steps.class_weights(ctx)
    inputs = steps.build_inputs(cfg, ctx.splits, start.epochs_done, weights)
    if start.fresh:
        model = steps.new_model(ctx, inputs, weights)
        steps.preview(ctx, inputs)
    else:
        model = fit.load_checkpoint(ctx.folder.checkpoints / start.state["last_checkpoint"])
        log.info("resuming MLflow run %s after epoch %d of %d", ctx.tracker.run_id, start.epochs_done, cfg.epochs)
    log.info("model %s: %s parameters", cfg.model.name, f"{model.count_params():,}")

    began = time.perf_counter()
    history = fit.fit(model, inputs, cfg, weights, ctx.folder.checkpoints, ctx.tracker, start.state)
    train_time = time.perf_counter() - began + start.train_time_s

    fit.load_best_weights(model, ctx.folder.checkpoints)
    ev, final = steps.final_metrics(ctx, model, inputs, history, train_time)
    steps.log_results(ctx, final)
    result = RunResult(
        ctx.tracker.run_id, ev.accuracy, ev.macro_f1, final["best_epoch"], final["epochs_run"], ctx.folder.root, final
    )
    steps.print_summary(ctx, result)
    return result


def new_context(cfg: RunConfig, job: JobInfo) -> RunContext:
    """A new run: check the data, claim the output folder, open the MLflow run, write run.json."""
    splits = steps.load_data(cfg)
    folder = RunFolder(claim_output_dir(Path(job.output_dir)))
    tracker = _start_tracker(cfg, job, folder.root)
    folder.write_info(tracker.run_id, tracker.uri, cfg.to_tree())
    return RunContext(cfg, job, splits, folder, tracker)


def resume_context(cli_cfg: RunConfig, job: JobInfo) -> RunContext:
    """An interrupted run, ready to go on: its own config, its folder, its MLflow run reopened,
    the epochs its checkpoint holds but MLflow never heard of logged, and its checkpoint state."""
    from fer_exp.training.callbacks import read_state

    folder = RunFolder(locate_run(cli_cfg.resume, cli_cfg.tracking_uri))
    info = folder.read_info()
    cfg = validate(info["config"])
    ignored = [o for o in job.overrides if not o.startswith(("resume=", "tracking_uri="))]
    if ignored:
        log.warning("resume continues with the run's own config; ignoring overrides %s", ignored)
    take_over(folder.root)
    state = read_state(folder.checkpoints)
    if state is None:
        raise UserError(
            f"{folder.root} has no complete epoch to resume from (it stopped during epoch 1): start the run again"
        )
    run_id = info["run_id"]
    if state["epochs_done"] >= cfg.epochs:
        raise UserError(f"run {run_id} in {folder.root} already trained all {cfg.epochs} epochs: nothing to resume")
    splits = steps.load_data(cfg)
    tracker = Tracker.attach(info["tracking_uri"], run_id, journal_dir=folder.root)
    log.info("resuming MLflow run %s from %s (%d epochs done)", run_id, folder.root, state["epochs_done"])
    _backfill_metrics(tracker, state)
    return RunContext(cfg, job, splits, folder, tracker, Start(state))


def _start_tracker(cfg: RunConfig, job: JobInfo, out: Path) -> Tracker:
    name = run_name(cfg, job)
    tags = steps.run_tags(job, out)
    try:
        tracker = Tracker.start(cfg.tracking_uri, cfg.experiment_name, name, tags, journal_dir=out)
    except UserError:
        if cfg.tracking_fallback != "local":
            raise
        fallback = local_tracking_uri()
        log.warning(
            "MLflow at %s is unreachable: tracking_fallback=local, logging to %s instead",
            redact_text(cfg.tracking_uri),
            fallback,
        )
        tracker = Tracker.start(fallback, cfg.experiment_name, name, tags, journal_dir=out)
    log.info("MLflow run %s in experiment %r at %s", tracker.run_id, cfg.experiment_name, redact_text(tracker.uri))
    return tracker


def _backfill_metrics(tracker: Tracker, state: dict) -> None:
    """Epochs the checkpoint holds but MLflow never heard of (killed between the two)."""
    logged = tracker.logged_steps("loss")
    history = state["history"]
    for epoch in range(1, state["epochs_done"] + 1):
        if epoch not in logged:
            tracker.log_metrics({k: v[epoch - 1] for k, v in history.items() if len(v) >= epoch}, step=epoch)
