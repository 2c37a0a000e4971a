"""What the steps of a run share: how the job was launched, where training starts, and the
frozen context they all read."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_exp.config import RunConfig
from fer_exp.data.sources import Splits
from fer_exp.runs.folder import RunFolder, Stage
from fer_exp.tracking import Tracker
from fer_exp.tracking.redact import redact_text


def redacted_overrides(overrides: Iterable[str], secret_keys: Collection[str]) -> list[str]:
    """Overrides as typed, fit to log: the value of a secret key masked, URL credentials stripped.

    >>> redacted_overrides(["epochs=3", "+db.password=x", "tracking_uri=http://u:p@host"], {"db.password"})
    ['epochs=3', '+db.password=***', 'tracking_uri=http://***@host']
    """
    out = []
    for o in overrides:
        key = o.split("=", 1)[0]
        out.append(f"{key}=***" if key.lstrip("+~") in secret_keys else redact_text(o))
    return out


@dataclass(frozen=True)
class JobInfo:
    """Where this job writes and how Hydra launched it.

    Args:
        output_dir: the run's folder (Hydra's ``runtime.output_dir``).
        overrides: the command line's overrides, as typed.
        job_num: the job's number in a sweep (None for a single run).
        sweep_dir: the sweep's folder (None for a single run).
        log_file: the job's log file, uploaded when the run ends.
        hydra_yaml: Hydra's runtime config of this job, already redacted.
        secret_keys: dotted config keys whose values must never be logged.
        extra_tags: MLflow tags to add (a sweep's parent run id).
        choices: config group -> chosen option (``augmentation: seed``).
    """

    output_dir: Path
    overrides: tuple[str, ...] = ()
    job_num: int | None = None
    sweep_dir: str | None = None
    log_file: Path | None = None
    hydra_yaml: str | None = None
    secret_keys: frozenset[str] = frozenset()
    extra_tags: dict[str, str] = field(default_factory=dict)
    choices: dict[str, str] = field(default_factory=dict)

    def redacted_overrides(self) -> list[str]:
        """The overrides with secret values masked and URL credentials stripped."""
        return redacted_overrides(self.overrides, self.secret_keys)

    def default_name(self, model: str) -> str:
        """A run name that says what this job changed: its overrides, secrets masked, with the
        job number first in a sweep; without overrides, the presets it ran with. The MLflow UI
        then shows what each run is rather than a random name.

        >>> job = JobInfo(Path("out"), ("epochs=3", "db.password=x"), secret_keys=frozenset({"db.password"}))
        >>> job.default_name("small_cnn")
        'epochs=3 db.password=***'
        >>> JobInfo(Path("out"), job_num=2, choices={"augmentation": "seed"}).default_name("small_cnn")
        '#2 defaults: model=small_cnn augmentation=seed'
        """
        name = " ".join(self.redacted_overrides())[:200]  # MLflow's UI cuts long names anyway
        if not name:
            presets = {"model": model, **{g: self.choices[g] for g in ("model", "augmentation") if g in self.choices}}
            name = "defaults: " + " ".join(f"{group}={option}" for group, option in presets.items())
        return f"#{self.job_num} {name}" if self.job_num is not None else name


def run_name(cfg: RunConfig, job: JobInfo) -> str:
    """The MLflow run's name: ``cfg.run_name`` when set, else :meth:`JobInfo.default_name`.
    A ``run_name`` read from a secret (``${oc.env:API_TOKEN}``) is never shown: the default
    name is used, where it reads ``run_name=***``."""
    if cfg.run_name and "run_name" not in job.secret_keys:
        return redact_text(cfg.run_name)
    return job.default_name(cfg.model.name)


@dataclass(frozen=True)
class Start:
    """Where the run starts: epoch 0 with a new model, or where an interrupted run stopped:
    its last checkpoint (``state.json``: epochs done, history, callback counters, time) and
    the stage it completed (:class:`~fer_exp.runs.folder.Stage`)."""

    state: dict[str, Any] | None = None
    stage: Stage = Stage.TRAINING

    @property
    def fresh(self) -> bool:
        """A new run (nothing trained yet, nothing logged yet)."""
        return self.state is None

    @property
    def epochs_done(self) -> int:
        """Epochs already trained (0 for a new run)."""
        return (self.state or {}).get("epochs_done", 0)

    @property
    def train_time_s(self) -> float:
        """Training time already spent by the runs this one continues."""
        return (self.state or {}).get("train_time_s", 0.0)


@dataclass(frozen=True)
class RunContext:
    """Everything the steps of one run share, fixed before the first step."""

    cfg: RunConfig
    job: JobInfo
    splits: Splits | None  # None when a resumed run has nothing left that reads the data
    folder: RunFolder
    tracker: Tracker
    start: Start = Start()


@dataclass(frozen=True)
class RunResult:
    """What a finished run returns (its final metrics are also in MLflow)."""

    run_id: str
    best_val_accuracy: float
    val_macro_f1: float
    best_epoch: int
    epochs_run: int
    output_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)  # every final metric logged
