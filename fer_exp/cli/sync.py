"""Deliver what runs could not log while the MLflow tracking server was unreachable.

    python -m fer_exp.sync outputs/2026-11-24/10-00-00-123456   # one run folder
    python -m fer_exp.sync outputs multirun                        # every run folder below these

Each run folder keeps undelivered calls in ``mlflow_journal.jsonl``; they are replayed in
order against the tracking store the run was started with, and the journal is removed once
everything arrived. Safe to run again: nothing is delivered twice.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fer_exp.cli.common import EXIT_FAILED, EXIT_OK, parser, run_command
from fer_exp.runs.folder import RUN_INFO, RunFolder
from fer_exp.tracking.sync import find_journals, sync_journal


def main(argv: list[str] | None = None) -> int:
    """``python -m fer_exp.sync PATH [PATH ...] [--tracking-uri URI]``; exit 1 while records are left."""
    p = parser(__doc__, "sync")
    p.add_argument("paths", nargs="+", type=Path, help="run folders, or folders to search below")
    p.add_argument("--tracking-uri", help="deliver to this store instead of the run's own")
    args = p.parse_args(argv)

    def body() -> int:
        folders = [f for f in find_journals(args.paths) if (f / RUN_INFO).exists()]
        if not folders:
            print("nothing to deliver: no mlflow_journal.jsonl found")
            return EXIT_OK
        left = 0
        for folder in folders:
            info = RunFolder(folder).read_info()
            left += sync_journal(folder, info["run_id"], args.tracking_uri or info["tracking_uri"])
        return EXIT_FAILED if left else EXIT_OK

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
