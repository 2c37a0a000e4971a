"""The seed notebook's final model, layer for layer."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt, model_validator
from typing_extensions import override

from fer_exp.models.base import L2, ModelSpec, Rate, batch_norm, head


class SeedCNN(ModelSpec):
    """The seed notebook's final model.

    Conv 64 (3x3) -> Conv 128 (5x5) -> Conv 512 (3x3) -> Conv 512 (3x3), each followed by
    BatchNorm, ReLU, 2x2 max-pooling and dropout; L2 on convs 2-4 and on the dense layer;
    GlobalAveragePooling -> Dense 128 ReLU -> Dropout 0.5 -> softmax.
    """

    name: Literal["seed_cnn"] = Field(description="Selects this model (`model=seed_cnn`).")
    filters: list[PositiveInt] = Field(
        default=[64, 128, 512, 512],
        min_length=1,
        description="Convolution widths, one conv-BN-ReLU-pool-dropout block each.",
    )
    kernel_sizes: list[Annotated[int, Field(ge=1, le=11)]] = Field(
        default=[3, 5, 3, 3],
        min_length=1,
        description="Kernel size of each block's convolution (as many as `filters`).",
    )
    dropout: Rate = Field(0.25, description="Dropout after every block.")
    dense_units: PositiveInt = Field(128, description="Units of the dense layer after global average pooling.")
    head_dropout: Rate = Field(0.5, description="Dropout after the dense layer.")
    l2: L2 = Field(0.001, description="L2 penalty on every convolution but the first and on the dense layer.")

    @model_validator(mode="after")
    def _same_length(self):
        """`filters` and `kernel_sizes` have the same length."""
        if len(self.filters) != len(self.kernel_sizes):
            raise ValueError(
                f"filters ({len(self.filters)} values) and kernel_sizes "
                f"({len(self.kernel_sizes)} values) must have the same length"
            )
        return self

    @override
    def build(self, input_shape, num_classes, class_mode="categorical"):
        import keras
        from keras import layers

        reg = keras.regularizers.l2(self.l2) if self.l2 else None
        inputs = keras.Input(shape=input_shape, name="image")
        x = inputs
        for i, (width, size) in enumerate(zip(self.filters, self.kernel_sizes)):
            # The seed regularizes every conv but the first.
            x = layers.Conv2D(width, size, padding="same", kernel_regularizer=reg if i else None)(x)
            x = batch_norm()(x)
            x = layers.ReLU()(x)
            x = layers.MaxPooling2D()(x)
            x = layers.Dropout(self.dropout)(x)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dense(self.dense_units, activation="relu", kernel_regularizer=reg)(x)
        x = layers.Dropout(self.head_dropout)(x)
        outputs = head(x, num_classes, class_mode)
        return keras.Model(inputs, outputs, name=self.name)
