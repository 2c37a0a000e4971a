"""A small ResNet for 48x48 inputs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt
from typing_extensions import override

from fer_exp.models.base import L2, ModelSpec, Rate, batch_norm, head


class ResNet(ModelSpec):
    """A small ResNet for 48x48 inputs: a 3x3 stem, stages of basic residual blocks (two 3x3
    convs, identity or 1x1 projection shortcut), stride 2 between stages, GAP."""

    name: Literal["resnet"] = Field(description="Selects this model (`model=resnet`).")
    stem_filters: PositiveInt = Field(32, description="Width of the 3x3 stem convolution.")
    filters: list[PositiveInt] = Field(
        default=[32, 64, 128, 256], min_length=1, description="Widths of the stages; stride 2 between stages."
    )
    blocks_per_stage: Annotated[
        int, Field(ge=1, le=8, description="Basic residual blocks (two 3x3 convolutions) per stage.")
    ] = 2
    dropout: Rate = Field(0.2, description="Dropout after global average pooling (0 = none).")
    l2: L2 = Field(0.0, description="L2 penalty on every convolution kernel (0 = none).")

    @override
    def build(self, input_shape, num_classes, class_mode="categorical"):
        import keras
        from keras import layers

        reg = keras.regularizers.l2(self.l2) if self.l2 else None

        def conv(x, width, stride=1, kernel=3):
            return layers.Conv2D(width, kernel, strides=stride, padding="same", use_bias=False, kernel_regularizer=reg)(
                x
            )

        inputs = keras.Input(shape=input_shape, name="image")
        x = layers.ReLU()(batch_norm()(conv(inputs, self.stem_filters)))
        for stage, width in enumerate(self.filters):
            for block in range(self.blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                shortcut = x
                y = layers.ReLU()(batch_norm()(conv(x, width, stride)))
                y = batch_norm()(conv(y, width))
                if stride != 1 or shortcut.shape[-1] != width:
                    shortcut = batch_norm()(conv(shortcut, width, stride, kernel=1))
                x = layers.ReLU()(layers.Add()([y, shortcut]))
        x = layers.GlobalAveragePooling2D()(x)
        if self.dropout:
            x = layers.Dropout(self.dropout)(x)
        return keras.Model(inputs, head(x, num_classes, class_mode), name=self.name)
