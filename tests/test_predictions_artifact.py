"""Every run keeps its validation predictions (``predictions/validation.npz``), their bootstrap
intervals as final metrics, and its train and validation sets as MLflow dataset inputs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import requests

from fer_exp.analysis.predictions import (
    PREDICTIONS_FILE,
    dataset_digest,
    dataset_input,
    evaluated_fingerprint,
    fingerprint,
    half_precision,
    load_predictions,
    save_predictions,
)
from fer_exp.data.table import ImageTable
from fer_exp.errors import UserError
from fer_exp.tracking import Tracker, tracker
from tests.conftest import artifact_paths

CLASSES = ("a", "b", "c")
QUICK = ["epochs=1", "limit_train_batches=2", "preview_images=0", "model.filters=[8,16]"]


def _softmax(rng, n: int, k: int) -> np.ndarray:
    logits = rng.normal(size=(n, k)) * 2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _table(n: int = 12, seed: int = 0, paths: bool = False) -> ImageTable:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 8, 8, 1), dtype=np.uint8)
    labels = np.arange(n) % len(CLASSES)
    files = tuple(f"/data/val/{CLASSES[y]}/{i:03d}.png" for i, y in enumerate(labels)) if paths else None
    return ImageTable(labels.astype(np.int64), CLASSES, paths=files, images=images)


# ------------------------------------------------------------------ the file


def test_predictions_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    labels, probs, tta = rng.integers(0, 3, 50), _softmax(rng, 50, 3), _softmax(rng, 50, 3)
    t_labels, t_probs = rng.integers(0, 3, 20), _softmax(rng, 20, 3)
    path = save_predictions(tmp_path / "p.npz", labels, probs, CLASSES, "abc123", tta, t_labels, t_probs)
    with np.load(path) as raw:  # small on disk: float16 probabilities, uint8 labels
        assert raw["probabilities"].dtype == np.float16 and raw["probabilities_tta"].dtype == np.float16
        assert raw["labels"].dtype == np.uint8 and raw["test_probabilities"].dtype == np.float16
    p = load_predictions(path)
    assert p.labels.dtype == np.int64 and p.labels.tolist() == labels.tolist()
    assert p.probabilities.dtype == np.float32 and np.allclose(p.probabilities, probs, atol=1e-3)
    assert np.array_equal(p.y_pred, probs.argmax(axis=1)) and np.array_equal(p.tta.argmax(axis=1), tta.argmax(axis=1))
    assert p.class_names == CLASSES and p.fingerprint == "abc123"
    assert p.test_labels.tolist() == t_labels.tolist() and np.allclose(p.test_probabilities, t_probs, atol=1e-3)
    plain = load_predictions(save_predictions(tmp_path / "q.npz", labels, probs, CLASSES, ""))
    assert plain.tta is None and plain.test_labels is None and plain.fingerprint == ""


def test_float16_keeps_every_images_predicted_class():
    """Two classes that round to one float16 value would tie, and argmax would pick the first:
    the file's accuracy would differ from the logged one."""
    probs = np.array([[0.2, 0.40001, 0.39999], [0.39999, 0.40001, 0.2], [0.5, 0.25, 0.25]])
    assert probs.astype(np.float16).argmax(axis=1).tolist() == [1, 0, 0]  # the rounding's tie
    assert half_precision(probs).argmax(axis=1).tolist() == [1, 1, 0]


def test_fingerprint_names_the_images_their_order_and_labels():
    t = _table()
    base = fingerprint(t.images, t.labels)
    assert base == fingerprint(t.images.copy(), t.labels.copy()) and len(base) == 16
    one_pixel = t.images.copy()
    one_pixel[5, 3, 3, 0] ^= 1
    one_label = t.labels.copy()
    one_label[5] = (one_label[5] + 1) % 3
    swapped = [1, 0, *range(2, len(t))]
    changed = {
        fingerprint(one_pixel, t.labels),
        fingerprint(t.images, one_label),
        fingerprint(t.images[swapped], t.labels[swapped]),
        fingerprint(t.images[:-1], t.labels[:-1]),  # limit_val_batches: fewer images
    }
    assert base not in changed and len(changed) == 4


def test_dataset_digest_changes_with_any_image_or_label():
    t = _table()
    digest = dataset_digest(t)
    assert digest == dataset_digest(_table()) and len(digest) <= 36  # MLflow keeps up to 36 characters
    images = t.images.copy()
    images[0, 0, 0, 0] ^= 1
    labels = t.labels.copy()
    labels[-1] = (labels[-1] + 1) % 3
    assert digest != dataset_digest(ImageTable(t.labels, CLASSES, images=images))
    assert digest != dataset_digest(ImageTable(labels, CLASSES, images=t.images))
    assert digest != dataset_digest(t.subset(np.arange(1, len(t))))  # de-duplication drops an image


def test_fingerprint_follows_the_order_the_predictions_are_in():
    """An iterator that lists its own files (flow_from_directory) is fingerprinted in its order,
    not the table's; labels that do not match the images give no fingerprint at all."""
    t = _table(paths=True)
    order = np.arange(len(t))[::-1]
    assert evaluated_fingerprint(t, t.labels[:5]) == fingerprint(t.images[:5], t.labels[:5])
    reversed_files = [t.paths[i] for i in order]
    assert evaluated_fingerprint(t, t.labels[order], reversed_files) == fingerprint(t.images[order], t.labels[order])
    assert evaluated_fingerprint(t, t.labels[order], reversed_files) != fingerprint(t.images, t.labels[order])
    assert evaluated_fingerprint(t, t.labels[order], t.paths) == ""  # the table's order, the iterator's labels
    assert evaluated_fingerprint(t, t.labels[:2], ["/elsewhere/x.png", t.paths[1]]) == ""  # files changed on disk


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def _text(path: Path) -> None:
    path.write_text("labels,probabilities\n1,0.5\n")


def _one_array(path: Path) -> None:
    with path.open("wb") as f:
        np.save(f, np.zeros(3))


def _foreign_npz(path: Path) -> None:
    with path.open("wb") as f:
        np.savez(f, labels=np.zeros(3))


def _wrong_shape(path: Path) -> None:
    with path.open("wb") as f:
        arrays = dict(labels=np.zeros(3), class_names=np.array(CLASSES), fingerprint=np.array("x"))
        np.savez(f, probabilities=np.zeros((2, 3)), **arrays)


@pytest.mark.parametrize(
    "damage,why",
    [
        (_truncate, "not a predictions file"),
        (_text, "not a predictions file"),
        (_one_array, "not a predictions file"),
        (_foreign_npz, "no probabilities, class_names, fingerprint in it (it holds labels)"),
        (_wrong_shape, "probabilities of shape (2, 3) for 3 labels and 3 classes"),
    ],
)
def test_a_damaged_file_is_one_clear_error(tmp_path, damage, why):
    path = save_predictions(tmp_path / PREDICTIONS_FILE, np.zeros(3), np.full((3, 3), 1 / 3), CLASSES, "f")
    damage(path)
    with pytest.raises(UserError) as err:
        load_predictions(path)
    message = str(err.value)
    assert message.startswith(f"{path} is not a usable predictions file: ") and why in message
    assert "\n" not in message


# ------------------------------------------------------------------ the journal


class Unreachable:
    """A real MLflow client that refuses every call with a connection error while ``down``."""

    def __init__(self, client):
        self.client, self.down = client, False

    def __getattr__(self, name):
        def call(*args, **kwargs):
            if self.down:
                raise requests.exceptions.ConnectionError("Connection refused")
            return getattr(self.client, name)(*args, **kwargs)

        return call


def test_dataset_inputs_wait_in_the_journal_while_the_store_is_away(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setattr(tracker, "RETRY_SECONDS", 0.0)
    real = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run_id = real.create_run(real.create_experiment("e")).info.run_id
    store = Unreachable(real)
    t = Tracker(store, run_id, "http://store", journal_dir=tmp_path)
    inputs = [
        dataset_input(_table(), "synthetic/train", "/data", "train"),
        dataset_input(_table(seed=1), "synthetic/validation", "/data", "validation"),
    ]
    store.down = True
    t.log_inputs(inputs)
    assert t.pending() == 1
    record = json.loads((tmp_path / "mlflow_journal.jsonl").read_text())  # plain JSON on disk
    assert record["op"] == "log_inputs" and [d["context"] for d in record["datasets"]] == ["train", "validation"]
    assert real.get_run(run_id).inputs.dataset_inputs == []
    store.down = False
    assert t.flush(force=True) and t.pending() == 0
    logged = real.get_run(run_id).inputs.dataset_inputs
    assert {(d.dataset.name, d.dataset.digest, d.tags[0].value) for d in logged} == {
        ("synthetic/train", dataset_digest(_table()), "train"),
        ("synthetic/validation", dataset_digest(_table(seed=1)), "validation"),
    }
    assert all(d.tags[0].key == "mlflow.data.context" for d in logged)
    assert json.loads(logged[0].dataset.profile)["images"] == 12


# ------------------------------------------------------------------ runs


def _run(base: Path, name: str, overrides: list[str]):
    """One quick run in this process into ``base/mlflow.db``: its config, result and MLflow run."""
    from mlflow import MlflowClient

    from fer_exp.config import compose
    from fer_exp.runs import JobInfo, run

    cfg = compose([*QUICK, *overrides, f"tracking_uri=sqlite:///{base}/mlflow.db"])
    result = run(cfg, JobInfo(output_dir=base / name))
    client = MlflowClient(f"sqlite:///{base}/mlflow.db")
    return SimpleNamespace(cfg=cfg, result=result, client=client, run=client.get_run(result.run_id))


def _downloaded(r, tmp: Path):
    assert f"predictions/{PREDICTIONS_FILE}" in artifact_paths(r.client, r.run.info.run_id)
    return Path(r.client.download_artifacts(r.run.info.run_id, f"predictions/{PREDICTIONS_FILE}", str(tmp)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A TTA run over the whole validation split (tf.data), a keras-pipeline run over its first
    three batches on the same data, and a run on other synthetic data."""
    base = tmp_path_factory.mktemp("runs")
    return SimpleNamespace(
        base=base,
        tta=_run(base, "tta", ["tta=true", "limit_val_batches=null"]),
        keras=_run(base, "keras", ["data.pipeline=keras", "limit_val_batches=3"]),
        other=_run(base, "other", ["data.n_train=140", "data.n_val=70", "data.generator_seed=3", "batch_size=32"]),
    )


def _val(cfg):
    from fer_exp.data.sources import load_splits

    return load_splits(cfg.data).val


def test_a_run_keeps_the_predictions_its_metrics_came_from(runs, tmp_path):
    r = runs.tta
    path = _downloaded(r, tmp_path)
    with np.load(path) as raw:
        assert raw["probabilities"].dtype == np.float16 and raw["probabilities_tta"].dtype == np.float16
    p = load_predictions(path)
    val = _val(r.cfg)
    assert len(p.labels) == len(val) == 500 and p.probabilities.shape == (500, 7)
    assert np.array_equal(p.labels, val.labels) and p.class_names == val.class_names
    assert p.fingerprint == fingerprint(val.images, val.labels)
    metrics = r.run.data.metrics
    assert p.accuracy == pytest.approx(metrics["best_val_accuracy"], abs=1e-9)
    assert float(np.mean(p.tta.argmax(axis=1) == p.labels)) == pytest.approx(metrics["val_accuracy_tta"], abs=1e-9)
    assert np.allclose(p.probabilities.sum(axis=1), 1, atol=1e-2)
    assert (r.result.output_dir / "predictions" / PREDICTIONS_FILE).is_file()  # kept on disk too


def test_bootstrap_intervals_bracket_the_final_metrics(runs):
    m = runs.tta.run.data.metrics
    for name in ("best_val_accuracy", "val_macro_f1", "val_accuracy_tta", "val_macro_f1_tta"):
        assert m[f"{name}_ci_low"] <= m[name] <= m[f"{name}_ci_high"], name
        assert m[f"{name}_ci_high"] - m[f"{name}_ci_low"] < 0.2, name  # 500 images: a few points wide
    on_disk = json.loads((runs.tta.result.output_dir / "reports" / "metrics.json").read_text())
    assert on_disk["best_val_accuracy_ci_low"] == m["best_val_accuracy_ci_low"]


def test_keras_pipeline_predictions_are_in_the_fingerprinted_order(runs, tmp_path):
    """flow_from_directory lists the class folders itself: its predictions must still be the
    first images of the loaded validation split, in that order. The model logged with the run,
    fed those images, gives the stored probabilities row for row."""
    from fer_exp.inference.loading import load_predictor

    r = runs.keras
    p = load_predictions(_downloaded(r, tmp_path))
    val = _val(r.cfg)
    n = 3 * r.cfg.batch_size
    assert len(p.labels) == n and np.array_equal(p.labels, val.labels[:n])
    assert p.fingerprint == fingerprint(val.images[:n], val.labels[:n])
    assert p.accuracy == pytest.approx(r.run.data.metrics["best_val_accuracy"], abs=1e-9)
    again = load_predictor(r.result.output_dir / "checkpoints" / "best.keras").predict_proba(val.images[:n])
    assert np.allclose(again, p.probabilities, atol=2e-3)
    assert not np.allclose(again[::-1], p.probabilities, atol=2e-3)  # the check sees another order


def test_each_run_names_its_train_and_validation_sets(runs):
    def inputs(r):
        return {d.tags[0].value: d.dataset for d in r.run.inputs.dataset_inputs if d.tags}

    tta, keras, other = inputs(runs.tta), inputs(runs.keras), inputs(runs.other)
    assert set(tta) == {"train", "validation"}
    assert (tta["train"].name, tta["validation"].name) == ("synthetic/train", "synthetic/validation")
    assert json.loads(tta["validation"].profile)["images"] == 500 and json.loads(tta["train"].profile)["classes"] == 7
    assert json.loads(tta["train"].source)["uri"] == json.loads(tta["validation"].source)["uri"]
    for context in ("train", "validation"):
        assert tta[context].digest == keras[context].digest  # the same data: comparable
        assert tta[context].digest != other[context].digest  # other faces
    assert tta["train"].digest != tta["validation"].digest
