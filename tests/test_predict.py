"""``python -m fer_exp.predict``: inputs, face detection and cropping, batched inference, TTA, the
CSV / JSON / pictures it writes, and its errors. Most tests use a stand-in predictor (no
TensorFlow); one loads a tiny Keras model through ``load_predictor``; the slow one trains a run
and calls the command as a user does."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys

import numpy as np
import pytest
from PIL import Image

from fer_exp.data.synthetic import CLASS_NAMES, render_face
from fer_exp.errors import DataError, UserError
from fer_exp.inference import inputs as inputs_mod
from fer_exp.inference.faces import Box, detect_faces, square_crop, to_model_image
from fer_exp.inference.predict import Options, predict_frames
from fer_exp.inference.preprocess import InputSpec
from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("predict_images", REPO / "scripts" / "predict_images.py")
predict_images = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(predict_images)

SPEC = InputSpec(48, "grayscale", "nearest", CLASS_NAMES, rescale=1 / 255)
# Seed 4: six of the seven pasted synthetic faces are found (the cascade misses some drawn faces).
PHOTO_SEED, PHOTO_FOUND = 4, 6


class FakePredictor:
    """Probabilities from a face's mean brightness; records the batch sizes it was called with."""

    spec = SPEC
    class_names = CLASS_NAMES

    def __init__(self):
        self.calls: list[int] = []

    def predict_prepared(self, x):
        self.calls.append(len(x))
        m = np.asarray(x).mean(axis=(1, 2, 3))
        logits = -((m[:, None] * 14 - np.arange(len(CLASS_NAMES))) ** 2)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict_proba(self, images):
        return self.predict_prepared(self.spec.prepare(images))


def _photo(seed=PHOTO_SEED, side=192):
    return predict_images.group_photo(predict_images.synthetic_faces(predict_images.EXPRESSIONS, seed), side, seed)


def _inside(a: Box, b) -> float:
    """The fraction of box ``a`` inside the square ``b``."""
    bx, by, bw, bh = b
    w = max(0, min(a.x + a.w, bx + bw) - max(a.x, bx))
    h = max(0, min(a.y + a.h, by + bh) - max(a.y, by))
    return w * h / (a.w * a.h)


@pytest.mark.parametrize("side", [192, 330])  # 330: a photo over DETECT_MAX_SIDE, detected scaled down
def test_the_cascade_finds_pasted_faces_where_they_are(side):
    photo, pasted = _photo(side=side)
    found = detect_faces(photo)
    assert len(found) == PHOTO_FOUND
    for box in found:  # each box on a pasted face, at least half its size (a face, not an eye)
        assert max(_inside(box, p) for p in pasted) > 0.9 and box.w > side / 2, (box, pasted)
    assert detect_faces(predict_images.background(400, 600, np.random.default_rng(0))) == []


def test_a_crop_is_square_around_the_box_and_repeats_the_edge():
    image = np.arange(100, dtype=np.uint8).reshape(10, 10)
    crop = square_crop(image, Box(0, 0, 4, 4), margin=0.25)  # 1 px more per side, off the top-left
    assert crop.shape == (6, 6)
    assert crop[0].tolist() == [0, 0, 1, 2, 3, 4] and crop[:, 0].tolist() == [0, 0, 10, 20, 30, 40]
    assert to_model_image(np.zeros((96, 96, 3), np.uint8), 48, "grayscale").shape == (48, 48, 1)
    assert to_model_image(np.zeros((20, 20), np.uint8), 48, "rgb").shape == (48, 48, 3)


def test_tta_with_shifts_averages_the_runs_views(tiny_keras):
    """predict's --tta --tta-shift averages the views a run's evaluation averages."""
    from fer_exp.augment.tta import tta_views
    from fer_exp.inference.loading import load_predictor

    predictor = load_predictor(tiny_keras / "best.keras")
    frames = _frames(3)
    results = list(predict_frames(predictor, frames, Options(tta=True, tta_shift=2, batch_size=2)))
    x = SPEC.prepare([f.image for f in frames])
    expected = np.mean([predictor.model.predict_on_batch(v) for v in tta_views(x, 2)], axis=0)
    np.testing.assert_allclose([r.faces[0].probs for r in results], expected, atol=1e-5)


def _frames(n):
    rng = np.random.default_rng(1)
    return [inputs_mod.Frame(f"f{i}.png", None, render_face("happy", rng)) for i in range(n)]


def test_faces_are_classified_in_batches_across_images_in_input_order():
    predictor, read = FakePredictor(), []

    def frames():  # records how far reading got: results must come while the input is read
        for frame in _frames(10):
            read.append(frame.file)
            yield frame

    stream = predict_frames(predictor, frames(), Options(batch_size=4))
    first = next(stream)
    assert len(read) == 4 and predictor.calls == [4]  # one batch read, classified, handed out
    results = [first, *stream]
    assert predictor.calls == [4, 4, 2]
    assert [r.frame.file for r in results] == [f"f{i}.png" for i in range(10)]
    one_by_one = FakePredictor().predict_proba([r.frame.image for r in results])
    np.testing.assert_allclose([r.faces[0].probs for r in results], one_by_one, atol=1e-6)
    assert all(r.faces[0].box is None and not r.detected for r in results)  # 48x48: a face, used whole


def test_a_photo_with_more_faces_than_a_batch_is_split_into_batches():
    predictor = FakePredictor()
    photo, _ = _photo()
    (result,) = predict_frames(predictor, [inputs_mod.Frame("group.jpg", None, photo)], Options(batch_size=4))
    assert result.detected and len(result.faces) == PHOTO_FOUND and predictor.calls == [4, PHOTO_FOUND - 4]
    assert all(face.image.shape == (48, 48, 1) and face.probs.shape == (7,) for face in result.faces)


def test_tta_averages_the_mirrored_face():
    predictor = FakePredictor()
    (result,) = predict_frames(predictor, _frames(1), Options(tta=True))
    x = SPEC.prepare([result.frame.image])
    expected = (FakePredictor().predict_prepared(x) + FakePredictor().predict_prepared(x[:, :, ::-1])) / 2
    assert predictor.calls == [2]  # both views in one call
    np.testing.assert_allclose(result.faces[0].probs, expected[0], atol=1e-6)


@pytest.fixture
def fake_loading(monkeypatch):
    import types

    module = types.ModuleType("fer_exp.inference.loading")
    module.load_predictor = lambda ref, tracking_uri=None: FakePredictor()
    monkeypatch.setitem(sys.modules, "fer_exp.inference.loading", module)


def _inputs(folder):
    photo, _ = _photo()
    Image.fromarray(photo).save(folder / "group.jpg")
    Image.fromarray(predict_images.background(300, 400, np.random.default_rng(2))).save(folder / "empty.png")
    crops = folder / "crops" / "sub"
    crops.mkdir(parents=True)
    for i, face in enumerate(predict_images.synthetic_faces(predict_images.EXPRESSIONS, 9)):
        Image.fromarray(face).save(crops / f"{i}.png")
    (folder / "damaged.jpg").write_bytes(b"not a jpeg")
    return ["group.jpg", "empty.png", "crops", "damaged.jpg"]


def test_the_command_writes_one_row_per_face_and_lists_what_it_could_not_use(workdir, fake_loading, capsys):
    from fer_exp.cli.predict import main

    assert main(["any-model", *_inputs(workdir), "--out", "out"]) == 0
    rows = list(csv.DictReader(open(workdir / "out" / "predictions.csv")))
    by_status = {s: [r for r in rows if r["status"] == s] for s in ("ok", "no_face", "skipped")}
    assert len(by_status["ok"]) == PHOTO_FOUND + 7
    assert [r["file"] for r in by_status["no_face"]] == ["empty.png"]
    assert [r["file"] for r in by_status["skipped"]] == ["damaged.jpg"] and "cannot read" in by_status["skipped"][0][
        "note"
    ]
    for row in by_status["ok"]:
        probs = np.array([float(row[c]) for c in CLASS_NAMES])
        assert abs(probs.sum() - 1) < 1e-4 and row["label"] == CLASS_NAMES[probs.argmax()]
        assert float(row["confidence"]) == pytest.approx(probs.max(), abs=1e-6)
    crop_rows = [r for r in by_status["ok"] if "crops" in r["file"]]
    assert {(r["x"], r["y"], r["w"], r["h"]) for r in crop_rows} == {("0", "0", "48", "48")}
    report = json.loads((workdir / "out" / "predictions.json").read_text())
    assert report["class_names"] == list(CLASS_NAMES) and len(report["predictions"]) == len(rows)
    assert sum(report["counts"].values()) == PHOTO_FOUND + 7
    assert sorted(p.name for p in (workdir / "out" / "annotated").iterdir()) == ["empty.png", "group.png"]
    assert (workdir / "out" / "grid_crops.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "no face found: empty.png" in out and "skipped: damaged.jpg" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["damaged.jpg"], "cannot read image damaged.jpg"),  # the only input: an error naming it
        (["nowhere.jpg", "group.jpg"], "input not found: nowhere.jpg"),
        (["notes.txt"], "cannot tell what notes.txt is"),
        (["group.jpg", "--every", "0"], "--every must be 1 or more"),
    ],
)
def test_bad_inputs_are_one_error_line(workdir, fake_loading, capsys, argv, message):
    from fer_exp.cli.predict import main

    _inputs(workdir)
    (workdir / "notes.txt").write_text("hello")
    assert main(["any-model", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_a_kaggle_test_csv_is_one_face_per_row(tmp_path):
    faces = [render_face("sad", np.random.default_rng(i)) for i in range(3)]
    path = tmp_path / "test.csv"
    path.write_text(" pixels\n" + "\n".join(" ".join(map(str, f.ravel())) for f in faces) + "\n")
    frames = list(inputs_mod.expand([path]).frames())
    assert [f.frame for f in frames] == [0, 1, 2] and all(np.array_equal(f.image, g) for f, g in zip(frames, faces))
    path.write_text("pixels\n1 2 3\n")
    with pytest.raises(DataError, match=r"test.csv row 2: 3 pixel values do not make a square"):
        list(inputs_mod.expand([path]).frames())
    path.write_text("emotion,Usage\n0,Training\n")
    with pytest.raises(DataError, match=r"no 'pixels' column \(found: emotion, Usage\)"):
        list(inputs_mod.expand([path]).frames())


def test_a_video_gives_every_nth_frame(tmp_path):
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    frames = list(inputs_mod.expand([path], every=3).frames())
    assert [f.frame for f in frames] == [0, 3, 6, 9]
    assert frames[1].image.shape == (48, 64, 3) and abs(int(frames[1].image.mean()) - 60) <= 3


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory):
    """A 48x48 grayscale Flatten -> Dense(7) model saved as a run folder saves it."""
    import keras

    folder = tmp_path_factory.mktemp("tiny") / "checkpoints"
    folder.mkdir()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 1))
    # float32 whatever policy an earlier in-process run on this worker left (bfloat16 on CPUs with it)
    flat = keras.layers.Flatten(dtype="float32")(inputs)
    outputs = keras.layers.Dense(7, activation="softmax", dtype="float32")(flat)
    keras.Model(inputs, outputs).save(folder / "best.keras")
    SPEC.save(folder)
    return folder


def test_a_keras_file_predicts_as_the_model_does_with_tta(tiny_keras):
    from fer_exp.inference.loading import load_predictor

    predictor = load_predictor(tiny_keras / "best.keras")
    frames = _frames(5)
    results = list(predict_frames(predictor, frames, Options(tta=True, batch_size=2)))
    x = SPEC.prepare([f.image for f in frames])
    expected = (predictor.model.predict_on_batch(x) + predictor.model.predict_on_batch(x[:, :, ::-1])) / 2
    np.testing.assert_allclose([r.faces[0].probs for r in results], expected, atol=1e-5)


def test_a_model_and_a_spec_of_different_runs_is_one_clear_error(tiny_keras):
    from fer_exp.inference.loading import load_predictor

    predictor = load_predictor(tiny_keras / "best.keras")
    predictor.spec = InputSpec(64, "rgb", "nearest", CLASS_NAMES)
    with pytest.raises(UserError, match=r"the model takes 48x48x1 images but its input spec describes 64x64x3"):
        list(predict_frames(predictor, _frames(1)))


@pytest.mark.slow
def test_predict_on_a_trained_run_from_the_command_line(workdir):
    """A user's path: train (debug=fast), then predict with the run id on a photo and a folder."""
    import subprocess

    from tests.conftest import mlflow_runs, run_cli

    assert run_cli(["debug=fast"], workdir).returncode == 0
    _, (run,) = mlflow_runs(workdir / "mlflow.db")
    _inputs(workdir)
    proc = subprocess.run(
        [sys.executable, "-m", "fer_exp.predict", run.info.run_id, "group.jpg", "crops", "--tta"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"8 image(s): {PHOTO_FOUND + 7} face(s), 0 without a face, 0 skipped" in proc.stdout
    assert "cuInit" not in proc.stderr and "Downloading artifacts" not in proc.stderr
    rows = list(csv.DictReader(open(workdir / "predictions" / "predictions.csv")))
    assert len(rows) == PHOTO_FOUND + 7 and {r["label"] for r in rows} <= set(CLASS_NAMES)
    assert (workdir / "predictions" / "annotated" / "group.png").exists()
    assert (workdir / "predictions" / "grid_crops.png").exists()
