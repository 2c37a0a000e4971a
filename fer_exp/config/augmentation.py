"""The ``augmentation.*`` keys: ImageDataGenerator's arguments with Keras's meaning, and
fer_exp's extra ops (:mod:`fer_exp.augment.extra`), each with a probability and a strength."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, NonNegativeFloat, PositiveFloat, field_validator, model_validator

from fer_exp.config.base import StrictModel


def _shift_range(value: Any) -> Any:
    """Keras's forms: float (< 1: fraction of the size, >= 1: pixels), int n (integer
    pixel shifts in (-n, n)), or a list of allowed pixel shifts (each taken with random sign)."""
    if isinstance(value, bool):
        raise ValueError("must be a number or a list of numbers, not a boolean")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("must be >= 0 (a fraction of the size when < 1, pixels when >= 1)")
        return value
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        return list(value)
    raise ValueError("must be a number >= 0 or a non-empty list of numbers")


Probability = Annotated[float, Field(ge=0, le=1)]


def _range(v: Any) -> Any:
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(
            isinstance(b, (int, float)) and not isinstance(b, bool) for b in v) and 0 < v[0] <= v[1]:
        return [float(v[0]), float(v[1])]
    raise ValueError("must be a pair [low, high] with 0 < low <= high")


Range = Annotated[list[float], BeforeValidator(_range)]


class AugmentationConfig(StrictModel):
    """ImageDataGenerator's augmentation arguments, with Keras's meaning for each."""

    rotation_range: Annotated[float, Field(ge=0, le=180)] = 0.0
    width_shift_range: float | int | list[float] = 0.0
    height_shift_range: float | int | list[float] = 0.0
    shear_range: Annotated[float, Field(ge=0, lt=90)] = 0.0
    zoom_range: float | list[float] = 0.0
    horizontal_flip: bool = False
    vertical_flip: bool = False
    brightness_range: list[float] | None = None
    channel_shift_range: NonNegativeFloat = 0.0
    fill_mode: Literal["nearest", "constant", "reflect", "wrap"] = "nearest"
    cval: float = 0.0
    rescale: float | None = None
    featurewise_center: bool = False
    featurewise_std_normalization: bool = False
    samplewise_center: bool = False
    samplewise_std_normalization: bool = False

    # Beyond ImageDataGenerator (fer_exp.augment.extra): each with a probability and a strength.
    crop_prob: Probability = 0.0
    crop_scale: Range = [0.8, 1.0]  # fraction of the area kept
    crop_ratio: Range = [0.75, 1.3333]  # aspect ratio of the crop
    contrast_prob: Probability = 0.0
    contrast_range: Range = [0.7, 1.3]
    gamma_prob: Probability = 0.0
    gamma_range: Range = [0.7, 1.5]
    equalize_prob: Probability = 0.0
    blur_prob: Probability = 0.0
    blur_sigma: Range = [0.5, 1.2]
    sharpen_prob: Probability = 0.0
    sharpen_amount: Range = [0.5, 1.5]
    erasing_prob: Probability = 0.0
    erasing_area: Range = [0.02, 0.2]
    erasing_aspect: Range = [0.3, 3.3]
    erasing_value: Literal["random", "mean", "zero"] = "random"
    mixup_prob: Probability = 0.0
    mixup_alpha: PositiveFloat = 0.2
    cutmix_prob: Probability = 0.0
    cutmix_alpha: PositiveFloat = 1.0

    _check_shifts = field_validator("width_shift_range", "height_shift_range", mode="before")(
        lambda v: _shift_range(v)
    )

    @field_validator("zoom_range", mode="before")
    @classmethod
    def _zoom(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if not 0 <= v < 1:
                raise ValueError("a single zoom_range z draws zoom from [1-z, 1+z], so z must be in [0, 1)")
            return float(v)
        if isinstance(v, (list, tuple)) and len(v) == 2 and 0 < v[0] <= v[1]:
            return [float(v[0]), float(v[1])]
        raise ValueError("must be a float in [0, 1) or a pair [low, high] with 0 < low <= high")

    @field_validator("brightness_range", mode="before")
    @classmethod
    def _brightness(cls, v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, (list, tuple)) and len(v) == 2 and 0 <= v[0] <= v[1]:
            return [float(v[0]), float(v[1])]
        raise ValueError("must be null or a pair [low, high] with 0 <= low <= high (1.0 = unchanged)")

    @model_validator(mode="after")
    def _probabilities(self):
        if self.mixup_prob + self.cutmix_prob > 1:
            raise ValueError("mixup_prob + cutmix_prob must be <= 1 (one of them per batch)")
        for key in ("crop_scale", "erasing_area"):
            if getattr(self, key)[1] > 1:
                raise ValueError(f"{key} is a fraction of the image area: its high end must be <= 1")
        return self

    @field_validator("rescale")
    @classmethod
    def _rescale(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError("must be null or > 0 (the notebook uses 1/255 = 0.00392156862745098)")
        return v


