"""The augmentation config as ImageDataGenerator arguments (the notebook's semantics)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fer_exp.augment import extra
from fer_exp.config import AugmentationConfig

# ImageDataGenerator's own arguments; the rest of the config is fer_exp.augment.extra's.
IDG_KEYS = (
    "rotation_range",
    "width_shift_range",
    "height_shift_range",
    "shear_range",
    "zoom_range",
    "horizontal_flip",
    "vertical_flip",
    "brightness_range",
    "channel_shift_range",
    "fill_mode",
    "cval",
    "rescale",
    "featurewise_center",
    "featurewise_std_normalization",
    "samplewise_center",
    "samplewise_std_normalization",
)
# Keys that standardize images (applied to validation too); the rest are random transforms.
NORMALIZATION_KEYS = (
    "rescale",
    "featurewise_center",
    "featurewise_std_normalization",
    "samplewise_center",
    "samplewise_std_normalization",
)


def train_kwargs(aug: AugmentationConfig) -> dict[str, Any]:
    """Every ImageDataGenerator key as is; fer_exp's extra per-image ops ride on
    ``preprocessing_function`` (run on 0..255 pixels after the transforms, before rescale)."""
    kwargs = {key: getattr(aug, key) for key in IDG_KEYS}
    if extra.has_per_image(aug):

        def preprocessing_function(image: np.ndarray) -> np.ndarray:
            # Drawn from NumPy's global state, which the generator re-seeds every batch.
            rng = np.random.default_rng(np.random.randint(2**31))
            return extra.apply_per_image(image[None].astype(np.float32), aug, rng)[0]

        kwargs["preprocessing_function"] = preprocessing_function
    return kwargs


def val_kwargs(aug: AugmentationConfig) -> dict[str, Any]:
    """Validation images are standardized like the training images but never transformed."""
    return {key: getattr(aug, key) for key in NORMALIZATION_KEYS}
