"""scripts/replay_pruning.py: successive halving replayed on an unpruned study's per-epoch
reports, the epochs it would have trained and the best it would have kept, worked out by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from replay_pruning import replay  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
# three trials of 10 epochs, each reporting the same value every epoch: 0.5, then 0.6, then 0.4
TRIALS = [({e: v for e in range(1, 11)}, v) for v in (0.5, 0.6, 0.4)]


def _sh(warmup=3, factor=3, boot=0):
    return {"name": "successive_halving", "warmup_epochs": warmup, "reduction_factor": factor, "bootstrap_count": boot}


def test_without_bootstrap_the_first_trials_pass_every_cut_unopposed():
    """Cuts after epochs 3 and 9 keep the top third: trial 0 is alone at both and trains on,
    trial 1 beats it, trial 2 is the worst of three at epoch 3."""
    assert replay(TRIALS, _sh(), "maximize") == {"epochs": 10 + 10 + 3, "pruned": 1, "best": 0.6}


def test_bootstrap_stops_the_first_trial_at_each_cut():
    """bootstrap 1: trial 0 is first at epoch 3 and stops; trial 1 passes epoch 3 (two there)
    but is first at epoch 9 and stops; trial 2 is cut at 3. Nothing trains to the end."""
    assert replay(TRIALS, _sh(boot=1), "maximize") == {"epochs": 3 + 9 + 3, "pruned": 3, "best": None}


def test_minimize_keeps_the_lowest():
    losses = [({e: v for e in range(1, 11)}, v) for v in (0.5, 0.4, 0.6)]
    assert replay(losses, _sh(), "minimize") == {"epochs": 23, "pruned": 1, "best": 0.4}


def _study(path: Path, name: str, prune_last: bool = False, trials=TRIALS) -> str:
    storage = f"sqlite:///{path}"
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    for i, (reports, value) in enumerate(trials):
        trial = study.ask()
        for epoch, v in reports.items():
            trial.report(v, epoch)
        if prune_last and i == len(trials) - 1:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, value)
    return storage


def _run(*args, cwd):
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "replay_pruning.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_prints_a_row_per_setting_and_writes_the_json(tmp_path):
    _study(tmp_path / "optuna.db", "aug")
    done = _run("--warmup", "3", "--bootstrap-count", "0", "1", "--json", "out.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "study aug: 3 trials, 30 epochs, best 0.6000 (maximize)" in done.stdout
    rows = json.loads((tmp_path / "out.json").read_text())["replays"]
    assert [(r["bootstrap_count"], r["epochs"], r["best_diff_points"]) for r in rows] == [(0, 23, 0.0), (1, 15, None)]
    assert rows[0]["epochs_share"] == pytest.approx(23 / 30)
    assert "no finisher" in done.stdout.splitlines()[3]


def test_several_studies_add_the_median_of_each_setting_over_them(tmp_path):
    """Studies of other seeds: each one's table, then per setting the median share and difference
    and in how many studies no trial would have finished."""
    first = _study(tmp_path / "a.db", "aug")
    # the best trial first: it finishes unopposed and the others stop at the first cut (10 + 3 + 3 epochs)
    second = _study(tmp_path / "b.db", "aug", trials=[({e: v for e in range(1, 11)}, v) for v in (0.6, 0.5, 0.4)])
    settings = ("--warmup", "3", "9", "--bootstrap-count", "0", "1")
    done = _run("--storage", first, second, *settings, "--json", "o.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "o.json").read_text())
    alone = json.loads(_run("--storage", first, *settings, cwd=tmp_path).stdout.splitlines()[-1])
    assert result["studies"][0] == alone  # each study replayed as on its own
    assert [s["replays"][0]["epochs"] for s in result["studies"]] == [23, 16]
    assert result["medians"][0] == {
        "warmup": 3,
        "reduction_factor": 3,
        "bootstrap_count": 0,
        "epochs_share": pytest.approx((23 + 16) / 2 / 30),
        "best_diff_points": 0.0,
        "no_finisher": 0,
    }
    # one cut after epoch 9 and the first trial there stopped: in the first study the second
    # trial, its best, beats it and finishes; in the second, the first trial was the best
    late = [s["replays"][3] for s in result["studies"]]
    assert [(r["warmup"], r["bootstrap_count"], r["best_diff_points"]) for r in late] == [(9, 1, 0.0), (9, 1, None)]
    assert result["medians"][3]["no_finisher"] == 1
    assert result["medians"][3]["best_diff_points"] is None  # it lost one study's best altogether
    assert f"study aug in {second}: 3 trials" in done.stdout and "median over the 2 studies" in done.stdout


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("pruned", (), "pruned 1 of its 3 trials: replay a study run with hydra.sweeper.pruner.name=none"),
        ("two", (), "holds 2 studies (a, b): pass --study NAME"),
        ("two", ("--study", "c"), "no study 'c' in"),
    ],
)
def test_a_study_it_cannot_replay_is_one_clear_line(tmp_path, setup, args, message):
    if setup == "pruned":
        _study(tmp_path / "optuna.db", "aug", prune_last=True)
    else:
        _study(tmp_path / "optuna.db", "a")
        _study(tmp_path / "optuna.db", "b")
    done = _run(*args, cwd=tmp_path)
    assert done.returncode == 1
    assert message in done.stderr and done.stderr.count("\n") == 1
