"""The recipe of one run: data -> class weights -> inputs -> model -> fit -> evaluate -> MLflow.

:func:`run` reads top to bottom; each step is one call (:mod:`fer_exp.runs.steps`) and one
log line. Data problems surface before the MLflow run is created; once it exists, every exit
path ends it FINISHED, FAILED or KILLED.

A run that did not finish continues with ``resume=<run folder or MLflow run id>``:
:func:`resume_context` reads how far it got (:meth:`~fer_exp.runs.folder.RunFolder.stage`) and
the same recipe does only what is missing: the epochs left while training had not ended, then
the evaluation of the best weights and the final metrics unless they were logged, then the
artifacts not uploaded yet, and the run ends FINISHED. Only a finished run has nothing to resume.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from fer_exp.config import RunConfig, validate
from fer_exp.errors import UserError
from fer_exp.runs import runlog, steps
from fer_exp.runs.context import JobInfo, RunContext, RunResult, Start, run_name
from fer_exp.runs.folder import RunFolder, Stage, claim_output_dir, locate_run, take_over
from fer_exp.sweeps.trial import current as current_trial
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
            result = train_and_evaluate(ctx)
        ctx.folder.record_stage(Stage.FINISHED)  # after MLflow heard FINISHED (or journaled it)
        return result
    finally:
        steps.upload_log(ctx)
        runlog.close_own_log(ctx.job.log_file)


def train_and_evaluate(ctx: RunContext) -> RunResult:
    """The recipe, top to bottom, for a new run or a resumed one (``ctx.start``): training and
    the final metrics unless a resumed run had logged them, then the artifacts not uploaded yet."""
    if ctx.start.stage < Stage.EVALUATED:
        final = _train_and_score(ctx)
        steps.log_final_metrics(ctx, final)
    else:
        final = ctx.folder.read_final_metrics()
    steps.upload_results(ctx)
    result = RunResult(
        ctx.tracker.run_id,
        final["best_val_accuracy"],
        final["val_macro_f1"],
        int(final["best_epoch"]),
        int(final["epochs_run"]),
        ctx.folder.root,
        final,
    )
    steps.print_summary(ctx, result)
    return result


def _train_and_score(ctx: RunContext) -> dict[str, float]:
    """Train what is left to train (nothing once training ended), then evaluate the best weights."""
    from fer_exp.training import fit, setup  # imports TensorFlow (slow): only once the data is known to be good

    cfg, start = ctx.cfg, ctx.start
    if start.fresh:
        steps.log_config(ctx)
        steps.log_audit(ctx)
        steps.log_datasets(ctx)
    setup.setup_tensorflow(cfg)  # seeds, threads, precision: before TensorFlow runs any op
    weights = steps.class_weights(ctx)
    inputs = steps.build_inputs(cfg, ctx.splits, start.epochs_done, weights)
    steps.write_input_spec(ctx, inputs)
    if start.fresh:
        model = steps.new_model(ctx, inputs, weights)
        steps.preview(ctx, inputs)
    else:
        model = fit.load_checkpoint(ctx.folder.checkpoints / start.state["last_checkpoint"])
        log.info("resuming MLflow run %s after epoch %d of %d", ctx.tracker.run_id, start.epochs_done, cfg.epochs)
    log.info("model %s: %s parameters", cfg.model.name, f"{model.count_params():,}")

    if start.stage == Stage.TRAINING:
        began = time.perf_counter()
        history = fit.fit(
            model, inputs, cfg, weights, ctx.folder.checkpoints, ctx.tracker, start.state, trial=current_trial()
        )
        train_time = time.perf_counter() - began + start.train_time_s
    else:  # training ended before the interrupt (all epochs, early stopping, time budget)
        history, train_time = start.state["history"], start.train_time_s
        log.info("training ended after epoch %d: evaluating the best weights", start.epochs_done)

    fit.load_best_weights(model, ctx.folder.checkpoints)
    _, final = steps.final_metrics(ctx, model, inputs, history, train_time)
    return final


def new_context(cfg: RunConfig, job: JobInfo) -> RunContext:
    """A new run: check the data, claim the output folder, open the MLflow run, write run.json."""
    splits = steps.load_data(cfg)
    folder = RunFolder(claim_output_dir(Path(job.output_dir)))
    if folder.root != Path(job.output_dir) and job.log_file:  # Hydra's folder and log are another run's
        job = replace(job, log_file=runlog.own_log_file(folder.root, job.log_file))
    tracker = _start_tracker(cfg, job, folder.root)
    private = bool(job.secret_keys) or redact_text(tracker.uri) != tracker.uri
    folder.write_info(tracker.run_id, tracker.uri, cfg.to_tree(), private=private)
    return RunContext(cfg, job, splits, folder, tracker)


def resume_context(cli_cfg: RunConfig, job: JobInfo) -> RunContext:
    """A run that did not finish, ready to go on: its own config, its folder, its MLflow run
    reopened (its journal replayed first), the epochs its checkpoint holds but MLflow never
    heard of logged, and how far it got (:meth:`~fer_exp.runs.folder.RunFolder.stage`). A
    finished run is a UserError: nothing to resume."""
    folder = RunFolder(locate_run(cli_cfg.resume, cli_cfg.tracking_uri))
    info = folder.read_info()
    cfg = validate(info["config"])
    ignored = [o for o in job.overrides if not o.startswith(("resume=", "tracking_uri="))]
    if ignored:
        log.warning("resume continues with the run's own config; ignoring overrides %s", ignored)
    take_over(folder.root)
    state = folder.read_state()
    if state is None:
        raise UserError(
            f"{folder.root} has no complete epoch to resume from (it stopped during epoch 1): start the run again"
        )
    run_id = info["run_id"]
    tracker = Tracker.open(info["tracking_uri"], run_id, journal_dir=folder.root)
    stage = folder.stage(state, cfg.epochs, tracker.status)
    if stage == Stage.FINISHED:
        raise UserError(f"run {run_id} in {folder.root} is finished ({_status(tracker)}): nothing to resume")
    splits = steps.load_data(cfg) if stage < Stage.EVALUATED else None  # evaluated: the data is not read again
    tracker.reopen()
    log.info(
        "resuming MLflow run %s from %s (%d epochs done); to do: %s",
        run_id,
        folder.root,
        state["epochs_done"],
        _to_do(stage, state, cfg.epochs, folder),
    )
    _backfill_metrics(tracker, state)
    return RunContext(cfg, job, splits, folder, tracker, Start(state, stage))


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
    """Epochs the checkpoint holds but MLflow never heard of (killed between the two): each
    (metric, epoch) the store holds, or that is still journaled for it, is left out
    (:meth:`~fer_exp.tracking.tracker.Tracker.log_metrics_once`)."""
    history = state["history"]
    tracker.log_metrics_once(
        {e: {k: v[e - 1] for k, v in history.items() if len(v) >= e} for e in range(1, state["epochs_done"] + 1)}
    )


def _to_do(stage: Stage, state: dict, epochs: int, folder: RunFolder) -> str:
    """What a resume of a run at ``stage`` does, for its log line."""
    missing = [name for name in folder.results() if name not in folder.uploaded()]
    uploads = f"upload {', '.join(missing)}" if missing else "nothing left to upload"
    if stage == Stage.EVALUATED:
        return f"{uploads}, end the run"
    train = f"train epochs {state['epochs_done'] + 1}-{epochs}" if stage == Stage.TRAINING else "training ended"
    return f"{train}, evaluate the best weights, {uploads}"


def _status(tracker: Tracker) -> str:
    """MLflow's status of a finished run, and what is still journaled for it."""
    if tracker.status is None:
        status = f"MLflow status unknown: the store at {redact_text(tracker.uri)} is unreachable"
    else:
        status = f"MLflow status {tracker.status}"
    left = tracker.pending()
    if left:
        where = tracker.journal.path.parent
        status += f"; {left} records wait in its journal: deliver them with python -m fer_exp.sync {where}"
    return status
