"""Sweeps: one MLflow parent run per sweep with child runs, launchers, Optuna, comparison."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import artifact_paths, mlflow_runs, run_cli


def _sweep_runs(client, runs):
    parents = [r for r in runs if r.data.tags.get("fer_exp.sweep_role") == "parent"]
    assert len(parents) == 1, [r.data.tags for r in runs]
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    children.sort(key=lambda r: int(r.data.tags["hydra.job_num"]))
    assert len(children) == len(runs) - 1, "every job is a child of the sweep's parent run"
    for child in children:
        assert child.data.tags["fer_exp.sweep_id"] == parent.info.run_id
        assert child.data.tags["overrides"]
    return parent, children


@pytest.mark.slow
def test_experiment_config_runs_a_grouped_sweep_with_a_comparison(tmp_path):
    # experiment=augmentation_study sets hydra.mode=MULTIRUN: no -m needed
    proc = run_cli(["experiment=augmentation_study", "debug=fast"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, runs = mlflow_runs(tmp_path / "mlflow.db", "augmentation_study")
    parent, children = _sweep_runs(client, runs)
    assert parent.info.status == "FINISHED"
    assert [c.info.status for c in children] == ["FINISHED"] * 4
    assert [c.data.params["augmentation.rotation_range"] for c in children] == ["0.0", "10.0", "20.0", "25.0"]
    assert {c.data.params["model.name"] for c in children} == {"small_cnn"}
    assert [c.data.tags["hydra.job_num"] for c in children] == ["0", "1", "2", "3"]
    assert {"comparison/comparison.csv", "comparison/comparison.md", "comparison/comparison.png"} <= set(
        artifact_paths(client, parent.info.run_id)
    )
    assert "best_best_val_accuracy" in parent.data.metrics
    assert f"sweep {parent.info.run_id}: 4 jobs, 4 finished" in proc.stdout

    # the comparison CLI reads the same store and finds the latest sweep by itself
    out = tmp_path / "report"
    cmp = subprocess.run(
        [sys.executable, "-m", "fer_exp.compare", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cmp.returncode == 0, cmp.stderr
    lines = (out / "comparison.md").read_text().splitlines()
    assert len(lines) == 2 + 4 and "augmentation.rotation_range" in lines[0] and "f1_disgust" in lines[0]
    csv_rows = (out / "comparison.csv").read_text().splitlines()
    assert len(csv_rows) == 5
    png = np.asarray(Image.open(out / "comparison.png").convert("L"), dtype=float)
    assert png.shape[1] > 1000 and png.std() > 10


@pytest.mark.slow
def test_one_failed_job_does_not_stop_the_sweep(tmp_path):
    proc = run_cli(["-m", "+optimizer.bogus=1,null", "debug=fast"], tmp_path)
    assert proc.returncode != 0
    assert "1 finished, 1 failed or stopped" in proc.stdout
    assert "job 0 [FAILED] +optimizer.bogus=1 debug=fast: ConfigError" in proc.stdout
    client, runs = mlflow_runs(tmp_path / "mlflow.db")
    parent, children = _sweep_runs(client, runs)
    assert [c.info.status for c in children] == ["FAILED", "FINISHED"]
    assert parent.info.status == "FAILED"
    assert "error/traceback.txt" in artifact_paths(client, children[0].info.run_id)


@pytest.mark.slow
def test_joblib_launcher_four_parallel_jobs_into_one_sqlite_store(tmp_path):
    proc = run_cli(
        ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", "seed=1,2,3,4", "debug=fast", "epochs=2"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, runs = mlflow_runs(tmp_path / "mlflow.db")
    parent, children = _sweep_runs(client, runs)
    assert [c.info.status for c in children] == ["FINISHED"] * 4
    for c in children:
        assert sorted(m.step for m in client.get_metric_history(c.info.run_id, "val_loss")) == [1, 2]
        assert "best_val_accuracy" in c.data.metrics
        # four jobs on this machine's cores: each takes its share, not all of them
        assert c.data.params["threads.intra_op"] != "0"


@pytest.mark.slow
def test_submitit_local_launcher(tmp_path):
    proc = run_cli(["-m", "hydra/launcher=submitit_local", "augmentation=none,seed", "debug=fast"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, runs = mlflow_runs(tmp_path / "mlflow.db")
    parent, children = _sweep_runs(client, runs)
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]
    assert parent.info.status == "FINISHED"


@pytest.mark.slow
def test_optuna_search_returns_the_configured_metric(tmp_path):
    proc = run_cli(
        ["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=3", "debug=fast", "optimized_metric=val_macro_f1"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Best value:" in proc.stdout + proc.stderr
    client, runs = mlflow_runs(tmp_path / "mlflow.db", "hparams_search")
    parent, children = _sweep_runs(client, runs)
    assert len(children) == 3
    rates = {c.data.params["optimizer.learning_rate"] for c in children}
    assert len(rates) == 3 and all(1e-4 <= float(r) <= 1e-2 for r in rates)
    assert "best_val_macro_f1" in parent.data.metrics


@pytest.mark.slow
def test_sweep_logs_to_a_tracking_server_over_http_without_leaking_credentials(tmp_path, mlflow_server):
    uri = mlflow_server.uri.replace("http://", "http://alice:s3cr3t@")
    proc = run_cli(["-m", "augmentation=none,seed", "debug=fast", f"tracking_uri={uri}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server.uri)
    runs = client.search_runs([client.get_experiment_by_name("fer_exp").experiment_id])
    parent, children = _sweep_runs(client, runs)
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]
    for c in children:
        assert c.data.params["tracking_uri"] == mlflow_server.uri.replace("http://", "http://***@")
        assert "s3cr3t" not in str(c.data.tags) + str(c.data.params)
        config = client.download_artifacts(c.info.run_id, "config/config.yaml", str(tmp_path))
        assert "s3cr3t" not in open(config).read()
        assert {"plots/confusion_matrix.png", "model/best.keras"} <= set(artifact_paths(client, c.info.run_id))
    assert not (tmp_path / "mlflow.db").exists()


def test_comparison_labels_name_only_what_differs():
    from fer_exp.analysis.compare import _label, shared_overrides

    rows = [
        {"overrides": f"augmentation={a} epochs=10 experiment_name=demo", "job": str(i), "run": f"r{i}"}
        for i, a in enumerate(["none", "seed"])
    ]
    shared = shared_overrides(rows)
    assert [_label(row, [], shared) for row in rows] == ["#0 augmentation=none", "#1 augmentation=seed"]
    assert shared_overrides(rows[:1]) == set()  # a single run keeps its whole label


def test_slurm_launcher_config_hands_its_parameters_to_submitit():
    """hydra/launcher=slurm composes into hydra-submitit's Slurm launcher with our defaults and
    the command line's overrides (no cluster needed: composition checks every key's name)."""
    from hydra import compose, initialize_config_dir

    from fer_exp.config import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", ["hydra/launcher=slurm", "hydra.launcher.partition=cpu"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.cpus_per_task, launcher.timeout_min, launcher.nodes) == ("cpu", 8, 240, 1)
