"""A trained model as a LiteRT flatbuffer (``.tflite``) or a TensorFlow SavedModel, checked
against the Keras model it came from.

Both are written by Keras's own exporter (``model.export``), with ``input_spec.json``
(:class:`~fer_exp.inference.preprocess.InputSpec`) beside them: the exported model takes what
:meth:`InputSpec.prepare` makes of raw images (float32 (N, H, W, C), standardized as the run's
validation batches were) and returns class probabilities. Preprocessing stays outside the
exported graph, so LiteRT's built-in kernels run the whole model.

Precision: a model trained in ``mixed_bfloat16`` (or ``mixed_float16``, with fer_exp's
``FusedBatchNormalization``) exports to LiteRT as its float32 twin (the same weights; the layers
compute in float32): LiteRT has no built-in bfloat16 convolution, and the converter would fall
back to TensorFlow ("Flex") ops that the ``ai-edge-litert`` interpreter cannot run. The SavedModel
keeps the precision the run trained in. Parity is measured against the Keras model that was
exported (for the float32 twin: in float32); how far its outputs are from the half-precision
model's is reported beside it, as rounding, not as an export error.

After writing, :func:`export_model` runs both on the same images and fails (removing what it
wrote) when the largest difference of any class probability exceeds ``limit`` (1e-3).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_exp.errors import UserError
from fer_exp.inference.preprocess import SPEC_FILE, InputSpec

log = logging.getLogger(__name__)

FORMATS = ("tflite", "savedmodel")
PARITY_LIMIT = 1e-3  # largest allowed |p_exported - p_keras| over every image and class
PARITY_IMAGES = 64


class ExportError(UserError):
    """An export that cannot be made, or that does not compute what the Keras model computes."""


@dataclass(frozen=True)
class Exported:
    """What :func:`export_model` wrote and how closely it matches the Keras model."""

    format: str
    path: Path  # the .tflite file or the SavedModel folder
    spec_path: Path  # input_spec.json beside it
    images: int  # images the parity check ran on
    max_abs_diff: float  # largest |p_exported - p_keras| over those images and every class
    precision: str  # the Keras model's compute dtype as trained
    exported_precision: str  # the exported model's compute dtype
    half_vs_float32: float | None = None  # float32 twin vs the half-precision model, when converted


def output_path(fmt: str, out: str | Path | None) -> Path:
    """Where ``fmt`` is written: ``out`` (a ``.tflite`` file, or a folder to hold ``model.tflite``;
    the SavedModel folder), by default ``export/model.tflite`` or ``export/saved_model``."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if out is None:
        return Path("export") / ("model.tflite" if fmt == "tflite" else "saved_model")
    out = Path(out).expanduser()
    if fmt == "tflite" and out.suffix != ".tflite":
        return out / "model.tflite"
    if fmt == "savedmodel" and out.is_file():
        raise ExportError(f"--out {out} is a file; a SavedModel is a folder: pass a folder path")
    return out


def compute_dtype(model) -> str:
    """The compute dtype of the model's layers (``float32``, ``bfloat16``, ``float16``); mixed
    policies count by their half-precision layers (the head stays float32 on purpose)."""
    dtypes = {getattr(layer, "compute_dtype", "float32") for layer in model.layers}
    half = sorted(d for d in dtypes if d in ("bfloat16", "float16"))
    return half[0] if half else "float32"


def float32_twin(model):
    """The same model with every layer computing in float32, sharing the trained weights
    (copied): fer_exp's fused batch norm then runs Keras's own float32 code."""
    import fer_exp.models.layers  # noqa: F401  (registers fer_exp's layers for from_config)

    def as_float32(node):
        if isinstance(node, dict):
            if node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
                return {**node, "config": {**node.get("config", {}), "name": "float32"}}
            return {k: as_float32(v) for k, v in node.items()}
        if isinstance(node, list):
            return [as_float32(v) for v in node]
        return node

    import keras

    # layers whose config names no policy take the global one, which an earlier run in this
    # process may have left at mixed_bfloat16
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        twin = model.__class__.from_config(as_float32(model.get_config()))
        twin.set_weights(model.get_weights())
    except Exception as exc:  # a model class whose config does not rebuild
        raise ExportError(
            f"cannot rebuild the {compute_dtype(model)} model in float32 for LiteRT ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]}); export it as a SavedModel instead (--format savedmodel)"
        ) from None
    finally:
        keras.mixed_precision.set_global_policy(before)
    if compute_dtype(twin) != "float32":
        raise ExportError("the float32 copy of the model still computes in half precision: export a SavedModel")
    return twin


def parity_images(spec: InputSpec, n: int = PARITY_IMAGES, images=None) -> np.ndarray:
    """Model input for the parity check: ``images`` (raw, any size) or ``n`` synthetic faces,
    every expression in turn, made validation-like by :meth:`InputSpec.prepare`."""
    if images is None:
        from fer_exp.data.synthetic import render_face

        rng = np.random.default_rng(0)
        names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
        images = [render_face(names[i % len(names)], rng) for i in range(n)]
    x = spec.prepare(list(images)[:n])
    if not len(x):
        raise ExportError("no images for the parity check: pass --images with image files, a folder or a CSV")
    return x


def _run_tflite(path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
    interpreter.invoke()
    return np.array(interpreter.get_tensor(out["index"]))


def _run_savedmodel(path: Path, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return np.asarray(loaded.serve(tf.constant(x)))


def _remove(path: Path, spec_path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    spec_path.unlink(missing_ok=True)


def export_model(
    predictor,
    fmt: str,
    out: str | Path | None = None,
    images=None,
    n_images: int = PARITY_IMAGES,
    limit: float = PARITY_LIMIT,
) -> Exported:
    """Write the predictor's model as ``fmt`` (``tflite`` or ``savedmodel``) with its
    ``input_spec.json`` beside it, then check parity on validation-like images.

    Args:
        predictor: what :func:`fer_exp.inference.loading.load_predictor` returns (one model).
        fmt: ``tflite`` (LiteRT) or ``savedmodel``.
        out: see :func:`output_path`.
        images: raw images for the parity check (default: ``n_images`` synthetic faces).
        n_images: at most this many images are checked.
        limit: the largest allowed probability difference; beyond it the export is removed
            and an ExportError raised.
    """
    path = output_path(fmt, out)
    if not hasattr(predictor, "model"):  # an ensemble: several models, no single graph to export
        members = len(getattr(predictor, "members", []))
        raise ExportError(
            f"the model is an ensemble of {members} members: export one member at a time (its run id, "
            "or the model folder's members/<i>/)"
        )
    spec, model = predictor.spec, predictor.model
    if not hasattr(model, "export"):
        raise ExportError(f"cannot export a {type(model).__name__}: a Keras model is needed")
    x = parity_images(spec, n_images, images)
    precision = compute_dtype(model)
    exported_model, half_gap = model, None
    if fmt == "tflite" and precision != "float32":
        exported_model = float32_twin(model)
        half_gap = float(np.abs(_probs(spec, exported_model, x) - _probs(spec, model, x)).max())
    spec_path = (path.parent if fmt == "tflite" else path) / SPEC_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "tflite":
        try:
            exported_model.export(str(path), format="litert", verbose=False)
            got = _run_tflite(path, x)
        except Exception as exc:  # the converter's or the interpreter's: ops LiteRT lacks
            _remove(path, spec_path)
            why = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise ExportError(
                f"LiteRT cannot convert or run this model ({type(exc).__name__}: {why}); "
                "export it as a SavedModel instead (--format savedmodel)"
            ) from None
    else:
        exported_model.export(str(path), format="tf_saved_model", verbose=False)
        got = _run_savedmodel(path, x)
    spec.save(spec_path.parent)
    diff = float(np.abs(spec.probabilities(got) - _probs(spec, exported_model, x)).max())
    if not diff <= limit:  # also catches NaN
        _remove(path, spec_path)
        raise ExportError(
            f"the {fmt} export does not compute what the Keras model computes: max abs probability "
            f"difference {diff:.3g} on {len(x)} images exceeds {limit:g}; nothing was kept at {path}"
        )
    return Exported(fmt, path, spec_path, len(x), diff, precision, compute_dtype(exported_model), half_gap)


def _probs(spec: InputSpec, model, x: np.ndarray) -> np.ndarray:
    return spec.probabilities(np.asarray(model(x, training=False), dtype=np.float32))
