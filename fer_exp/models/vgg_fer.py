"""The VGG variant of Khaireddin & Chen (2021) for 48x48 faces."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt
from typing_extensions import override

from fer_exp.models.base import L2, ModelSpec, Rate, batch_norm, head


class VGGFer(ModelSpec):
    """The VGG variant of Khaireddin & Chen (2021), the paper's best FER-2013 model: stages of two (or
    ``convs_per_stage``) 3x3 conv-BN-ReLU, max-pooling, then fully connected layers with
    dropout. ``width`` scales every stage (1.0 = 64-128-256-512)."""

    name: Literal["vgg_fer"] = Field(description="Selects this model (`model=vgg_fer`).")
    filters: list[PositiveInt] = Field(
        default=[64, 128, 256, 512], min_length=1, description="Convolution widths, one stage each (before `width`)."
    )
    width: Annotated[float, Field(gt=0, le=4, description="Scales every stage's width (1.0 = `filters` as given).")] = (
        1.0
    )
    convs_per_stage: Annotated[
        int, Field(ge=1, le=4, description="3x3 conv-BN-ReLU layers per stage, before max-pooling.")
    ] = 2
    dense_units: list[PositiveInt] = Field(
        [1024, 1024], description="Units of the fully connected layers after the convolutions."
    )
    dropout: Rate = Field(0.4, description="Dropout after each fully connected layer.")
    l2: L2 = Field(0.0, description="L2 penalty on the convolution and dense kernels (0 = none).")

    @override
    def build(self, input_shape, num_classes, class_mode="categorical"):
        import keras
        from keras import layers

        reg = keras.regularizers.l2(self.l2) if self.l2 else None
        inputs = keras.Input(shape=input_shape, name="image")
        x = inputs
        for base in self.filters:
            for _ in range(self.convs_per_stage):
                x = layers.Conv2D(
                    max(1, round(base * self.width)), 3, padding="same", use_bias=False, kernel_regularizer=reg
                )(x)
                x = batch_norm()(x)
                x = layers.ReLU()(x)
            x = layers.MaxPooling2D()(x)
        x = layers.Flatten()(x)
        for units in self.dense_units:
            x = layers.Dense(units, kernel_regularizer=reg)(x)
            x = batch_norm()(x)
            x = layers.ReLU()(x)
            x = layers.Dropout(self.dropout)(x)
        return keras.Model(inputs, head(x, num_classes, class_mode), name=self.name)
