"""Reaching an MLflow tracking store: which one, how to open it safely, and which failures
are worth retrying. Every other tracking module gets its client from here.

Experiments are tagged as model training (:data:`EXPERIMENT_KIND_TAG`) for MLflow UIs that pick
their GenAI or model-training pages per experiment from that tag; MLflow 3's UI follows its own
GenAI / Model training toggle instead, which the link of :func:`runs_table_url` sets.
"""

from __future__ import annotations

import hashlib
import logging
import os
from contextlib import contextmanager
from pathlib import Path

from fer_exp.errors import UserError
from fer_exp.paths import cache_root
from fer_exp.tracking.redact import redact_text

log = logging.getLogger(__name__)

# An experiment's kind, as MLflow's UI names the tag and its model-training value (its JS sources).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
# Loggers that narrate a new sqlite store's schema set-up at INFO ("Creating initial MLflow
# database tables...", alembic's migration steps): noise for a user, kept at WARNING and above.
_STORE_SETUP_LOGGERS = ("mlflow.store.db.utils", "alembic")

# Fail over in seconds, not minutes: MLflow's default is 7 retries with exponential backoff.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    # MLflow prints "View run ... at: <tracking URI>" with the URI's password in it; fer_exp
    # prints its own, redacted, link to the runs table instead.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
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
    with _store_init_lock(tracking_uri), _quiet_store_setup():  # creating the client may create the store
        client = MlflowClient(tracking_uri=tracking_uri)
        client.search_experiments(max_results=1)
    return client


def runs_table_url(tracking_uri: str, experiment_id: str) -> str:
    """The MLflow UI's runs table of an experiment: served by the tracking server itself for
    an http(s) store, else by ``mlflow ui`` at its default address. ``workflowType`` opens
    MLflow 3's UI on the runs table, not its GenAI overview. Redact before printing.

    >>> runs_table_url("sqlite:///mlflow.db", "1")
    'http://127.0.0.1:5000/#/experiments/1?workflowType=machine_learning'
    >>> runs_table_url("http://tracking:5000/", "7")
    'http://tracking:5000/#/experiments/7?workflowType=machine_learning'
    """
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}?workflowType=machine_learning"


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
    """The id of experiment ``name``; created (or restored from deleted) when needed, and
    tagged as model training unless it already has a kind (a user's choice is kept)."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})
        except MlflowException:  # created meanwhile by a concurrent job of the sweep
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    if EXPERIMENT_KIND_TAG not in experiment.tags:  # made by an older fer_exp, or by hand
        try:
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
        except MlflowException as exc:  # a cosmetic tag: a store refusing it must not stop the run
            log.warning("could not tag experiment %r as model training: %s", name, exc)
    return experiment.experiment_id


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


@contextmanager
def _quiet_store_setup():
    """Raise the store set-up loggers to WARNING for the block; their levels are restored."""
    loggers = [logging.getLogger(name) for name in _STORE_SETUP_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _store_init_lock(tracking_uri: str):
    """Serialize the first touch of a sqlite store: concurrent jobs of a sweep would otherwise
    run MLflow's schema migrations at the same time and corrupt the new database."""
    from filelock import FileLock

    db = Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]).resolve()
    digest = hashlib.sha1(str(db).encode()).hexdigest()[:16]
    # under fer_exp's cache, one small file per store, reused by every run (removing a lock file
    # that another process may be about to take is the race a lock exists to prevent)
    locks = cache_root() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    return FileLock(locks / f"mlflow-{digest}.lock", timeout=300)
