"""A fast plain CNN: blocks of 3x3 conv-BN-ReLU with max-pooling between them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt
from typing_extensions import override

from fer_exp.models.base import L2, ModelSpec, Rate, batch_norm, head


class SmallCNN(ModelSpec):
    """Fast plain CNN: blocks of 3x3 conv-BN-ReLU, max-pooling between blocks, GAP head.

    The model of the CPU recipes (``conf/experiment/fer2013_small_cnn.yaml``); its measured
    results are in docs/benchmarks.md.
    """

    name: Literal["small_cnn"] = Field(description="Selects this model (`model=small_cnn`).")
    filters: list[PositiveInt] = Field(
        default=[16, 32, 64, 128],
        min_length=1,
        max_length=8,
        description="Convolution widths, one block each; max-pooling between blocks.",
    )
    convs_per_block: Annotated[int, Field(ge=1, le=4, description="3x3 conv-BN-ReLU layers per block.")] = 2
    dropout: Rate = Field(0.1, description="Dropout after each pooling between blocks (0 = none).")
    head_dropout: Rate = Field(0.3, description="Dropout before the classifier head (0 = none).")
    l2: L2 = Field(0.0, description="L2 penalty on the convolution kernels (0 = none).")
    # Keras's default 0.99 needs hundreds of steps before validation sees sane statistics;
    # 0.9 tracks them within an epoch on small datasets.
    bn_momentum: Annotated[
        float,
        Field(
            gt=0,
            lt=1,
            description="Batch-norm moving-average momentum; lower than "
            "Keras's 0.99 so that validation sees sane "
            "statistics within an epoch on small "
            "datasets.",
        ),
    ] = 0.9

    @override
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
