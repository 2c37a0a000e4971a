"""What successive halving would have saved and lost on a study that ran without a pruner.

    python scripts/replay_pruning.py                              # ./optuna.db, its only study
    python scripts/replay_pruning.py --storage sqlite:///runs/optuna.db --study NAME \\
        --warmup 3 4 5 --reduction-factor 3 --bootstrap-count 0 1 --json replay.json
    python scripts/replay_pruning.py --storage sqlite:///s1/optuna.db sqlite:///s2/optuna.db \\
        --warmup 4 5 6 --reduction-factor 2 3        # two seeds' studies, and the median over them

Each trial of an unpruned study reported its validation metric after every epoch. This
replays those reports, trial by trial in the study's order (one worker), through fer_exp's own
successive-halving pruner (:func:`fer_exp.sweeps.pruning.make_pruner`) for every combination of
the settings given, and prints, for each, the epochs the trials would have trained (and their
share of the unpruned study's), how many would have been pruned, and the best value of the
trials that would have trained to the end against the unpruned study's best. It trains nothing,
so it takes seconds: run one study without a pruner (on a subset, or with fewer trials), then
choose the first cut here before paying for the pruned studies.

Several ``--storage`` URLs (unpruned studies of other seeds) replay each study and add, per
setting, the median over them: choose the cut on a few seeds, not on one study's luck.

What it cannot show: in a real pruned study a sampler that learns (TPE) learns from the pruned
trials and proposes different ones, so the replay measures the pruner's decisions on the same
trials, not the whole pruned study (docs/studies.md, "Where to put the first cut"). With
``sampler.name=random`` the replay is the pruned study: a random sampler proposes the same
trials whatever was pruned, and a trial with a fixed seed on one CPU trains the same way
twice (on a GPU it need not).

Prints a table per study and, as its last line, one JSON object (also written to ``--json
PATH``): the study's, or with several studies ``{"studies": [...], "medians": [...]}``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from statistics import median

import optuna

from fer_exp.sweeps.pruning import make_pruner


def replay(trials: Sequence[tuple[dict[int, float], float]], pruner_cfg: dict, direction: str) -> dict:
    """Replay the trials' per-epoch reports through the pruner ``pruner_cfg`` describes.

    Args:
        trials: in the study's order, each trial's reports by epoch and its final value.
        pruner_cfg: a study's ``pruner`` section (``name``, ``warmup_epochs``, ...).
        direction: ``maximize`` or ``minimize``.

    Returns:
        ``epochs`` trained, ``pruned`` trials and ``best``: the best value of the trials that
        would have trained to the end (None when the pruner stops every trial).
    """
    study = optuna.create_study(direction=direction, pruner=make_pruner(pruner_cfg))
    epochs, pruned, finished = 0, 0, []
    for reports, value in trials:
        trial = study.ask()
        for epoch in sorted(reports):
            trial.report(reports[epoch], epoch)
            epochs += 1
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                pruned += 1
                break
        else:
            study.tell(trial, value)
            finished.append(value)
    best = (max if direction == "maximize" else min)(finished) if finished else None
    return {"epochs": epochs, "pruned": pruned, "best": best}


def load_trials(storage: str, study_name: str | None) -> tuple[str, str, list[tuple[dict[int, float], float]]]:
    """The study's name, direction and finished trials (reports by epoch, value), refusing a
    study that pruned or has no finished trial: the replay needs every trial's every epoch."""
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if study_name is None:
        if len(names) != 1:
            listed = ", ".join(names) if names else "none"
            raise SystemExit(f"error: {storage} holds {len(names)} studies ({listed}): pass --study NAME")
        study_name = names[0]
    elif study_name not in names:
        raise SystemExit(f"error: no study {study_name!r} in {storage} (studies: {', '.join(names) or 'none'})")
    study = optuna.load_study(study_name=study_name, storage=storage)
    if len(study.directions) != 1:
        raise SystemExit(f"error: study {study_name!r} has two objectives, and two-objective studies cannot prune")
    states = [t.state for t in study.trials]
    if optuna.trial.TrialState.PRUNED in states:
        raise SystemExit(
            f"error: study {study_name!r} pruned {states.count(optuna.trial.TrialState.PRUNED)} of its "
            f"{len(states)} trials: "
            "replay a study run with hydra.sweeper.pruner.name=none, whose trials trained every epoch"
        )
    done = [(dict(t.intermediate_values), t.value) for t in study.trials if t.state.name == "COMPLETE"]
    if not done or not all(reports for reports, _ in done):
        raise SystemExit(f"error: study {study_name!r} has no finished trial with per-epoch reports")
    return study_name, study.direction.name.lower(), done


def replay_study(name: str, direction: str, trials, settings) -> dict:
    """The unpruned study's trials, epochs and best, and its ``replays``: for every (warmup,
    reduction factor, bootstrap count) in ``settings``, the epochs the trials would have trained,
    their share of the study's, the pruned trials, the best and its difference from the
    unpruned best in points (None when no trial would have finished)."""
    total = sum(len(reports) for reports, _ in trials)
    full_best = (max if direction == "maximize" else min)(value for _, value in trials)
    rows = []
    for warmup, factor, boot in settings:
        cfg = {"name": "successive_halving", "warmup_epochs": warmup, "reduction_factor": factor}
        out = replay(trials, {**cfg, "bootstrap_count": boot}, direction)
        diff = None if out["best"] is None else round(100 * (out["best"] - full_best), 2)
        rows.append(
            {
                "warmup": warmup,
                "reduction_factor": factor,
                "bootstrap_count": boot,
                **out,
                "epochs_share": out["epochs"] / total,
                "best_diff_points": diff,
            }
        )
    return {"study": name, "direction": direction, "trials": len(trials), "epochs": total, "best": full_best} | {
        "replays": rows
    }


def medians(studies: Sequence[list[dict]]) -> list[dict]:
    """Per setting, over several studies' replays (the same settings in the same order): the
    median share of the epochs, the median difference, and in how many studies no trial would
    have finished. A setting that finishes no trial in some study has no median difference
    (None): it lost that study's best altogether."""
    out = []
    for rows in zip(*studies):
        diffs = [r["best_diff_points"] for r in rows if r["best_diff_points"] is not None]
        out.append(
            {
                **{k: rows[0][k] for k in ("warmup", "reduction_factor", "bootstrap_count")},
                "epochs_share": median(r["epochs_share"] for r in rows),
                "best_diff_points": round(median(diffs), 2) if len(diffs) == len(rows) else None,
                "no_finisher": len(rows) - len(diffs),
            }
        )
    return out


def _diff(points: float | None) -> str:
    return "no finisher" if points is None else f"{points:+.2f} points"


def main(argv: Sequence[str] | None = None) -> dict:
    """Replay each study for every combination of the settings; print the tables and the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--storage",
        nargs="+",
        default=["sqlite:///optuna.db"],
        help="the study's storage URL; several (studies of other seeds) add the median over them",
    )
    parser.add_argument("--study", help="the study's name in each storage (default: the storage's only study)")
    parser.add_argument("--warmup", type=int, nargs="+", default=[2, 3, 4, 5, 6], help="epochs before the first cut")
    parser.add_argument("--reduction-factor", type=int, nargs="+", default=[3], help="keep 1/r at each cut")
    parser.add_argument(
        "--bootstrap-count", type=int, nargs="+", default=[0, 1], help="the first b trials at a cut stop"
    )
    parser.add_argument("--json", type=Path, help="also write the JSON object here")
    args = parser.parse_args(argv)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    loaded = [load_trials(storage, args.study) for storage in args.storage]  # every error before any replay
    settings = list(itertools.product(args.warmup, args.reduction_factor, args.bootstrap_count))
    results = []
    for storage, (name, direction, trials) in zip(args.storage, loaded):
        study = replay_study(name, direction, trials, settings)
        where = f" in {storage}" if len(args.storage) > 1 else ""
        print(
            f"study {name}{where}: {study['trials']} trials, {study['epochs']} epochs,"
            f" best {study['best']:.4f} ({direction})"
        )
        print(
            f"{'warmup':>6} {'r':>3} {'bootstrap':>9} {'epochs':>7} {'share':>6} {'pruned':>6} {'best':>7} {'diff':>12}"
        )
        for r in study["replays"]:
            best = "none" if r["best"] is None else f"{r['best']:.4f}"
            print(
                f"{r['warmup']:>6} {r['reduction_factor']:>3} {r['bootstrap_count']:>9} {r['epochs']:>7}"
                f" {r['epochs_share']:>6.0%} {r['pruned']:>6} {best:>7} {_diff(r['best_diff_points']):>12}"
            )
        results.append(study)
    result = results[0]
    if len(results) > 1:
        result = {"studies": results, "medians": medians([r["replays"] for r in results])}
        print(f"\nmedian over the {len(results)} studies")
        print(f"{'warmup':>6} {'r':>3} {'bootstrap':>9} {'share':>6} {'diff':>12} {'no finisher':>11}")
        for m in result["medians"]:
            print(
                f"{m['warmup']:>6} {m['reduction_factor']:>3} {m['bootstrap_count']:>9} {m['epochs_share']:>6.0%}"
                f" {_diff(m['best_diff_points']):>12} {m['no_finisher']:>11}"
            )
    line = json.dumps(result)
    if args.json:
        args.json.write_text(line + "\n")
    print(line)
    return result


if __name__ == "__main__":
    main()
