"""What pruning and asynchronous workers buy a sweep, measured on the embedded synthetic faces.

    python scripts/bench_sweeps.py                      # the full measurement
    python scripts/bench_sweeps.py --quick --json out.json

(a) Pruning: one Optuna study over augmentation and learning rate (``hparams_search=optuna``)
    run twice with the same sampler seed, ``pruner=none`` and ``pruner=successive_halving``:
    each study's best value, its total training epochs (the pruned study's share of the
    unpruned one's) and its wall time. Early stopping is off in both, so only the pruner ends
    trials early.
(b) Idle workers: one list of trials of unequal length (``epochs``), two workers, run by fer_exp's
    asynchronous sweeper (the trials enqueued in that order) and by Hydra's BasicSweeper in
    batches of two on the joblib launcher (``max_batch_size=2``, ``n_jobs=2``). A worker's idle
    share of the sweep is ``1 - busy / (workers * wall)``, busy being the sum of the trials'
    MLflow run durations and wall the span from the first run's start to the last one's end.

The design of (a), each choice made after a record showed the previous one measuring noise:

- An epoch is a whole pass over the 2,000 training faces, as an epoch is on real data. With
  epochs of a few batches (this script's first version: 8), the network's predictions still
  swing from one class to another in the first epochs, validation accuracy there is noise, and
  a pruner's first cut is a coin toss.
- The trials use the learning-rate schedule a study uses (``schedule=cosine``, as
  ``experiment=fer2013_augmentation_study``). With the default ``plateau`` over 12 epochs the
  rate hardly drops, validation accuracy still swings widely from one epoch to the next at
  the end, and a trial's best accuracy is its luckiest epoch rather than its settings' worth.
- The validation set is 3,000 faces, not the synthetic data's default 500: with 500, one face
  is 0.2 points and the sampling error of an accuracy near 80 % about 1.8 points, several
  times the 0.5 points the pruned study's best is judged by.
- The trials report their best accuracy so far (``pruner.report=best``, the default).
- A first cut after epoch 4, not 2: the benchmark page's ranking table for the 12-epoch design
  (how well each epoch's accuracy ordered the unpruned trials as the end did) shows the order
  after epoch 2 is close to noise and first holds from epoch 4 (see docs/studies.md, "Where to
  put the first cut"). Trials of 30 epochs, not 20, keep the cuts' cost within the 40 % the
  goal allows.
- The sampler is random (``--sampler random``), not TPE: a sampler that does not learn from
  the results proposes the same settings in both studies, trial by trial, so the difference
  between them is the pruner's decisions alone. With TPE the pruned study learns from the
  values at the cuts and proposes other trials than the unpruned one; the page's TPE tables
  show what that costs, and docs/studies.md why.
- The cuts are after epochs 5, 10 and 20 (``--warmup 5 --reduction-factor 2``) and the first
  trial to reach each cut stops there (``--bootstrap-count 1``). They were chosen with
  ``scripts/replay_pruning.py`` on seed 1's two unpruned studies (TPE's and random's), where
  the cut after epoch 4 with r 3 had stopped the random study's best trial; seeds 2 and 3 were
  measured after the choice. With a random sampler the replay is the pruned study, epoch for
  epoch, on one CPU.

The page's current design is ``--pruning-only --mixed-precision bfloat16`` with these defaults
(bfloat16 on a CPU with AMX or AVX512-BF16; without, the same design in float32 is its own table).

``--epochs``, ``--warmup``, ``--reduction-factor``, ``--bootstrap-count``, ``--n-val``, ``--report``,
``--schedule``, ``--mixed-precision``, ``--ranking`` and ``--sampler`` measure another design; the
benchmark page gives each design its own table. ``--sampler random`` measures the pruner alone: a
sampler that does not learn from the results proposes the same settings in both studies, trial by
trial (the record's ``same_settings`` says whether they did), while TPE in the pruned study learns
from the cuts and proposes other trials than in the unpruned one.

``--chosen-on SEED ...`` records which seeds' measurements chose the design (for the current one,
seed 1: its unpruned study was replayed to pick the cuts); pass it with every record of that
design. The page then marks each seed's row "chose the design" or "held out" and gives the
median and the goal's verdict over the held-out seeds alone, the only ones that test the
design rather than fit it. A design none of whose records says has no such column.

The unpruned study reads none of the pruner's settings (``--warmup``, ``--reduction-factor``,
``--bootstrap-count``, ``--monitor``, ``--ranking``), so ``--unpruned-from EARLIER.json`` reuses the
unpruned study of an earlier run of the same seed and design and runs only the pruned one.
``--mixed-precision bfloat16`` runs the same study in less time on a CPU with AMX or AVX512-BF16
(``scripts/bench_precision.py`` measures how much less); the trials still compare like with like.

Every sweep runs in a fresh folder (its own mlflow.db and optuna.db). Prints the figures and,
as its last line, one JSON object (also written to ``--json PATH``). ``--record`` adds the
result, dated, to ``docs/bench_sweeps.json``, from which ``scripts/benchmark_table.py`` renders
the sweeps section of the benchmark page (:func:`render_sweeps`): one seed says little about
pruning, so the record keeps every seed measured. Each study's best value is its luckiest
finished trial: to compare the settings the two studies chose, keep their folders
(``--workdir DIR``) and train both best trials again with ``scripts/confirm_best.py
DIR/study_none DIR/study_successive_halving``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from benchmark_study import (  # scripts/ is on the path
    better_half,
    categorical,
    choices_after_startup,
    cpu,
    publish,
    rank_by_epoch,
    trial_records,
)

# warmup: epochs before the first cut; reduction_factor r: cuts at w, w·r, ... keep 1/r each;
# train_batches null: whole epochs (see above); n_val: synthetic validation faces (see above);
# idle_batches: train batches an epoch in (b)
FULL = {
    "trials": 24,
    "epochs": 30,
    "warmup": 5,
    "reduction_factor": 2,
    "bootstrap_count": 1,
    "n_val": 3000,
    "report": "best",
    "monitor": "val_accuracy",
    "ranking": "finished_first",
    "sampler": "random",
    "schedule": "cosine",
    "mixed_precision": "off",
    "train_batches": "null",
    "val_batches": "null",
    "idle_epochs": [6, 1, 5, 2, 4, 1, 6, 2],
    "idle_batches": "null",
}
QUICK = {
    **FULL,
    "trials": 3,
    "epochs": 2,
    "warmup": 1,
    "reduction_factor": 3,
    "bootstrap_count": 0,  # with 3 trials, a bootstrap count leaves no trial to finish
    "n_val": 500,
    "train_batches": 1,
    "val_batches": 2,
    "idle_epochs": [2, 1, 1, 1],
    "idle_batches": 1,
}
# what a record's "size" keeps; records made before a key existed had the value given here
SIZE_KEYS = {
    "trials": None,
    "epochs": None,
    "warmup": None,
    "train_batches": None,
    "reduction_factor": 3,
    "n_val": 500,
    "report": "last",
    "schedule": "plateau",
    "mixed_precision": "off",
    "bootstrap_count": 0,
    "monitor": "val_accuracy",
    "ranking": "finished_first",
    "sampler": "tpe",
}
DESIGN_FLAGS = {
    "epochs": int,
    "warmup": int,
    "reduction_factor": int,
    "n_val": int,
    "report": str,
    "schedule": str,
    "mixed_precision": str,
    "bootstrap_count": int,
    "monitor": str,
    "ranking": str,
    "sampler": str,
}
# the design keys only the pruned study reads: an unpruned study measured with other values of
# these is the same study (--unpruned-from); its monitor only decides what its trials report,
# and nothing in it reads the reports; with every trial finished, the sampler's ranking is the
# objective's whatever ``ranking`` says (tests/test_sampler_ranking.py)
PRUNER_KEYS = ("warmup", "reduction_factor", "bootstrap_count", "monitor", "ranking")
# the goal for the pruned study: its best within this many points, with at most this share of the epochs
GOAL_POINTS, GOAL_SHARE = 0.5, 0.40
SEED = 123
# Optuna's TPESampler samples its first n_startup_trials (10) at random; the studies keep its default
TPE_STARTUP = 10
FIRST_FINISHED = 2  # the benchmark page shows the pruned study's first finished trials' choices
RECORD = Path(__file__).resolve().parents[1] / "docs" / "bench_sweeps.json"


def sweep(folder: Path, overrides: list[str]) -> float:
    """``python -m fer_exp -m <overrides>`` in ``folder``; its wall time in seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "fer_exp", "-m", *overrides], cwd=folder, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"error: the sweep in {folder} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def trial_runs(folder: Path, experiment: str) -> list:
    """The finished child runs (trials or jobs) of the sweeps in ``folder``'s mlflow.db."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=10000)
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags and r.info.end_time]


def pruning_study(root: Path, pruner: str, size: dict) -> dict:
    """Run the study with ``pruner``; its best value, training epochs, trials and wall time."""
    import optuna

    folder, name = root / f"study_{pruner}", f"bench_{pruner}"
    wall = sweep(
        folder,
        [
            "hparams_search=optuna",
            "data=synthetic",
            f"data.n_val={size['n_val']}",
            f"schedule={size['schedule']}",
            f"mixed_precision={size['mixed_precision']}",
            f"experiment_name={name}",
            f"epochs={size['epochs']}",
            f"limit_train_batches={size['train_batches']}",
            f"limit_val_batches={size['val_batches']}",
            "preview_images=0",
            "callbacks.early_stopping.enabled=false",
            f"hydra.sweeper.n_trials={size['trials']}",
            f"hydra.sweeper.sampler.name={size['sampler']}",
            f"hydra.sweeper.sampler.seed={size['seed']}",
            f"hydra.sweeper.pruner.name={pruner}",
            f"hydra.sweeper.pruner.warmup_epochs={size['warmup']}",
            f"hydra.sweeper.pruner.reduction_factor={size['reduction_factor']}",
            f"hydra.sweeper.pruner.bootstrap_count={size['bootstrap_count']}",
            f"hydra.sweeper.pruner.report={size['report']}",
            f"hydra.sweeper.pruner.monitor={size['monitor']}",
            f"hydra.sweeper.sampler.ranking={size['ranking']}",
        ],
    )
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'optuna.db'}")
    states = [t.state.name for t in study.trials]
    runs = trial_runs(folder, name)
    result = {
        "best_value": study.best_value,
        "epochs": int(sum(r.data.metrics.get("epochs_run", 0) for r in runs)),
        "trials": len(states),
        "pruned": states.count("PRUNED"),
        "wall_s": round(wall, 1),
    }
    trials = trial_records(study, {})
    if size["sampler"] == "tpe":  # what TPE chose once its random start was over: both studies share that start
        result["sampled_after_startup"] = choices_after_startup(trials, TPE_STARTUP)
    result["settings"] = [t["params"] for t in trials]  # each trial's, in order: did the two studies train the same?
    result["finished"] = finished_trials(trials)
    if pruner == "none":  # every trial trained to the end: where a cut would have ranked them well
        result["rank_by_epoch"] = rank_by_epoch(trials)
        result["rank_by_epoch_better_half"] = rank_by_epoch(better_half(trials))
    return result


def unpruned_from(path: Path, size: dict) -> dict:
    """The earlier run's JSON whose unpruned study (``["pruning"]["none"]``) this run reuses; it
    must have measured the same study: the same seed and design in every key but
    :data:`PRUNER_KEYS`, which it never reads."""
    earlier = json.loads(path.read_text())
    theirs = {**{k: v for k, v in SIZE_KEYS.items()}, **earlier["size"], "seed": earlier["seed"]}
    ours = {k: None if size[k] == "null" else size[k] for k in [*SIZE_KEYS, "seed"]}
    differ = [k for k in ours if k not in PRUNER_KEYS and theirs.get(k) != ours[k]]
    if differ or earlier.get("quick"):
        what = ", ".join(f"{k} {theirs.get(k)!r} there, {ours[k]!r} here" for k in differ) or "a --quick run"
        sys.exit(f"error: {path} measured another unpruned study ({what}): pass the same seed and design")
    return earlier


def same_settings(full: dict, pruned: dict) -> bool | None:
    """Whether the pruned study trained the unpruned one's settings, trial by trial (None when
    either study did not record them). A sampler that does not learn from the results (random)
    proposes the same trials in both, so their difference is then the pruner's alone."""
    if "settings" not in full or "settings" not in pruned:
        return None
    return full["settings"] == pruned["settings"]


def reuse_note(earlier: dict) -> str:
    """What the benchmark page says beside a seed whose unpruned study is ``earlier``'s, with
    the CPU it ran on when that is not this one (its wall time is then another machine's)."""
    where = "" if earlier.get("cpu") == cpu() else f", on {earlier.get('cpu')} ({earlier.get('date')})"
    return f"the unpruned study is the earlier measurement of the same seed (--unpruned-from){where}"


def idle(runs, workers: int) -> dict:
    """Busy and wall time of ``runs`` (MLflow run start/end) and the workers' idle share."""
    starts = [r.info.start_time / 1000 for r in runs]
    ends = [r.info.end_time / 1000 for r in runs]
    busy, wall = sum(e - s for s, e in zip(starts, ends)), max(ends) - min(starts)
    return {"busy_s": round(busy, 1), "wall_s": round(wall, 1), "idle_share": round(1 - busy / (workers * wall), 4)}


def idle_sweeps(root: Path, size: dict) -> dict:
    """The same unequal trials on two workers: fer_exp's async sweeper, then Hydra's batches."""
    import optuna

    epochs = size["idle_epochs"]
    common = ["data=synthetic", f"limit_train_batches={size['idle_batches']}", "preview_images=0"]
    common += [f"limit_val_batches={size['val_batches']}"]
    common += ["callbacks.early_stopping.enabled=false"]
    choices = ",".join(str(e) for e in sorted(set(epochs)))
    folder = root / "async"
    folder.mkdir(parents=True, exist_ok=True)
    queue = optuna.create_study(study_name="idle", storage=f"sqlite:///{folder / 'optuna.db'}", direction="maximize")
    for e in epochs:  # asked for in this order, as the batches below run them
        queue.enqueue_trial({"epochs": e})
    async_wall = sweep(
        folder,
        [
            *common,
            "hydra/sweeper=fer_exp_optuna",
            "experiment_name=idle",
            "hydra.sweeper.study_name=idle",
            f"hydra.sweeper.n_trials={len(epochs)}",
            "hydra.sweeper.n_jobs=2",
            f"epochs=choice({choices})",
        ],
    )
    batch_wall = sweep(
        root / "batch",
        [
            *common,
            "experiment_name=idle",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "hydra.sweeper.max_batch_size=2",
            f"epochs={','.join(str(e) for e in epochs)}",
        ],
    )
    result = {"trial_epochs": epochs, "workers": 2}
    for kind, wall in (("async", async_wall), ("batch", batch_wall)):
        runs = trial_runs(root / kind, "idle")
        result[kind] = {**idle(runs, 2), "trials": len(runs), "sweep_wall_s": round(wall, 1)}
    return result


def print_idle(idle_result: dict) -> None:
    """The (b) table: each sweeper's idle share, busy and wall time."""
    print(f"\n(b) trials of {idle_result['trial_epochs']} epochs on 2 workers")
    print(f"{'sweeper':30s} {'idle share':>10s} {'busy':>8s} {'wall':>8s}")
    labels = {"async": "fer_exp async (ask-run-tell)", "batch": "Hydra batches of 2 (joblib)"}
    for kind, label in labels.items():
        r = idle_result[kind]
        print(f"{label:30s} {r['idle_share']:10.1%} {r['busy_s']:7.0f}s {r['wall_s']:7.0f}s")


def build_parser() -> argparse.ArgumentParser:
    """The command line of :func:`main`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small version (a test runs it)")
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON object here")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the sweeps' folders here (default: a temporary folder, removed at exit)",
    )
    parser.add_argument("--seed", type=int, default=SEED, help=f"the studies' sampler seed (default {SEED})")
    parser.add_argument("--pruning-only", action="store_true", help="measure (a) only")
    for key, kind in DESIGN_FLAGS.items():  # another design for (a): its records get their own table
        flag, text = f"--{key.replace('_', '-')}", f"(a)'s {key} (full: {FULL[key]})"
        parser.add_argument(flag, type=kind, default=None, help=text)
    parser.add_argument(
        "--unpruned-from",
        type=Path,
        default=None,
        help="reuse the unpruned study of an earlier run's --json (same seed and design but the pruner's keys)",
    )
    parser.add_argument(
        "--chosen-on",
        type=int,
        nargs="+",
        default=None,
        metavar="SEED",
        help="the seeds whose measurements chose this design (the page marks the others held out)",
    )
    parser.add_argument(
        "--record", nargs="?", type=Path, const=RECORD, default=None, help=f"add the result to a record ({RECORD.name})"
    )
    return parser


def main() -> None:
    args = build_parser().parse_args()
    size = {**(QUICK if args.quick else FULL), "seed": args.seed}
    size.update({k: getattr(args, k) for k in DESIGN_FLAGS if getattr(args, k) is not None})
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-sweeps-"))
    if args.workdir is None:  # a benchmark run must not leave a study's folders behind on each call
        atexit.register(shutil.rmtree, root, ignore_errors=True)
    env_cache = os.environ.setdefault("FER_EXP_CACHE", str(root / "cache"))  # synthetic faces made once
    print(f"CPU: {cpu()}; load average {os.getloadavg()[0]:.1f}; folders in {root} (cache {env_cache})", flush=True)

    earlier = unpruned_from(args.unpruned_from, size) if args.unpruned_from else None
    studies = {"none": earlier["pruning"]["none"] if earlier else pruning_study(root, "none", size)}
    studies["successive_halving"] = pruning_study(root, "successive_halving", size)
    full, pruned = studies["none"], studies["successive_halving"]
    share = pruned["epochs"] / full["epochs"] if full["epochs"] else None
    print(
        f"\n(a) one study of {size['trials']} trials, up to {size['epochs']} epochs each, sampler seed {args.seed}, "
        f"first cut after epoch {size['warmup']}, reduction factor {size['reduction_factor']}, "
        f"{size['n_val']} validation faces, report {size['report']}, schedule {size['schedule']},"
        f" mixed_precision {size['mixed_precision']}"
    )
    print(f"{'pruner':20s} {'best value':>10s} {'epochs':>7s} {'pruned':>7s} {'wall':>8s}")
    for name, s in studies.items():
        print(f"{name:20s} {s['best_value']:10.4f} {s['epochs']:7d} {s['pruned']:7d} {s['wall_s']:7.0f}s")
    diff = 100 * (pruned["best_value"] - full["best_value"])
    print(f"pruned study: {share:.0%} of the epochs, best value {diff:+.2f} points", flush=True)
    same = same_settings(full, pruned)
    if same is not None:
        print(f"the two studies trained {'the same' if same else 'different'} settings, trial by trial", flush=True)

    idle_result = None if args.pruning_only else idle_sweeps(root, size)
    if idle_result is not None:
        print_idle(idle_result)

    result = {
        "cpu": cpu(),
        "date": time.strftime("%Y-%m-%d"),
        "seed": args.seed,
        **({"chosen_on": sorted(set(args.chosen_on))} if args.chosen_on else {}),  # see chosen_on()
        "size": {k: None if size[k] == "null" else size[k] for k in SIZE_KEYS},
        "quick": args.quick,
        "pruning": {**studies, "epochs_share": share, "best_diff_points": round(diff, 2), "same_settings": same},
        "idle": idle_result,
    }
    if earlier:  # said on the benchmark page beside the seed's row
        result["note"] = reuse_note(earlier)
    publish(result, args.json, args.record)


def design(record: dict) -> tuple:
    """A record's benchmark design (its "size"), keys missing from early records filled in."""
    size = record.get("size", {})
    return tuple(size.get(k, default) for k, default in SIZE_KEYS.items())


def describe_design(key: tuple) -> str:
    """One line naming a design: trials, epochs, validation faces, the cuts and what is reported."""
    d = dict(zip(SIZE_KEYS, key))
    batches = "whole epochs" if d["train_batches"] is None else f"epochs of {d['train_batches']} batches"
    reported = "the best value so far" if d["report"] == "best" else "each epoch's value"
    precision = "" if d["mixed_precision"] == "off" else f", mixed_precision={d['mixed_precision']}"
    bootstrap = f", bootstrap count {d['bootstrap_count']}" if d["bootstrap_count"] else ""
    monitor = "" if d["monitor"] == "val_accuracy" else f" of {d['monitor']}"
    ranking = "" if d["ranking"] == "finished_first" else f"; TPE ranks trials at their shared epoch ({d['ranking']})"
    sampler = "" if d["sampler"] == "tpe" else f"; sampler {d['sampler']}"
    return (
        f"{d['trials']} trials × {d['epochs']} {batches}, {d['n_val']} validation faces, schedule={d['schedule']}"
        f"{precision};"
        f" first cut after epoch {d['warmup']}, reduction factor {d['reduction_factor']}{bootstrap},"
        f" the trials report {reported}{monitor}{ranking}{sampler}"
    )


def medians(ps: list[dict]) -> tuple[float, float]:
    """The pruned studies' median difference (points) and median share of the epochs."""
    return median(p["best_diff_points"] for p in ps), median(p["epochs_share"] for p in ps)


def _goal(ps: list[dict]) -> str:
    """Whether ``ps`` (their median) meet the goal, and by how much each half of it holds."""
    diff, share = medians(ps)
    close, cheap = diff >= -GOAL_POINTS, share <= GOAL_SHARE
    what = "met" if close and cheap else "not met"
    return (
        f"**{what}** (best {diff:+.2f} points: {'within' if close else 'outside'} the goal;"
        f" {share:.0%} of the epochs: {'within' if cheap else 'above'} it)"
    )


def verdict(ps: list[dict], held_out: list[dict] | None = None) -> str:
    """Whether the pruned studies (their median over seeds) meet the goal: the best within
    GOAL_POINTS of the unpruned best with at most GOAL_SHARE of the epochs. ``held_out``: the
    records of the seeds measured after the design was chosen (None when no record says which
    seeds chose it): the line then says whether the goal holds on them alone."""
    seeds = "the median over the seeds" if len(ps) > 1 else "this one seed"
    line = (
        f"\nGoal (the pruned study's best within {GOAL_POINTS} points of the unpruned one, with at most"
        f" {GOAL_SHARE:.0%} of the epochs), by {seeds}: {_goal(ps)}."
    )
    if held_out is None:
        return line
    if not held_out:
        return line + " No seed here was held out: the goal is judged only on the seeds that chose the design."
    seeds_held = _listed([r.get("seed", "—") for r in held_out])
    alone = (
        f"the held-out seed {seeds_held} alone"
        if len(held_out) == 1
        else f"the held-out seeds {seeds_held} alone (their median)"
    )
    return line + f" On {alone}: {_goal([r['pruning'] for r in held_out])}."


def chosen_on(records: list[dict]) -> set | None:
    """The seeds whose measurements chose the design of ``records`` (one design's): every record's
    ``chosen_on`` (``--chosen-on``) together; None when none of them says."""
    said = [r["chosen_on"] for r in records if r.get("chosen_on") is not None]
    return set().union(*said) if said else None


def role(record: dict, chosen: set | None) -> str | None:
    """A seed's part in its design: it "chose the design" or was "held out" (measured after the
    choice); None when the design's records do not say."""
    if chosen is None:
        return None
    return "chose the design" if record.get("seed") in chosen else "held out"


def finished_count(study: dict, n_trials: int) -> int:
    """How many of a study's trials trained to the end: its recorded finished trials; in a record
    made before those were kept, ``n_trials`` less the pruned (a failed trial does not count toward
    ``n_trials`` and the sweep runs another, so a sweep that ended ran that many unfailed trials)."""
    if "finished" in study:
        return len(study["finished"])
    return min(study["trials"], n_trials) - study["pruned"]


def render_chosen(records: list[dict], chosen: set | None) -> str:
    """Which seeds chose the design (see :func:`chosen_on`) and which were held out; empty when
    no record says."""
    if chosen is None:
        return ""
    seeds = [r.get("seed") for r in records]
    held = [seed for seed in seeds if seed not in chosen]
    chose = sorted(seed for seed in chosen if seed in seeds)
    elsewhere = sorted(seed for seed in chosen if seed not in seeds)
    said = []
    if chose:
        said.append(
            f"Seed{'s' if len(chose) > 1 else ''} {_listed(chose)} chose this design: it was picked on"
            f" {'their' if len(chose) > 1 else 'its'} measurement (`--chosen-on`)."
        )
    if elsewhere:
        said.append(
            f"This design was chosen on seed{'s' if len(elsewhere) > 1 else ''} {_listed(elsewhere)},"
            " measured under another design (`--chosen-on`)."
        )
    if held:
        said.append(
            f"Seed{'s' if len(held) > 1 else ''} {_listed(held)} {'were' if len(held) > 1 else 'was'} measured"
            f" after the choice, held out: {'they test' if len(held) > 1 else 'it tests'} the design rather than"
            " fit it."
        )
    else:
        said.append("No seed was held out yet: these figures are the ones the design was fitted to.")
    return "\n" + " ".join(said)


def _median_ranks(records: list[dict], key: str) -> tuple[dict[int, float], int]:
    """Per epoch, the median over the records that have ``key`` (an unpruned study's ranking);
    and how many had it."""
    ranks = [r["pruning"]["none"].get(key) for r in records]
    ranks = [{int(e): v for e, v in rank.items() if v is not None} for rank in ranks if rank]
    epochs = sorted(set().union(*ranks)) if ranks else []
    return {e: median(rank[e] for rank in ranks if e in rank) for e in epochs}, len(ranks)


def cuts(design: dict) -> list[int]:
    """The epochs after which successive halving cuts in ``design``: warmup·r^k before the last epoch."""
    out, cut = [], max(design["warmup"], 1)
    while cut < design["epochs"]:
        out.append(cut)
        cut *= design["reduction_factor"]
    return out


def _listed(numbers: list) -> str:
    words = [str(n) for n in numbers]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def render_ranks(records: list[dict], cut_epochs: list[int]) -> str:
    """How well each epoch ranked the unpruned study's trials (Spearman with the end, median
    over the seeds that recorded it), all of them and the better half, the cuts' epochs in
    bold; empty when none did."""
    every, seeds = _median_ranks(records, "rank_by_epoch")
    if not every:
        return ""
    half, half_seeds = _median_ranks(records, "rank_by_epoch_better_half")
    epochs = sorted(every)
    lines = [
        f"\nHow well each epoch ranked the unpruned study's {records[0]['size']['trials']} trials: Spearman's"
        " correlation of the accuracy after that epoch with the accuracy at the end (1: the same order),"
        f" median over the {seeds} seed(s) that recorded it. The pruner cuts after epoch"
        f"{'s' if len(cut_epochs) > 1 else ''} {_listed(cut_epochs)}."
        + (
            f" The second row ranks only the better half of the trials (by their end), over the {half_seeds}"
            " seed(s) that recorded it: once a cut has removed the poor trials, that is the order left to find."
            if half
            else ""
        )
        + "\n",
        "| epoch | " + " | ".join(f"**{e}**" if e in cut_epochs else str(e) for e in epochs) + " |",
        "|---" * (len(epochs) + 1) + "|",
        "| correlation with the end | " + " | ".join(f"{every[e]:+.2f}" for e in epochs) + " |",
    ]
    if half:
        cells = (f"{half[e]:+.2f}" if e in half else "—" for e in epochs)
        lines.append("| the better half only | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def finished_trials(trials: list[dict]) -> list[dict]:
    """The trials that trained to the end, in the order they were numbered: number, value and
    categorical settings (the ones :func:`render_sampled` counts)."""
    return [
        {
            "number": t["number"],
            "value": t["value"],
            "params": categorical(t["params"]),
        }
        for t in trials
        if t["state"] == "COMPLETE"
    ]


def render_held_out(held_out: list[dict]) -> str:
    """The held-out seeds' (their records') median difference and share of the epochs, with each
    seed's value."""
    ps = [r["pruning"] for r in held_out]
    diff, share = medians(ps)
    diffs = ", ".join(f"{p['best_diff_points']:+.2f}" for p in ps)
    shares = ", ".join(f"{p['epochs_share']:.0%}" for p in ps)
    seeds = f"seed{'s' if len(held_out) > 1 else ''} {_listed([r.get('seed', '—') for r in held_out])}"
    return (
        f"\nOver the held-out {seeds} alone: median difference {diff:+.2f} points ({diffs}), median share"
        f" of the epochs {share:.0%} ({shares})."
    )


def render_same_settings(records: list[dict]) -> str:
    """Which seeds' two studies trained the same settings trial by trial (see :func:`same_settings`);
    empty when no record says."""
    said = {r.get("seed"): r["pruning"].get("same_settings") for r in records}
    same = [str(seed) for seed, s in said.items() if s is True]
    differ = [str(seed) for seed, s in said.items() if s is False]
    if not same and not differ:
        return ""
    text = ""
    if same:
        text += (
            f"\nSeed{'s' if len(same) > 1 else ''} {', '.join(same)}: the pruned study trained the unpruned"
            " study's settings, trial by trial, each only up to its cut: the difference is the pruner's alone."
        )
    if differ:
        text += (
            f"\nSeed{'s' if len(differ) > 1 else ''} {', '.join(differ)}: the two studies trained different"
            " settings after their first trials (the sampler learned from what each study saw)."
        )
    return text


def render_sampled(records: list[dict]) -> str:
    """What TPE sampled once its random start was over, unpruned against pruned study, for each
    seed that recorded it: one row per categorical setting's value; empty when none did."""
    rows = []
    for r in records:
        p = r["pruning"]
        full, pruned = p["none"].get("sampled_after_startup"), p["successive_halving"].get("sampled_after_startup")
        if not full or not pruned:
            continue
        for key in sorted(set(full) | set(pruned)):
            a, b = full.get(key, {}), pruned.get(key, {})
            values = sorted(set(a) | set(b))
            cells = [", ".join(f"{v} {study.get(v, 0)}" for v in values) for study in (a, b)]
            first = [t for t in p["successive_halving"].get("finished", []) if key in t["params"]][:FIRST_FINISHED]
            shown = [f"#{t['number']} {str(t['params'][key]).lower()}" for t in first]
            rows.append(f"| {r.get('seed', '—')} | `{key}` | " + " | ".join([*cells, ", ".join(shown) or "—"]) + " |")
    if not rows:
        return ""
    if records[0]["size"].get("ranking", SIZE_KEYS["ranking"]) == "shared_epoch":
        ranking = (
            " Here TPE ranks each trial against every other at the last epoch both reached"
            " (`hydra.sweeper.sampler.ranking=shared_epoch`), so finishing first earns a trial nothing"
        )
    else:
        ranking = (
            " TPE ranks every finished trial above every pruned one, so in a pruned study the few trials that"
            " finished early (with few rivals at the cuts) decide what it samples next"
        )
    return "\n".join(
        [
            f"\nWhat TPE sampled after its {TPE_STARTUP} random trials, which the two studies share (same seed):"
            " how many of the later trials took each value of each categorical setting. TPE samples near the"
            f" trials it ranks best.{ranking}"
            ' (see docs/studies.md, "The first trials and the sampler").\n',
            f"| seed | setting | unpruned study | pruned study | pruned study's first {FIRST_FINISHED} to finish |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )


def render_sweeps(records: list[dict], after_pruning: str = "") -> str:
    """The benchmark page's section on sweeps: (a) one table per design, each seed and their
    median, newest design first, then ``after_pruning`` (a section rendered elsewhere, such as
    the retrained best trials); (b) per measurement."""
    full = [r for r in records if not r.get("quick")]
    if not full:
        return ""
    parts = [
        "\n## Sweeps: pruning and asynchronous workers\n",
        "Generated from `docs/bench_sweeps.json`, the records of `python scripts/bench_sweeps.py --record`"
        " on the embedded synthetic faces (see the script for what it runs).\n",
        "### Pruning\n",
        "One Optuna study over augmentation and learning rate, run twice with the same sampler seed: without"
        ' pruning and with successive halving (ASHA). "best" is each study\'s best validation accuracy over the'
        " trials that trained to the end; \"epochs\" is the pruned study's share of the unpruned one's training"
        " epochs. One table per design of the benchmark, the current one first. A study's best is its luckiest"
        " finished trial, and the unpruned study finishes every trial: where there are records, the best trials"
        " trained again under other seeds follow the tables.\n",
    ]
    designs: dict[tuple, list[dict]] = {}
    for r in full:
        designs.setdefault(design(r), []).append(r)
    for key, rs in reversed(designs.items()):
        rs = sorted(rs, key=lambda r: r.get("seed") or 0)
        n_trials = dict(zip(SIZE_KEYS, key))["trials"]
        chosen = chosen_on(rs)
        role_column = " role |" if chosen is not None else ""
        parts += [
            f"\n**{describe_design(key)}**\n",
            f"| date | CPU | seed |{role_column} best, no pruning | best, pruned | difference (points) | epochs"
            " | finished, no pruning | finished, pruned | wall, no pruning | wall, pruned |",
            "|---" * (11 + bool(role_column)) + "|",
        ]
        for r in rs:
            p = r["pruning"]
            seed_role = f" {role(r, chosen)} |" if chosen is not None else ""
            parts.append(
                f"| {r.get('date', '—')} | {r['cpu']} | {r.get('seed', '—')} |{seed_role}"
                f" {100 * p['none']['best_value']:.2f} % | {100 * p['successive_halving']['best_value']:.2f} %"
                f" | {p['best_diff_points']:+.2f} | {p['epochs_share']:.0%}"
                f" | {finished_count(p['none'], n_trials)} of {n_trials}"
                f" | {finished_count(p['successive_halving'], n_trials)} of {n_trials}"
                f" | {p['none']['wall_s']:.0f} s | {p['successive_halving']['wall_s']:.0f} s |"
            )
        parts += [text for text in [render_chosen(rs, chosen)] if text]
        notes: dict[str, list[str]] = {}  # what the records say about their own measurement, once per note
        for r in rs:
            if r.get("note"):
                notes.setdefault(r["note"], []).append(f"{r.get('seed', '—')} ({r.get('date', '—')})")
        for note, seeds in notes.items():
            parts.append(f"\nSeed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}: {note}.")
        ps = [r["pruning"] for r in rs]
        held_out = None if chosen is None else [r for r in rs if r.get("seed") not in chosen]
        parts += [text for text in [render_same_settings(rs)] if text]
        if len(ps) > 1:
            diff, share = medians(ps)
            unpruned = [p["none"]["best_value"] for p in ps]
            parts.append(
                f"\nOver these {len(ps)} seeds: median difference {diff:+.2f}"
                f" points, median share of the epochs {share:.0%}. The unpruned"
                f" studies' best values alone span {100 * min(unpruned):.2f}–{100 * max(unpruned):.2f} % over these"
                " seeds: a difference within that span is what another seed changes as well."
            )
            if held_out:
                parts.append(render_held_out(held_out))
        parts.append(verdict(ps, held_out))
        parts.append(render_ranks(rs, cuts(dict(zip(SIZE_KEYS, key)))))
        parts.append(render_sampled(rs))
    parts.append(after_pruning)
    idle = [r for r in full if r.get("idle")]
    if idle:
        parts += [
            "\n### Idle workers\n",
            "The same trials of unequal length on two workers: fer_exp's asynchronous sweeper (each worker asks"
            " for the next trial when it is free) against Hydra's batches of two on the joblib launcher. Idle"
            " share is 1 − busy / (workers × wall).\n",
            "| date | CPU | trial epochs | idle share, fer_exp async | idle share, Hydra batches |",
            "|---|---|---|---|---|",
        ]
        for r in idle:
            i = r["idle"]
            parts.append(
                f"| {r.get('date', '—')} | {r['cpu']} | {i['trial_epochs']} | {i['async']['idle_share']:.1%}"
                f" | {i['batch']['idle_share']:.1%} |"
            )
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    main()
