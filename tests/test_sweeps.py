"""Sweeps: one MLflow parent run per sweep with child runs, launchers, Optuna, comparison."""

from __future__ import annotations

import re
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
    assert len({c.data.tags["hydra.sweep_dir"] for c in children}) == 1
    assert len({c.data.tags["output_dir"] for c in children}) == 4
    assert [set(c.data.tags["overrides"].split()) for c in children] == [
        {"experiment=augmentation_study", "debug=fast", f"augmentation={a}"} for a in ("none", "light", "seed", "heavy")
    ]
    assert {"comparison/comparison.csv", "comparison/comparison.md", "comparison/comparison.png"} <= set(
        artifact_paths(client, parent.info.run_id)
    )
    assert "best_val_accuracy" in parent.data.metrics and "best_best_val_accuracy" not in parent.data.metrics
    assert f"sweep {parent.info.run_id}: 4 jobs, 4 finished" in proc.stdout
    assert (
        f"(expand the parent for its jobs): http://127.0.0.1:5000/#/experiments/{parent.info.experiment_id}?"
        in proc.stdout
    )

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
    for c in children:  # four writers at once into one sqlite file: nothing lost, nothing doubled
        for key in ("loss", "val_loss", "learning_rate"):
            assert sorted(m.step for m in client.get_metric_history(c.info.run_id, key)) == [1, 2], key
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
def test_optuna_trials_land_as_runs_and_the_reported_best_is_the_best_run(tmp_path):
    """Each trial's sampled values are its run's params, inside the search space, and the best
    trial Optuna reports (optimization_results.yaml) is the child run with the best metric."""
    import yaml

    proc = run_cli(
        [
            "-m",
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=3",
            "debug=fast",
            "limit_val_batches=null",  # metrics that tell the trials apart
            "optimized_metric=val_macro_f1",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, runs = mlflow_runs(tmp_path / "mlflow.db", "hparams_search")
    parent, children = _sweep_runs(client, runs)
    assert len(children) == 3 and {c.info.status for c in children} == {"FINISHED"}
    assert (tmp_path / "optuna.db").is_file()  # the study persists beside mlflow.db
    for c in children:
        assert c.data.tags["fer_exp.trial_number"] == c.data.tags["hydra.job_num"]
        p = c.data.params
        assert 1e-4 <= float(p["optimizer.learning_rate"]) <= 1e-2
        assert float(p["augmentation.rotation_range"]) in {0, 5, 10, 15, 20, 25}
        assert 0 <= float(p["augmentation.zoom_range"]) <= 0.3
        assert p["augmentation.horizontal_flip"] in {"true", "false"}
        sampled = dict(
            o.split("=", 1) for o in c.data.tags["overrides"].split() if o.startswith(("augmentation.", "optimizer."))
        )
        assert set(sampled) == {
            "augmentation.rotation_range",
            "augmentation.width_shift_range",
            "augmentation.height_shift_range",
            "augmentation.zoom_range",
            "augmentation.horizontal_flip",
            "optimizer.learning_rate",
        }
        assert float(sampled["optimizer.learning_rate"]) == pytest.approx(float(p["optimizer.learning_rate"]))
    assert len({c.data.params["optimizer.learning_rate"] for c in children}) == 3
    assert len({c.data.metrics["val_macro_f1"] for c in children}) > 1, "trials the metric cannot tell apart"
    (results,) = tmp_path.glob("multirun/*/*/optimization_results.yaml")
    best = yaml.safe_load(results.read_text())
    top = max(c.data.metrics["val_macro_f1"] for c in children)
    assert best["best_value"] == pytest.approx(top)
    best_rates = {
        float(c.data.params["optimizer.learning_rate"]) for c in children if c.data.metrics["val_macro_f1"] == top
    }
    assert float(best["best_params"]["optimizer.learning_rate"]) in best_rates
    assert parent.data.metrics["best_val_macro_f1"] == pytest.approx(best["best_value"])


SECRET_ARTIFACTS = ("config/config.yaml", "config/overrides.txt", "config/hydra.yaml", "logs/fer_exp.log")


@pytest.mark.slow
def test_sweep_logs_to_a_tracking_server_over_http_without_leaking_credentials(tmp_path, mlflow_server):
    """A password in the tracking URI and a token read from a secret env variable into an
    ordinary key (run_name) reach no param, tag, name, uploaded text file or console line."""
    uri = mlflow_server.uri.replace("http://", "http://alice:s3cr3t@")
    proc = run_cli(
        ["-m", "augmentation=none,seed", "debug=fast", f"tracking_uri={uri}", "run_name=${oc.env:MY_API_TOKEN}"],
        tmp_path,
        env={"MY_API_TOKEN": "tok3nV4lue"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server.uri)
    experiment = client.get_experiment_by_name("fer_exp")
    runs = client.search_runs([experiment.experiment_id])
    parent, children = _sweep_runs(client, runs)
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]
    seen = [proc.stdout, proc.stderr, experiment.name]
    for r in [parent, *children]:
        seen += [r.info.run_name, str(r.data.tags), str(r.data.params)]
    for c in children:
        assert c.data.params["tracking_uri"] == mlflow_server.uri.replace("http://", "http://***@")
        assert c.data.params["run_name"] == "***"
        assert {"plots/confusion_matrix.png", "model/best.keras"} <= set(artifact_paths(client, c.info.run_id))
        for path in SECRET_ARTIFACTS:
            seen.append(open(client.download_artifacts(c.info.run_id, path, str(tmp_path))).read())
    leaks = [m.group(0) for text in seen for m in re.finditer(r".{0,120}(?:s3cr3t|tok3nV4lue).{0,40}", text)]
    assert not leaks, "\n".join(leaks)
    # Hydra's own copies keep the URI as typed, so that a job can be re-run: its owner's only
    copies = list(tmp_path.glob("multirun/*/*/*/.hydra/*.yaml")) + list(tmp_path.glob("multirun/*/*/*/run.json"))
    assert len(copies) == 8 and all(p.stat().st_mode & 0o077 == 0 for p in copies), copies
    assert not (tmp_path / "mlflow.db").exists()


def test_comparison_labels_name_only_what_differs():
    from fer_exp.analysis.table import run_label, shared_overrides

    rows = [
        {"overrides": f"augmentation={a} epochs=10 experiment_name=demo", "job": str(i), "run": f"r{i}"}
        for i, a in enumerate(["none", "seed"])
    ]
    shared = shared_overrides(rows)
    assert [run_label(row, [], shared) for row in rows] == ["#0 augmentation=none", "#1 augmentation=seed"]
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


@pytest.mark.slow
def test_a_sweep_over_seeds_lands_its_grouped_comparison_and_the_compare_command_agrees(tmp_path):
    import csv

    sweep = ["-m", "augmentation=none,heavy", "seed=1,2", "debug=fast", "limit_val_batches=4"]
    proc = run_cli(sweep, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, runs = mlflow_runs(tmp_path / "mlflow.db")
    parent, children = _sweep_runs(client, runs)
    assert {"comparison/groups.csv", "comparison/differences.csv", "comparison/comparison.png"} <= set(
        artifact_paths(client, parent.info.run_id)
    )
    out = tmp_path / "multirun"
    (folder,) = out.glob("*/*/comparison")
    with open(folder / "groups.csv") as f:
        groups = list(csv.DictReader(f))
    assert [(g["setting"], g["n"], g["seeds"]) for g in groups] == [
        ("augmentation=none", "2", "1 2"),
        ("augmentation=heavy", "2", "1 2"),
    ]
    assert {"mean", "std", "ci_low", "ci_high", "best_val_accuracy", "val_macro_f1", "f1_disgust"} <= set(groups[0])
    with open(folder / "differences.csv") as f:
        (diff,) = list(csv.DictReader(f))
    assert {"difference", "ci_low", "ci_high", "p_improvement", "verdict"} <= set(diff)
    assert diff["baseline"] == "augmentation=none" and diff["noise"] == "seeds and images"
    parent = client.get_run(parent.info.run_id)
    assert parent.data.tags["fer_exp.verdict.augmentation:heavy"] == diff["verdict"]
    assert parent.data.metrics["diff.augmentation:heavy.difference"] == pytest.approx(float(diff["difference"]))
    assert {c.data.tags["fer_exp.setting"] for c in children} == {"augmentation=none", "augmentation=heavy"}
    assert "by setting against augmentation=none (baseline)" in proc.stdout
    # the compare command from the run ids: the same numbers (the bootstrap is seeded)
    cmp = subprocess.run(
        [sys.executable, "-m", "fer_exp.compare", "--runs", *(c.info.run_id for c in children), "--out", "again"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cmp.returncode == 0, cmp.stderr[-2000:]
    with open(tmp_path / "again" / "differences.csv") as f:
        assert list(csv.DictReader(f)) == [diff]
