"""Same config + same seed on a CPU -> the same first-epoch metrics (in-process runs)."""

from __future__ import annotations

from fer_exp.config import compose
from fer_exp.runs import JobInfo, run
from tests.conftest import mlflow_runs


def test_two_runs_of_one_config_give_the_same_first_epoch(tmp_path):
    overrides = [
        "augmentation=seed",
        "epochs=1",
        "limit_train_batches=4",
        "limit_val_batches=2",
        "preview_images=0",
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
