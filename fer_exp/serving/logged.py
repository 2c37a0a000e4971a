"""A model folder sent to an MLflow run: as the run's ``model/`` artifacts through its
:class:`~fer_exp.tracking.Tracker` (journaled while the store is away, delivered by the run
itself or ``python -m fer_exp.sync``), then, when the store answers, also as an MLflow 3
logged model of the run (named after the architecture, e.g. ``small_cnn``), which the UI lists
under the run's and the experiment's Models, and which a registered version points at.

``runs:/<id>/model`` loads from the run's artifacts, whether the logged model exists or not. The
logged model is not named ``model`` on purpose: MLflow 3.17 merges a logged model of the same
name into ``runs:/<id>/model`` and then lists the run's ``model/`` artifacts only through the
process's global tracking URI (``MlflowClient(uri).list_artifacts(run_id, "model")`` fails
otherwise)."""

from __future__ import annotations

import logging
from pathlib import Path

from fer_exp.tracking import Tracker
from fer_exp.tracking.redact import redact_text
from fer_exp.tracking.store import open_client

log = logging.getLogger("fer_exp")


def log_model_folder(
    tracker: Tracker, model_dir: Path, logged_name: str, name: str = "model", step: int = 0
) -> str | None:
    """Send ``model_dir`` to the run under ``name``, and as its logged model ``logged_name``;
    returns the logged model's id, or None when only the artifacts went (or were journaled): a
    model is never a reason for a run to fail."""
    tracker.log_artifact(model_dir, name)
    if tracker.pending() or tracker.experiment_id is None:
        log.warning(
            "MLflow is unreachable: the model is journaled as the run's %s/ artifacts (runs:/%s/%s loads "
            "once they are delivered); the UI's Models list will not show it",
            name,
            tracker.run_id,
            name,
        )
        return None
    try:
        return _logged_model(tracker, model_dir, logged_name, step)
    except Exception as exc:  # the artifacts are there; the UI entry is a convenience
        why = redact_text(str(exc)).splitlines()[0][:200] if str(exc) else type(exc).__name__
        log.warning(
            "model %s of run %s: artifacts logged, but not as an MLflow logged model (%s)", name, tracker.run_id, why
        )
        return None


def _logged_model(tracker: Tracker, model_dir: Path, name: str, step: int) -> str:
    """The run's logged model ``name``, created once (a resumed upload finds the first one)."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus

    client = open_client(tracker.uri)
    for model in client.search_logged_models([tracker.experiment_id], filter_string=f"name = '{name}'"):
        if model.source_run_id == tracker.run_id and model.status == LoggedModelStatus.READY:
            return model.model_id
    model = client.create_logged_model(
        tracker.experiment_id,
        name=name,
        source_run_id=tracker.run_id,
        model_type="fer_exp",
        tags={"fer_exp.kind": "model"},
    )
    client.log_model_artifacts(model.model_id, str(model_dir))
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    client.log_outputs(tracker.run_id, [LoggedModelOutput(model.model_id, step)])
    return model.model_id


def log_best_model(tracker: Tracker, checkpoints: Path, model_dir: Path, name: str = "model") -> None:
    """A run's best checkpoint as its MLflow Model: ``model_dir`` written from
    ``checkpoints/best.keras`` and ``checkpoints/input_spec.json``, then sent. A run folder of
    an older fer_exp (no input spec) uploads the plain ``best.keras``, as it always did."""
    from fer_exp.inference.loading import KERAS_FILE
    from fer_exp.inference.preprocess import SPEC_FILE, InputSpec
    from fer_exp.serving.model_dir import save_model_dir

    best, spec = checkpoints / KERAS_FILE, checkpoints / SPEC_FILE
    if not best.exists():
        return
    if not spec.exists():
        log.warning(
            "no %s in %s: the model is logged as a plain Keras file, not an MLflow Model", SPEC_FILE, checkpoints
        )
        tracker.log_artifact(best, name)
        return
    spec = InputSpec.load(spec)
    save_model_dir(model_dir, [(best, spec)], tracker.run_id)
    log_model_folder(tracker, model_dir, spec.model_name or "fer_exp_model", name)
