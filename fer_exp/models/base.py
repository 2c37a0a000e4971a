"""What every model of the zoo shares: its config schema's base, the classifier head, and the
batch normalization that suits the compute precision."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field

Rate = Annotated[float, Field(ge=0.0, lt=1.0)]
L2 = Annotated[float, Field(ge=0.0, le=1.0)]
# Half-precision batch norm through TensorFlow's fused kernel (see models.layers); False builds
# Keras's own layer instead, which scripts/bench_precision.py compares against.
FUSED_HALF_PRECISION_BN = True


class ModelSpec(BaseModel):
    """The ``model.*`` config keys of one architecture, and the builder of its Keras model.

    A subclass declares ``name: Literal["<name>"]`` (what ``model=<name>`` and the YAML's
    ``name:`` select), its hyperparameters as pydantic fields (validated before TensorFlow is
    imported), and :meth:`build`. Subclasses in ``fer_exp/models/`` register themselves: see
    :mod:`fer_exp.models`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    # whether mixed_precision=auto should train it in bfloat16 on a CPU with AMX / AVX512-BF16
    # (scripts/bench_precision.py measures it)
    bfloat16_pays_on_cpu: ClassVar[bool] = True

    def build(self, input_shape: tuple[int, int, int], num_classes: int, class_mode: str = "categorical"):
        """An uncompiled ``keras.Model`` from ``input_shape`` (rows, cols, channels) to class
        probabilities (:func:`head`). Imports Keras."""
        raise NotImplementedError(f"{type(self).__name__} must define build()")


def head(x, num_classes: int, class_mode: str):
    """Softmax over the classes, or one sigmoid unit for Keras's binary class_mode."""
    from keras import layers

    # float32 outputs keep the loss stable under mixed precision
    if class_mode == "binary":
        return layers.Dense(1, activation="sigmoid", name="expression", dtype="float32")(x)
    return layers.Dense(num_classes, activation="softmax", name="expression", dtype="float32")(x)


def batch_norm(**kwargs):
    """Keras's BatchNormalization, or its fused twin when layers compute in half precision."""
    import keras

    half = keras.mixed_precision.global_policy().compute_dtype in ("bfloat16", "float16")
    if half and FUSED_HALF_PRECISION_BN:
        from fer_exp.models.layers import FusedBatchNormalization

        return FusedBatchNormalization(**kwargs)
    return keras.layers.BatchNormalization(**kwargs)
