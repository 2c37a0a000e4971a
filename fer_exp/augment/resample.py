"""The compiled resampling kernel: every geometric transform of an image in a single bilinear
pass (numba, GIL released), through one 2x3 matrix per image.

Boundary handling reproduces ``scipy.ndimage.affine_transform(order=1)`` — which is what
Keras calls — mode by mode, including scipy's own meaning of ``wrap`` (period ``len - 1``),
so every fill mode agrees with the notebook's generator (TensorFlow's ImageProjectiveTransform
differs from scipy for ``constant`` and ``wrap``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

FILL_MODES = {"nearest": 0, "constant": 1, "reflect": 2, "wrap": 3}


@numba.njit(cache=True, nogil=True, inline="always")
def _map_coordinate(x: float, n: int, mode: int) -> float:
    """Fold a coordinate outside [0, n-1] back in as scipy does (-1 = use cval).

    ``reflect`` is left alone here: its taps are reflected one by one (:func:`_reflect_index`).
    """
    if mode == 2 or 0.0 <= x <= n - 1:
        return x
    if mode == 0:
        return 0.0 if x < 0.0 else n - 1.0
    if mode == 1:
        return -1.0
    if n <= 1:
        return 0.0
    period = n - 1  # scipy's 'wrap' repeats with period n - 1 (first and last pixel coincide)
    if x < 0.0:
        return x + period * (int(-x / period) + 1)
    return x - period * int(x / period)


@numba.njit(cache=True, nogil=True, inline="always")
def _reflect_index(i: int, n: int) -> int:
    """Half-sample symmetric extension (d c b a | a b c d | d c b a): scipy's 'reflect'."""
    i %= 2 * n
    return 2 * n - 1 - i if i >= n else i


@numba.njit(cache=True, nogil=True, inline="always")
def _edge_index(i: int, n: int) -> int:
    """scipy's mirror mapping of a filter tap that falls outside the image (weight 0 here)."""
    if n <= 1:
        return 0
    period = 2 * n - 2
    if i < 0:
        i = period * (-i // period) + i
        return i + period if i <= 1 - n else -i
    if i >= n:
        i -= period * (i // period)
        return period - i if i >= n else i
    return i


@numba.njit(cache=True, nogil=True, inline="always")
def _tap(i: int, n: int, mode: int) -> int:
    return _reflect_index(i, n) if mode == 2 else _edge_index(i, n)


@numba.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)
def _warp_planes(src, mats, mode, cval, scale, out):
    """out[i] = bilinear sample of plane src[i] at mats[i] @ (row, col, 1), times ``scale``."""
    n, rows, cols = src.shape
    row_max, col_max = rows - 1.0, cols - 1.0
    f_scale = np.float32(scale)
    for i in range(n):
        img, dst = src[i], out[i]
        a00, a01, a02 = mats[i, 0, 0], mats[i, 0, 1], mats[i, 0, 2]
        a10, a11, a12 = mats[i, 1, 0], mats[i, 1, 1], mats[i, 1, 2]
        for r in range(rows):
            y_row, x_row = a00 * r + a02, a10 * r + a12
            for c in range(cols):
                y, x = y_row + a01 * c, x_row + a11 * c  # as scipy computes them, no accumulation
                if 0.0 <= y < row_max and 0.0 <= x < col_max:
                    # Interior (most pixels): all four taps inside, no boundary rule applies.
                    y0, x0 = int(y), int(x)
                    wy, wx = np.float32(y - y0), np.float32(x - x0)
                    p00, p01 = np.float32(img[y0, x0]), np.float32(img[y0, x0 + 1])
                    p10, p11 = np.float32(img[y0 + 1, x0]), np.float32(img[y0 + 1, x0 + 1])
                    top = p00 + wx * (p01 - p00)
                    bottom = p10 + wx * (p11 - p10)
                    dst[r, c] = (top + wy * (bottom - top)) * f_scale
                    continue
                y = _map_coordinate(y, rows, mode)
                x = _map_coordinate(x, cols, mode)
                if mode == 1 and (y <= -1.0 or x <= -1.0):
                    dst[r, c] = cval * scale
                    continue
                y0, x0 = math.floor(y), math.floor(x)
                wy, wx = y - y0, x - x0
                ya, yb = _tap(y0, rows, mode), _tap(y0 + 1, rows, mode)
                xa, xb = _tap(x0, cols, mode), _tap(x0 + 1, cols, mode)
                top = (1.0 - wx) * img[ya, xa] + wx * img[ya, xb]
                bottom = (1.0 - wx) * img[yb, xa] + wx * img[yb, xb]
                dst[r, c] = ((1.0 - wy) * top + wy * bottom) * scale


def warp(
    images: np.ndarray, mats: np.ndarray, fill_mode: str = "nearest", cval: float = 0.0, scale: float = 1.0
) -> np.ndarray:
    """Resample a batch (n, rows, cols, channels) through per-image (n, 2, 3) matrices."""
    n, rows, cols, channels = images.shape
    mats = np.ascontiguousarray(mats, dtype=np.float64)
    if channels == 1:
        planes = images.reshape(n, rows, cols)
    else:  # each channel is a plane with its image's matrix
        planes = images.transpose(0, 3, 1, 2).reshape(n * channels, rows, cols)
        mats = np.repeat(mats, channels, axis=0)
    out = np.empty(planes.shape, dtype=np.float32)
    _warp_planes(np.ascontiguousarray(planes), mats, FILL_MODES[fill_mode], float(cval), float(scale), out)
    if channels == 1:
        return out.reshape(n, rows, cols, 1)
    return np.ascontiguousarray(out.reshape(n, channels, rows, cols).transpose(0, 2, 3, 1))
