"""Export to LiteRT (.tflite) and a TensorFlow SavedModel: parity with the Keras model for a tiny
model (float32, and bfloat16 with fer_exp's fused batch norm), the input_spec.json beside each,
and the errors a bad reference or a failed parity check give."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_exp.cli.export import main
from fer_exp.config import FER2013_EMOTIONS
from fer_exp.inference.export import ExportError, export_model
from fer_exp.inference.preprocess import SPEC_FILE, InputSpec
from tests.conftest import mlflow_runs, run_cli


def _tiny_model(folder: Path, policy: str = "float32") -> Path:
    """A two-block small_cnn saved as a run saves it (best.keras + input_spec.json), its weights
    moved away from the initial ones so that its probabilities are far from uniform."""
    import keras

    from fer_exp.models.small_cnn import SmallCNN

    before = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = SmallCNN(name="small_cnn", filters=[4, 8], convs_per_block=1).build((48, 48, 1), 7)
    finally:
        keras.mixed_precision.set_global_policy(before)
    rng = np.random.default_rng(1)
    model.set_weights([np.abs(w + rng.normal(0, 0.3, w.shape)).astype(w.dtype) for w in model.get_weights()])
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "best.keras")
    InputSpec(48, "grayscale", "nearest", tuple(sorted(FER2013_EMOTIONS)), "small_cnn", rescale=1 / 255).save(folder)
    return folder / "best.keras"


def _predictor(path: Path):
    from fer_exp.inference.loading import load_predictor

    return load_predictor(path)


@pytest.mark.parametrize("fmt", ["tflite", "savedmodel"])
def test_export_matches_the_keras_model(tmp_path, fmt):
    predictor = _predictor(_tiny_model(tmp_path / "run"))
    done = export_model(predictor, fmt, tmp_path / "out")
    assert done.path == (tmp_path / "out" / "model.tflite" if fmt == "tflite" else tmp_path / "out")
    assert done.path.exists() and done.spec_path == tmp_path / "out" / SPEC_FILE
    assert InputSpec.load(done.spec_path) == predictor.spec
    assert done.images == 64 and done.max_abs_diff <= 1e-3
    # the exported file itself, run here on other images, against the Keras model
    images = [np.random.default_rng(i).integers(0, 256, (60, 50), dtype=np.uint8) for i in range(5)]
    expected = predictor.predict_proba(images)
    assert expected.max() > 0.3  # far from uniform: agreeing means something
    x = predictor.spec.prepare(images)
    assert np.abs(_run_exported(done.path, fmt, x) - expected).max() <= 1e-3


def _run_exported(path: Path, fmt: str, x: np.ndarray) -> np.ndarray:
    if fmt == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))  # kept: its variables die with it
        return loaded.serve(tf.constant(x)).numpy()
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])


def test_a_failed_parity_check_keeps_nothing(tmp_path):
    predictor = _predictor(_tiny_model(tmp_path / "run"))
    with pytest.raises(ExportError, match=r"does not compute what the Keras model computes: max abs probability"):
        export_model(predictor, "savedmodel", tmp_path / "out", limit=-1.0)
    assert not (tmp_path / "out").exists()


def test_an_ensemble_is_refused_with_the_way_out(tmp_path):
    from fer_exp.inference.loading import EnsemblePredictor

    with pytest.raises(ExportError, match=r"an ensemble of 2 members: export one member at a time"):
        export_model(EnsemblePredictor([object(), object()]), "tflite", tmp_path / "out")


@pytest.mark.parametrize(
    "argv,message",
    [
        (["missing/best.keras", "--format", "tflite"], "error: model file not found: missing/best.keras"),
        (["not-a-model", "--format", "savedmodel"], "error: model 'not-a-model' is neither a run id"),
        (["x.keras", "--format", "savedmodel", "--out", "taken"], "error: --out taken is a file; a SavedModel"),
    ],
)
def test_a_bad_reference_is_one_error_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.slow
def test_a_bfloat16_model_with_fused_batch_norm_exports(tmp_path):
    predictor = _predictor(_tiny_model(tmp_path / "run", "mixed_bfloat16"))
    assert "FusedBatchNormalization" in {type(layer).__name__ for layer in predictor.model.layers}
    lite = export_model(predictor, "tflite", tmp_path / "lite")
    assert (lite.precision, lite.exported_precision) == ("bfloat16", "float32")
    assert lite.max_abs_diff <= 1e-3 and lite.half_vs_float32 is not None
    saved = export_model(predictor, "savedmodel", tmp_path / "saved")
    assert (saved.exported_precision, saved.half_vs_float32) == ("bfloat16", None)
    assert saved.max_abs_diff <= 1e-3


def _export(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fer_exp.export", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_export_command_on_a_run_prints_the_parity(tmp_path):
    """A real run's best model, by its run id (the logged MLflow Model) and by its .keras file."""
    db = f"sqlite:///{tmp_path}/mlflow.db"
    ran = run_cli(["debug=fast", "model.filters=[8]", "model.convs_per_block=1", f"tracking_uri={db}"], tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    run_id = mlflow_runs(tmp_path / "mlflow.db")[1][0].info.run_id
    out = _export([run_id, "--format", "tflite", "--out", "lite", "--tracking-uri", db], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "parity on 64 images: max abs probability difference" in out.stdout
    assert (tmp_path / "lite" / "model.tflite").exists() and (tmp_path / "lite" / SPEC_FILE).exists()
    keras_file = next(tmp_path.rglob("checkpoints/best.keras"))
    out = _export([str(keras_file), "--format", "savedmodel", "--out", "saved"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "saved" / "saved_model.pb").exists() and (tmp_path / "saved" / SPEC_FILE).exists()


def test_export_does_not_depend_on_the_global_precision_policy(tmp_path):
    """An earlier bfloat16 run in the same process leaves Keras's global policy mixed: the
    float32 copy for LiteRT is still float32, and the global policy is left as it was."""
    import keras

    path = _tiny_model(tmp_path / "run")
    before = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        done = export_model(_predictor(path), "tflite", tmp_path / "out")
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy(before)
    assert done.path.exists() and done.max_abs_diff <= 1e-3
