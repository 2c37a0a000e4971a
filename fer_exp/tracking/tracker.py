"""The tracker API: one MLflow run per job with params, per-epoch metrics, artifacts and tags.

The run always ends with an honest status: FINISHED, FAILED (traceback logged as an
artifact) or KILLED (Ctrl-C / SIGTERM). All calls go through one :class:`Tracker` holding an
explicit run id, so nothing depends on MLflow's global "active run".

When the tracking server goes away mid-run, training goes on: every call that cannot be
delivered is appended to the run's :class:`~fer_exp.tracking.journal.Journal` and replayed, in
order, as soon as the server answers again (tried at most every ``RETRY_SECONDS``), at the end
of the run, or by ``python -m fer_exp.sync <run dir>``; new calls queue behind journaled ones.
Which metric steps a run already has is decided in one place, the store, as each call of
:meth:`Tracker.log_metrics_once` is delivered: after everything journaled before it.

This module is longer than 300 lines on purpose: every logging call and its delivery (direct or
through the journal) belong to the one class, so a new call cannot bypass the journal.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fer_exp.errors import UserError
from fer_exp.tracking.journal import Journal
from fer_exp.tracking.redact import redact_text
from fer_exp.tracking.store import get_or_create_experiment, is_transient, open_client, unreachable

log = logging.getLogger(__name__)

# MLflow's limits (mlflow.utils.validation): values per param, entities per log_batch call.
MAX_PARAM_VALUE = 6000
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
# How often a run whose server went away tries it again; $FER_EXP_TRACKING_RETRY_S overrides.
RETRY_SECONDS = float(os.environ.get("FER_EXP_TRACKING_RETRY_S", 30))
SQLITE_BUSY_RETRIES = 12  # 13 s of backoff in all (see _call) before a locked sqlite store counts as unreachable


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


class Tracker:
    """Logs to one MLflow run; keeps undeliverable calls in a journal while the store is away.

    Args:
        client: an ``MlflowClient`` (or anything with its ``log_batch``, ``log_artifact(s)``,
            ``log_inputs``, ``set_terminated``, ``update_run``, ``get_run`` and ``get_metric_history``).
        run_id: the MLflow run every call goes to.
        uri: the tracking URI, for messages (redacted when printed).
        journal_dir: where undeliverable calls are kept (the run's output folder); without
            one, a failed call raises.
    """

    def __init__(
        self, client, run_id: str, uri: str, journal_dir: Path | None = None, experiment_id: str | None = None
    ):
        self._client = client
        self.run_id = run_id
        self.uri = uri
        self.experiment_id = experiment_id
        self.journal = Journal(journal_dir) if journal_dir else None
        self.status: str | None = None  # the run's MLflow status when reopened (None: unknown)
        self._offline = self.pending() > 0  # new calls queue behind the journaled ones
        self._last_attempt = 0.0

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    def start(
        cls, tracking_uri: str, experiment_name: str, run_name: str | None, tags: dict[str, str], journal_dir=None
    ) -> Tracker:
        """Create a new run (and its experiment if needed); an unreachable store is a UserError."""
        from mlflow.tracking.context.registry import resolve_tags

        try:
            client = open_client(tracking_uri)
            experiment_id = get_or_create_experiment(client, experiment_name)
            run = client.create_run(experiment_id, run_name=run_name, tags=resolve_tags(tags))
        except Exception as exc:
            if is_transient(exc):
                raise unreachable(tracking_uri, exc) from None
            raise
        return cls(client, run.info.run_id, tracking_uri, journal_dir, experiment_id)

    @classmethod
    def open(cls, tracking_uri: str, run_id: str, journal_dir: Path | None = None) -> Tracker:
        """An existing run (resume), its journal replayed first, its :attr:`status` read, not
        changed; while the store is unreachable the status is None and every call is journaled."""
        tracker = cls(open_client(tracking_uri), run_id, tracking_uri, journal_dir)
        tracker.flush(force=True)
        try:
            info = tracker._client.get_run(run_id).info
        except Exception as exc:
            if not (is_transient(exc) and tracker.journal):
                why = redact_text(str(exc)).splitlines()[0][:300]
                raise UserError(f"MLflow run {run_id} cannot be opened at {redact_text(tracking_uri)}: {why}") from None
            tracker._go_offline(exc)
            return tracker
        tracker.experiment_id, tracker.status = info.experiment_id, info.status
        return tracker

    def reopen(self) -> None:
        """Mark the run RUNNING again (resume), until it ends."""
        self._send("set_status", status="RUNNING")

    # ---------------------------------------------------------------- logging API

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params (values cut to MLflow's length limit), in batches MLflow accepts."""
        items = [[k, str(v)[:MAX_PARAM_VALUE]] for k, v in params.items()]
        for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self._send("log_batch", params=items[i : i + MAX_PARAMS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log metrics at ``step`` (0 when None), in batches MLflow accepts."""
        self._send_metrics("log_batch", {step or 0: metrics})

    def log_metrics_once(self, by_step: Mapping[int, Mapping[str, float]]) -> None:
        """Log ``{step: {metric: value}}`` but the (metric, step) pairs the run holds when the call
        is delivered, in the store or journaled before it: a resume's back-fill, final metrics."""
        self._send_metrics("log_batch_once", by_step)

    def _send_metrics(self, op: str, by_step: Mapping[int, Mapping[str, float]]) -> None:
        now = int(time.time() * 1000)
        items = [[k, float(v), now, step] for step, metrics in by_step.items() for k, v in metrics.items()]
        for i in range(0, len(items), MAX_METRICS_PER_BATCH):
            self._send(op, metrics=items[i : i + MAX_METRICS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (values as strings)."""
        self._send("log_batch", tags=[[k, str(v)] for k, v in tags.items()])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file or a folder's contents under ``artifact_path``; a missing path is skipped."""
        path = Path(path)
        if path.exists():
            self._send(
                "log_artifacts" if path.is_dir() else "log_artifact",
                local_path=str(path.resolve()),
                artifact_path=artifact_path,
            )

    def log_text(self, text: str, artifact_file: str) -> None:
        """Written to a file first (beside the journal when there is one), then uploaded."""
        base = self.journal.path.parent / "mlflow_text" if self.journal else Path(tempfile.mkdtemp(prefix="fer_exp-"))
        target = base / artifact_file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        self.log_artifact(target, str(Path(artifact_file).parent) if "/" in artifact_file else None)

    def log_inputs(self, datasets: list[dict[str, str]]) -> None:
        """Log datasets as the run's inputs (MLflow's Datasets column: runs with equal digests saw
        the same data). Each is a plain dict, journaled as it is while the store is away: ``name``,
        ``digest``, ``source_type``, ``source``, optional ``schema`` and ``profile`` (JSON
        strings), and ``context`` (``train``, ``validation``: the ``mlflow.data.context`` tag)."""
        self._send("log_inputs", datasets=[dict(d) for d in datasets])

    def end(self, status: str) -> None:
        """Set the run's final status; what could not be delivered stays for ``fer_exp.sync``."""
        self._send("set_terminated", status=status)
        left = self.pending()
        if left:
            log.warning(
                "MLflow at %s is unreachable: %d records of run %s are kept in %s; deliver them with "
                "`python -m fer_exp.sync %s`",
                redact_text(self.uri),
                left,
                self.run_id,
                self.journal.path,
                self.journal.path.parent,
            )

    # ---------------------------------------------------------------- delivery

    def pending(self) -> int:
        """Calls waiting in the journal."""
        return self.journal.pending() if self.journal else 0

    def flush(self, force: bool = False) -> bool:
        """Replay the journal; True when nothing is left. Rate-limited unless ``force``."""
        if not self.pending():
            self._offline = False
            return True
        now = time.monotonic()
        if not force and now - self._last_attempt < RETRY_SECONDS:
            return False  # read the journal only when a replay is due
        self._last_attempt = now
        count = self.pending()
        if self.journal.replay(lambda record: self._call(record.pop("op"), record), is_transient):
            return False
        log.info("MLflow is back: delivered %d journaled records of run %s", count, self.run_id)
        self._offline = False
        return True

    def _send(self, op: str, **kwargs) -> None:
        if self._offline and not self.flush():
            self.journal.append(op, kwargs)
            return
        try:
            self._call(op, kwargs)
        except Exception as exc:
            if not (is_transient(exc) and self.journal):
                raise
            self._go_offline(exc)
            self.journal.append(op, kwargs)

    def _go_offline(self, exc: BaseException) -> None:
        why = redact_text(str(exc)).splitlines()[0][:200]
        log.warning(
            "MLflow unreachable (%s); training goes on, logging to %s until it answers again", why, self.journal.path
        )
        self._offline, self._last_attempt = True, time.monotonic()

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
        from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag

        if op == "log_batch_once":  # MLflow's log_batch of nothing is no call
            op, kwargs = "log_batch", {"metrics": self._missing(kwargs["metrics"])}
        if op == "log_batch":
            self._client.log_batch(
                self.run_id,
                metrics=[Metric(k, v, t, s) for k, v, t, s in kwargs.get("metrics", [])],
                params=[Param(k, v) for k, v in kwargs.get("params", [])],
                tags=[RunTag(k, v) for k, v in kwargs.get("tags", [])],
            )
        elif op == "set_terminated":
            self._client.set_terminated(self.run_id, status=kwargs["status"])
        elif op == "set_status":
            self._client.update_run(self.run_id, status=kwargs["status"])
        elif op == "log_inputs":
            inputs = [
                DatasetInput(
                    Dataset(**{k: v for k, v in d.items() if k != "context"}),
                    tags=[InputTag(key="mlflow.data.context", value=d["context"])] if d.get("context") else [],
                )
                for d in kwargs["datasets"]
            ]
            self._client.log_inputs(self.run_id, datasets=inputs)
        else:  # log_artifact / log_artifacts
            getattr(self._client, op)(self.run_id, kwargs["local_path"], kwargs.get("artifact_path"))

    def _missing(self, rows: list[list]) -> list[list]:
        """The metric rows whose (metric, step) the store does not hold yet."""
        present = set(self._client.get_run(self.run_id).data.metrics)  # the keys logged at all
        history = self._client.get_metric_history
        held = {key: {m.step for m in history(self.run_id, key)} for key in {row[0] for row in rows} & present}
        return [row for row in rows if row[3] not in held.get(row[0], ())]


@contextmanager
def tracked_run(tracker: Tracker) -> Iterator[Tracker]:
    """End the run FINISHED, KILLED on Ctrl-C/SIGTERM, or FAILED with the traceback."""
    try:
        yield tracker
    except KeyboardInterrupt:
        log.warning(
            "interrupted: MLflow run %s ends KILLED; its checkpoints are kept, continue it with "
            "python -m fer_exp resume=%s",
            tracker.run_id,
            tracker.run_id,
        )
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
