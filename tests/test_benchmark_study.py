"""scripts/benchmark_study.py: a study's record (trials, their runs, importances), its pictures,
and its section of the benchmark page, whose command trains the best trial's settings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STUDY = "fer2013_augmentation_study"
# (state, sampled values, per-epoch accuracy): trials 4 and 5 trained to the end, the others were cut at 2
TRIALS = [
    ("PRUNED", (0, 0.00, True, 0.0, 0.0003), [0.20, 0.25]),
    ("PRUNED", (5, 0.05, False, 0.5, 0.0005), [0.22, 0.27]),
    ("PRUNED", (10, 0.10, True, 0.0, 0.0010), [0.24, 0.30]),
    ("PRUNED", (15, 0.15, False, 0.5, 0.0040), [0.21, 0.26]),
    ("COMPLETE", (20, 0.20, True, 0.0, 0.0020), [0.30, 0.40, 0.50, 0.55]),
    ("COMPLETE", (10, 0.25, False, 0.5, 0.0030), [0.31, 0.42, 0.52, 0.61]),
]
KEYS = [
    "augmentation.rotation_range",
    "augmentation.zoom_range",
    "augmentation.horizontal_flip",
    "augmentation.mixup_prob",
    "optimizer.learning_rate",
]


def _make_study(folder: Path) -> tuple[str, str, dict[int, str]]:
    """An Optuna study of TRIALS in folder/optuna.db and its MLflow runs in folder/mlflow.db, as the
    sweeper leaves them; returns the two URLs and the trials' run ids."""
    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    storage, tracking = f"sqlite:///{folder / 'optuna.db'}", f"sqlite:///{folder / 'mlflow.db'}"
    distributions = dict(
        zip(
            KEYS,
            [
                IntDistribution(0, 20, step=5),
                FloatDistribution(0.0, 0.25),
                CategoricalDistribution([True, False]),
                CategoricalDistribution([0.0, 0.5]),
                FloatDistribution(0.0003, 0.005, log=True),
            ],
        )
    )
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    client = MlflowClient(tracking)
    exp = client.create_experiment(STUDY)
    parent = client.create_run(exp, tags={"fer_exp.sweep_role": "parent", "fer_exp.study": STUDY})
    client.log_param(parent.info.run_id, "study.sampler", "tpe(seed=42)")
    client.log_param(parent.info.run_id, "study.pruner", "successive_halving(warmup_epochs=2)")
    run_ids = {}
    for number, (state, values, curve) in enumerate(TRIALS):
        study.add_trial(
            optuna.trial.create_trial(
                params=dict(zip(KEYS, values)),
                distributions=distributions,
                value=max(curve) if state == "COMPLETE" else curve[-1],  # pruned: its last, as Optuna tells it
                intermediate_values={epoch: v for epoch, v in enumerate(curve, start=1)},
                state=getattr(optuna.trial.TrialState, state),
            )
        )
        tags = {"fer_exp.study": STUDY, "fer_exp.trial_number": str(number), "mlflow.parentRunId": parent.info.run_id}
        run = client.create_run(exp, tags=tags)
        client.log_metric(run.info.run_id, "best_val_accuracy", max(curve))
        client.log_metric(run.info.run_id, "train_time_s", 60.0 * len(curve))
        client.set_terminated(run.info.run_id)
        run_ids[number] = run.info.run_id
    client.set_terminated(parent.info.run_id)
    return storage, tracking, run_ids


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The study recorded by the script: (record, pictures folder, run ids, folder)."""
    folder = tmp_path_factory.mktemp("study")
    storage, tracking, run_ids = _make_study(folder)
    record, pictures = folder / "study.json", folder / "pictures"
    proc = _script(
        "scripts/benchmark_study.py",
        *("--storage", storage, "--tracking-uri", tracking, "--record", str(record), "--pictures", str(pictures)),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(record.read_text()), pictures, run_ids, folder


def test_the_record_holds_every_trial_with_its_run_and_the_first_cut(recorded):
    record, _, run_ids, _ = recorded
    assert record["study"] == STUDY and record["cut_epoch"] == 2
    assert record["settings"]["pruner"] == "successive_halving(warmup_epochs=2)"
    by_number = {t["number"]: t for t in record["trials"]}
    assert sorted(by_number) == list(range(len(TRIALS)))
    for number, (state, values, curve) in enumerate(TRIALS):
        t = by_number[number]
        assert t["state"] == state and t["run_id"] == run_ids[number]
        assert t["at_cut"] == curve[1] and t["epochs"] == len(curve)
        assert t["params"] == dict(zip(KEYS, values))
        assert t["value"] == (max(curve) if state == "COMPLETE" else None)
    # at the cut every trial counts; the learning rate orders the cut's accuracy the most
    assert set(record["importances"]["at_cut"]) == set(KEYS)
    assert abs(sum(record["importances"]["at_cut"].values()) - 1) < 1e-3
    assert record["directions"]["at_end"]["augmentation.zoom_range"] == 1.0  # 2 trials: more zoom, better


def test_the_pictures_are_drawn(recorded):
    _, pictures, _, _ = recorded
    for name in ("families.png", "intermediate_values.png", "optimization_history.png"):
        assert (pictures / name).stat().st_size > 10_000, name


def test_the_page_shows_the_best_trial_and_a_command_that_trains_it(recorded, tmp_path):
    record, _, run_ids, folder = recorded
    shutil.copy(REPO / "docs" / "benchmark_runs.json", tmp_path / "runs.json")
    out = tmp_path / "benchmarks.md"
    proc = _script(
        "scripts/benchmark_table.py",
        *("--record", str(tmp_path / "runs.json"), "--out", str(out), "--study-record", str(folder / "study.json")),
        *("--sweeps-record", str(tmp_path / "none.json")),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    section = out.read_text().split("## Augmentation study")[1]
    assert "**Best trial: #5**" in section and "61.00 %" in section
    rows = [line for line in section.splitlines() if line.startswith("| #")]
    assert rows[0].startswith("| #5 | complete | 4 |") and rows[1].startswith("| #4 |") and len(rows) == len(TRIALS)
    assert f"`{run_ids[5][:8]}`" in rows[0]
    geometry = next(line for line in section.splitlines() if line.startswith("| geometry |"))
    assert "rotation" in geometry and "zoom" in geometry  # a family of several settings shows each

    command = next(line for line in section.splitlines() if line.startswith("python -m fer_exp"))
    args = command.split()[3:]  # after "python -m fer_exp"
    args = [a if not a.startswith("data.root=") else f"data.root={tmp_path}" for a in args]
    job = subprocess.run(
        [sys.executable, "-m", "fer_exp", *args, "--cfg", "job"], cwd=tmp_path, capture_output=True, text=True
    )
    assert job.returncode == 0, job.stderr[-3000:]
    assert "rotation_range: 10" in job.stdout and "zoom_range: 0.25" in job.stdout
    assert "learning_rate: 0.003" in job.stdout and "horizontal_flip: false" in job.stdout
    assert "hydra.mode=RUN" in command  # one run, not the study again


def test_each_epoch_is_scored_by_how_well_it_ranks_the_finished_trials():
    sys.path.insert(0, str(REPO / "scripts"))
    from benchmark_study import rank_by_epoch

    def finished(curve):
        return {"state": "COMPLETE", "per_epoch": dict(enumerate(curve, start=1)), "value": max(curve)}

    # epoch 1 orders the three trials backwards, epoch 2 as at the end
    trials = [finished([0.3, 0.40, 0.50]), finished([0.2, 0.45, 0.55]), finished([0.1, 0.50, 0.60])]
    assert rank_by_epoch(trials) == {1: -1.0, 2: 1.0}
    assert rank_by_epoch(trials[:2]) == {}  # two trials rank nothing


def test_the_better_half_is_the_finished_trials_with_the_higher_half_of_the_values():
    sys.path.insert(0, str(REPO / "scripts"))
    from benchmark_study import better_half

    trials = [{"state": "COMPLETE", "value": v} for v in (0.5, 0.9, 0.7, 0.6, 0.8)]
    trials.append({"state": "PRUNED", "value": None})  # not finished: never in the half
    assert [t["value"] for t in better_half(trials)] == [0.9, 0.8]  # 5 finished: the best 2
