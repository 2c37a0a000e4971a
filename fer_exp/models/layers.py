"""Layers of fer_exp's own, registered with Keras so saved models and checkpoints load again."""

from __future__ import annotations

import keras
from typing_extensions import override

from fer_exp.errors import UserError


@keras.saving.register_keras_serializable(package="fer_exp")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras's BatchNormalization, run by TensorFlow's fused kernel on half-precision images.

    Keras 3 normalizes in float32 from separate ops (cast, moments, update, cast back); under
    ``mixed_bfloat16`` on a CPU with AMX those cost more than the convolutions themselves
    (``scripts/bench_precision.py``). The fused kernel reads bfloat16/float16 and keeps float32
    statistics. Same weights and config as the Keras layer, so checkpoints stay interchangeable;
    the moving variance is the unbiased one (n/(n-1), negligible at 48x48 batches). Masks, renorm,
    non-image inputs and float32 fall back to Keras's own code.
    """

    @override
    def call(self, inputs, training=None, mask=None):
        import tensorflow as tf

        rank = len(inputs.shape)
        if (
            mask is not None
            or self.renorm
            or not (self.scale and self.center)
            or rank != 4
            or self.axis not in (-1, rank - 1)
            or inputs.dtype not in (tf.bfloat16, tf.float16)
        ):
            return super().call(inputs, training=training, mask=mask)
        update = bool(training) and self.trainable
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            self.gamma,
            self.beta,
            mean=self.moving_mean,
            variance=self.moving_variance,
            epsilon=self.epsilon,
            is_training=update,
            exponential_avg_factor=1.0 - self.momentum if update else 1.0,
        )[:3]
        if update:  # the kernel has already blended the batch statistics in with the momentum
            self.moving_mean.assign(mean)
            self.moving_variance.assign(variance)
        return outputs


def load_saved_model(path, compile: bool = True):
    """A ``.keras`` file a fer_exp run wrote (fer_exp's layers registered by this module), with
    its optimizer unless ``compile`` is False. Loaded in Keras's safe mode: a file that would run
    code of its own (a ``Lambda`` layer) is refused with one message, not unpickled."""
    try:
        return keras.models.load_model(path, safe_mode=True, compile=compile)
    except ValueError as exc:
        if "safe_mode" not in str(exc):
            raise
        raise UserError(
            f"{path} holds code that loading would run (a Lambda layer), so fer_exp refuses it "
            "(Keras safe_mode). No fer_exp model has one: this file was not written by a fer_exp "
            "run. Load it yourself with keras.models.load_model(..., safe_mode=False) only if you "
            "trust where it came from"
        ) from None
