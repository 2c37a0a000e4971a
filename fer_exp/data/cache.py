"""Decode once: a split's images as one compact uint8 array on disk, reused by every epoch
and every later run.

The cache key is a fingerprint of the file list (paths, sizes, modification times) and of
everything that changes the pixels (``pic_size``, ``color_mode``, resize filter, decoder
version): a changed or added file gives a new key. Each cache file carries a checksum of its
pixels; one that fails the check (truncated, edited, half-written) is rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from fer_exp.data.table import ImageTable
from fer_exp.errors import DataError
from fer_exp.paths import cache_root

log = logging.getLogger(__name__)

DECODER_VERSION = 2  # 2: unreadable images are recorded, not fatal
# Keras's load_img resize filters.
RESAMPLE_FILTERS = {
    "nearest": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "hamming": Image.HAMMING,
    "box": Image.BOX,
    "lanczos": Image.LANCZOS,
}


def cache_dir_for(configured: str | None) -> Path:
    """``data.cache_dir``, or ``decoded/`` under fer_exp's cache root."""
    return Path(configured).expanduser() if configured else cache_root() / "decoded"


def fingerprint(table: ImageTable, pic_size: int, color_mode: str, interpolation: str) -> str:
    """The cache key of a split: a short hash of every file's path, size and modification time
    and of what shapes the pixels (``pic_size``, ``color_mode``, resize filter, decoder version).
    It reads no pixels (only ``os.stat``), so checking for a cache costs little even for large splits."""
    h = hashlib.sha1(json.dumps([DECODER_VERSION, pic_size, color_mode, interpolation]).encode())
    for path in table.paths:
        st = os.stat(path)
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def decode_image(path: str, pic_size: int, color_mode: str, interpolation: str) -> np.ndarray:
    """One image as Keras's ``load_img`` + ``img_to_array`` give it, in uint8 (rows, cols, ch)."""
    try:
        with Image.open(path) as img:
            img = img.convert({"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}[color_mode])
            if img.size != (pic_size, pic_size):
                img = img.resize((pic_size, pic_size), RESAMPLE_FILTERS[interpolation])
            arr = np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None
    return arr[..., None] if arr.ndim == 2 else arr


def _checksum(array: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    flat = array.reshape(-1)
    step = 1 << 24
    for start in range(0, flat.size, step):
        h.update(memoryview(np.ascontiguousarray(flat[start : start + step])))
    return h.hexdigest()


def decoded_images(
    table: ImageTable, pic_size: int, color_mode: str, interpolation: str, cache_dir: Path, threads: int = 2
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """The split's images as a read-only (N, pic_size, pic_size, C) uint8 memmap, and the
    unreadable ones as (index, message) — their rows hold zeros."""
    from filelock import FileLock

    key = fingerprint(table, pic_size, color_mode, interpolation)
    cache_dir.mkdir(parents=True, exist_ok=True)
    data, meta = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    channels = {"grayscale": 1, "rgb": 3, "rgba": 4}[color_mode]
    shape = (len(table), pic_size, pic_size, channels)
    with FileLock(str(cache_dir / f"{key}.lock"), timeout=3600):  # one builder per key
        cached = _load_verified(data, meta, shape)
        if cached is None:
            _build(table, pic_size, color_mode, interpolation, data, meta, shape, threads)
            cached = _load_verified(data, meta, shape)
        return cached


def _load_verified(data: Path, meta: Path, shape: tuple[int, ...]):
    if not (data.exists() and meta.exists()):
        return None
    try:
        info = json.loads(meta.read_text())
        array = np.load(data, mmap_mode="r")
        if array.shape != shape or array.dtype != np.uint8 or _checksum(array) != info["checksum"]:
            raise ValueError("shape, dtype or checksum mismatch")
        return array, [tuple(b) for b in info["bad"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("decoded-image cache %s is damaged (%s): rebuilding it", data, exc)
        return None


def _build(table, pic_size, color_mode, interpolation, data: Path, meta: Path, shape, threads: int) -> None:
    start = time.perf_counter()
    fd, tmp = tempfile.mkstemp(dir=data.parent, suffix=".npy.tmp")
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)

        bad: list[tuple[int, str]] = []

        def decode_range(bounds: tuple[int, int]) -> None:
            for i in range(*bounds):
                try:
                    out[i] = decode_image(table.paths[i], pic_size, color_mode, interpolation)
                except DataError as exc:
                    out[i] = 0
                    bad.append((i, str(exc)))

        chunk = 512
        with ThreadPoolExecutor(max(1, threads)) as pool:  # PIL decodes with the GIL released
            list(pool.map(decode_range, [(s, min(s + chunk, shape[0])) for s in range(0, shape[0], chunk)]))
        out.flush()
        checksum = _checksum(out)
        out = None  # closes the memmap before the rename
        os.replace(tmp, data)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    meta_tmp = meta.with_suffix(".json.tmp")
    meta_tmp.write_text(
        json.dumps(
            {
                "checksum": checksum,
                "shape": list(shape),
                "bad": sorted(bad),
                "pic_size": pic_size,
                "color_mode": color_mode,
                "interpolation": interpolation,
            }
        )
    )
    os.replace(meta_tmp, meta)
    log.info(
        "decoded %d images into %s in %.1f s (%.0f MB)",
        shape[0],
        data,
        time.perf_counter() - start,
        np.prod(shape) / 1e6,
    )
