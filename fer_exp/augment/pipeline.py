"""One augmented batch the way ``ImageDataGenerator`` makes it, fused: the geometric transforms
in one resampling pass (:mod:`fer_exp.augment.resample`), then the photometric ops vectorized
over the batch, fer_exp's extra per-image ops, and ``standardize``.

The public entry point is :func:`apply_transform`: explicit Keras-style parameters in,
augmented images out, matching ``ImageDataGenerator.apply_transform`` + ``standardize``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fer_exp.augment import extra
from fer_exp.augment.params import affine_matrices
from fer_exp.augment.resample import warp
from fer_exp.config import AugmentationConfig


def is_geometric(aug: AugmentationConfig) -> bool:
    """Whether the config asks for any geometric transform (rotation, shift, shear, zoom, flip).
    Without one, and without channel shift or brightness, the tf.data pipeline skips the
    resampling pass.

    >>> is_geometric(AugmentationConfig()), is_geometric(AugmentationConfig(horizontal_flip=True))
    (False, True)
    """
    zoom = aug.zoom_range
    return bool(
        aug.rotation_range
        or aug.width_shift_range
        or aug.height_shift_range
        or aug.shear_range
        or (zoom != 0.0 and zoom != [1.0, 1.0])
        or aug.horizontal_flip
        or aug.vertical_flip
    )


def apply_transform(
    images: np.ndarray,
    params: Mapping[str, np.ndarray],
    aug: AugmentationConfig,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Augment a batch with explicit parameters, as ``ImageDataGenerator`` would.

    ``images``: (n, rows, cols, channels), uint8 or float, in 0..255. ``params``: per-image
    arrays with ``get_random_transform``'s keys (see :mod:`fer_exp.augment.params`).
    ``mean``/``std``: featurewise statistics when the config asks for them.
    ``rng``: draws fer_exp's extra per-image ops (:mod:`fer_exp.augment.extra`), when enabled.
    Returns float32 images after the transform and ``standardize`` (rescale, centering...).
    """
    rows, cols = images.shape[1], images.shape[2]
    photometric = np.isfinite(params["channel_shift_intensity"]).any() or np.isfinite(params["brightness"]).any()
    per_image = rng is not None and extra.has_per_image(aug)
    # Rescale inside the warp unless later ops still need 0..255 values.
    scale = 1.0 if photometric or per_image or aug.rescale is None else aug.rescale
    x = warp(images, affine_matrices(params, rows, cols), aug.fill_mode, aug.cval, scale)
    if photometric:
        x = _photometric(x, params)
    if per_image:
        x = extra.apply_per_image(x, aug, rng)
    if scale == 1.0 and aug.rescale:
        x *= np.float32(aug.rescale)
    return standardize(x, aug, mean, std, rescaled=True)


def _photometric(x: np.ndarray, params: Mapping[str, np.ndarray]) -> np.ndarray:
    shift = params["channel_shift_intensity"]
    if np.isfinite(shift).any():
        # apply_channel_shift: clip to the image's own (all-channel) min and max.
        rows = np.flatnonzero(np.isfinite(shift))
        sub = x[rows]
        lo = sub.min(axis=(1, 2, 3), keepdims=True)
        hi = sub.max(axis=(1, 2, 3), keepdims=True)
        x[rows] = np.clip(sub + shift[rows, None, None, None].astype(np.float32), lo, hi)
    brightness = params["brightness"]
    if np.isfinite(brightness).any():
        # apply_brightness_shift goes through an 8-bit PIL image: values are truncated to
        # integers, multiplied by the factor in float32, truncated and clipped again.
        rows = np.flatnonzero(np.isfinite(brightness))
        sub = np.floor(np.clip(x[rows], 0, 255))
        factor = brightness[rows, None, None, None].astype(np.float32)
        x[rows] = np.clip(np.floor(sub * factor), 0, 255)
    return x


def standardize(
    x: np.ndarray, aug: AugmentationConfig, mean: np.ndarray | None, std: np.ndarray | None, rescaled: bool = False
) -> np.ndarray:
    """``ImageDataGenerator.standardize`` on a float32 batch (``rescaled``: rescale already done)."""
    if aug.rescale and not rescaled:
        x *= np.float32(aug.rescale)
    if aug.samplewise_center:
        x -= x.mean(axis=(1, 2, 3), keepdims=True)
    if aug.samplewise_std_normalization:
        x /= x.std(axis=(1, 2, 3), keepdims=True) + 1e-6
    if aug.featurewise_center and mean is not None:
        x -= mean
    if aug.featurewise_std_normalization and std is not None:
        x /= std + 1e-6
    return x


def needs_featurewise_stats(aug: AugmentationConfig) -> bool:
    """Whether the config standardizes with statistics of the training images, which must be
    computed first (``ImageDataGenerator.fit``)."""
    return aug.featurewise_center or aug.featurewise_std_normalization


def featurewise_stats(images: np.ndarray, rescale: float | None, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of the (rescaled) training images, as ``ImageDataGenerator.fit``
    computes them, accumulated in float64 chunks instead of one float32 copy of the data."""
    scale = rescale or 1.0
    count = 0
    total = np.zeros(images.shape[-1])
    total_sq = np.zeros(images.shape[-1])
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].astype(np.float64) * scale
        total += block.sum(axis=(0, 1, 2))
        total_sq += (block**2).sum(axis=(0, 1, 2))
        count += block.shape[0] * block.shape[1] * block.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    shape = (1, 1, images.shape[-1])
    return mean.reshape(shape).astype(np.float32), std.reshape(shape).astype(np.float32)
