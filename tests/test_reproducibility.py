"""Same config + same seed on a CPU -> the same metrics; deterministic=true -> bit-exact."""

from __future__ import annotations

import pytest

from fer_exp.config import compose
from fer_exp.runs import JobInfo, run
from tests.conftest import mlflow_runs, run_cli


def test_two_runs_of_one_config_give_the_same_first_epoch(tmp_path):
    overrides = [
        "augmentation=seed",
        "epochs=1",
        "limit_train_batches=3",
        "limit_val_batches=2",
        "preview_images=0",
        "model.filters=[8,16]",  # what is seeded, not the model, is under test: a quick graph
        f"tracking_uri=sqlite:///{tmp_path}/mlflow.db",
    ]
    results = [run(compose(overrides), JobInfo(output_dir=tmp_path / f"run{i}")) for i in range(2)]
    different_seed = run(compose([*overrides, "seed=7"]), JobInfo(output_dir=tmp_path / "run_seed7"))
    client, runs = mlflow_runs(tmp_path / "mlflow.db")
    ids = [r.run_id for r in results]

    def first(run_id, key):
        return client.get_metric_history(run_id, key)[0].value

    for key in ("loss", "accuracy", "val_loss"):
        assert first(ids[0], key) == first(ids[1], key), key
    assert first(ids[0], "loss") != first(different_seed.run_id, "loss")


@pytest.mark.slow
def test_deterministic_runs_match_exactly(tmp_path):
    """deterministic=true: two processes with one config and the same thread settings log
    bit-identical metrics, every epoch (TensorFlow promises no more: other thread counts or
    another CPU may round differently)."""
    train = ["deterministic=true", "epochs=2", "limit_train_batches=3", "limit_val_batches=2", "preview_images=0"]
    for _ in range(2):
        proc = run_cli([*train, "threads.intra_op=2"], tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    client, runs = mlflow_runs(tmp_path / "mlflow.db")
    assert [r.data.params["deterministic"] for r in runs] == ["true", "true"]

    def history(run):
        keys = sorted(k for k in run.data.metrics if not k.endswith("_s"))  # not the timings
        return {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)] for k in keys}

    first, second = (history(r) for r in runs)
    assert "val_loss" in first and len(first["loss"]) == 2
    assert first == second
