"""Registering a run's MLflow Model: a new version of a registered model, its description
saying which run and which metric, and an alias (``champion``) moved to it, so that
``models:/NAME@champion`` always loads the current best.

The version points at the run's MLflow 3 logged model when it has one (the UI links the two),
else at ``runs:/<id>/model`` (a run logged while its store was away: the artifacts only)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from fer_exp.errors import UserError
from fer_exp.tracking.redact import redact_text
from fer_exp.tracking.store import open_client

log = logging.getLogger("fer_exp")
MODEL_VERSIONS_TAG = "mlflow.modelVersions"  # mlflow.utils.mlflow_tags.MLFLOW_MODEL_VERSIONS


def model_source(client, run_id: str) -> tuple[str, str | None]:
    """The source of a run's model for the registry and its logged model's id (None: none)."""
    if not any(a.path == "model/MLmodel" for a in client.list_artifacts(run_id, "model")):
        raise UserError(
            f"run {run_id} has no MLflow Model (no model/MLmodel in its artifacts): runs of fer_exp "
            "before 0.3 logged only model/best.keras; train it again, or register another run"
        )
    experiment_id = client.get_run(run_id).info.experiment_id
    for model in client.search_logged_models([experiment_id], filter_string="tags.`fer_exp.kind` = 'model'"):
        if model.source_run_id == run_id and str(model.status) == "READY":
            return f"models:/{model.model_id}", model.model_id
    return f"runs:/{run_id}/model", None


def register_run_model(
    tracking_uri: str, run_id: str, name: str, alias: str | None = "champion", description: str = ""
):
    """Register the model of ``run_id`` as a new version of ``name`` (created if new) and
    point ``alias`` at it; returns the ModelVersion."""
    from mlflow.exceptions import MlflowException

    client = open_client(tracking_uri)
    try:
        source, model_id = model_source(client, run_id)
    except MlflowException as exc:
        raise UserError(f"run {run_id} at {redact_text(tracking_uri)}: {str(exc).splitlines()[0]}") from None
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="fer_exp facial-expression classifier")
    with _global_tracking_uri(tracking_uri):
        version = client.create_model_version(name, source, run_id=run_id, description=description, model_id=model_id)
    if model_id:  # the logged model lists its versions (MLflow's register_model does the same)
        listed = json.loads(client.get_logged_model(model_id).tags.get(MODEL_VERSIONS_TAG, "[]"))
        listed.append({"name": name, "version": version.version})
        client.set_logged_model_tags(model_id, {MODEL_VERSIONS_TAG: json.dumps(listed)})
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    log.debug("registered %s version %s from run %s%s", name, version.version, run_id, f" as @{alias}" if alias else "")
    return version


@contextmanager
def _global_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow 3.17's sqlite registry looks a ``models:/<id>`` source up through the process's
    global tracking URI, not the client's (a TODO in its sqlalchemy_store): set it meanwhile,
    then restore it as it was (unset included)."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):
        yield
