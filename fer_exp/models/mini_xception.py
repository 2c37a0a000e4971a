"""mini-Xception (Arriaga et al. 2017), the classic real-time FER model."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveInt
from typing_extensions import override

from fer_exp.models.base import L2, ModelSpec, Rate, batch_norm, head


class MiniXception(ModelSpec):
    """mini-Xception (Arriaga et al. 2017), the classic real-time FER model: a conv stem, then
    residual modules of depthwise-separable convolutions, a conv to the classes and GAP."""

    name: Literal["mini_xception"] = Field(description="Selects this model (`model=mini_xception`).")
    # slower in bfloat16 with AMX (scripts/bench_precision.py): oneDNN's depthwise and 8-16-channel convolutions
    # gain nothing from bfloat16 and lose to the casts
    bfloat16_pays_on_cpu: ClassVar[bool] = False
    stem_filters: PositiveInt = Field(8, description="Width of the two 3x3 stem convolutions.")
    filters: list[PositiveInt] = Field(
        default=[16, 32, 64, 128],
        min_length=1,
        description="Widths of the residual depthwise-separable modules, one module each.",
    )
    l2: L2 = Field(0.01, description="L2 penalty on the stem and separable convolution kernels.")
    dropout: Rate = Field(0.0, description="Dropout before global average pooling (0 = none).")

    @override
    def build(self, input_shape, num_classes, class_mode="categorical"):
        import keras
        from keras import layers

        reg = keras.regularizers.l2(self.l2) if self.l2 else None
        inputs = keras.Input(shape=input_shape, name="image")
        x = inputs
        for _ in range(2):
            x = layers.Conv2D(self.stem_filters, 3, use_bias=False, kernel_regularizer=reg)(x)
            x = batch_norm()(x)
            x = layers.ReLU()(x)
        for width in self.filters:
            shortcut = layers.Conv2D(width, 1, strides=2, padding="same", use_bias=False)(x)
            shortcut = batch_norm()(shortcut)
            x = layers.SeparableConv2D(
                width, 3, padding="same", use_bias=False, depthwise_regularizer=reg, pointwise_regularizer=reg
            )(x)
            x = batch_norm()(x)
            x = layers.ReLU()(x)
            x = layers.SeparableConv2D(
                width, 3, padding="same", use_bias=False, depthwise_regularizer=reg, pointwise_regularizer=reg
            )(x)
            x = batch_norm()(x)
            x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
            x = layers.Add()([x, shortcut])
        if self.dropout:
            x = layers.Dropout(self.dropout)(x)
        # The original ends in a conv to the classes; a dense head keeps binary class_mode simple.
        x = layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, head(x, num_classes, class_mode), name=self.name)
