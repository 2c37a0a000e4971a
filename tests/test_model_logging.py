"""Every run logs its best model as an MLflow Model: raw images in, the run's probabilities out."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from fer_exp.config import compose
from fer_exp.runs import JobInfo, run
from tests.conftest import artifact_paths

TINY = ["debug=fast", "preview_images=0", "model.filters=[8,16]", "batch_size=32"]


def tiny_run(tmp: Path, *overrides: str):
    """A one-epoch run into ``tmp`` (its store: tmp/mlflow.db)."""
    cfg = compose([*TINY, f"tracking_uri=sqlite:///{tmp}/mlflow.db", *overrides])
    return cfg, run(cfg, JobInfo(output_dir=tmp / "out"))


def own_predictions(cfg, output_dir: Path, n: int = 32):
    """The run's own evaluation path (its pipeline, its checkpoint) on the first ``n`` validation
    images, and those images as the PNG files they were read from."""
    from fer_exp.analysis.evaluate import predict
    from fer_exp.data.sources import load_splits
    from fer_exp.runs.steps import build_inputs
    from fer_exp.training.fit import load_checkpoint

    splits = load_splits(cfg.data)
    inputs = build_inputs(cfg, splits, 0, None)
    model = load_checkpoint(output_dir / "checkpoints" / "best.keras")
    _, probs = predict(model, inputs.val, -(-n // cfg.batch_size))
    files = [Path(p).read_bytes() for p in splits.val.paths[:n]]
    return probs[:n], files, splits.class_names


@pytest.fixture(scope="module")
def featurewise(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("logged")
    cwd = Path.cwd()
    os.chdir(tmp)  # the sqlite store's artifacts go to ./mlruns
    # featurewise statistics and a resize: the model must carry both to match the run
    cfg, result = tiny_run(
        tmp,
        "data.pic_size=40",
        "augmentation=seed",
        "augmentation.featurewise_center=true",
        "augmentation.featurewise_std_normalization=true",
    )
    os.chdir(cwd)
    return tmp, cfg, result


@pytest.mark.slow
def test_the_logged_model_answers_raw_images_as_the_run_did(featurewise):
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    tmp, cfg, result = featurewise
    uri = f"sqlite:///{tmp}/mlflow.db"
    client = MlflowClient(uri)
    paths = set(artifact_paths(client, result.run_id))
    assert {"model/MLmodel", "model/best.keras", "model/input_spec.json", "model/serving_input_example.json"} <= paths
    (logged,) = client.search_logged_models([client.get_run(result.run_id).info.experiment_id])
    assert (logged.name, logged.source_run_id, str(logged.status)) == ("small_cnn", result.run_id, "READY")

    expected, files, names = own_predictions(cfg, result.output_dir)
    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model")
    finally:
        mlflow.set_tracking_uri(None)
    assert model.metadata.metadata["class_names"] == list(names)
    assert model.metadata.get_input_schema().input_names() == ["image"]
    out = model.predict(pd.DataFrame({"image": files}))
    assert list(out.columns) == ["label", *names]
    np.testing.assert_allclose(out[list(names)].to_numpy(), expected, atol=1e-5)
    assert list(out["label"]) == [names[i] for i in expected.argmax(1)]


@pytest.mark.slow
def test_load_predictor_from_a_run_id_a_keras_file_and_a_folder(featurewise):
    from PIL import Image

    from fer_exp.inference.loading import load_predictor

    tmp, cfg, result = featurewise
    expected, files, names = own_predictions(cfg, result.output_dir, 8)
    arrays = [np.asarray(Image.open(io.BytesIO(b))) for b in files]
    for ref in (result.run_id, result.output_dir / "checkpoints" / "best.keras", result.output_dir / "model"):
        predictor = load_predictor(ref, f"sqlite:///{tmp}/mlflow.db")
        assert predictor.class_names == names and predictor.spec.pic_size == 40
        np.testing.assert_allclose(predictor.predict_proba(arrays), expected, atol=1e-5)
    spec = json.loads((result.output_dir / "model" / "input_spec.json").read_text())
    assert spec["featurewise_center"] and len(spec["mean"]) == 1


def test_a_run_whose_store_is_away_journals_its_model(tmp_path):
    """The model's upload meets a store that is gone: it is journaled, the run is not failed."""
    from fer_exp.serving.logged import log_model_folder
    from fer_exp.tracking import Tracker

    class Gone:
        def __getattr__(self, name):
            def call(*args, **kwargs):
                raise ConnectionError("Connection refused")

            return call

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("flavors: {}\n")
    tracker = Tracker(Gone(), "0" * 32, "http://127.0.0.1:9", tmp_path, experiment_id="1")
    assert log_model_folder(tracker, tmp_path / "model", "small_cnn") is None
    (record,) = tracker.journal.records()
    assert (record["op"], record["artifact_path"]) == ("log_artifacts", "model")
    assert record["local_path"] == str((tmp_path / "model").resolve())
