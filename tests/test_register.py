"""``python -m fer_exp.register``: the best run's model as a registered version with an alias,
loadable as ``models:/NAME@champion``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fer_exp.cli.register import main
from fer_exp.inference import InputSpec

CLASSES = ("angry", "happy", "sad")


def _fake_run(tmp: Path, uri: str, name: str, accuracy: float, seed: int) -> str:
    """A finished run with a metric and an MLflow Model of a tiny Keras model (no training)."""
    import keras

    from fer_exp.serving.logged import log_model_folder
    from fer_exp.serving.model_dir import save_model_dir
    from fer_exp.tracking import Tracker

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")]
    )
    folder = tmp / name
    folder.mkdir()
    model.save(folder / "best.keras")
    spec = InputSpec(8, "grayscale", "nearest", CLASSES, model_name="tiny", rescale=1 / 255)
    tracker = Tracker.start(uri, "exp", name, {}, journal_dir=folder)
    tracker.log_metrics({"best_val_accuracy": accuracy})
    log_model_folder(tracker, save_model_dir(folder / "model", [(folder / "best.keras", spec)], tracker.run_id), "tiny")
    tracker.end("FINISHED")
    return tracker.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("register")
    uri = f"sqlite:///{tmp}/mlflow.db"
    cwd = Path.cwd()
    import os

    os.chdir(tmp)  # the store's artifacts go to ./mlruns
    try:
        runs = {
            name: _fake_run(tmp, uri, name, acc, i)
            for i, (name, acc) in enumerate([("a", 0.3), ("b", 0.6), ("c", 0.5)])
        }
        from fer_exp.tracking import Tracker

        no_model = Tracker.start(uri, "exp", "no model", {})  # the best metric, but no model to register
        no_model.log_metrics({"best_val_accuracy": 0.9})
        no_model.end("FINISHED")
    finally:
        os.chdir(cwd)
    return tmp, uri, runs


def test_the_best_run_becomes_the_champion_and_loads(store, capsys):
    from mlflow.tracking import MlflowClient

    from fer_exp.inference.loading import load_predictor

    tmp, uri, runs = store
    assert main(["fer", "--experiment", "exp", "--tracking-uri", uri]) == 0
    assert "registered fer version 1 (alias @champion)" in capsys.readouterr().out
    client = MlflowClient(uri)
    champion = client.get_model_version_by_alias("fer", "champion")
    # the version points at the run's logged model, which lists the version
    (logged,) = [
        m
        for m in client.search_logged_models([client.get_run(runs["b"]).info.experiment_id])
        if m.source_run_id == runs["b"]
    ]
    assert (champion.run_id, champion.source) == (runs["b"], f"models:/{logged.model_id}")
    assert {"name": "fer", "version": 1} in json.loads(
        client.get_logged_model(logged.model_id).tags["mlflow.modelVersions"]
    )
    assert runs["b"] in champion.description and "best_val_accuracy: 0.6000" in champion.description

    images = [np.arange(64, dtype=np.uint8).reshape(8, 8) * 3, np.full((20, 12), 200, np.uint8)]
    expected = load_predictor(tmp / "b" / "model").predict_proba(images)
    got = load_predictor("models:/fer@champion", uri).predict_proba(images)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not np.allclose(load_predictor(tmp / "a" / "model").predict_proba(images), expected)

    # one run by id: a new version, the alias moves to it
    assert main(["fer", "--run", runs["c"], "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "registered fer version 2 (alias @champion)" in out, out
    now = MlflowClient(uri).get_model_version_by_alias("fer", "champion")
    assert (now.version, now.run_id) == (2, runs["c"])


def test_bad_requests_are_one_clear_line(store, capsys):
    tmp, uri, runs = store
    assert main(["fer", "--run", "f" * 32, "--tracking-uri", uri]) == 2
    assert "error: --run ffff" in capsys.readouterr().err
    assert main(["fer", "--experiment", "exp", "--metric", "val_nothing", "--tracking-uri", uri]) == 2
    assert "no finished run with the metric 'val_nothing'" in capsys.readouterr().err
    assert main(["fer", "--sweep", str(tmp), "--tracking-uri", uri]) == 2
    assert "not a sweep folder" in capsys.readouterr().err


@pytest.mark.slow
def test_an_ensemble_registers_as_one_model_averaging_its_members(tmp_path, monkeypatch, capsys):
    from fer_exp.inference.loading import EnsemblePredictor, load_predictor

    monkeypatch.chdir(tmp_path)  # the store's artifacts and the ensemble's folder stay here
    shared = f"sqlite:///{tmp_path}/mlflow.db"
    _, c = tiny_run_into(tmp_path / "c", shared, "seed=1")
    _, d = tiny_run_into(tmp_path / "d", shared, "seed=2", "augmentation=seed")
    assert main(["ens", "--ensemble", f"{c.run_id},{d.run_id}", "--tracking-uri", shared]) == 0
    assert "registered ens version 1 (alias @champion): ensemble of runs" in capsys.readouterr().out
    ensemble = load_predictor("models:/ens@champion", shared)
    assert isinstance(ensemble, EnsemblePredictor) and len(ensemble.members) == 2
    images = [np.full((48, 48), 90, np.uint8), (np.arange(48 * 48) % 256).astype(np.uint8).reshape(48, 48)]
    members = [load_predictor(r.output_dir / "model").predict_proba(images) for r in (c, d)]
    np.testing.assert_allclose(ensemble.predict_proba(images), np.mean(members, axis=0), atol=1e-6)


def tiny_run_into(out: Path, uri: str, *overrides: str):
    """A one-epoch run into ``out`` logged to the store ``uri``."""
    from fer_exp.config import compose
    from fer_exp.runs import JobInfo, run
    from tests.test_model_logging import TINY

    cfg = compose([*TINY, f"tracking_uri={uri}", *overrides])
    return cfg, run(cfg, JobInfo(output_dir=out))
