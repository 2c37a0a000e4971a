"""A run's output folder: claimed by one process, found again by path or MLflow run id.

Layout: ``run.json`` (MLflow run id, tracking URI, resolved config), ``checkpoints/``,
``plots/``, ``reports/``, the job's log, and while MLflow is away ``mlflow_journal.jsonl``.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_exp.errors import ConfigError, UserError
from fer_exp.tracking.redact import redact_text
from fer_exp.tracking.store import open_client

RUN_INFO = "run.json"  # MLflow run id, tracking URI and the resolved config: for resume and sync
CLAIM = ".fer_exp_run"


@dataclass(frozen=True)
class RunFolder:
    """The folders of one run, created on first use."""

    root: Path

    @property
    def checkpoints(self) -> Path:
        """Crash-safe checkpoints and ``state.json`` (:mod:`fer_exp.training.callbacks`)."""
        return self._sub("checkpoints")

    @property
    def plots(self) -> Path:
        """PNG pictures, logged under ``plots/``."""
        return self._sub("plots")

    @property
    def reports(self) -> Path:
        """Text and JSON reports, logged under ``reports/``."""
        return self._sub("reports")

    def _sub(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write_info(self, run_id: str, tracking_uri: str, config: dict[str, Any]) -> None:
        """``run.json``: what resume and sync need to find the run again."""
        info = {"run_id": run_id, "tracking_uri": tracking_uri, "config": config}
        (self.root / RUN_INFO).write_text(json.dumps(info, indent=1))

    def read_info(self) -> dict[str, Any]:
        """``run.json`` as written by :meth:`write_info`."""
        return json.loads((self.root / RUN_INFO).read_text())


def claim_output_dir(out: Path) -> Path:
    """Make ``out`` this run's own folder; if another run got it first (same second, same
    name), use a fresh sub-folder, so two runs never write over each other's files."""
    while True:
        out.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(out / CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            out = out / uuid.uuid4().hex[:8]
            continue
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        return out


def locate_run(resume: str, tracking_uri: str) -> Path:
    """The output folder of a run, from a folder path or an MLflow run id."""
    path = Path(resume).expanduser()
    if path.is_dir():
        for candidate in (path, path.parent):
            if (candidate / RUN_INFO).exists():
                return candidate
        raise ConfigError(f"resume={resume}: not a fer_exp run folder (no {RUN_INFO} in it)")
    if re.fullmatch(r"[0-9a-f]{32}", resume):
        try:
            client = open_client(tracking_uri)
            tags = client.get_run(resume).data.tags
        except Exception as exc:
            raise ConfigError(f"resume={resume}: no such MLflow run at {redact_text(tracking_uri)} ({exc})") from None
        if "output_dir" not in tags or not Path(tags["output_dir"]).is_dir():
            raise ConfigError(f"resume={resume}: the run's output folder {tags.get('output_dir')} is gone")
        return Path(tags["output_dir"])
    raise ConfigError(f"resume={resume!r} is neither a run folder nor an MLflow run id")


def take_over(out: Path) -> None:
    """Claim a stopped run's folder for this process; refuse while its trainer still lives
    (two processes training into one folder would corrupt it)."""
    try:
        pid = int((out / CLAIM).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if pid != os.getpid() and _alive(pid):
        raise UserError(
            f"the run in {out} is still being trained by process {pid}: stop it first "
            f"(Ctrl-C or kill {pid}), then resume"
        )
    (out / CLAIM).write_text(f"{os.getpid()}\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
