"""Every model builds from its config, has the documented size and trains one step."""

from __future__ import annotations

import numpy as np
import pytest

from fer_exp.app import compose
from tests.test_config import GROUPS


@pytest.mark.parametrize("name", GROUPS["model"])
def test_model_builds_and_trains_one_step(name):
    import keras

    cfg = compose([f"model={name}"])
    model = cfg.model.build((48, 48, 1), 7)
    assert model.output_shape == (None, 7)
    model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=False)
    x = np.random.default_rng(0).random((4, 48, 48, 1), dtype=np.float32)
    y = keras.utils.to_categorical([0, 1, 2, 3], 7)
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_seed_cnn_is_the_notebooks_model():
    model = compose(["model=seed_cnn"]).model.build((48, 48, 1), 7)
    convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [64, 128, 512, 512]
    assert [c.kernel_size for c in convs] == [(3, 3), (5, 5), (3, 3), (3, 3)]
    assert [c.kernel_regularizer is not None for c in convs] == [False, True, True, True]
    assert model.count_params() == pytest.approx(3.2e6, rel=0.05)


def test_model_width_is_configurable():
    small = compose(["model.filters=[8,16]"]).model.build((48, 48, 1), 7)
    assert small.count_params() < compose().model.build((48, 48, 1), 7).count_params()


def test_zoo_sizes_and_knobs():
    def params(*overrides):
        return compose(list(overrides)).model.build((48, 48, 1), 7).count_params()

    assert 40_000 < params("model=mini_xception") < 80_000  # the real-time FER classic
    assert params("model=vgg_fer", "model.width=0.5") < params("model=vgg_fer") / 2
    assert params("model=resnet", "model.blocks_per_stage=1") < params("model=resnet")
    assert params("model=small_cnn", "model.l2=0.01") == params("model=small_cnn")


def test_binary_head_and_mixed_precision_output_dtype():
    import keras

    model = compose(["model=resnet"]).model.build((48, 48, 1), 2, "binary")
    assert model.output_shape == (None, 1)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = compose(["model=small_cnn"]).model.build((48, 48, 1), 7)
        assert mixed.layers[1].compute_dtype == "float16" and mixed.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")
