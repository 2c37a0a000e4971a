"""The augmentation techniques ImageDataGenerator lacks, for both pipelines.

Per-image ops (registered with :func:`per_image_op`), each applied with its own probability
``augmentation.<name>_prob``, in this order, on 0..255 pixels after
ImageDataGenerator's transforms and before rescale/standardization (the keras pipeline runs
them as the generator's ``preprocessing_function``, the tfdata pipeline on the whole batch):

1. random resized crop (``crop_*``): a crop of ``crop_scale`` of the area and ``crop_ratio``
   aspect, resized back to full size;
2. contrast (``contrast_range``) and gamma (``gamma_range``);
3. histogram equalization (``equalize_prob``), per channel, so grayscale-safe;
4. Gaussian blur (``blur_sigma``) and unsharp-mask sharpening (``sharpen_amount``);
5. random erasing / cutout (``erasing_area`` of the image, ``erasing_aspect``, filled with
   noise, the image mean or zeros).

Batch ops after standardization, categorical labels only: mixup (``mixup_alpha``) and cutmix
(``cutmix_alpha``), one of them per batch with its probability. Mixed images get mixed (soft)
labels; class weights become a per-sample weight ``s = lam*w_a + (1-lam)*w_b`` with target
``(lam*w_a*y_a + (1-lam)*w_b*y_b) / s``, so the weighted loss is exactly
``lam*w_a*CE(y_a) + (1-lam)*w_b*CE(y_b)`` — each class still weighs what it should.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from fer_exp.augment.resample import warp
from fer_exp.config import AugmentationConfig

PerImageOp = Callable[[np.ndarray, AugmentationConfig, np.random.Generator], np.ndarray]
# name -> op, in the order they run; ``augmentation.<name>_prob`` switches each on.
PER_IMAGE_OPS: dict[str, PerImageOp] = {}


def per_image_op(name: str) -> Callable[[PerImageOp], PerImageOp]:
    """Register ``fn(img, aug, rng) -> img`` as the per-image op ``name``: it runs after the ops
    registered before it, on the images that ``augmentation.<name>_prob`` picks, on one float32
    (rows, cols, ch) image in 0..255, drawing only from ``rng`` (see the "Extending" page)."""

    def register(fn: PerImageOp) -> PerImageOp:
        if name in PER_IMAGE_OPS:
            raise ValueError(f"two per-image augmentation ops are named {name!r}")
        PER_IMAGE_OPS[name] = fn
        return fn

    return register


def has_per_image(aug: AugmentationConfig) -> bool:
    """Whether any per-image op (crop, contrast, gamma, equalize, blur, sharpen, erasing) can
    fire; without one, both pipelines skip the per-image pass altogether.

    >>> has_per_image(AugmentationConfig()), has_per_image(AugmentationConfig(blur_prob=0.5))
    (False, True)
    """
    return any(getattr(aug, f"{name}_prob") > 0 for name in PER_IMAGE_OPS)


def has_mixing(aug: AugmentationConfig) -> bool:
    """Whether batches get mixed (mixup or cutmix): then targets are soft and class weights
    travel inside the batches as per-sample weights instead of going to ``fit``.

    >>> has_mixing(AugmentationConfig()), has_mixing(AugmentationConfig(mixup_prob=0.5))
    (False, True)
    """
    return aug.mixup_prob > 0 or aug.cutmix_prob > 0


def _chosen(rng: np.random.Generator, n: int, prob: float) -> np.ndarray:
    return np.flatnonzero(rng.random(n) < prob) if prob > 0 else np.empty(0, dtype=int)


def apply_per_image(x: np.ndarray, aug: AugmentationConfig, rng: np.random.Generator) -> np.ndarray:
    """Every registered per-image op in turn, each on the images its probability picks.

    ``x``: float32 (n, rows, cols, ch) in 0..255, changed in place and returned.
    """
    for name, op in PER_IMAGE_OPS.items():
        for i in _chosen(rng, len(x), getattr(aug, f"{name}_prob")):
            x[i] = op(x[i], aug, rng)
    return x


@per_image_op("crop")
def _resized_crop(img: np.ndarray, aug, rng) -> np.ndarray:
    rows, cols = img.shape[:2]
    area = rng.uniform(*aug.crop_scale) * rows * cols
    ratio = np.exp(rng.uniform(np.log(aug.crop_ratio[0]), np.log(aug.crop_ratio[1])))
    w = min(cols, np.sqrt(area * ratio))
    h = min(rows, np.sqrt(area / ratio))
    top, left = rng.uniform(0, rows - h), rng.uniform(0, cols - w)
    # output pixel centres spread over the crop: in = top + (r + 0.5) * h / rows - 0.5
    sy, sx = h / rows, w / cols
    mat = np.array([[[sy, 0.0, top + 0.5 * sy - 0.5], [0.0, sx, left + 0.5 * sx - 0.5]]])
    return warp(img[None], mat, "nearest")[0]


@per_image_op("contrast")
def _contrast(img: np.ndarray, aug, rng) -> np.ndarray:
    mean = img.mean()
    return np.clip((img - mean) * rng.uniform(*aug.contrast_range) + mean, 0, 255)


@per_image_op("gamma")
def _gamma(img: np.ndarray, aug, rng) -> np.ndarray:
    return 255.0 * (np.clip(img, 0, 255) / 255.0) ** rng.uniform(*aug.gamma_range)


@per_image_op("equalize")
def _equalize(img: np.ndarray, aug=None, rng=None) -> np.ndarray:
    from PIL import Image, ImageOps

    out = np.empty_like(img)
    for c in range(img.shape[-1]):
        plane = Image.fromarray(np.clip(np.rint(img[..., c]), 0, 255).astype(np.uint8), "L")
        out[..., c] = np.asarray(ImageOps.equalize(plane), dtype=np.float32)
    return out


@per_image_op("blur")
def _blur(img: np.ndarray, aug, rng) -> np.ndarray:
    return ndimage.gaussian_filter(img, sigma=(*[rng.uniform(*aug.blur_sigma)] * 2, 0))


@per_image_op("sharpen")
def _sharpen(img: np.ndarray, aug, rng) -> np.ndarray:
    blurred = ndimage.gaussian_filter(img, sigma=(1.0, 1.0, 0))
    return np.clip(img + rng.uniform(*aug.sharpen_amount) * (img - blurred), 0, 255)


@per_image_op("erasing")
def _erase(img: np.ndarray, aug, rng) -> np.ndarray:
    rows, cols, channels = img.shape
    area = rng.uniform(*aug.erasing_area) * rows * cols
    aspect = np.exp(rng.uniform(np.log(aug.erasing_aspect[0]), np.log(aug.erasing_aspect[1])))
    h = int(min(rows, max(1, round(np.sqrt(area * aspect)))))
    w = int(min(cols, max(1, round(np.sqrt(area / aspect)))))
    top, left = rng.integers(0, rows - h + 1), rng.integers(0, cols - w + 1)
    if aug.erasing_value == "random":
        fill = rng.uniform(0, 255, (h, w, channels))
    elif aug.erasing_value == "mean":
        fill = img.mean()
    else:
        fill = 0.0
    img[top : top + h, left : left + w] = fill
    return img


def mix_batch(
    x: np.ndarray,
    y: np.ndarray,
    aug: AugmentationConfig,
    rng: np.random.Generator,
    class_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixup or cutmix one batch: images, soft targets, per-sample weights (see module doc)."""
    n = len(x)
    w = class_weights if class_weights is not None else np.ones(y.shape[1], dtype=np.float32)
    weight_a = (y @ w).astype(np.float32)
    if n < 2:
        return x, y, weight_a
    u, perm = rng.random(), rng.permutation(n)
    if u < aug.cutmix_prob:
        x, lam = _cutmix(x, perm, rng.beta(aug.cutmix_alpha, aug.cutmix_alpha), rng)
    elif u < aug.cutmix_prob + aug.mixup_prob:
        lam = rng.beta(aug.mixup_alpha, aug.mixup_alpha)
        x = lam * x + (1 - lam) * x[perm]
    else:
        return x, y, weight_a
    lam_v = np.float32(lam)
    t = lam_v * y * weight_a[:, None] + (1 - lam_v) * y[perm] * weight_a[perm][:, None]
    s = t.sum(axis=1)
    return x.astype(np.float32), (t / s[:, None]).astype(np.float32), s.astype(np.float32)


def _cutmix(x: np.ndarray, perm: np.ndarray, lam: float, rng) -> tuple[np.ndarray, float]:
    """Paste a box of the permuted images; returns them and the exact kept area fraction."""
    rows, cols = x.shape[1:3]
    cut = np.sqrt(1 - lam)
    h, w = int(rows * cut), int(cols * cut)
    cy, cx = rng.integers(0, rows), rng.integers(0, cols)
    top, bottom = np.clip([cy - h // 2, cy + h // 2], 0, rows)
    left, right = np.clip([cx - w // 2, cx + w // 2], 0, cols)
    out = x.copy()
    out[:, top:bottom, left:right] = x[perm, top:bottom, left:right]
    return out, 1 - (bottom - top) * (right - left) / (rows * cols)
