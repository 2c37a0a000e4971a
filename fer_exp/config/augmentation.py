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
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        return list(value)
    raise ValueError("must be a number >= 0 or a non-empty list of numbers")


Probability = Annotated[float, Field(ge=0, le=1)]


def _range(v: Any) -> Any:
    """A pair [low, high] with 0 < low <= high."""
    if (
        isinstance(v, (list, tuple))
        and len(v) == 2
        and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in v)
        and 0 < v[0] <= v[1]
    ):
        return [float(v[0]), float(v[1])]
    raise ValueError("must be a pair [low, high] with 0 < low <= high")


Range = Annotated[list[float], BeforeValidator(_range)]


class AugmentationConfig(StrictModel):
    """ImageDataGenerator's augmentation arguments, with Keras's meaning for each."""

    rotation_range: Annotated[
        float, Field(ge=0, le=180, description="Random rotation in degrees, drawn from [-r, r].")
    ] = 0.0
    width_shift_range: float | int | list[float] = Field(
        0.0,
        description="Horizontal shift: a float < 1 is a fraction of the width, >= 1 pixels; an int n gives "
        "integer shifts in (-n, n); a list gives the allowed shifts (each with a random sign).",
    )
    height_shift_range: float | int | list[float] = Field(
        0.0, description="Vertical shift, in the forms of `width_shift_range`."
    )
    shear_range: Annotated[float, Field(ge=0, lt=90, description="Shear angle in degrees, drawn from [-s, s].")] = 0.0
    zoom_range: float | list[float] = Field(
        0.0,
        description="Zoom: a float z draws from [1-z, 1+z] (so z must be in [0, 1)); a pair [low, high] with "
        "0 < low <= high draws from it.",
    )
    horizontal_flip: bool = Field(False, description="Mirror half of the images left to right.")
    vertical_flip: bool = Field(False, description="Flip half of the images upside down.")
    brightness_range: list[float] | None = Field(
        None,
        description="A pair [low, high] with 0 <= low <= high: a random brightness factor (1.0 = unchanged); "
        "null = off.",
    )
    channel_shift_range: NonNegativeFloat = Field(
        0.0, description="Random shift of the channel values, in 0..255 units."
    )
    fill_mode: Literal["nearest", "constant", "reflect", "wrap"] = Field(
        "nearest", description="How points outside the image are filled by the geometric transforms."
    )
    cval: float = Field(0.0, description="The fill value for `fill_mode=constant`.")
    rescale: float | None = Field(
        None,
        description="Multiply pixels by this after augmentation (the notebook: "
        "1/255); null = no rescaling; must be > 0.",
    )
    featurewise_center: bool = Field(
        False, description="Subtract the training set's per-pixel mean (fitted on the training images)."
    )
    featurewise_std_normalization: bool = Field(
        False, description="Divide by the training set's per-pixel standard deviation."
    )
    samplewise_center: bool = Field(False, description="Subtract each image's own mean.")
    samplewise_std_normalization: bool = Field(False, description="Divide each image by its own standard deviation.")

    # Beyond ImageDataGenerator (fer_exp.augment.extra): each with a probability and a strength.
    crop_prob: Probability = Field(0.0, description="Probability of a random resized crop (0 = off).")
    crop_scale: Range = Field([0.8, 1.0], description="The crop keeps this fraction of the area (high end <= 1).")
    crop_ratio: Range = Field([0.75, 1.3333], description="The crop's aspect ratio; it is resized back to `pic_size`.")
    contrast_prob: Probability = Field(0.0, description="Probability of a random contrast change (0 = off).")
    contrast_range: Range = Field([0.7, 1.3], description="Contrast factor around the image mean.")
    gamma_prob: Probability = Field(0.0, description="Probability of a random gamma change (0 = off).")
    gamma_range: Range = Field([0.7, 1.5], description="Gamma exponent.")
    equalize_prob: Probability = Field(0.0, description="Probability of histogram equalization, per channel (0 = off).")
    blur_prob: Probability = Field(0.0, description="Probability of a Gaussian blur (0 = off).")
    blur_sigma: Range = Field([0.5, 1.2], description="Gaussian blur sigma, in pixels.")
    sharpen_prob: Probability = Field(0.0, description="Probability of unsharp-mask sharpening (0 = off).")
    sharpen_amount: Range = Field([0.5, 1.5], description="Unsharp-mask strength.")
    erasing_prob: Probability = Field(0.0, description="Probability of random erasing (cutout) (0 = off).")
    erasing_area: Range = Field(
        [0.02, 0.2], description="The erased rectangle's fraction of the image area (high end <= 1)."
    )
    erasing_aspect: Range = Field([0.3, 3.3], description="The erased rectangle's aspect ratio.")
    erasing_value: Literal["random", "mean", "zero"] = Field(
        "random", description="What fills the erased rectangle: noise, the image mean, or zeros."
    )
    mixup_prob: Probability = Field(
        0.0,
        description="Probability that a batch is mixed with mixup (categorical labels; mixup_prob + cutmix_prob <= 1).",
    )
    mixup_alpha: PositiveFloat = Field(0.2, description="Mixup's Beta(alpha, alpha) mixing distribution.")
    cutmix_prob: Probability = Field(
        0.0, description="Probability that a batch is mixed with cutmix (categorical labels)."
    )
    cutmix_alpha: PositiveFloat = Field(1.0, description="Cutmix's Beta(alpha, alpha) area distribution.")

    _check_shifts = field_validator("width_shift_range", "height_shift_range", mode="before")(lambda v: _shift_range(v))

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
        """`mixup_prob + cutmix_prob` is at most 1 (one of them per batch); the high ends of `crop_scale` and
        `erasing_area`, fractions of the image area, are at most 1."""
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
