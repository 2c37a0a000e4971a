"""The augmentation config as ImageDataGenerator arguments (the notebook's semantics)."""

from __future__ import annotations

from typing import Any

from fer_exp.config import AugmentationConfig

# Keys that standardize images (applied to validation too); the rest are random transforms.
NORMALIZATION_KEYS = (
    "rescale",
    "featurewise_center",
    "featurewise_std_normalization",
    "samplewise_center",
    "samplewise_std_normalization",
)


def train_kwargs(aug: AugmentationConfig) -> dict[str, Any]:
    """Every augmentation key, passed to ``ImageDataGenerator`` as is."""
    return aug.model_dump()


def val_kwargs(aug: AugmentationConfig) -> dict[str, Any]:
    """Validation images are standardized like the training images but never transformed."""
    return {key: getattr(aug, key) for key in NORMALIZATION_KEYS}


def needs_fit(aug: AugmentationConfig) -> bool:
    """Featurewise statistics must be fitted on the training images first."""
    return aug.featurewise_center or aug.featurewise_std_normalization
