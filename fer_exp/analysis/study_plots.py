"""A study's pictures, drawn by Optuna's matplotlib visualizations: the optimization history
(each trial's value and the best so far), the parameter importances (fANOVA), every trial's
per-epoch validation metric (pruned trials are the curves that stop early) and, for two
objectives, the Pareto front.

Optuna draws with pyplot and switches the process to its ``ggplot`` style; each picture is
drawn inside its own ``rc_context`` so fer_exp's other pictures keep their look, at a size and
resolution that reads on a laptop screen. A picture the study cannot have yet (importances
need two finished trials that differ) is skipped with a log line, never an error.
"""

from __future__ import annotations

import logging
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path

from fer_exp.errors import UserError
from fer_exp.tracking.redact import MASK, redact_text

log = logging.getLogger(__name__)

# One look for every picture: large enough to read when opened from the MLflow UI.
_RC = {"figure.figsize": (9, 5.5), "font.size": 11, "axes.titlesize": 13, "legend.fontsize": 9}


def _draw(path: Path, plot: Callable[[], object], title: str) -> Path | None:
    """Draw one Optuna picture, give it ``title``, write it to ``path``; None when Optuna
    cannot draw it for this study."""
    import matplotlib
    import matplotlib.pyplot as plt
    import optuna

    with matplotlib.rc_context(_RC), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # matplotlib plots
        warnings.filterwarnings("ignore", "PedAnovaImportanceEvaluator computes")  # we flip the sign for it
        try:
            ax = plot()
        except (ValueError, RuntimeError) as exc:  # too few trials, one value everywhere, ...
            log.info("no %s: %s", path.name, exc)
            plt.close("all")
            return None
        fig = ax.figure
        ax.set_title("", loc="left")  # Optuna's own title, where ours would overlap it
        # over the figure, not the axes: long setting names push the axes (and a title over them) right
        fig.suptitle("\n".join(textwrap.wrap(title, 80)), fontsize=_RC["axes.titlesize"])
        fig.set_size_inches(*_RC["figure.figsize"])
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return path


def study_plots(study, objectives: list[str], out_dir: Path, monitor: str = "val_accuracy") -> list[Path]:
    """Write the study's pictures to ``out_dir``; returns the files written.

    Args:
        study: an ``optuna.Study`` (loaded from its storage).
        objectives: the study's metric names, one per objective, for the axes.
        out_dir: where the PNGs go (created).
        monitor: the per-epoch metric the trials reported to the pruner.
    """
    from optuna.study import StudyDirection
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as plots

    out_dir.mkdir(parents=True, exist_ok=True)
    name = study.study_name
    finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    pruned = len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
    counts = f"{finished} finished, {pruned} pruned"
    first = objectives[0]
    by_first = importance_of_first = None
    if len(objectives) > 1:  # Optuna wants a target then; importances take it as "lower is better"
        sign = -1.0 if study.directions[0] == StudyDirection.MAXIMIZE else 1.0
        by_first, importance_of_first = (lambda t: t.values[0]), (lambda t: sign * t.values[0])
    drawn = [
        _draw(
            out_dir / "optimization_history.png",
            lambda: _history(plots, study, by_first, first),
            f"study {name}: {first} per trial ({counts})",
        ),
        _draw(
            out_dir / "param_importances.png",
            lambda: _importances(plots, study, importance_of_first, first),
            f"study {name}: which settings mattered for {first}",
        ),
    ]
    if len(objectives) == 1 and any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        drawn.append(
            _draw(
                out_dir / "intermediate_values.png",
                lambda: _intermediate(plots, study, monitor),
                f"study {name}: per-epoch value reported to the pruner ({counts})",
            )
        )
    if len(objectives) == 2:
        drawn.append(
            _draw(
                out_dir / "pareto_front.png",
                lambda: plots.plot_pareto_front(study, target_names=list(objectives)),
                f"study {name}: Pareto front ({' vs '.join(objectives)})",
            )
        )
    return [p for p in drawn if p is not None]


def _whole_numbers(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # no trial 2.5, no epoch 1.5


def _history(plots, study, target, name: str):
    """Optuna's optimization history, trials numbered in whole numbers."""
    ax = plots.plot_optimization_history(study, target=target, target_name=name)
    ax.set_xlabel("trial")
    _whole_numbers(ax.xaxis)
    return ax


def _importances(plots, study, target, name: str):
    """Optuna's importances, with room right of the longest bar for its value."""
    with warnings.catch_warnings():  # "importances will be equal": the picture shows that
        warnings.filterwarnings("ignore", message="Target and region quantiles")
        ax = plots.plot_param_importances(study, target=target, target_name=name)
    ax.set_xlim(0, ax.get_xlim()[1] * 1.1)
    ax.set_ylabel("")  # the setting names say it
    return ax


def _intermediate(plots, study, monitor: str):
    """Optuna's intermediate-values plot, its legend (one line per trial) left out: with 20+
    trials it would hide the curves."""
    ax = plots.plot_intermediate_values(study)
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    ax.set_xlabel("epoch")
    ax.set_ylabel(monitor)
    _whole_numbers(ax.xaxis)
    return ax


def parent_study_plots(client, parent_run_id: str, out_dir: Path, storage: str | None = None) -> list[Path]:
    """The pictures of the study whose MLflow parent run is ``parent_run_id`` (none when that
    sweep is not a study), loaded from ``storage`` or the storage the parent names.

    Raises:
        UserError: the study's storage holds a password, which MLflow does not keep, and
            ``storage`` is not given; or the study is not in the storage.
    """
    import optuna

    from fer_exp.sweeps.study import open_storage

    run = client.get_run(parent_run_id)
    name = run.data.tags.get("fer_exp.study")
    if name is None:
        return []
    url = storage or run.data.tags.get("fer_exp.study_storage", "")
    if MASK in url:
        raise UserError(
            f"study {name!r} lives in {url}, whose password MLflow does not keep: "
            'pass the storage URL with --storage (e.g. --storage "$OPTUNA_STORAGE")'
        )
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url, Path.cwd(), None))
    except KeyError:
        raise UserError(f"no study {name!r} in {redact_text(url)}: pass the study's storage with --storage") from None
    objectives = run.data.params.get("study.objectives", "best_val_accuracy").split(", ")
    return study_plots(study, objectives, out_dir, run.data.tags.get("fer_exp.study_monitor", "val_accuracy"))
