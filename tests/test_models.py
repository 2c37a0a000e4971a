"""Every model builds from its config, has the documented size and trains one step."""

from __future__ import annotations

import numpy as np
import pytest

from fer_exp.config import compose
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


@pytest.mark.parametrize("name", [m for m in GROUPS["model"] if "l2" in compose([f"model={m}"]).model.model_fields])
def test_l2_adds_its_penalty_to_the_training_loss(name):
    """model.l2 must reach the loss: the same weights score higher by exactly the penalty."""
    import keras

    x = np.random.default_rng(0).random((4, 48, 48, 1), dtype=np.float32)
    y = keras.utils.to_categorical([0, 1, 2, 3], 7)
    losses = {}
    for l2 in (0.0, 0.01):
        keras.utils.set_random_seed(0)
        model = compose([f"model={name}", f"model.l2={l2}"]).model.build((48, 48, 1), 7)
        model.compile(loss="categorical_crossentropy", jit_compile=False)
        losses[l2] = (model.evaluate(x, y, verbose=0), float(sum(model.losses)) if model.losses else 0.0)
    (plain, no_penalty), (regularized, penalty) = losses[0.0], losses[0.01]
    assert no_penalty == 0 and penalty > 1e-3
    assert regularized - plain == pytest.approx(penalty, rel=1e-3)


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


@pytest.fixture
def bfloat16_policy():
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_fused_batch_norm_matches_keras_in_bfloat16(bfloat16_policy):
    import keras
    import tensorflow as tf

    from fer_exp.models.layers import FusedBatchNormalization

    x = np.random.default_rng(0).normal(2.0, 3.0, (16, 12, 12, 8)).astype(np.float32)
    gamma, beta = np.linspace(0.5, 2, 8, dtype=np.float32), np.linspace(-1, 1, 8, dtype=np.float32)
    ref = keras.layers.BatchNormalization(momentum=0.9, dtype="float32")
    fused = FusedBatchNormalization(momentum=0.9)
    for layer in (ref, fused):
        layer.build(x.shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
    for _ in range(3):  # training: batch statistics, moving averages updated with the momentum
        want, got = ref(x, training=True), fused(tf.cast(x, tf.bfloat16), training=True)
        assert got.dtype == tf.bfloat16
        np.testing.assert_allclose(tf.cast(got, tf.float32), want, atol=0.05)  # bfloat16 keeps ~3 digits
    np.testing.assert_allclose(fused.moving_mean.numpy(), ref.moving_mean.numpy(), rtol=2e-3)
    np.testing.assert_allclose(fused.moving_variance.numpy(), ref.moving_variance.numpy(), rtol=2e-3)
    assert not np.allclose(fused.moving_mean.numpy(), 0)  # the statistics did move
    want, got = ref(x, training=False), fused(tf.cast(x, tf.bfloat16), training=False)
    np.testing.assert_allclose(tf.cast(got, tf.float32), want, atol=0.1)


def test_fused_batch_norm_is_keras_itself_in_float32():
    import keras

    from fer_exp.models.layers import FusedBatchNormalization

    x = np.random.default_rng(1).normal(size=(4, 6, 6, 3)).astype(np.float32)
    ref, fused = keras.layers.BatchNormalization(), FusedBatchNormalization()
    np.testing.assert_array_equal(fused(x, training=True), ref(x, training=True))
    np.testing.assert_array_equal(fused.moving_variance.numpy(), ref.moving_variance.numpy())
    assert compose().model.build((48, 48, 1), 7).get_layer(index=2).__class__ is keras.layers.BatchNormalization


@pytest.mark.parametrize("name", GROUPS["model"])
def test_every_model_trains_saves_and_loads_in_bfloat16(name, bfloat16_policy, tmp_path):
    import keras

    from fer_exp.models.layers import FusedBatchNormalization
    from fer_exp.training.fit import load_checkpoint

    model = compose([f"model={name}"]).model.build((48, 48, 1), 7)
    assert any(isinstance(layer, FusedBatchNormalization) for layer in model.layers)
    assert model.layers[1].compute_dtype == "bfloat16" and model.output.dtype == "float32"
    model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=False)
    x = np.random.default_rng(0).random((8, 48, 48, 1), dtype=np.float32)
    assert np.isfinite(model.train_on_batch(x, keras.utils.to_categorical(np.arange(8) % 7, 7)))
    model.save(tmp_path / "m.keras")
    keras.mixed_precision.set_global_policy("float32")  # the saved layers carry their own policy
    loaded = load_checkpoint(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def _bench_precision():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "scripts" / "bench_precision.py"
    spec = importlib.util.spec_from_file_location("bench_precision", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_precision_benchmark_builds_what_each_variant_names():
    """The three columns must time three different models: float32, bfloat16 with Keras's batch
    norm, bfloat16 with the fused one; and the policy is float32 again after each build."""
    import keras

    from fer_exp.models.layers import FusedBatchNormalization

    bench = _bench_precision()
    overrides = ["model=small_cnn", "model.filters=[8,16]"]
    built = {name: bench.build_variant(overrides, *variant) for name, variant in bench.VARIANTS.items()}
    assert keras.mixed_precision.global_policy().name == "float32"

    def batch_norms(model):
        return {type(layer).__name__ for layer in model.layers if "BatchNormalization" in type(layer).__name__}

    def conv_dtype(model):
        return next(layer.compute_dtype for layer in model.layers if type(layer).__name__ == "Conv2D")

    assert conv_dtype(built["float32"]) == "float32" and batch_norms(built["float32"]) == {"BatchNormalization"}
    assert conv_dtype(built["bf16, Keras BN"]) == "bfloat16"
    assert batch_norms(built["bf16, Keras BN"]) == {"BatchNormalization"}
    assert conv_dtype(built["bf16, fused BN"]) == "bfloat16"
    assert batch_norms(built["bf16, fused BN"]) == {FusedBatchNormalization.__name__}


def test_precision_benchmark_prints_its_figures_as_json(capsys):
    import json

    _bench_precision().main(["--models", "small_cnn model.filters=[8,16]", "--steps", "2", "--batch", "8"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ((model, figures),) = report["img_s"].items()
    assert model == "small_cnn model.filters=[8,16]" and figures["params"] > 0
    assert report["batch"] == 8 and report["cpu"]
    assert min(figures[v] for v in ("float32", "bf16, Keras BN", "bf16, fused BN")) > 0
