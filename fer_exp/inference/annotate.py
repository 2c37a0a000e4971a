"""Pictures of predictions: a photo with its faces boxed and labelled, and a grid of faces.

Each class has one colour in every picture (the same as in the grid), so a glance across a
folder's pictures shows where the happy and the angry faces are. Labels are drawn with the
DejaVu Sans font that ships with matplotlib, scaled to the photo, on a filled tag above the box
(inside it when the face touches the top edge) so they stay readable on any background.
Large photos are written scaled down to at most ``MAX_SIDE`` pixels: the picture is for
looking at, the exact boxes are in the CSV.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

MAX_SIDE = 1600
# Okabe-Ito colours (told apart with the common colour-vision deficiencies), grey for the fifth
# (FER's neutral), then tab10's. FER's order: angry red, disgust green, fear purple, happy
# orange, neutral grey, sad blue, surprise yellow.
PALETTE = ("#D55E00", "#009E73", "#CC79A7", "#E69F00", "#7F7F7F", "#0072B2", "#F0E442", "#56B4E9", "#8C564B", "#17BECF")


def class_colour(index: int) -> str:
    """The colour of class ``index`` (hex), the same in every picture."""
    return PALETTE[index % len(PALETTE)]


@lru_cache(maxsize=8)
def _font(size: int):
    from matplotlib import font_manager
    from PIL import ImageFont

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans:bold"), size)


def _text_colour(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "white"


def annotate_photo(
    image: np.ndarray,
    boxes: Sequence[tuple[int, int, int, int]],
    labels: Sequence[int],
    confidences: Sequence[float],
    class_names: Sequence[str],
    path: Path,
    note: str | None = None,
) -> Path:
    """Write ``image`` (uint8, gray or RGB) to ``path`` with each box (x, y, w, h) drawn in its
    label's colour and tagged ``label 0.87``; ``note`` (e.g. "no face found") goes in a band
    at the top."""
    from PIL import Image, ImageDraw

    pil = Image.fromarray(np.ascontiguousarray(image)).convert("RGB")
    scale = min(1.0, MAX_SIDE / max(pil.size))
    if scale < 1.0:
        pil = pil.resize((round(pil.width * scale), round(pil.height * scale)), Image.LANCZOS)
    draw = ImageDraw.Draw(pil)
    side = max(pil.size)
    for (x, y, w, h), label, confidence in zip(boxes, labels, confidences):
        x0, y0, x1, y1 = (round(v * scale) for v in (x, y, x + w, y + h))
        colour = class_colour(int(label))
        width = max(2, round(min(x1 - x0, side / 4) / 40))
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=width)
        font = _font(max(11, min(round((x1 - x0) / 6), round(side / 30))))
        text = f"{class_names[int(label)]} {confidence:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        pad = max(2, (bottom - top) // 4)
        tag_h = bottom - top + 2 * pad
        ty = y0 - tag_h if y0 - tag_h >= 0 else y0  # above the box, else inside its top
        draw.rectangle([x0, ty, x0 + right - left + 2 * pad, ty + tag_h], fill=colour)
        draw.text((x0 + pad - left, ty + pad - top), text, fill=_text_colour(colour), font=font)
    if note:
        font = _font(max(12, round(side / 40)))
        left, top, right, bottom = draw.textbbox((0, 0), note, font=font)
        pad = max(3, (bottom - top) // 3)
        draw.rectangle([0, 0, pil.width, bottom - top + 2 * pad], fill="#202020")
        draw.text((pad - left, pad - top), note, fill="white", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil.save(path)
    return path


def face_grid_png(
    faces: Sequence[np.ndarray],
    labels: Sequence[int],
    confidences: Sequence[float],
    captions: Sequence[str],
    class_names: Sequence[str],
    path: Path,
    title: str,
    columns: int = 8,
) -> Path:
    """Faces (uint8, as the model saw them) in a grid, each titled ``label 0.87`` in its class's
    colour with a caption (its file) underneath; a legend of the class colours with counts."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    n = len(faces)
    columns = max(1, min(columns, n))
    rows = max(1, -(-n // columns))
    fig = Figure(figsize=(columns * 1.45 + 0.2, rows * 1.75 + 1.0), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, face, label, confidence, caption in zip(axes.flat, faces, labels, confidences, captions):
        face = np.asarray(face)
        ax.imshow(face[..., 0] if face.shape[-1] == 1 else face[..., :3], cmap="gray", vmin=0, vmax=255)
        colour = class_colour(int(label))
        for spine in ax.spines.values():  # a frame in the class colour
            spine.set_visible(True)
            spine.set_edgecolor(colour)
            spine.set_linewidth(3)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.axis("on")
        ax.set_title(f"{class_names[int(label)]} {confidence:.2f}", fontsize=9, color="black", fontweight="bold")
        ax.set_xlabel(_shorten(caption, 20), fontsize=6.5, color="0.35")
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=len(class_names))
    handles = [
        Patch(color=class_colour(i), label=f"{name} ({counts[i]})") for i, name in enumerate(class_names) if counts[i]
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 7), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]
