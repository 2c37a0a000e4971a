"""Model zoo: one config schema and one builder per model.

Each schema is a pydantic model whose fields are the ``model.*`` config keys, validated
before TensorFlow is imported; ``build()`` imports Keras and returns an uncompiled model.

Example::

    >>> spec = SmallCNN(name="small_cnn", filters=[16, 32])
    >>> model = spec.build(input_shape=(48, 48, 1), num_classes=7)   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

Rate = Annotated[float, Field(ge=0.0, lt=1.0)]
L2 = Annotated[float, Field(ge=0.0, le=1.0)]


class _ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # whether mixed_precision=auto should train it in bfloat16 on a CPU with AMX / AVX512-BF16
    # (scripts/bench_precision.py measures it)
    bfloat16_pays_on_cpu: ClassVar[bool] = True

    def build(self, input_shape: tuple[int, int, int], num_classes: int, class_mode: str = "categorical"):
        raise NotImplementedError


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

    if keras.mixed_precision.global_policy().compute_dtype in ("bfloat16", "float16"):
        from fer_exp.keras_objects import FusedBatchNormalization

        return FusedBatchNormalization(**kwargs)
    return keras.layers.BatchNormalization(**kwargs)


class SmallCNN(_ModelSpec):
    """Fast plain CNN: blocks of 3x3 conv-BN-ReLU, max-pooling between blocks, GAP head.

    With filters 16-32-64-128 (two convs a block) it has ~0.3 M parameters and reaches
    ~65 % on FER-2013 in about 20 epochs on a CPU.
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


class SeedCNN(_ModelSpec):
    """The seed notebook's final model.

    Conv 64 (3x3) -> Conv 128 (5x5) -> Conv 512 (3x3) -> Conv 512 (3x3), each followed by
    BatchNorm, ReLU, 2x2 max-pooling and dropout; L2 on convs 2-4 and on the dense layer;
    GlobalAveragePooling -> Dense 128 ReLU -> Dropout 0.5 -> softmax. 3.2 M parameters.
    """

    name: Literal["seed_cnn"]
    filters: list[PositiveInt] = Field(default=[64, 128, 512, 512], min_length=1)
    kernel_sizes: list[Annotated[int, Field(ge=1, le=11)]] = Field(default=[3, 5, 3, 3], min_length=1)
    dropout: Rate = 0.25
    dense_units: PositiveInt = 128
    head_dropout: Rate = 0.5
    l2: L2 = 0.001

    @model_validator(mode="after")
    def _same_length(self):
        if len(self.filters) != len(self.kernel_sizes):
            raise ValueError(
                f"filters ({len(self.filters)} values) and kernel_sizes "
                f"({len(self.kernel_sizes)} values) must have the same length"
            )
        return self

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


class MiniXception(_ModelSpec):
    """mini-Xception (Arriaga et al. 2017), the classic real-time FER model: a conv stem, then
    residual modules of depthwise-separable convolutions, a conv to the classes and GAP
    (~60 k parameters with the defaults)."""

    name: Literal["mini_xception"]
    # measured 0.50x in bfloat16 with AMX: oneDNN's depthwise and 8-16-channel convolutions
    # gain nothing from bfloat16 and lose to the casts
    bfloat16_pays_on_cpu: ClassVar[bool] = False
    stem_filters: PositiveInt = 8
    filters: list[PositiveInt] = Field(default=[16, 32, 64, 128], min_length=1)
    l2: L2 = 0.01
    dropout: Rate = 0.0

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
            x = layers.SeparableConv2D(width, 3, padding="same", use_bias=False, depthwise_regularizer=reg,
                                       pointwise_regularizer=reg)(x)
            x = batch_norm()(x)
            x = layers.ReLU()(x)
            x = layers.SeparableConv2D(width, 3, padding="same", use_bias=False, depthwise_regularizer=reg,
                                       pointwise_regularizer=reg)(x)
            x = batch_norm()(x)
            x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
            x = layers.Add()([x, shortcut])
        if self.dropout:
            x = layers.Dropout(self.dropout)(x)
        # The original ends in a conv to the classes; a dense head keeps binary class_mode simple.
        x = layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, head(x, num_classes, class_mode), name=self.name)


class VGGFer(_ModelSpec):
    """The VGG variant of Khaireddin & Chen (2021), 73.28 % on FER-2013: stages of two (or
    ``convs_per_stage``) 3x3 conv-BN-ReLU, max-pooling, then fully connected layers with
    dropout. ``width`` scales every stage (1.0 = 64-128-256-512)."""

    name: Literal["vgg_fer"]
    filters: list[PositiveInt] = Field(default=[64, 128, 256, 512], min_length=1)
    width: Annotated[float, Field(gt=0, le=4)] = 1.0
    convs_per_stage: Annotated[int, Field(ge=1, le=4)] = 2
    dense_units: list[PositiveInt] = [1024, 1024]
    dropout: Rate = 0.4
    l2: L2 = 0.0

    def build(self, input_shape, num_classes, class_mode="categorical"):
        import keras
        from keras import layers

        reg = keras.regularizers.l2(self.l2) if self.l2 else None
        inputs = keras.Input(shape=input_shape, name="image")
        x = inputs
        for base in self.filters:
            for _ in range(self.convs_per_stage):
                x = layers.Conv2D(max(1, round(base * self.width)), 3, padding="same", use_bias=False,
                                  kernel_regularizer=reg)(x)
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


class ResNet(_ModelSpec):
    """A small ResNet for 48x48 inputs: a 3x3 stem, stages of basic residual blocks (two 3x3
    convs, identity or 1x1 projection shortcut), stride 2 between stages, GAP."""

    name: Literal["resnet"]
    stem_filters: PositiveInt = 32
    filters: list[PositiveInt] = Field(default=[32, 64, 128, 256], min_length=1)
    blocks_per_stage: Annotated[int, Field(ge=1, le=8)] = 2
    dropout: Rate = 0.2
    l2: L2 = 0.0

    def build(self, input_shape, num_classes, class_mode="categorical"):
        import keras
        from keras import layers

        reg = keras.regularizers.l2(self.l2) if self.l2 else None

        def conv(x, width, stride=1, kernel=3):
            return layers.Conv2D(width, kernel, strides=stride, padding="same", use_bias=False,
                                 kernel_regularizer=reg)(x)

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


ModelSpec = Annotated[SmallCNN | SeedCNN | MiniXception | VGGFer | ResNet, Field(discriminator="name")]
