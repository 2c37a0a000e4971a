"""MLflow bookkeeping: one run per job with params, per-epoch metrics, artifacts and tags.

The run always ends with an honest status: FINISHED, FAILED (traceback logged as an
artifact) or KILLED (Ctrl-C / SIGTERM). All calls go through one :class:`Tracker` holding an
explicit run id, so nothing depends on MLflow's global "active run".
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# MLflow's limits (mlflow.utils.validation): values per param, entities per log_batch call.
MAX_PARAM_VALUE = 6000
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"augmentation.rotation_range": "20", ...}`` (JSON for non-strings).

    >>> flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x", "e": None})
    {'a.b': '1', 'a.c': '[1, 2]', 'd': 'x', 'e': 'null'}
    """
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, str) else json.dumps(value)
    return flat


def git_commit() -> str | None:
    """The commit of the fer_exp checkout in use, if it is a git work tree."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


class Tracker:
    """Logs to one MLflow run."""

    def __init__(self, client, run_id: str, experiment_id: str):
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id

    @classmethod
    def start(cls, tracking_uri: str, experiment_name: str, run_name: str | None, tags: dict[str, str]) -> Tracker:
        from mlflow.tracking import MlflowClient
        from mlflow.tracking.context.registry import resolve_tags

        client = MlflowClient(tracking_uri=tracking_uri)
        with _store_init_lock(tracking_uri):
            experiment_id = _get_or_create_experiment(client, experiment_name)
        run = client.create_run(experiment_id, run_name=run_name, tags=resolve_tags(tags))
        return cls(client, run.info.run_id, experiment_id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_VALUE]) for k, v in params.items()]
        for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + MAX_PARAMS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        for i in range(0, len(items), MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + MAX_METRICS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        elif path.exists():
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)


def _store_init_lock(tracking_uri: str):
    """Serialize the first touch of a sqlite store: concurrent jobs of a sweep would otherwise
    run MLflow's schema migrations at the same time and corrupt the new database."""
    from filelock import FileLock

    if not tracking_uri.startswith("sqlite:///"):
        return nullcontext()
    db = Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]).resolve()
    digest = hashlib.sha1(str(db).encode()).hexdigest()[:16]
    return FileLock(Path(tempfile.gettempdir()) / f"fer_exp-mlflow-{digest}.lock", timeout=300)


def _get_or_create_experiment(client, name: str) -> str:
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


@contextmanager
def tracked_run(tracker: Tracker) -> Iterator[Tracker]:
    """End the run FINISHED, KILLED on Ctrl-C/SIGTERM, or FAILED with the traceback."""
    try:
        yield tracker
    except KeyboardInterrupt:
        log.warning("interrupted: MLflow run %s ends KILLED", tracker.run_id)
        _end_safely(tracker, "KILLED")
        raise
    except BaseException as exc:
        _log_traceback(tracker, exc)
        _end_safely(tracker, "FAILED")
        raise
    else:
        tracker.end("FINISHED")


def _log_traceback(tracker: Tracker, exc: BaseException) -> None:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        tracker.log_text(text, "error/traceback.txt")
        tracker.set_tags({"error": f"{type(exc).__name__}: {exc}"[:5000]})
    except Exception:  # the store itself may be what failed; the status still matters more
        log.exception("could not log the traceback to MLflow")


def _end_safely(tracker: Tracker, status: str) -> None:
    try:
        tracker.end(status)
    except Exception:
        log.exception("could not mark MLflow run %s as %s", tracker.run_id, status)
