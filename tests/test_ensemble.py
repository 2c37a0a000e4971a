"""Ensembles of finished runs: members evaluated through their own configs, averaged, logged."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fer_exp.config import compose
from fer_exp.errors import UserError
from fer_exp.runs import JobInfo, run
from tests.conftest import mlflow_runs


def _train(tmp_path, name, *overrides):
    cfg = compose(
        [
            "epochs=2",
            "limit_train_batches=3",
            "preview_images=0",
            "model.filters=[8,16]",
            f"tracking_uri=sqlite:///{tmp_path}/mlflow.db",
            *overrides,
        ]
    )
    return run(cfg, JobInfo(output_dir=tmp_path / name))


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ensemble")
    runs = [_train(tmp, "a", "seed=1"), _train(tmp, "b", "seed=2", "augmentation=seed", "data.pipeline=keras")]
    return tmp, runs


def test_ensemble_run_holds_members_and_final_metrics(members, monkeypatch):
    from fer_exp.runs.ensemble import run_ensemble

    tmp, (a, b) = members
    monkeypatch.chdir(tmp)
    run_id, metrics = run_ensemble(f"sqlite:///{tmp}/mlflow.db", [a.run_id, b.run_id], out_dir=tmp / "ens")
    # each member, re-evaluated through its own config, scores what its own run logged
    assert metrics["member_accuracy.0"] == pytest.approx(a.best_val_accuracy, abs=1e-6)
    assert metrics["member_accuracy.1"] == pytest.approx(b.best_val_accuracy, abs=1e-6)
    assert metrics["train_time_s"] == pytest.approx(a.metrics["train_time_s"] + b.metrics["train_time_s"])
    assert metrics["epochs_run"] == 4
    client, runs = mlflow_runs(tmp / "mlflow.db")
    ens = next(r for r in runs if r.info.run_id == run_id)
    assert ens.info.status == "FINISHED" and ens.data.tags["fer_exp.kind"] == "ensemble"
    assert ens.data.params["ensemble.members"] == f"{a.run_id},{b.run_id}"
    assert ens.data.params["model.name"] == "2 × small_cnn"
    assert {"best_val_accuracy", "val_macro_f1", "val_f1.disgust"} <= set(ens.data.metrics)
    assert (tmp / "ens" / "confusion_matrix.png").stat().st_size > 10_000


def test_cli_picks_the_top_runs_and_refuses_mixed_data(members, monkeypatch, capsys):
    from fer_exp.cli.ensemble import main

    tmp, (a, b) = members
    uri = f"sqlite:///{tmp}/mlflow.db"
    monkeypatch.chdir(tmp)  # the command in this process: `python -m fer_exp.ensemble --help` is tested in test_cli_run
    status = main(["--experiment", "fer_exp", "--top", "2", "--tta", "--tracking-uri", uri, "--out", str(tmp / "top")])
    out = capsys.readouterr().out
    assert status == 0, out[-2000:]
    # both accuracies, each saying which it is
    assert "ensemble of 2 (small_cnn): without TTA: val accuracy" in out
    assert "; with flip TTA: val accuracy" in out

    other = _train(tmp, "c", "data.n_val=300")
    from fer_exp.runs.ensemble import run_ensemble

    with pytest.raises(UserError, match=r"data\.n_val differ"):
        run_ensemble(uri, [a.run_id, other.run_id])
    with pytest.raises(UserError, match="at least 2"):
        run_ensemble(uri, [a.run_id, a.run_id])
    with pytest.raises(UserError, match="--tta-shift shifts the test-time views: add --tta"):
        run_ensemble(uri, [a.run_id, b.run_id], tta_shift=2)


@pytest.fixture(scope="module")
def tta_ensemble(members, tmp_path_factory):
    from fer_exp.runs.ensemble import run_ensemble

    tmp, (a, b) = members
    return run_ensemble(
        f"sqlite:///{tmp}/mlflow.db",
        [a.run_id, b.run_id],
        tta=True,
        out_dir=tmp_path_factory.mktemp("tta_ensemble"),
        tta_shift=1,
    )


def test_ensemble_with_tta_logs_its_plain_and_its_tta_accuracy_as_a_run_does(members, monkeypatch, tmp_path):
    import numpy as np
    from sklearn.metrics import f1_score

    from fer_exp.runs import ensemble

    tmp, (a, b) = members
    seen = []

    def views_always_right(model, batches, n_batches, tta=False, tta_shift=0):
        """The members' real predictions, with TTA views that always pick the true class, so the
        plain and the TTA figures cannot coincide even for models this small."""
        y_true, plain, _ = real_predict(model, batches, n_batches, tta=tta, tta_shift=tta_shift)
        seen.append((y_true, plain))
        return y_true, plain, np.eye(plain.shape[1])[y_true]

    real_predict = ensemble.predict
    monkeypatch.setattr(ensemble, "predict", views_always_right)
    _, metrics = ensemble.run_ensemble(
        f"sqlite:///{tmp}/mlflow.db", [a.run_id, b.run_id], tta=True, out_dir=tmp_path / "ens", tta_shift=1
    )
    y_true = seen[0][0]
    y_plain = np.mean([plain for _, plain in seen], axis=0).argmax(1)  # averaged here, not by the ensemble
    assert metrics["best_val_accuracy"] == pytest.approx(np.mean(y_plain == y_true), abs=1e-9)
    assert metrics["best_val_accuracy"] < 1  # so it cannot be the TTA figure
    assert metrics["val_macro_f1"] == pytest.approx(f1_score(y_true, y_plain, average="macro"), abs=1e-9)
    assert metrics["val_accuracy_tta"] == metrics["val_macro_f1_tta"] == 1.0
    # each member's own accuracy is the one its run logged (it trained without tta), its TTA one beside it
    assert metrics["member_accuracy.0"] == pytest.approx(a.best_val_accuracy, abs=1e-6)
    assert metrics["member_accuracy_tta.0"] == metrics["member_accuracy_tta.1"] == 1.0


def test_benchmark_table_lists_an_ensemble_of_ablation_runs_as_a_recipe(members, tta_ensemble, tmp_path):
    import json
    from pathlib import Path

    tmp, (a, b) = members
    uri = f"sqlite:///{tmp}/mlflow.db"
    run_id, metrics = tta_ensemble
    record = tmp_path / "runs.json"
    proc = subprocess.run(
        [
            sys.executable,
            "scripts/benchmark_table.py",
            "--tracking-uri",
            uri,
            "--experiment",
            "none",
            "--ablation",
            "fer_exp",
            "--record",
            str(record),
            "--out",
            str(tmp_path / "b.md"),
        ],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    records = {r["run_id"]: r for r in json.loads(record.read_text())}
    assert (
        records[run_id]["section"] == "main"
        and records[a.run_id]["section"] == records[b.run_id]["section"] == "ablation"
    )
    # plain and TTA accuracy in their own columns, as for a run; the members and the command in the record
    ens = records[run_id]
    assert (ens["best_val_accuracy"], ens["val_accuracy_tta"]) == (
        metrics["best_val_accuracy"],
        metrics["val_accuracy_tta"],
    )
    assert ens["tta_views"] == "flip + 1 px shifts" and ens["members"] == [a.run_id, b.run_id]
    assert (
        ens["reproduce"] == f"python -m fer_exp.ensemble {a.run_id} {b.run_id} --tta --tta-shift 1 --experiment fer_exp"
    )
    assert records[a.run_id]["config_source"] == "logged" and records[a.run_id]["config"]["seed"] == 1
    page = (tmp_path / "b.md").read_text()
    assert "| flip + 1 px shifts |" in page and ens["reproduce"] in page
