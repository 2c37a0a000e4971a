"""Random transform parameters drawn exactly as ``ImageDataGenerator.get_random_transform``
draws them, but for a whole batch at once, and the affine matrices they make.

Parameters are a dict of per-image arrays with Keras's keys: ``theta``, ``tx``, ``ty``,
``shear``, ``zx``, ``zy``, ``flip_horizontal``, ``flip_vertical``,
``channel_shift_intensity``, ``brightness`` (the last two NaN where Keras has None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fer_exp.config import AugmentationConfig

KEYS = (
    "theta",
    "tx",
    "ty",
    "shear",
    "zx",
    "zy",
    "flip_horizontal",
    "flip_vertical",
    "channel_shift_intensity",
    "brightness",
)
_DEFAULTS = {
    "theta": 0.0,
    "tx": 0.0,
    "ty": 0.0,
    "shear": 0.0,
    "zx": 1.0,
    "zy": 1.0,
    "flip_horizontal": False,
    "flip_vertical": False,
    "channel_shift_intensity": np.nan,
    "brightness": np.nan,
}


def zoom_bounds(aug: AugmentationConfig) -> tuple[float, float]:
    """``zoom_range`` as Keras reads it: a float ``z`` means ``(1 - z, 1 + z)``, a pair is taken as is.

    >>> zoom_bounds(AugmentationConfig(zoom_range=0.25)), zoom_bounds(AugmentationConfig(zoom_range=[0.9, 1.1]))
    ((0.75, 1.25), (0.9, 1.1))
    """
    z = aug.zoom_range
    return (1 - z, 1 + z) if isinstance(z, float) else (z[0], z[1])


def _shift(rng: np.random.Generator, spec: float | int | list[float], size: int, n: int) -> np.ndarray:
    """Keras: a float is uniform in (-s, s); an int n or a list is a choice times a random sign;
    the result is a fraction of ``size`` when the largest allowed value is < 1."""
    if not spec:
        return np.zeros(n)
    if isinstance(spec, float):
        out = rng.uniform(-spec, spec, n)
    else:
        choices = np.arange(spec) if isinstance(spec, int) else np.asarray(spec, dtype=float)
        out = rng.choice(choices, n) * rng.choice([-1, 1], n)
    return out * size if np.max(spec) < 1 else out.astype(float)


def draw(
    aug: AugmentationConfig, n: int, image_shape: Sequence[int], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Parameters for ``n`` images of shape (rows, cols, channels), Keras's distributions."""
    rows, cols = image_shape[0], image_shape[1]
    lo, hi = zoom_bounds(aug)
    p: dict[str, np.ndarray] = {
        "theta": rng.uniform(-aug.rotation_range, aug.rotation_range, n) if aug.rotation_range else np.zeros(n),
        # Keras's tx is the vertical shift (rows) and ty the horizontal one (columns).
        "tx": _shift(rng, aug.height_shift_range, rows, n),
        "ty": _shift(rng, aug.width_shift_range, cols, n),
        "shear": rng.uniform(-aug.shear_range, aug.shear_range, n) if aug.shear_range else np.zeros(n),
    }
    if lo == 1 and hi == 1:
        p["zx"], p["zy"] = np.ones(n), np.ones(n)
    else:
        zoom = rng.uniform(lo, hi, (n, 2))
        p["zx"], p["zy"] = zoom[:, 0], zoom[:, 1]
    p["flip_horizontal"] = (rng.random(n) < 0.5) & aug.horizontal_flip
    p["flip_vertical"] = (rng.random(n) < 0.5) & aug.vertical_flip
    p["channel_shift_intensity"] = (
        rng.uniform(-aug.channel_shift_range, aug.channel_shift_range, n)
        if aug.channel_shift_range
        else np.full(n, np.nan)
    )
    p["brightness"] = rng.uniform(*aug.brightness_range, n) if aug.brightness_range else np.full(n, np.nan)
    return p


def stack(per_image: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Keras's per-image dicts (``get_random_transform`` output) -> one dict of arrays."""
    out = {}
    for key in KEYS:
        values = [d.get(key, _DEFAULTS[key]) for d in per_image]
        out[key] = np.array(
            [_DEFAULTS[key] if v is None else v for v in values], dtype=bool if key.startswith("flip") else float
        )
    return out


def affine_matrices(p: Mapping[str, np.ndarray], rows: int, cols: int) -> np.ndarray:
    """(n, 2, 3) matrices mapping output (row, col, 1) to input (row, col), as scipy's
    ``affine_transform`` uses them.

    This is Keras's ``apply_affine_transform`` matrix — rotation · shift · shear · zoom about
    the image centre, then its x/y axis swap — with the flips that Keras applies to the
    output afterwards folded in, so that one resampling does everything.
    """
    theta, shear = np.deg2rad(p["theta"]), np.deg2rad(p["shear"])
    n = len(theta)
    m = np.zeros((n, 3, 3))
    cos, sin = np.cos(theta), np.sin(theta)
    sh_s, sh_c = -np.sin(shear), np.cos(shear)
    zx, zy, tx, ty = p["zx"], p["zy"], p["tx"], p["ty"]
    # R(theta) @ T(tx, ty) @ Shear @ Zoom, multiplied out.
    m[:, 0, 0] = cos * zx
    m[:, 0, 1] = (cos * sh_s - sin * sh_c) * zy
    m[:, 0, 2] = cos * tx - sin * ty
    m[:, 1, 0] = sin * zx
    m[:, 1, 1] = (sin * sh_s + cos * sh_c) * zy
    m[:, 1, 2] = sin * tx + cos * ty
    m[:, 2, 2] = 1.0
    # transform_matrix_offset_center(matrix, rows, cols): Keras passes (h, w) as (x, y).
    ox, oy = rows / 2 - 0.5, cols / 2 - 0.5
    offset = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1.0]])
    reset = np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1.0]])
    m = offset @ m @ reset
    m = m[:, [1, 0, 2]][:, :, [1, 0, 2]]  # Keras's swap to (row, col) order
    a, o = m[:, :2, :2].copy(), m[:, :2, 2].copy()
    # Output flips: out[r, c] = warped[r, cols-1-c] (horizontal), warped[rows-1-r, c] (vertical).
    fh, fv = np.asarray(p["flip_horizontal"], bool), np.asarray(p["flip_vertical"], bool)
    o[fh] += a[fh, :, 1] * (cols - 1)
    a[fh, :, 1] *= -1
    o[fv] += a[fv, :, 0] * (rows - 1)
    a[fv, :, 0] *= -1
    return np.concatenate([a, o[:, :, None]], axis=2)
