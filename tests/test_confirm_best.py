"""scripts/confirm_best.py: a study's best trial found in its launch folder, trained again
with other seeds and nothing else changed, and the page section the record renders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "confirm_best.py"
sys.path.insert(0, str(REPO / "scripts"))
from confirm_best import best_trial, render_confirm, retrain, retrain_overrides, trial_overrides  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _folder(tmp_path: Path, values=(0.5, 0.7, 0.6), jobs=None) -> Path:
    """A launch folder as a sweep leaves it: optuna.db with one study, a job folder per trial."""
    folder = tmp_path / "sweep"
    folder.mkdir()
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{folder / 'optuna.db'}", direction="maximize")
    for value in values:
        trial = study.ask()
        trial.suggest_float("optimizer.learning_rate", 1e-4, 1e-2, log=True)
        study.tell(trial, value)
    for number in range(len(values)) if jobs is None else jobs:
        hydra = folder / "multirun" / "2026-11-29" / "01-02-03" / str(number) / ".hydra"
        hydra.mkdir(parents=True)
        hydra.joinpath("overrides.yaml").write_text(f"- hparams_search=optuna\n- epochs={number + 10}\n- seed=7\n")
    return folder


def test_the_best_trial_and_the_overrides_it_ran_with_are_found(tmp_path):
    folder = _folder(tmp_path)
    best = best_trial(folder)
    assert (best["study"], best["number"], best["value"]) == ("s", 1, 0.7)
    assert trial_overrides(folder, best["number"]) == ["hparams_search=optuna", "epochs=11", "seed=7"]


def test_a_retrain_changes_the_seed_and_experiment_and_nothing_else():
    trial = ["hparams_search=optuna", "epochs=30", "seed=7", "+x=1", "experiment_name=bench", "data=synthetic"]
    assert retrain_overrides(trial, 2, "confirm") == [
        "hparams_search=optuna",
        "epochs=30",
        "+x=1",
        "data=synthetic",
        "seed=2",
        "experiment_name=confirm",
    ]


def _finished_run(run_dir: Path, overrides: list[str], accuracy: float) -> None:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (run_dir / "reports").mkdir()
    metrics = {"best_val_accuracy": accuracy, "val_macro_f1": 0.8, "val_f1.disgust": 0.4}
    (run_dir / "reports" / "metrics.json").write_text(json.dumps(metrics))


def test_runs_an_earlier_call_finished_are_read_not_trained_again(tmp_path):
    trial = ["+no_such_key=1", "seed=42"]  # fer_exp would refuse this at once, were it run
    for seed, accuracy in ((1, 0.9), (2, 0.8)):
        _finished_run(tmp_path / "0" / f"seed{seed}", retrain_overrides(trial, seed, "confirm"), accuracy)
    runs = retrain(tmp_path, trial, [1, 2], "0")
    assert [r["best_val_accuracy"] for r in runs] == [0.9, 0.8]


def test_a_run_folder_of_other_overrides_is_refused(tmp_path):
    _finished_run(tmp_path / "0" / "seed1", ["epochs=12", "seed=1", "experiment_name=confirm"], 0.9)
    with pytest.raises(SystemExit, match="seed1 holds a run of other overrides: remove it or pass another --workdir"):
        retrain(tmp_path, ["epochs=30"], [1], "0")


def _run(*args, cwd):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda p: p, "has no optuna.db: pass a sweep's launch folder"),
        (lambda p: _folder(p, jobs=[0, 2]), "no job folder for trial 1 under"),
        (lambda p: _folder(p, values=()), "has no finished trial to confirm"),
    ],
    ids=["no-study", "no-job-folder", "no-finished-trial"],
)
def test_bad_folders_get_one_line_before_anything_trains(tmp_path, make, error):
    proc = _run(make(tmp_path), "--workdir", tmp_path / "work", cwd=tmp_path)
    assert proc.returncode != 0 and error in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "work").exists()


def test_a_folder_with_two_studies_is_refused(tmp_path):
    folder = _folder(tmp_path)
    optuna.create_study(study_name="other", storage=f"sqlite:///{folder / 'optuna.db'}")
    proc = _run(folder, cwd=tmp_path)
    assert proc.returncode != 0 and "holds 2 studies (other, s): one study per folder" in proc.stderr


def test_labels_must_match_the_folders(tmp_path):
    folder = _folder(tmp_path)
    proc = _run(folder, folder, "--label", "a", "--label", "b", "--label", "c", cwd=tmp_path)
    assert proc.returncode == 2 and "3 --label for 2 folders" in proc.stderr


def test_the_page_shows_each_study_beside_its_retrained_mean_and_the_difference_to_the_first():
    def study(label, number, value, values):
        mean, f1 = sum(values) / len(values), {"val_macro_f1": 0.8123, "val_f1.disgust": 0.4}
        params = {"augmentation.horizontal_flip": number == 23, "optimizer.learning_rate": 0.0065184}
        return {
            "label": label,
            "number": number,
            "value": value,
            "values": values,
            "mean": mean,
            "sd": 0.005,
            "f1": f1,
            "params": params,
        }

    record = {
        "date": "2026-11-29",
        "cpu": "CPU X, 2 cores",
        "repeats": 2,
        "note": "seed 1",
        "studies": [study("unpruned", 12, 0.9027, [0.90, 0.89]), study("pruned", 23, 0.8873, [0.88, 0.87])],
    }
    del record["studies"][1]["f1"]  # a record made before the F1 were kept
    page = render_confirm([record])
    assert "2026-11-29, CPU X, 2 cores, 2 runs each: seed 1" in page
    assert "| unpruned | #12 | 90.27 % | 89.50 % | 0.50 | +0.00 | 0.812 | 0.400 |" in page
    assert "| pruned | #23 | 88.73 % | 87.50 % | 0.50 | -2.00 | — | — |" in page
    assert "- pruned #23: `horizontal_flip=True`, `learning_rate=0.00652`" in page  # what each study chose
    assert render_confirm([]) == ""


@pytest.mark.slow
def test_a_real_sweeps_best_trial_is_trained_again_and_recorded(tmp_path):
    """A two-trial study on the synthetic faces, then its best trial trained twice more."""
    launch = tmp_path / "sweep"
    launch.mkdir()
    sweep = [
        sys.executable, "-m", "fer_exp", "-m", "hparams_search=optuna", "data=synthetic", "epochs=1",
        "limit_train_batches=1", "limit_val_batches=1", "preview_images=0", "hydra.sweeper.n_trials=2",
    ]  # fmt: skip
    proc = subprocess.run(sweep, cwd=launch, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record, out = tmp_path / "record.json", tmp_path / "out.json"
    proc = _run(launch, "--repeats", 2, "--workdir", tmp_path / "work", "--json", out, "--record", record, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(record.read_text()) == [result] and json.loads(proc.stdout.strip().splitlines()[-1]) == result
    (study,) = result["studies"]
    best = best_trial(launch)
    assert (study["number"], study["value"], study["seeds"]) == (best["number"], best["value"], [1, 2])
    metrics = [
        json.loads((tmp_path / "work" / "0" / f"seed{s}" / "reports" / "metrics.json").read_text()) for s in (1, 2)
    ]
    assert study["values"] == [m["best_val_accuracy"] for m in metrics]  # each run's own figure
    assert study["f1"]["val_f1.disgust"] == pytest.approx(sum(m["val_f1.disgust"] for m in metrics) / 2)
    for seed in (1, 2):  # trained with that seed, everything else as the trial ran
        run = tmp_path / "work" / "0" / f"seed{seed}"
        overrides = (run / ".hydra" / "overrides.yaml").read_text()
        assert f"seed={seed}" in overrides and "experiment_name=confirm" in overrides
        for key, sampled in best["params"].items():  # the trial's sampled values, unchanged
            assert f"{key}={str(sampled).lower() if isinstance(sampled, bool) else sampled}" in overrides
