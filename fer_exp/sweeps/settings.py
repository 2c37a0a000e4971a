"""The sweeper's settings (``hydra.sweeper.*``) and their checks, run before any trial.

:class:`OptunaSweeperConf` is what the Hydra plugin registers as ``hydra/sweeper:
fer_exp_optuna``; :func:`check_settings` is the pre-flight (``fer_exp.cli.run.preflight``)
and the sweeper's own first step: an unknown sampler or pruner, directions that do not
match the objectives, or a storage that cannot be reached is one :class:`ConfigError`.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from fer_exp.config.suggest import unknown_name
from fer_exp.errors import ConfigError
from fer_exp.sweeps.pruning import PRUNERS, default_settings, make_pruner
from fer_exp.tracking.redact import redact_text
from fer_exp.training.monitors import monitor_mode

TARGET = "hydra_plugins.fer_exp_optuna.sweeper.FerExpOptunaSweeper"
SAMPLERS = ("tpe", "random", "cmaes", "nsga2")
# how TPE ranks pruned trials against finished ones (fer_exp.sweeps.ranking)
RANKINGS = ("finished_first", "shared_epoch")
# hydra-submitit-launcher's launchers, by the submitit executor that runs their jobs
_SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher."
SUBMITIT_CLUSTERS = {_SUBMITIT + "SlurmLauncher": "slurm", _SUBMITIT + "LocalLauncher": "local"}
DIRECTIONS = ("maximize", "minimize")


@dataclass
class OptunaSweeperConf:
    """``hydra.sweeper`` of ``hydra/sweeper=fer_exp_optuna`` (see docs/studies.md)."""

    _target_: str = TARGET
    study_name: str = "${experiment_name}"
    # relative sqlite paths are resolved against the launch folder, beside mlflow.db
    storage: str = "sqlite:///optuna.db"
    n_trials: int = 20  # in total for the study, over every run of the command
    n_jobs: int = 1  # asynchronous worker processes; 1 runs the trials in the sweep's process
    # (with a submitit launcher, hydra/launcher=slurm: n_jobs jobs, each one worker)
    launcher: str = "${hydra.launcher._target_}"  # read for the checks, not to be set
    direction: str = "maximize"  # of optimized_metric, when objectives is not set
    directions: list[str] | None = None  # one per objective
    objectives: list[str] | None = None  # final metrics (reports/metrics.json)
    # ranking: how TPE ranks pruned against finished trials (RANKINGS; fer_exp.sweeps.ranking)
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe", "seed": None, "ranking": "finished_first"})
    pruner: dict[str, Any] = field(default_factory=default_settings)  # every pruner's keys
    # when the study ends, train the top_k trials' settings again under `seeds` new seeds each
    confirm: dict[str, Any] = field(default_factory=lambda: {"top_k": 0, "seeds": 3})
    heartbeat_s: int = 60  # a worker silent for 2 x this long has its trial marked FAIL
    params: dict[str, str] | None = None


def objectives(settings: Mapping[str, Any], optimized_metric: str) -> tuple[list[str], list[str]]:
    """The study's metric names and their directions.

    >>> objectives({"direction": "maximize"}, "val_macro_f1")
    (['val_macro_f1'], ['maximize'])
    >>> objectives({"objectives": ["best_val_accuracy", "train_time_s"], "directions": ["maximize", "minimize"]}, "x")
    (['best_val_accuracy', 'train_time_s'], ['maximize', 'minimize'])
    """
    names = list(settings.get("objectives") or [optimized_metric])
    directions = list(settings.get("directions") or [settings.get("direction") or "maximize"])
    if len(directions) == 1 and len(names) > 1:
        raise ConfigError(
            f"hydra.sweeper.objectives has {len(names)} metrics: give hydra.sweeper.directions one each, "
            f"e.g. [{', '.join(['maximize'] * len(names))}]"
        )
    if len(directions) != len(names):
        raise ConfigError(
            f"hydra.sweeper.directions has {len(directions)} entries for {len(names)} objectives "
            f"({', '.join(names)}): give one direction per objective"
        )
    for d in directions:
        if d not in DIRECTIONS:
            raise ConfigError(unknown_name("hydra.sweeper.direction", d, DIRECTIONS, "direction"))
    return names, directions


def check_settings(settings: Mapping[str, Any], optimized_metric: str, cwd: Path | None = None) -> None:
    """Raise one ConfigError for the first thing wrong with the sweeper's settings: sampler,
    pruner (and which way its monitor improves), directions, trial and worker counts, launcher,
    storage (reached, nothing created)."""
    sampler = str((settings.get("sampler") or {}).get("name", "tpe"))
    if sampler not in SAMPLERS:
        raise ConfigError(unknown_name("hydra.sweeper.sampler.name", sampler, SAMPLERS, "sampler"))
    check_ranking(settings.get("sampler") or {})
    pruner = str((settings.get("pruner") or {}).get("name", "none"))
    if pruner not in PRUNERS:
        raise ConfigError(unknown_name("hydra.sweeper.pruner.name", pruner, PRUNERS, "pruner"))
    try:
        make_pruner(settings.get("pruner") or {})
    except ConfigError as exc:
        raise ConfigError(f"hydra.sweeper.{exc}") from None
    check_monitor(settings.get("pruner") or {}, *objectives(settings, optimized_metric))
    cluster = SUBMITIT_CLUSTERS.get(str(settings.get("launcher")))
    for key in ("n_trials", "n_jobs"):
        if int(settings.get(key) or 0) >= 1:
            continue
        if key == "n_jobs" and cluster:  # there it counts jobs, which a user may not expect
            raise ConfigError(
                f"hydra.sweeper.n_jobs={settings.get(key)} with a submitit launcher: it is the number of jobs, "
                "each one worker of the study; give at least 1 (e.g. hydra.sweeper.n_jobs=8)"
            )
        raise ConfigError(f"hydra.sweeper.{key}={settings.get(key)} must be at least 1")
    check_confirm(settings.get("confirm") or {}, objectives(settings, optimized_metric)[0])
    if cluster:
        check_launcher(cluster, settings, cwd)
    check_storage(str(settings.get("storage")), cwd or Path.cwd())


def check_confirm(confirm: Mapping[str, Any], names: list[str]) -> None:
    """Refuse confirmation settings that cannot work: ``top_k`` below 0, ``seeds`` below 1, an
    unknown key, or a confirmation of a study with several objectives (no one best to confirm)."""
    unknown = sorted(set(confirm) - {"top_k", "seeds"})
    if unknown:
        raise ConfigError(f"hydra.sweeper.confirm.{unknown[0]} is not a setting: confirm takes top_k and seeds")
    for key, least in (("top_k", 0), ("seeds", 1)):
        value = confirm.get(key, least)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ConfigError(f"hydra.sweeper.confirm.{key}={value!r} must be a whole number of at least {least}")
    if confirm.get("top_k") and len(names) > 1:
        raise ConfigError(
            f"hydra.sweeper.confirm.top_k={confirm['top_k']} with {len(names)} objectives: a Pareto front has no one "
            "best to confirm; set hydra.sweeper.confirm.top_k=0"
        )


def check_ranking(sampler: Mapping[str, Any]) -> None:
    """Refuse an unknown ``sampler.ranking``, or ``shared_epoch`` with a sampler other than TPE
    (the only one that ranks trials into good and bad).

    >>> check_ranking({"name": "random", "ranking": "shared_epoch"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    fer_exp.errors.ConfigError: hydra.sweeper.sampler.ranking=shared_epoch is TPE's: ...
    """
    ranking = str(sampler.get("ranking", "finished_first"))
    if ranking not in RANKINGS:
        raise ConfigError(unknown_name("hydra.sweeper.sampler.ranking", ranking, RANKINGS, "ranking"))
    name = str(sampler.get("name", "tpe"))
    if ranking == "shared_epoch" and name != "tpe":
        raise ConfigError(
            f"hydra.sweeper.sampler.ranking=shared_epoch is TPE's: the {name} sampler does not rank trials; "
            "set hydra.sweeper.sampler.name=tpe, or drop the ranking"
        )


def check_monitor(pruner: Mapping[str, Any], names: list[str], directions: list[str]) -> None:
    """Refuse a pruner whose monitor improves the other way than the study's objective: the
    pruner compares the reports in the study's direction, so it would keep the worst trials.

    >>> check_monitor({"name": "median", "monitor": "val_loss"}, ["accuracy"], ["maximize"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    fer_exp.errors.ConfigError: hydra.sweeper.pruner.monitor=val_loss falls as a run improves, but the study ...
    """
    name, monitor = str(pruner.get("name", "none")), str(pruner.get("monitor", "val_accuracy"))
    if name == "none" or len(directions) != 1:  # nothing pruned; two objectives cannot prune
        return
    rises = monitor_mode(monitor) == "max"
    if rises == (directions[0] == "maximize"):
        return
    if rises:
        fix = "monitor val_loss, or maximize an objective that rises"
    else:
        fix = "monitor val_accuracy or val_f1, or set hydra.sweeper.direction=minimize for an objective that falls"
    raise ConfigError(
        f"hydra.sweeper.pruner.monitor={monitor} {'rises' if rises else 'falls'} as a run improves, but the study "
        f"{directions[0]}s {names[0]}: the pruner would keep the worst trials; {fix}"
    )


def check_launcher(cluster: str, settings: Mapping[str, Any], cwd: Path | None = None) -> None:
    """Raise one ConfigError when the workers cannot run as submitit jobs on ``cluster``
    (``slurm`` or ``local``): an sqlite storage shared by Slurm jobs that may run on several
    machines (sqlite's locks do not hold across machines), or no Slurm here."""
    typed = str(settings.get("storage"))
    if cluster == "slurm" and storage_url(typed, cwd or Path.cwd()).startswith("sqlite"):
        raise ConfigError(
            f"hydra.sweeper.storage={redact_text(typed)} with hydra/launcher=slurm: Slurm jobs on several "
            "machines cannot share an sqlite file reliably; use a PostgreSQL storage, e.g. "
            "'hydra.sweeper.storage=${oc.env:OPTUNA_STORAGE}' (see docs/many-machines.md)"
        )
    if cluster == "slurm" and not shutil.which("sbatch"):
        raise ConfigError(
            "hydra/launcher=slurm: no sbatch on this machine's PATH; run the command where Slurm jobs are "
            "submitted (a login node), or start it as a job array (see docs/many-machines.md)"
        )


def storage_url(url: str, cwd: Path) -> str:
    """``url`` with a relative sqlite path made absolute against ``cwd`` (workers and reruns
    then find the same file wherever they start), and ``postgresql://`` on psycopg2 when
    psycopg 3 (SQLAlchemy 2.1's default driver) is not installed.

    >>> storage_url("sqlite:///optuna.db", Path("/runs"))
    'sqlite:////runs/optuna.db'
    """
    if url.startswith("postgresql://") and not find_spec("psycopg") and find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/") and ":memory:" not in url:
        return prefix + str(cwd / url[len(prefix) :])
    return url


def check_storage(url: str, cwd: Path) -> None:
    """Raise ConfigError when Optuna's storage ``url`` cannot be used: an sqlite file whose
    folder is missing, a database server that does not answer (5 s), a driver not installed.
    Nothing is created."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    shown = redact_text(url)
    try:
        parsed = make_url(storage_url(url, cwd))
    except Exception:
        raise ConfigError(
            f"hydra.sweeper.storage={shown} is not a database URL: use sqlite:///optuna.db or postgresql://user@host/db"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        folder = Path(parsed.database or ".").parent
        if parsed.database and not folder.is_dir():
            raise ConfigError(f"hydra.sweeper.storage={shown}: the folder {folder} does not exist")
        return
    args = {"connect_timeout": 5} if parsed.get_backend_name() in ("postgresql", "mysql") else {}
    try:
        engine = create_engine(parsed, connect_args=args)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        reason = redact_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise ConfigError(
            f"hydra.sweeper.storage={shown} cannot be reached ({reason}): start the database or fix the URL"
        ) from None
