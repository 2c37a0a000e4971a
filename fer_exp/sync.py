"""Deliver what runs could not log while the MLflow tracking server was unreachable.

    python -m fer_exp.sync outputs/2026-11-24/10-00-00-123456   # one run folder
    python -m fer_exp.sync outputs multirun                        # every run folder below these

Each run folder keeps undelivered calls in ``mlflow_journal.jsonl``; they are replayed in
order against the tracking store the run was started with, and the journal is removed once
everything arrived. Safe to run again: nothing is delivered twice.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from fer_exp.redact import redact_text
from fer_exp.runner import RUN_INFO
from fer_exp.tracking import JOURNAL, Tracker


def sync_run(run_dir: Path, tracking_uri: str | None = None) -> int:
    """Replay one run folder's journal; returns the number of records still undelivered."""
    from mlflow.tracking import MlflowClient

    info = json.loads((run_dir / RUN_INFO).read_text())
    uri, run_id = tracking_uri or info["tracking_uri"], info["run_id"]
    tracker = Tracker(MlflowClient(uri), run_id, "", uri)
    tracker.use_journal(run_dir)
    count = tracker.pending()
    if tracker.flush(force=True):
        print(f"{run_dir}: delivered {count} records to run {run_id} at {redact_text(uri)}")
        return 0
    print(f"{run_dir}: MLflow at {redact_text(uri)} is still unreachable; {tracker.pending()} records kept")
    return tracker.pending()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="run folders, or folders to search below")
    parser.add_argument("--tracking-uri", help="deliver to this store instead of the run's own")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    journals = sorted({j for p in args.paths for j in ([p / JOURNAL] if (p / JOURNAL).exists() else p.rglob(JOURNAL))})
    if not journals:
        print("nothing to deliver: no mlflow_journal.jsonl found")
        return 0
    left = sum(sync_run(j.parent, args.tracking_uri) for j in journals if (j.parent / RUN_INFO).exists())
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
