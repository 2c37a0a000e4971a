"""A fast plain CNN: blocks of 3x3 conv-BN-ReLU with max-pooling between them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt

from fer_exp.models.base import L2, ModelSpec, Rate, batch_norm, head


class SmallCNN(ModelSpec):
    """Fast plain CNN: blocks of 3x3 conv-BN-ReLU, max-pooling between blocks, GAP head.

    The model of the CPU recipes (``conf/experiment/fer2013_small_cnn.yaml``); its measured
    results are in docs/benchmarks.md.
    """

    name: Literal["small_cnn"]
    filters: list[PositiveInt] = Field(default=[16, 32, 64, 128], min_length=1, max_length=8)
    convs_per_block: Annotated[int, Field(ge=1, le=4)] = 2
    dropout: Rate = 0.1
    head_dropout: Rate = 0.3
    l2: L2 = 0.0
    # Keras's default 0.99 needs hundreds of steps before validation sees sane statistics;
    # 0.9 tracks them within an epoch on small datasets.
    bn_momentum: Annotated[float, Field(gt=0, lt=1)] = 0.9

    def build(self, input_shape, num_classes, class_mode="categorical"):
        import keras
        from keras import layers

        reg = keras.regularizers.l2(self.l2) if self.l2 else None
        inputs = keras.Input(shape=input_shape, name="image")
        x = inputs
        for block, width in enumerate(self.filters):
            for _ in range(self.convs_per_block):
                x = layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_regularizer=reg)(x)
                x = batch_norm(momentum=self.bn_momentum)(x)
                x = layers.ReLU()(x)
            if block < len(self.filters) - 1:
                x = layers.MaxPooling2D()(x)
                if self.dropout:
                    x = layers.Dropout(self.dropout)(x)
        x = layers.GlobalAveragePooling2D()(x)
        if self.head_dropout:
            x = layers.Dropout(self.head_dropout)(x)
        outputs = head(x, num_classes, class_mode)
        return keras.Model(inputs, outputs, name=self.name)
