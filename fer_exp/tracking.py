"""MLflow bookkeeping: one run per job with params, per-epoch metrics, artifacts and tags.

The run always ends with an honest status: FINISHED, FAILED (traceback logged as an
artifact) or KILLED (Ctrl-C / SIGTERM). All calls go through one :class:`Tracker` holding an
explicit run id, so nothing depends on MLflow's global "active run".

When the tracking server goes away mid-run, training goes on: every call that cannot be
delivered is appended to a journal file in the run's output folder and replayed, in order,
as soon as the server answers again (tried at most every ``RETRY_SECONDS``), at the end of
the run, or by ``python -m fer_exp.sync <run dir>``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from fer_exp.errors import UserError
from fer_exp.redact import redact_text

log = logging.getLogger(__name__)

# MLflow's limits (mlflow.utils.validation): values per param, entities per log_batch call.
MAX_PARAM_VALUE = 6000
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
JOURNAL = "mlflow_journal.jsonl"
RETRY_SECONDS = 30.0
SQLITE_BUSY_RETRIES = 12  # ~10 s of backoff before a locked sqlite store counts as unreachable

# Fail over in seconds, not minutes: MLflow's default is 7 retries with exponential backoff.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


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


def is_transient(exc: BaseException) -> bool:
    """A store that is down or busy (retry later), as opposed to a request MLflow rejects."""
    import requests

    if isinstance(exc, (requests.exceptions.RequestException, ConnectionError, TimeoutError)):
        return True
    text = str(exc)
    return any(s in text for s in ("API request to", "Max retries exceeded", "Connection refused",
                                   "database is locked", "timed out", "Failed to establish"))


class Tracker:
    """Logs to one MLflow run; buffers to a journal while the store is unreachable."""

    def __init__(self, client, run_id: str, experiment_id: str, uri: str):
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.uri = uri
        self.journal: Path | None = None
        self._offline_since: float | None = None
        self._last_attempt = 0.0

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    def start(cls, tracking_uri: str, experiment_name: str, run_name: str | None, tags: dict[str, str]) -> Tracker:
        from mlflow.tracking import MlflowClient
        from mlflow.tracking.context.registry import resolve_tags

        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        try:
            with _store_init_lock(tracking_uri):  # creating the client may migrate a new store
                client = MlflowClient(tracking_uri=tracking_uri)
                experiment_id = _get_or_create_experiment(client, experiment_name)
            run = client.create_run(experiment_id, run_name=run_name, tags=resolve_tags(tags))
        except Exception as exc:
            if is_transient(exc):
                raise UserError(
                    f"MLflow tracking store {redact_text(tracking_uri)} is unreachable: "
                    f"{redact_text(str(exc)).splitlines()[0][:300]}\n"
                    "Start the tracking server, or pass another tracking_uri=... "
                    "(tracking_fallback=local logs to ./mlflow.db instead)"
                ) from None
            raise
        return cls(client, run.info.run_id, experiment_id, tracking_uri)

    @classmethod
    def attach(cls, tracking_uri: str, run_id: str) -> Tracker:
        """Reopen an existing run (resume): it is RUNNING again until it ends."""
        from mlflow.tracking import MlflowClient

        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        with _store_init_lock(tracking_uri):
            client = MlflowClient(tracking_uri=tracking_uri)
            run = client.get_run(run_id)
        client.update_run(run_id, status="RUNNING")
        return cls(client, run_id, run.info.experiment_id, tracking_uri)

    def use_journal(self, directory: Path) -> None:
        """Where undeliverable calls are kept (the run's output folder)."""
        self.journal = directory / JOURNAL

    # ---------------------------------------------------------------- logging API

    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [[k, str(v)[:MAX_PARAM_VALUE]] for k, v in params.items()]
        for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self._send("log_batch", params=items[i:i + MAX_PARAMS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        now = int(time.time() * 1000)
        items = [[k, float(v), now, step or 0] for k, v in metrics.items()]
        for i in range(0, len(items), MAX_METRICS_PER_BATCH):
            self._send("log_batch", metrics=items[i:i + MAX_METRICS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._send("log_batch", tags=[[k, str(v)] for k, v in tags.items()])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.exists():
            self._send("log_artifacts" if path.is_dir() else "log_artifact",
                       local_path=str(path.resolve()), artifact_path=artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Written to a file first (in the journal's folder when there is one), then uploaded."""
        base = self.journal.parent / "mlflow_text" if self.journal else Path(tempfile.mkdtemp(prefix="fer_exp-"))
        target = base / artifact_file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        self.log_artifact(target, str(Path(artifact_file).parent) if "/" in artifact_file else None)

    def end(self, status: str) -> None:
        self._send("set_terminated", status=status)
        if self.pending():
            log.warning("MLflow at %s is unreachable: %d records of run %s are kept in %s; deliver them with "
                        "`python -m fer_exp.sync %s`", redact_text(self.uri), self.pending(), self.run_id,
                        self.journal, self.journal.parent)

    # ---------------------------------------------------------------- delivery

    def pending(self) -> int:
        if not self.journal or not self.journal.exists():
            return 0
        return sum(1 for line in self.journal.read_text().splitlines() if line.strip())

    def _send(self, op: str, **kwargs) -> None:
        if self._offline_since is not None and not self.flush():
            self._append(op, kwargs)
            return
        try:
            self._call(op, kwargs)
        except Exception as exc:
            if not (is_transient(exc) and self.journal):
                raise
            log.warning("MLflow unreachable (%s); training goes on, logging to %s until it answers again",
                        redact_text(str(exc)).splitlines()[0][:200], self.journal)
            self._offline_since = self._last_attempt = time.monotonic()
            self._append(op, kwargs)

    def _call(self, op: str, kwargs: dict[str, Any]) -> None:
        """One call; a busy sqlite store (concurrent jobs) is retried for a while first."""
        for attempt in range(SQLITE_BUSY_RETRIES):
            try:
                return self._call_once(op, kwargs)
            except Exception as exc:
                if "database is locked" not in str(exc) or attempt == SQLITE_BUSY_RETRIES - 1:
                    raise
                time.sleep(min(2.0, 0.05 * 2**attempt))

    def _call_once(self, op: str, kwargs: dict[str, Any]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        if op == "log_batch":
            self.client.log_batch(
                self.run_id,
                metrics=[Metric(k, v, t, s) for k, v, t, s in kwargs.get("metrics", [])],
                params=[Param(k, v) for k, v in kwargs.get("params", [])],
                tags=[RunTag(k, v) for k, v in kwargs.get("tags", [])],
            )
        elif op == "set_terminated":
            self.client.set_terminated(self.run_id, status=kwargs["status"])
        else:  # log_artifact / log_artifacts
            getattr(self.client, op)(self.run_id, kwargs["local_path"], kwargs.get("artifact_path"))

    def _append(self, op: str, kwargs: dict[str, Any]) -> None:
        with self.journal.open("a") as f:
            f.write(json.dumps({"op": op, **kwargs}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def flush(self, force: bool = False) -> bool:
        """Replay the journal; True when nothing is left. Rate-limited unless ``force``."""
        if not self.pending():
            self._offline_since = None
            return True
        now = time.monotonic()
        if not force and now - self._last_attempt < RETRY_SECONDS:
            return False
        self._last_attempt = now
        lines = [line for line in self.journal.read_text().splitlines() if line.strip()]
        for done, line in enumerate(lines):
            record = json.loads(line)
            op = record.pop("op")
            try:
                self._call(op, record)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._rewrite(lines[done:])
                return False
        self._rewrite([])
        log.info("MLflow is back: delivered %d journaled records of run %s", len(lines), self.run_id)
        self._offline_since = None
        return True

    def _rewrite(self, lines: list[str]) -> None:
        tmp = self.journal.with_suffix(".tmp")
        tmp.write_text("".join(f"{line}\n" for line in lines))
        os.replace(tmp, self.journal)
        if not lines:
            self.journal.unlink()


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
        log.warning("interrupted: MLflow run %s ends KILLED; its checkpoints are kept, continue it with "
                    "python -m fer_exp resume=%s", tracker.run_id, tracker.run_id)
        _end_safely(tracker, "KILLED")
        raise
    except BaseException as exc:
        _log_traceback(tracker, exc)
        _end_safely(tracker, "FAILED")
        raise
    else:
        tracker.flush(force=True)
        tracker.end("FINISHED")


def _log_traceback(tracker: Tracker, exc: BaseException) -> None:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        tracker.log_text(redact_text(text), "error/traceback.txt")
        tracker.set_tags({"error": redact_text(f"{type(exc).__name__}: {exc}")[:5000]})
    except Exception:  # the store itself may be what failed; the status still matters more
        log.exception("could not log the traceback to MLflow")


def _end_safely(tracker: Tracker, status: str) -> None:
    try:
        tracker.flush(force=True)
        tracker.end(status)
    except Exception:
        log.exception("could not mark MLflow run %s as %s", tracker.run_id, status)
