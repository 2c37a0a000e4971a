"""Embedded default dataset: synthetic 48x48 grayscale faces with seven expressions.

Faces are drawn from facial-action cues (mouth curvature and opening, brow height and tilt,
eye opening, a wrinkled nose and a raised lip corner for disgust) on top of a random identity
(face shape, skin tone, hair), pose (position, rotation, scale) and sensor noise. Each face
shows its expression with a random intensity, so weak expressions look close to neutral:
the task is learnable but not trivial. Class frequencies follow FER-2013 (disgust is rare).

The dataset is written once, deterministically from its seed, in the class-per-folder layout
that ``flow_from_directory`` reads, under the user cache directory
(:func:`fer_exp.paths.cache_root`) and nowhere else: a run never writes into a folder of the
user's, which is why ``data=synthetic`` has no ``data.root``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock
from PIL import Image, ImageDraw, ImageFilter

from fer_exp.paths import cache_root

CLASS_NAMES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

# FER-2013 train counts per class: the synthetic set keeps these proportions.
FER2013_TRAIN_COUNTS = (3993, 436, 4103, 7164, 4982, 4938, 3205)

# Bump when the drawing changes: it is part of the cache key.
GENERATOR_VERSION = 1

# Expression cues, full intensity:
# mouth curve (+ smile), mouth open, mouth width, brow raise, brow tilt (+ inner end down),
# eye open, lip asymmetry, nose wrinkle.
_CUES = ("curve", "open", "width", "brow_raise", "brow_tilt", "eye_open", "asym", "wrinkle")
_NEUTRAL = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
_EXPRESSION = {
    "angry": [-0.35, 0.05, 0.85, -0.6, 1.0, 0.7, 0.0, 0.3],
    "disgust": [-0.45, 0.15, 0.85, -0.35, 0.5, 0.6, 0.9, 1.0],
    "fear": [-0.2, 0.45, 1.15, 0.8, -0.7, 1.35, 0.0, 0.0],
    "happy": [1.0, 0.3, 1.15, 0.1, 0.0, 0.8, 0.0, 0.0],
    "neutral": list(_NEUTRAL),
    "sad": [-0.8, 0.0, 0.85, 0.15, -0.9, 0.75, 0.0, 0.0],
    "surprise": [0.0, 1.0, 0.75, 1.1, 0.0, 1.45, 0.0, 0.0],
}
_CUE_NOISE = np.array([0.18, 0.08, 0.08, 0.22, 0.25, 0.15, 0.15, 0.2])


@dataclass(frozen=True)
class SyntheticSpec:
    """What defines a synthetic dataset; equal specs give byte-identical files."""

    n_train: int = 2000
    n_val: int = 500
    seed: int = 0
    pic_size: int = 48

    def key(self) -> str:
        """A short hash of the spec and :data:`GENERATOR_VERSION`, naming the dataset's folder:
        a changed spec or drawing code never reuses old files."""
        text = json.dumps({**self.__dict__, "version": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]


def class_counts(total: int) -> list[int]:
    """Split ``total`` images over the classes in FER-2013's proportions (at least 2 each)."""
    weights = np.array(FER2013_TRAIN_COUNTS, dtype=float)
    counts = np.maximum(2, np.floor(total * weights / weights.sum())).astype(int)
    counts[np.argmax(counts)] += total - counts.sum()  # land exactly on ``total``
    return counts.tolist()


def ensure_synthetic_dataset(spec: SyntheticSpec, cache_dir: Path | None = None) -> Path:
    """Return the root of the dataset for ``spec``, generating it on first use under
    ``cache_dir/synthetic/`` (``cache_dir``: the user cache directory unless a test gives its own).

    One process generates (the others wait on a file lock), into a temporary folder renamed
    into place, so concurrent jobs of a sweep never see a half-written dataset, nor delete one
    another's; a folder without its ``COMPLETE`` marker is regenerated.
    """
    cache_dir = Path(cache_dir) if cache_dir else cache_root()
    root = cache_dir / "synthetic" / f"faces-{spec.key()}"
    if (root / "COMPLETE").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root.parent / f"{root.name}.lock"), timeout=3600):  # one process generates
        if not (root / "COMPLETE").is_file():
            _generate(spec, root)
    return root


def _generate(spec: SyntheticSpec, root: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root.parent))
    try:
        rng = np.random.default_rng(spec.seed)
        for split, total in (("train", spec.n_train), ("validation", spec.n_val)):
            for name, count in zip(CLASS_NAMES, class_counts(total)):
                folder = tmp / split / name
                folder.mkdir(parents=True)
                for i in range(count):
                    face = render_face(name, rng, spec.pic_size)
                    Image.fromarray(face, "L").save(folder / f"{i:05d}.png")
        (tmp / "COMPLETE").write_text(json.dumps(spec.__dict__))
        if root.exists():  # an attempt that was killed before it completed
            shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def render_face(expression: str, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """Draw one face showing ``expression``; returns a ``size x size`` uint8 array."""
    intensity = rng.uniform(0.35, 1.15)
    target = np.asarray(_EXPRESSION[expression], dtype=float)
    cues = _NEUTRAL + intensity * (target - _NEUTRAL) + rng.normal(0.0, _CUE_NOISE)
    c = dict(zip(_CUES, cues))

    s = 2 * size  # draw at twice the size, then downsample: cheap anti-aliasing
    u = s / 96.0  # all geometry below is in units of a 96-pixel canvas
    bg = rng.uniform(30, 200)
    img = Image.new("L", (s, s), int(bg))
    draw = ImageDraw.Draw(img)

    # Identity: face shape, skin tone, hair.
    cx = s / 2 + rng.normal(0, 3) * u
    cy = s / 2 + rng.normal(3, 3) * u
    rx = rng.uniform(27, 34) * u
    ry = rng.uniform(34, 41) * u
    skin = float(np.clip(rng.normal(150, 35), 70, 235))
    dark = max(0.0, skin - rng.uniform(70, 110))  # features darker than the skin
    hair = rng.uniform(10, 90) if rng.random() < 0.8 else rng.uniform(150, 230)
    if rng.random() < 0.85:
        top = cy - ry - rng.uniform(2, 8) * u
        low = cy - ry * rng.uniform(0.2, 0.55)
        draw.ellipse([cx - rx - 4 * u, top, cx + rx + 4 * u, low + ry], fill=int(hair))
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=int(skin))
    if rng.random() < 0.7:  # fringe
        draw.chord([cx - rx, cy - ry - 2 * u, cx + rx, cy - ry * 0.35], 180, 360, fill=int(hair))

    # Eyes.
    eye_y = cy - 0.12 * ry
    eye_dx = 0.4 * rx
    eye_w = rng.uniform(6, 8) * u
    eye_h = max(0.6, 3.2 * c["eye_open"]) * u
    for side in (-1, 1):
        ex = cx + side * eye_dx
        draw.ellipse([ex - eye_w, eye_y - eye_h, ex + eye_w, eye_y + eye_h], fill=240)
        pr = min(eye_h, 3.0 * u)
        draw.ellipse([ex - pr, eye_y - pr, ex + pr, eye_y + pr], fill=int(dark * 0.5))

    # Brows: raised by brow_raise, inner ends lowered by brow_tilt.
    brow_y = eye_y - (9 + 5 * c["brow_raise"]) * u
    brow_w = rng.uniform(9, 12) * u
    thick = max(2, int(round(rng.uniform(2.5, 4.0) * u)))
    for side in (-1, 1):
        inner = (cx + side * (eye_dx - brow_w * 0.9), brow_y + 5 * c["brow_tilt"] * u)
        outer = (cx + side * (eye_dx + brow_w), brow_y - 1.5 * c["brow_tilt"] * u)
        draw.line([inner, outer], fill=int(dark), width=thick)

    # Nose, with wrinkles for disgust.
    nose_y = cy + 0.22 * ry
    draw.line([(cx, eye_y + 4 * u), (cx - 2 * u, nose_y)], fill=int(skin * 0.75), width=max(1, int(2 * u)))
    draw.line([(cx - 5 * u, nose_y), (cx + 5 * u, nose_y)], fill=int(skin * 0.6), width=max(1, int(2 * u)))
    if c["wrinkle"] > 0.3:
        for k in (-1, 1):
            draw.line(
                [(cx + k * 3 * u, eye_y + 2 * u), (cx + k * 6 * u, eye_y + 7 * u)],
                fill=int(skin * (1 - 0.35 * min(c["wrinkle"], 1.5))),
                width=max(1, int(1.5 * u)),
            )

    # Mouth: a curved upper lip and a lower lip opened by ``open``.
    mouth_y = cy + 0.5 * ry
    half = 0.38 * rx * np.clip(c["width"], 0.5, 1.5)
    xs = np.linspace(-1, 1, 21)
    curve = -7 * c["curve"] * xs**2 * u  # image y grows downwards: smile lifts the corners
    lift = -4 * c["asym"] * np.clip(xs, 0, None) * u  # disgust: one raised corner
    upper = mouth_y + curve + lift - 1.5 * c["curve"] * u
    gap = max(0.0, c["open"]) * 11 * u * (1 - xs**2)
    lower = upper + gap
    pts_upper = [(cx + half * x, y) for x, y in zip(xs, upper)]
    pts_lower = [(cx + half * x, y) for x, y in zip(xs, lower)]
    if gap.max() > 1.5 * u:
        draw.polygon(pts_upper + pts_lower[::-1], fill=int(dark * 0.4))
        if c["curve"] > 0.4 and c["open"] > 0.15:  # teeth of a broad smile
            teeth = [(x, y + 0.35 * (ly - y)) for (x, y), (_, ly) in zip(pts_upper, pts_lower)]
            draw.polygon(pts_upper + teeth[::-1], fill=230)
    lip = int(skin * rng.uniform(0.45, 0.7))
    draw.line(pts_upper, fill=lip, width=max(2, int(2.5 * u)))
    draw.line(pts_lower, fill=lip, width=max(2, int(2.0 * u)))

    # Pose and camera: rotation, scale, blur, downsampling, noise.
    img = img.rotate(rng.normal(0, 6), resample=Image.BILINEAR, fillcolor=int(bg))
    scale = rng.uniform(0.88, 1.1)
    crop = s / scale
    off = (s - crop) / 2 + rng.normal(0, 2, size=2) * u
    img = img.transform(
        (s, s), Image.EXTENT, (off[0], off[1], off[0] + crop, off[1] + crop), resample=Image.BILINEAR, fillcolor=int(bg)
    )
    if rng.random() < 0.4:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.8)))
    img = img.resize((size, size), Image.BOX)
    arr = np.asarray(img, dtype=float)
    arr = (arr - arr.mean()) * rng.uniform(0.7, 1.2) + arr.mean() + rng.normal(0, 12)  # contrast
    arr += rng.normal(0, rng.uniform(2, 9), arr.shape)  # sensor noise
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)
