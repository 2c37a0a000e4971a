"""InputSpec.prepare: raw images become exactly the arrays the run's validation batches held."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_exp.config import compose
from fer_exp.data.sources import load_splits
from fer_exp.errors import DataError
from fer_exp.inference import InputSpec

FEATUREWISE = [
    "data.n_train=60",
    "data.n_val=40",
    "data.pic_size=40",
    "augmentation.rescale=0.00392156862745098",
    "augmentation.featurewise_center=true",
    "augmentation.featurewise_std_normalization=true",
]


@pytest.fixture(scope="module")
def featurewise_run():
    from fer_exp.data import tf_pipeline

    cfg = compose(FEATUREWISE + ["batch_size=16"])
    splits = load_splits(cfg.data)
    inputs = tf_pipeline.build(cfg, splits)
    return cfg, splits, inputs


def test_prepare_gives_the_validation_batches(featurewise_run):
    from fer_exp.data.tf_pipeline import EvalBatches

    cfg, splits, inputs = featurewise_run
    assert inputs.mean is not None and inputs.std is not None  # the pipeline kept them
    spec = InputSpec.from_json(InputSpec.from_run(cfg, inputs.class_names, inputs.mean, inputs.std).to_json())
    k = len(splits.class_names)
    expected = EvalBatches(splits.val.images, splits.val.labels, k, cfg.augmentation, 40, inputs.mean, inputs.std)(0)[0]
    # the files as read from disk (bytes), and the same files as raw arrays
    files = [Path(p).read_bytes() for p in splits.val.paths]
    arrays = [np.asarray(Image.open(io.BytesIO(b))) for b in files]
    np.testing.assert_array_equal(spec.prepare(files), expected)
    np.testing.assert_array_equal(spec.prepare(arrays), expected)
    assert spec.prepare(arrays).dtype == np.float32


def test_colour_and_size_are_converted_and_bad_input_named(tmp_path):
    from fer_exp.data.cache import decode_image

    cfg = compose(["data.color_mode=rgb", "data.pic_size=32", "data.interpolation=bicubic"])
    spec = InputSpec.from_run(cfg, ("a", "b"))
    gray = (np.arange(64 * 80) * 7 % 251).astype(np.uint8).reshape(64, 80)
    Image.fromarray(gray).save(tmp_path / "face.png")
    # resized and converted as the training data was read from a file of that size
    np.testing.assert_array_equal(spec.decode(gray), decode_image(str(tmp_path / "face.png"), 32, "rgb", "bicubic"))
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    out = spec.prepare([gray, rgba, gray[..., None]])
    assert out.shape == (3, 32, 32, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], out[1])  # grey as RGB = the same grey with opaque alpha
    with pytest.raises(DataError, match="uint8"):
        spec.prepare([gray.astype(np.float32)])
    with pytest.raises(DataError, match=r"shape \(4, 4, 2\)"):
        spec.prepare([np.zeros((4, 4, 2), np.uint8)])
    with pytest.raises(DataError, match="cannot decode the image bytes"):
        spec.prepare([b"not an image"])


def test_featurewise_run_without_statistics_is_refused():
    from fer_exp.errors import UserError

    with pytest.raises(UserError, match="mean/std"):
        InputSpec.from_run(compose(FEATUREWISE), ("a", "b"))


def test_both_pipelines_keep_the_featurewise_statistics(featurewise_run):
    from fer_exp.data import keras_pipeline

    cfg, splits, inputs = featurewise_run
    keras_inputs = keras_pipeline.build(cfg, splits)
    np.testing.assert_array_equal(keras_inputs.mean, inputs.mean)
    np.testing.assert_array_equal(keras_inputs.std, inputs.std)
