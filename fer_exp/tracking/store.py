"""Reaching an MLflow tracking store: which one, how to open it safely, and which failures
are worth retrying. Every other tracking module gets its client from here."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from fer_exp.errors import UserError
from fer_exp.tracking.redact import redact_text

# Fail over in seconds, not minutes: MLflow's default is 7 retries with exponential backoff.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
_TRANSIENT_TEXT = (
    "API request to",
    "Max retries exceeded",
    "Connection refused",
    "database is locked",
    "timed out",
    "Failed to establish",
)


def local_tracking_uri() -> str:
    """``mlflow.db`` in the current directory, where ``mlflow ui`` started in the same place looks."""
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else :func:`local_tracking_uri`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or local_tracking_uri()


def open_client(tracking_uri: str):
    """An ``MlflowClient`` for ``tracking_uri`` with short HTTP retries. A sqlite store is
    touched once under a lock first, so that concurrent jobs of a sweep never create or
    migrate a new database at the same time."""
    from mlflow.tracking import MlflowClient

    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if not tracking_uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=tracking_uri)
    with _store_init_lock(tracking_uri):  # creating the client may already create the store
        client = MlflowClient(tracking_uri=tracking_uri)
        client.search_experiments(max_results=1)
    return client


def unreachable(tracking_uri: str, exc: BaseException) -> UserError:
    """The message for a store that does not answer, naming the ways out."""
    return UserError(
        f"MLflow tracking store {redact_text(tracking_uri)} is unreachable: "
        f"{redact_text(str(exc)).splitlines()[0][:300]}\n"
        "Start the tracking server, or pass another tracking_uri=... "
        "(tracking_fallback=local logs to ./mlflow.db instead)"
    )


def is_transient(exc: BaseException) -> bool:
    """A store that is down or busy (retry later), as opposed to a request MLflow rejects."""
    import requests

    if isinstance(exc, (requests.exceptions.RequestException, ConnectionError, TimeoutError)):
        return True
    return any(s in str(exc) for s in _TRANSIENT_TEXT)


def get_or_create_experiment(client, name: str) -> str:
    """The id of experiment ``name``; created (or restored from deleted) when needed."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:  # created meanwhile by a concurrent job of the sweep
        return client.get_experiment_by_name(name).experiment_id


def child_runs(client, parent_run_id: str) -> list:
    """The runs nested under a sweep's parent run, by job number."""
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=10000
    )
    return sorted(runs, key=lambda r: int(r.data.tags.get("hydra.job_num", 0)))


def log_files(client, run_id: str, paths, artifact_path: str) -> None:
    """Upload files to one folder of a run's artifacts."""
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path)


def _store_init_lock(tracking_uri: str):
    """Serialize the first touch of a sqlite store: concurrent jobs of a sweep would otherwise
    run MLflow's schema migrations at the same time and corrupt the new database."""
    from filelock import FileLock

    db = Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]).resolve()
    digest = hashlib.sha1(str(db).encode()).hexdigest()[:16]
    return FileLock(Path(tempfile.gettempdir()) / f"fer_exp-mlflow-{digest}.lock", timeout=300)
