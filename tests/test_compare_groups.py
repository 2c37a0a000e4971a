"""python -m fer_exp.compare over seeds: groups, paired differences, verdicts, what lands in MLflow.

The runs are made directly in a real MLflow store (no training): each has the params a fer_exp
run logs, its metrics and its ``predictions/validation.npz``, so the numbers are known.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_exp.analysis.predictions import PREDICTIONS_FILE, save_predictions

CLASSES = ("angry", "disgust", "happy")
N = 3000


def _store(tmp_path: Path):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client, client.create_experiment("cmp")


def _log_run(client, experiment, tmp_path, setting: str, seed: int, correct: np.ndarray, fp="f" * 16, job=None):
    """A finished run of ``setting`` whose predictions are right where ``correct`` holds."""
    labels = np.arange(N) % 3
    pred = np.where(correct, labels, (labels + 1) % 3)
    probs = np.full((N, 3), 0.1, np.float32)
    probs[np.arange(N), pred] = 0.8
    tags = {"hydra.job_num": str(job)} if job is not None else {}
    run = client.create_run(experiment, run_name=f"{setting} s{seed}", tags=tags)
    rid = run.info.run_id
    params = {
        "seed": seed,
        "preset.augmentation": setting,
        "augmentation.rotation_range": {"none": 0, "light": 10, "seed": 20, "heavy": 25}[setting],
        "model.name": "small_cnn",
        "env.cpu": f"cpu{seed}",
        **{f"data.found.train.{c}": n for c, n in zip(CLASSES, (900, 40, 2000))},
    }
    for k, v in params.items():
        client.log_param(rid, k, str(v))
    acc = float(np.mean(pred == labels))
    client.log_metric(rid, "best_val_accuracy", acc)
    client.log_metric(rid, "val_macro_f1", acc - 0.05)
    client.log_metric(rid, "val_f1.disgust", 0.3)
    for epoch in range(1, 4):
        client.log_metric(rid, "val_accuracy", acc * epoch / 3, step=epoch)
    if fp is not None:
        folder = tmp_path / rid
        folder.mkdir()
        save_predictions(folder / PREDICTIONS_FILE, labels, probs, CLASSES, fp)
        client.log_artifact(rid, str(folder / PREDICTIONS_FILE), "predictions")
    client.set_terminated(rid)
    return rid


def _sweep(tmp_path, effects: dict[str, float], seeds=(1, 2, 3), **kwargs):
    """Runs of each setting under each seed: a share ``effect`` of extra images right."""
    client, exp = _store(tmp_path)
    rng = np.random.default_rng(0)
    shared = rng.random(N) < 0.6
    ids = {}
    job = 0
    for setting, effect in effects.items():
        for seed in seeds:
            correct = shared | (rng.random(N) < 0.1 + effect)
            ids[(setting, seed)] = _log_run(client, exp, tmp_path, setting, seed, correct, job=job, **kwargs)
            job += 1
    return client, ids


def _compare(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "fer_exp.compare", "--experiment", "cmp", "--out", str(tmp_path / "out"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_compare_groups_seeds_and_names_the_setting_that_differs(tmp_path):
    client, ids = _sweep(tmp_path, {"none": 0.0, "light": 0.0, "heavy": 0.08})
    proc = _compare(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    groups = _csv(tmp_path / "out" / "groups.csv")
    # grouped by every differing param but the seed; the preset stands for the keys it sets
    assert [g["setting"] for g in groups] == ["augmentation=none", "augmentation=light", "augmentation=heavy"]
    assert [g["n"] for g in groups] == ["3", "3", "3"] and groups[0]["seeds"] == "1 2 3"
    assert {"mean", "std", "ci_low", "ci_high", "best_val_accuracy", "val_macro_f1", "f1_disgust", "noise"} <= set(
        groups[0]
    )
    for g in groups:
        assert float(g["ci_low"]) < float(g["mean"]) < float(g["ci_high"])
        assert g["noise"] == "seeds and images"
    diffs = {d["setting"]: d for d in _csv(tmp_path / "out" / "differences.csv")}
    assert set(diffs) == {"augmentation=light", "augmentation=heavy"}  # against job 0's setting
    assert {d["baseline"] for d in diffs.values()} == {"augmentation=none"}
    assert diffs["augmentation=heavy"]["verdict"] == "better" and float(diffs["augmentation=heavy"]["ci_low"]) > 0
    assert diffs["augmentation=light"]["verdict"] == "indistinguishable"
    assert float(diffs["augmentation=heavy"]["p_improvement"]) == 1.0
    assert "differ from the baseline: augmentation=heavy (better)" in proc.stdout
    assert "cannot be told apart from it: augmentation=light" in proc.stdout

    # the comparison lands in MLflow, sortable and filterable
    cmp_runs = client.search_runs(
        [client.get_experiment_by_name("cmp").experiment_id], "tags.`fer_exp.sweep_role` = 'comparison'"
    )
    assert len(cmp_runs) == 1
    run = cmp_runs[0]
    assert run.data.tags["fer_exp.verdict.augmentation:heavy"] == "better"
    assert run.data.metrics["diff.augmentation:heavy.ci_low"] > 0
    assert run.data.metrics["compare.better"] == 1.0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "comparison")}
    assert {"comparison/groups.csv", "comparison/differences.csv", "comparison/comparison.png"} <= artifacts
    assert client.get_run(ids[("heavy", 2)]).data.tags["fer_exp.setting"] == "augmentation=heavy"

    # the same numbers from the run ids, and the comparison run is never compared itself
    again = subprocess.run(
        [sys.executable, "-m", "fer_exp.compare", "--runs", *ids.values(), "--out", str(tmp_path / "again")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert _csv(tmp_path / "again" / "differences.csv") == list(diffs.values())
    third = _compare(tmp_path, "--out", str(tmp_path / "third"))
    assert third.returncode == 0 and len(_csv(tmp_path / "third" / "comparison.csv")) == 9


def test_a_named_baseline_and_grouping_by_one_param(tmp_path):
    _sweep(tmp_path, {"none": 0.0, "light": 0.0, "heavy": 0.08})
    proc = _compare(tmp_path, "--baseline", "heavy")
    assert proc.returncode == 0, proc.stderr[-2000:]
    diffs = _csv(tmp_path / "out" / "differences.csv")
    assert [d["setting"] for d in diffs] == ["augmentation=none", "augmentation=light"]
    assert [d["verdict"] for d in diffs] == ["worse", "worse"]
    proc = _compare(tmp_path, "--by", "model.name")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [(g["setting"], g["n"]) for g in _csv(tmp_path / "out" / "groups.csv")] == [("model.name=small_cnn", "9")]


def test_one_seed_per_setting_says_it_counts_images_only_and_how_to_fix_it(tmp_path):
    _sweep(tmp_path, {"none": 0.0, "heavy": 0.02}, seeds=(1,))
    proc = _compare(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (diff,) = _csv(tmp_path / "out" / "differences.csv")
    assert diff["noise"] == "images only"
    assert "one run per setting" in proc.stdout and "seed=1,2,3" in proc.stdout


def test_runs_on_other_images_or_without_predictions_are_compared_unpaired_with_a_note(tmp_path):
    client, exp = _store(tmp_path)
    rng = np.random.default_rng(1)
    shared = rng.random(N) < 0.6
    for seed in (1, 2):
        _log_run(client, exp, tmp_path, "none", seed, shared | (rng.random(N) < 0.1), job=seed)
        _log_run(client, exp, tmp_path, "heavy", seed, shared | (rng.random(N) < 0.1), fp="e" * 16, job=10 + seed)
    _log_run(client, exp, tmp_path, "light", 1, shared, fp=None, job=20)
    proc = _compare(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "not paired: the runs were evaluated on different validation images" in proc.stdout
    assert "1 run(s) kept no validation predictions" in proc.stdout and "light s1" in proc.stdout
    diffs = {d["setting"]: d for d in _csv(tmp_path / "out" / "differences.csv")}
    assert diffs["augmentation=light"]["noise"] == "none"  # one run, no predictions: no interval
    assert diffs["augmentation=light"]["ci_low"] == "nan"
    assert diffs["augmentation=heavy"]["noise"] == "seeds and images"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--baseline", "strong"], "baseline 'strong' is none of the settings: augmentation=none; augmentation=heavy"),
        (["--metric", "val_loss"], "metric 'val_loss' is missing from 4 of 4 finished runs"),
        (["--by", "optimizer"], "--by optimizer: no run has a param 'optimizer'"),
    ],
)
def test_bad_choices_get_one_line_naming_what_exists(tmp_path, args, message):
    _sweep(tmp_path, {"none": 0.0, "heavy": 0.02}, seeds=(1, 2))
    proc = _compare(tmp_path, *args)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr
    if args[0] == "--metric":
        assert "the runs have: best_val_accuracy, val_accuracy, val_macro_f1" in proc.stderr


def test_a_damaged_predictions_file_costs_only_its_run_the_pairing(tmp_path):
    client, ids = _sweep(tmp_path, {"none": 0.0, "heavy": 0.05}, seeds=(1, 2))
    bad = tmp_path / "bad" / PREDICTIONS_FILE
    bad.parent.mkdir()
    bad.write_bytes(b"not an npz")
    client.log_artifact(ids[("heavy", 2)], str(bad), "predictions")  # replaces the good file
    proc = _compare(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "heavy s2: " in proc.stdout and "is not a usable predictions file" in proc.stdout
    groups = {g["setting"]: g for g in _csv(tmp_path / "out" / "groups.csv")}
    assert groups["augmentation=none"]["noise"] == "seeds and images"
    assert groups["augmentation=heavy"]["noise"] == "seeds only" and groups["augmentation=heavy"]["n"] == "2"


def test_a_key_newer_than_some_runs_splits_no_group(tmp_path):
    client, ids = _sweep(tmp_path, {"none": 0.0, "heavy": 0.05}, seeds=(1, 2))
    for (_, seed), run_id in ids.items():
        if seed == 2:  # a newer fer_exp logs a key the older runs did not have
            client.log_param(run_id, "data.val_holdout", "0.0")
    proc = _compare(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [(g["setting"], g["n"]) for g in _csv(tmp_path / "out" / "groups.csv")] == [
        ("augmentation=none", "2"),
        ("augmentation=heavy", "2"),
    ]
