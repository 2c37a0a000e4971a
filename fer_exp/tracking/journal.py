"""The offline journal: tracking calls that could not be delivered, one JSON line each, in
order, in the run's output folder, until they are replayed (:class:`~fer_exp.tracking.tracker.Tracker`,
``python -m fer_exp.sync``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

JOURNAL = "mlflow_journal.jsonl"


class Journal:
    """An append-only file of undelivered calls; every append reaches the disk before training
    goes on, so a ``kill -9`` loses nothing already logged.

    >>> import tempfile
    >>> j = Journal(Path(tempfile.mkdtemp()))
    >>> j.append("log_batch", {"metrics": [["loss", 1.0, 0, 1]]}); j.pending()
    1
    >>> j.records()[0]["op"]
    'log_batch'
    """

    def __init__(self, directory: Path):
        self.path = Path(directory) / JOURNAL

    def append(self, op: str, kwargs: dict[str, Any]) -> None:
        """Add one call (``op`` and its arguments), flushed and fsynced."""
        with self.path.open("a") as f:
            f.write(json.dumps({"op": op, **kwargs}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> list[dict[str, Any]]:
        """The calls still undelivered, oldest first."""
        return [json.loads(line) for line in self._lines()]

    def pending(self) -> int:
        """How many calls are still undelivered (counted, not parsed: it is asked on every
        tracking call while the store is away)."""
        return len(self._lines())

    def _lines(self) -> list[str]:
        if not self.path.exists():
            return []
        return [line for line in self.path.read_text().splitlines() if line.strip()]

    def replay(self, deliver: Callable[[dict[str, Any]], None], transient: Callable[[BaseException], bool]) -> int:
        """Deliver the calls oldest first; returns how many are left. The first call that fails
        ``transient``-ly and those after it stay; any other failure is raised, but the calls
        delivered before it leave the journal first (replayed again, they would be logged twice)."""
        records = self.records()
        for done, record in enumerate(records):
            try:
                deliver(dict(record))
            except Exception as exc:
                self.keep(records[done:])
                if not transient(exc):
                    raise
                return len(records) - done
        self.keep([])
        return 0

    def keep(self, records: list[dict[str, Any]]) -> None:
        """Replace the journal by ``records`` (the ones a replay could not deliver), atomically;
        an empty journal is removed."""
        if not records:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
        os.replace(tmp, self.path)
