"""Find faces in a photo and crop each one the way FER-2013's faces were cropped.

The detector is OpenCV's frontal-face Haar cascade, whose weights ship inside
``opencv-python-headless`` (``cv2.data.haarcascades``): nothing is downloaded at run time.

The crop: FER-2013's faces were registered so that the face fills a square 48x48 image. Pasting
FER-2013 faces into larger backgrounds and detecting them again (``scripts/bench_predict.py``
prints the measured ratio) shows that the cascade's own square box already frames a face as
FER-2013 does — the same centre, about the same side — so the default ``margin`` is 0: the crop is
the detector's box. A model trained on other crops (the synthetic faces are drawn smaller inside
their frame) gets its framing back with ``margin`` (a fraction of the box side added on every
side). Where the box with its margin leaves the photo, the edge pixels are repeated (as
``fill_mode=nearest`` training shifts fill them) rather than shifting the face off centre.

The crop is converted to the model's colour mode and scaled down to its ``pic_size`` by area
averaging (how a camera picture becomes a small face image, without the aliasing a nearest
or bilinear shrink of a large face would add).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

CASCADE = "haarcascade_frontalface_default.xml"
# Detection runs on a copy whose longer side is at most this: a 12-megapixel photo is scanned
# in a fraction of the time, and a face too small to find at this size is too small to classify.
DETECT_MAX_SIDE = 1280


@dataclass(frozen=True)
class Box:
    """A face's square box in the photo's pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int


@lru_cache(maxsize=1)
def detector():
    """The Haar cascade, loaded once per process from the file inside the OpenCV package."""
    import cv2

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
    if cascade.empty():  # an OpenCV build without its data files (5.x dropped them)
        from fer_exp.errors import UserError

        raise UserError(
            f"OpenCV's {CASCADE} is missing from {cv2.data.haarcascades}: install "
            "opencv-python-headless 4.x (pip install 'opencv-python-headless>=4.8,<5'), or pass --no-detect"
        )
    return cascade


def to_gray(image: np.ndarray) -> np.ndarray:
    """A uint8 (H, W) grayscale view or copy of a (H, W), (H, W, 1), RGB or RGBA image."""
    import cv2

    if image.ndim == 2:
        return image
    if image.shape[-1] == 1:
        return image[..., 0]
    return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)


def detect_faces(image: np.ndarray, min_face: int = 30) -> list[Box]:
    """The frontal faces in ``image`` (uint8, gray or colour), left to right; faces smaller than
    ``min_face`` pixels (in the photo) are ignored."""
    import cv2

    gray = to_gray(image)
    scale = min(1.0, DETECT_MAX_SIDE / max(gray.shape))
    if scale < 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    smallest = max(24, int(round(min_face * scale)))  # 24: the cascade's own window
    found = detector().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(smallest, smallest))
    boxes = [Box(*(int(round(v / scale)) for v in b)) for b in np.asarray(found).reshape(-1, 4)]
    return sorted(boxes, key=lambda b: (b.x, b.y))


def square_crop(image: np.ndarray, box: Box, margin: float = 0.0) -> np.ndarray:
    """The square around ``box`` grown by ``margin`` x its side on every side; parts outside the
    image repeat its edge pixels."""
    side = max(box.w, box.h)
    grow = int(round(margin * side))
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    half = side / 2 + grow
    x0, y0 = int(round(cx - half)), int(round(cy - half))
    x1, y1 = x0 + side + 2 * grow, y0 + side + 2 * grow
    h, w = image.shape[:2]
    pad = [(max(0, -y0), max(0, y1 - h)), (max(0, -x0), max(0, x1 - w))] + [(0, 0)] * (image.ndim - 2)
    crop = image[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    return np.pad(crop, pad, mode="edge") if any(p for pair in pad for p in pair) else crop


def to_model_image(image: np.ndarray, pic_size: int, color_mode: str) -> np.ndarray:
    """``image`` converted to the model's colour mode as the training files were (PIL's
    ``convert``: ``grayscale`` -> (S, S, 1), ``rgb`` -> (S, S, 3), ``rgba`` -> (S, S, 4)) and
    scaled to ``pic_size`` square by area averaging (a smaller crop is upscaled bicubically); uint8."""
    import cv2
    from PIL import Image

    mode = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}[color_mode]
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).convert(mode))
    if image.shape[:2] != (pic_size, pic_size):
        interpolation = cv2.INTER_AREA if image.shape[0] > pic_size else cv2.INTER_CUBIC
        image = cv2.resize(image, (pic_size, pic_size), interpolation=interpolation)
    return image.reshape(pic_size, pic_size, -1)
