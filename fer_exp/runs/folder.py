"""A run's output folder: claimed by one process, found again by path or MLflow run id, and
the one record of how far the run got (:class:`Stage`), which resume reads.

Layout: ``run.json`` (MLflow run id, tracking URI, resolved config), ``checkpoints/`` (with
``state.json``, the commit point of each epoch, and ``input_spec.json``), ``plots/``, ``reports/``,
``predictions/`` (``validation.npz``), ``model/`` (the best checkpoint as an MLflow Model,
:mod:`fer_exp.serving`), ``stage.json`` (the stages reached after training, and the artifacts
uploaded), the job's log, and while MLflow is away ``mlflow_journal.jsonl``.
"""

from __future__ import annotations

import enum
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
STATE = "state.json"  # in checkpoints/, written by fer_exp.training.callbacks.Checkpointer
STAGE = "stage.json"
FINAL_METRICS = "metrics.json"  # in reports/, written by the final evaluation


class Stage(enum.IntEnum):
    """How far a run got, in order; each stage is written atomically as it completes."""

    TRAINING = 1  # epochs left to train (state.json: the last complete epoch)
    TRAINED = 2  # training ended: all epochs, early stopping or the time budget (state.json says so)
    EVALUATED = 3  # best weights evaluated, final metrics logged (stage.json); artifacts may be missing
    FINISHED = 4  # every artifact uploaded and the run ended FINISHED (stage.json, or MLflow's status)


def training_ended(state: dict[str, Any], epochs: int) -> bool:
    """True when no epoch is left to train: the last epoch's ``state.json`` says training ended
    (all epochs, early stopping, the time budget). A ``state.json`` of fer_exp before it said
    so: all epochs trained, or early stopping's counters say it stopped.

    >>> training_ended({"epochs_done": 2, "training_ended": True}, 5), training_ended({"epochs_done": 2}, 5)
    (True, False)
    """
    stopped = state.get("callbacks", {}).get("early_stopping", {}).get("stopped_epoch", 0)
    return bool(state.get("training_ended")) or state["epochs_done"] >= epochs or bool(stopped)


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

    @property
    def predictions(self) -> Path:
        """The best checkpoint's validation predictions (:mod:`fer_exp.analysis.predictions`),
        logged under ``predictions/``."""
        return self._sub("predictions")

    def _sub(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write_info(self, run_id: str, tracking_uri: str, config: dict[str, Any], private: bool = False) -> None:
        """``run.json``: what resume and sync need to find the run again. It keeps the tracking
        URI and the config as they are (resume must reconnect): ``private`` (they hold a secret)
        makes it readable by its owner only."""
        info = {"run_id": run_id, "tracking_uri": tracking_uri, "config": config}
        path = self.root / RUN_INFO
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(info, indent=1))
        if private:
            path.chmod(0o600)  # also when the file existed

    def read_info(self) -> dict[str, Any]:
        """``run.json`` as written by :meth:`write_info`."""
        info = _read_json(self.root / RUN_INFO)
        _require(self.root / RUN_INFO, info, {"run_id": str, "tracking_uri": str, "config": dict})
        return info

    def read_state(self) -> dict[str, Any] | None:
        """The last complete epoch's ``checkpoints/state.json``; None before the first epoch ended.
        A damaged file is a UserError naming it."""
        path = self.root / "checkpoints" / STATE
        if not path.exists():
            return None
        state = _read_json(path)
        _require(path, state, {"epochs_done": int, "last_checkpoint": str, "history": dict})
        return state

    def stage(self, state: dict[str, Any], epochs: int, mlflow_status: str | None) -> Stage:
        """The one rule for how far a run got, from what its folder and MLflow record: finished
        once ``stage.json`` or MLflow says so (a run of fer_exp before ``stage.json`` has only
        MLflow's word), else evaluated once ``stage.json`` says so, else trained once ``state.json``
        says training ended (:func:`training_ended`), else still training."""
        recorded = self._progress().get("stage")
        if recorded == Stage.FINISHED.name.lower() or mlflow_status == "FINISHED":
            return Stage.FINISHED
        if recorded == Stage.EVALUATED.name.lower():
            return Stage.EVALUATED
        return Stage.TRAINED if training_ended(state, epochs) else Stage.TRAINING

    def record_stage(self, stage: Stage) -> None:
        """Record that the run completed ``stage`` (EVALUATED or FINISHED), atomically."""
        self._write_progress({**self._progress(), "stage": stage.name.lower()})

    def results(self) -> dict[str, Path]:
        """The artifacts a run uploads when it has been evaluated, by their MLflow folder."""
        return {
            "plots": self.plots,
            "reports": self.reports,
            "predictions": self.predictions,
            "model": self.checkpoints / "best.keras",
        }

    def uploaded(self) -> set[str]:
        """The names of :meth:`results` already sent to MLflow (or journaled for it)."""
        return set(self._progress().get("uploaded", []))

    def record_upload(self, name: str) -> None:
        """Record that the artifact ``name`` of :meth:`results` was sent (or journaled)."""
        self._write_progress({**self._progress(), "uploaded": sorted(self.uploaded() | {name})})

    def read_final_metrics(self) -> dict[str, float]:
        """The final metrics the evaluation wrote (``reports/metrics.json``)."""
        return _read_json(self.root / "reports" / FINAL_METRICS)

    def _progress(self) -> dict[str, Any]:
        path = self.root / STAGE
        if not path.exists():
            return {}
        progress = _read_json(path)
        _require(path, progress, {})
        return progress

    def _write_progress(self, progress: dict[str, Any]) -> None:
        # through a temporary file and a rename: an interrupt leaves the old record or the new one
        tmp = self.root / f".{STAGE}.tmp"
        tmp.write_text(json.dumps(progress, indent=1))
        os.replace(tmp, self.root / STAGE)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(_damaged(path, str(exc).splitlines()[0])) from None


def _require(path: Path, record: Any, keys: dict[str, type]) -> None:
    if not isinstance(record, dict):
        raise UserError(_damaged(path, f"a JSON {type(record).__name__}, not an object"))
    for key, kind in keys.items():
        if not isinstance(record.get(key), kind):
            raise UserError(_damaged(path, f"{key!r} is missing or not a {kind.__name__}"))


def _damaged(path: Path, why: str) -> str:
    return (
        f"{path} is damaged ({why}): the run cannot be continued from it. "
        "Restore the file from a copy, or start the run again without resume="
    )


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
