"""Deliver what a run could not log while its MLflow tracking store was unreachable.

Each run folder keeps undelivered calls in ``mlflow_journal.jsonl``; they are replayed in
order against the tracking store, and the journal is removed once everything arrived. Safe to
repeat: nothing is delivered twice. The command is ``python -m fer_exp.sync`` (:mod:`fer_exp.cli.sync`).
"""

from __future__ import annotations

from pathlib import Path

from fer_exp.tracking.journal import JOURNAL
from fer_exp.tracking.redact import redact_text
from fer_exp.tracking.store import open_client
from fer_exp.tracking.tracker import Tracker


def find_journals(paths: list[Path]) -> list[Path]:
    """The folders holding a journal: each path itself, or every folder below it."""
    found = {j for p in paths for j in ([p / JOURNAL] if (p / JOURNAL).exists() else p.rglob(JOURNAL))}
    return sorted(j.parent for j in found)


def sync_journal(journal_dir: Path, run_id: str, tracking_uri: str) -> int:
    """Replay one folder's journal into ``run_id``; returns the number of records still undelivered."""
    client = open_client(tracking_uri)
    tracker = Tracker(client, run_id, tracking_uri, journal_dir)
    count = tracker.pending()
    if tracker.flush(force=True):
        print(f"{journal_dir}: delivered {count} records to run {run_id} at {redact_text(tracking_uri)}")
        return 0
    left = tracker.pending()
    print(f"{journal_dir}: MLflow at {redact_text(tracking_uri)} is still unreachable; {left} records kept")
    return left
