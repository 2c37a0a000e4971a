"""The CLI end to end on synthetic data: what lands in MLflow and on disk, and how runs end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_exp.data.class_weights import balanced_class_weights
from fer_exp.data.synthetic import CLASS_NAMES, class_counts
from fer_exp.training.setup import NOISE
from tests.conftest import artifact_paths, mlflow_runs, run_cli

EXPECTED_ARTIFACTS = {
    "config/config.yaml",
    "config/overrides.txt",
    "config/hydra.yaml",
    "plots/confusion_matrix.png",
    "plots/learning_curves.png",
    "plots/augmented_samples.png",
    "reports/classification_report.txt",
    "reports/metrics.json",
    "reports/model_summary.txt",
    "predictions/validation.npz",
    "model/best.keras",
    "logs/fer_exp.log",
}


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    """One ``python -m fer_exp debug=fast`` from a directory outside the repo."""
    work = tmp_path_factory.mktemp("cli")
    proc = run_cli(["debug=fast", "augmentation=seed"], work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work, proc


def test_cli_reports_data_weights_and_summary(fast_run):
    _, proc = fast_run
    assert "Found 2000 images belonging to 7 classes." in proc.stdout
    assert "Found 500 images belonging to 7 classes." in proc.stdout
    assert "class weights (balanced): angry 1.0315, disgust 9.5238" in proc.stdout + proc.stderr
    assert "fer_exp run finished: best val accuracy" in proc.stdout
    assert "MLflow run" in proc.stdout
    # a link that opens MLflow 3's UI on the runs table, not its GenAI overview
    assert "then open http://127.0.0.1:5000/#/experiments/1?workflowType=machine_learning" in proc.stdout
    # quiet: none of TensorFlow's start-up lines (absl, oneDNN, the CUDA probe without a GPU)
    assert not [line for line in proc.stderr.splitlines() if NOISE.match(line)], proc.stderr[-3000:]
    assert "absl::InitializeLog" not in proc.stderr and "cuInit" not in proc.stderr
    assert proc.stdout.count("compute: CPU") + proc.stderr.count("compute: CPU") == 1  # device and precision


def test_mlflow_run_holds_params_metrics_artifacts_tags(fast_run):
    work, _ = fast_run
    client, runs = mlflow_runs(work / "mlflow.db")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    params = run.data.params
    # the whole composed config, flattened to dotted keys
    assert params["augmentation.rotation_range"] == "20.0"
    assert params["augmentation.fill_mode"] == "nearest"
    assert params["model.name"] == "small_cnn" and params["model.filters"] == "[16, 32, 64, 128]"
    assert params["optimizer.learning_rate"] == "0.001" and params["optimizer._target_"] == "keras.optimizers.Adam"
    assert params["callbacks.early_stopping.patience"] == "8"
    assert params["batch_size"] == "64" and params["limit_train_batches"] == "1"
    # derived values
    assert (params["data.found.train"], params["data.found.val"]) == ("2000", "500")
    assert params["data.found.classes"] == ",".join(CLASS_NAMES)
    labels = np.repeat(np.arange(7), class_counts(2000))
    expected = balanced_class_weights(labels, 7)
    for i, name in enumerate(CLASS_NAMES):
        assert float(params[f"class_weights.{name}"]) == pytest.approx(expected[i], abs=1e-6)
    assert int(params["model.param_count"]) > 100_000
    assert params["env.tensorflow"].startswith("2.") and params["env.precision"] == "float32"
    # metrics: per epoch at step=epoch (1-based) and final
    for key in ("loss", "accuracy", "f1", "val_loss", "val_accuracy", "val_f1", "learning_rate", "epoch_time_s"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [1], key
    # the one epoch's macro-F1, accumulated by Keras batch by batch, is sklearn's on its predictions
    assert run.data.metrics["val_f1"] == pytest.approx(run.data.metrics["val_macro_f1"], abs=1e-5)
    for key in ("best_val_accuracy", "val_macro_f1", "val_f1.disgust", "val_recall.happy", "best_epoch"):
        assert key in run.data.metrics
    assert run.data.metrics["epochs_run"] == 1
    # artifacts and tags
    assert EXPECTED_ARTIFACTS <= set(artifact_paths(client, run.info.run_id))
    assert run.data.tags["overrides"] == "debug=fast augmentation=seed"
    assert Path(run.data.tags["output_dir"]).is_dir()


def test_outputs_on_disk_are_real_pictures_and_checkpoints(fast_run):
    work, _ = fast_run
    out = next((work / "outputs").glob("*/*"))
    assert (out / "checkpoints" / "best.keras").stat().st_size > 10_000
    for name in ("confusion_matrix", "learning_curves", "augmented_samples"):
        pixels = np.asarray(Image.open(out / "plots" / f"{name}.png").convert("L"), dtype=float)
        assert pixels.shape[0] >= 150 and pixels.shape[1] >= 500, name
        assert pixels.std() > 10, f"{name}.png looks blank"


def test_exception_in_a_run_ends_it_failed_with_traceback(tmp_path):
    """In-process: how the CLI prints such an error is tests/test_first_hour.py's."""
    from fer_exp.config import compose
    from fer_exp.errors import ConfigError
    from fer_exp.runs import JobInfo, run

    cfg = compose(["debug=fast", "+optimizer.no_such_argument=1", f"tracking_uri=sqlite:///{tmp_path}/mlflow.db"])
    with pytest.raises(ConfigError, match="optimizer: cannot build keras.optimizers.Adam"):
        run(cfg, JobInfo(output_dir=tmp_path / "out"))
    client, runs = mlflow_runs(tmp_path / "mlflow.db")
    assert [r.info.status for r in runs] == ["FAILED"]
    paths = artifact_paths(client, runs[0].info.run_id)
    assert "error/traceback.txt" in paths
    text = client.download_artifacts(runs[0].info.run_id, "error/traceback.txt", str(tmp_path))
    assert "no_such_argument" in Path(text).read_text()


def test_console_script_is_installed(tmp_path):
    script = Path(sys.executable).parent / "fer-exp"
    proc = subprocess.run([str(script), "--cfg", "job", "batch_size=128"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0 and "batch_size: 128" in proc.stdout


def run_here(tmp_path: Path, overrides: list[str]):
    """One run in this process with ``overrides``, tracked in ``tmp_path/mlflow.db``, its folder
    ``tmp_path/out``: its result, the MLflow client and its MLflow run."""
    from fer_exp.config import compose
    from fer_exp.runs import JobInfo, run

    cfg = compose([*overrides, "preview_images=0", f"tracking_uri=sqlite:///{tmp_path}/mlflow.db"])
    result = run(cfg, JobInfo(output_dir=tmp_path / "out"))
    client, (r,) = mlflow_runs(tmp_path / "mlflow.db")
    return result, client, r


def test_tta_metrics_and_time_budget(tmp_path):
    overrides = ["tta=true", "tta_shift=1", "epochs=5", "limit_train_batches=2", "limit_val_batches=2"]
    result, _, r = run_here(tmp_path, [*overrides, "schedule=cosine", "time_budget_min=0.001"])
    assert result.epochs_run == 1  # the budget stops after the first epoch
    assert {"val_accuracy_tta", "val_macro_f1_tta"} <= set(r.data.metrics)
    assert r.data.params["tta_shift"] == "1"
    assert r.data.metrics["budget_epochs"] == 1  # the plan, per epoch, in MLflow


def test_checkpoint_on_macro_f1_evaluates_the_epoch_best_on_it(tmp_path):
    overrides = ["callbacks.checkpoint_monitor=val_f1", "callbacks.early_stopping.enabled=false", "epochs=4"]
    result, client, r = run_here(tmp_path, [*overrides, "limit_train_batches=3", "limit_val_batches=2"])
    f1 = [m.value for m in sorted(client.get_metric_history(r.info.run_id, "val_f1"), key=lambda m: m.step)]
    assert len(f1) == result.epochs_run == 4
    assert r.data.metrics["best_epoch"] == f1.index(max(f1)) + 1  # the first epoch with the best macro-F1
    # the final evaluation is of that epoch's weights: its macro-F1 is the one Keras logged then
    assert r.data.metrics["val_macro_f1"] == pytest.approx(max(f1), abs=1e-5)


def test_bfloat16_run_trains_in_bfloat16_and_says_so(tmp_path):
    from fer_exp.models.layers import FusedBatchNormalization
    from fer_exp.training.fit import load_checkpoint

    overrides = ["mixed_precision=bfloat16", "epochs=2", "limit_train_batches=3", "limit_val_batches=2"]
    result, _, r = run_here(tmp_path, overrides)
    assert r.data.params["mixed_precision"] == "bfloat16" and r.data.params["env.precision"] == "mixed_bfloat16"
    assert result.epochs_run == 2 and np.isfinite(r.data.metrics["val_loss"]) and np.isfinite(r.data.metrics["loss"])
    model = load_checkpoint(tmp_path / "out" / "checkpoints" / "best.keras")
    norms = [layer for layer in model.layers if "normalization" in layer.name]
    assert norms and all(isinstance(n, FusedBatchNormalization) and n.compute_dtype == "bfloat16" for n in norms)


def test_benchmark_table_is_generated_from_mlflow_and_kept_in_a_record(fast_run, tmp_path):
    work, _ = fast_run
    out, record = tmp_path / "benchmarks.md", tmp_path / "runs.json"
    script = [sys.executable, "scripts/benchmark_table.py", "--out", str(out), "--record", str(record)]
    repo = Path(__file__).parents[1]
    proc = subprocess.run(
        script + ["--tracking-uri", f"sqlite:///{work}/mlflow.db", "--experiment", "fer_exp"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "| recipe | model | parameters | augmentation |" in text and "| small_cnn | 295,575 | seed |" in text
    (entry,) = json.loads(record.read_text())
    assert entry["section"] == "main" and entry["epochs"] == 1 and entry["cpu"].endswith("cores")
    assert entry["precision"] == "float32" and "| compute |" in text and "| float32 |" in text
    # a later session without the MLflow store renders the same page from the record alone
    out.unlink()
    proc = subprocess.run(script, cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0 and out.read_text() == text


def test_ablation_table_says_what_each_family_adds_over_its_base(tmp_path):
    def entry(aug, acc, epochs):
        return {
            "run_id": aug,
            "section": "ablation",
            "recipe": "fer2013_ablation",
            "model": "small_cnn",
            "parameters": 1000,
            "augmentation": aug,
            "epochs": epochs,
            "train_time_s": 900.0,
            "best_val_accuracy": acc,
            "cpu": "cpu · 2 cores",
            "date": "2026-11-25",
        }

    main = {**entry("light", 0.66, 30), "run_id": "m", "section": "main", "recipe": "fer2013_small_cnn"}
    record, out = tmp_path / "runs.json", tmp_path / "benchmarks.md"
    record.write_text(
        json.dumps([main, entry("none", 0.60, 20), entry("light", 0.63, 18), entry("light_mixup", 0.625, 15)])
    )
    proc = subprocess.run(
        [sys.executable, "scripts/benchmark_table.py", "--out", str(out), "--record", str(record)],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    ablation = out.read_text().split("## Augmentation ablation")[1]
    assert "~15 min" in ablation and "1,000 parameters" in ablation
    rows = {
        line.split(" | ")[0].strip("| "): line.split(" | ")
        for line in ablation.splitlines()
        if line.startswith("| light") or line.startswith("| none")
    }
    # columns: augmentation, epochs, s/epoch, best acc, its interval over the faces alone, vs none, vs light
    assert rows["light_mixup"][1:7] == ["15", "60", "62.50 %", "61.36–63.63 %", "+2.50", "-0.50"]
    assert rows["none"][5:7] == ["+0.00", "-3.00"]
    assert "no difference here is a finding" in ablation and "(#augmentation-over-seeds)" in ablation
    assert "66.00 %" not in ablation  # the recipe run stays in its own table


COMMANDS = ["audit", "compare", "ensemble", "export", "predict", "register", "sync"]


@pytest.mark.parametrize(
    "argv", [[f"fer_exp.{c}"] for c in COMMANDS] + [["fer_exp", "predict"], ["fer_exp", "register"]], ids=" ".join
)
def test_every_command_answers_help_without_starting_tensorflow(argv, tmp_path):
    """``python -m fer_exp.<command> --help``, and ``python -m fer_exp <command>`` (``fer-exp
    <command>``) the same."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", *argv, "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    command = ".".join(argv)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: python -m {command} [-h]"), proc.stdout[:300]
    assert "| tensorflow\n" not in proc.stderr  # --help must not cost TensorFlow's import
