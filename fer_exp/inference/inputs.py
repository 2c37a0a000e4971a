"""What ``predict`` reads: the command line's inputs, expanded into images one at a time.

An input is an image file, a folder (its image files, recursively, in a stable sorted order), a
video (every Nth frame, decoded by OpenCV) or a Kaggle-style CSV with a ``pixels`` column (the
challenge's ``test.csv``: one 48x48 face per row, no labels; ``icml_face_data.csv``'s
``" pixels"`` works too). Images are yielded as uint8 arrays, (H, W) gray or (H, W, 3) RGB, with
the photo's EXIF orientation applied (a phone's portrait photo is stored sideways, and the face
detector finds upright faces only).

A path that does not exist is an error (a typo on the command line). A file that exists but
cannot be read is an error naming it when it is the only input; among several inputs it is
listed as skipped and the others go on: one damaged photo in a folder of a thousand should not
cost the other 999. Frames are read lazily, so a long video never sits in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_exp.data.folders import IMAGE_EXTENSIONS, list_images
from fer_exp.data.kaggle_csv import cell_pixels
from fer_exp.errors import DataError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
TABLE_EXTENSIONS = (".csv",)


@dataclass(frozen=True)
class Frame:
    """One image to look at: where it came from and its pixels."""

    file: str  # the file's path
    frame: int | None  # the video frame or CSV data row (from 0); None for a photo
    image: np.ndarray  # uint8, (H, W) or (H, W, 3)
    folder: str | None = None  # the folder argument it was found in


@dataclass
class Inputs:
    """The expanded inputs: ``(path, kind, folder)`` per file; ``frames()`` reads them and
    records what it had to skip in ``skipped`` as ``(path, reason)``."""

    files: list[tuple[str, str, str | None]]
    every: int = 1
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def frames(self) -> Iterator[Frame]:
        """Every image of every input, in command-line order."""
        readers = {"image": _read_photo, "video": self._read_video, "table": _read_table}
        for path, kind, folder in self.files:
            try:
                for frame in readers[kind](path):
                    yield Frame(frame.file, frame.frame, frame.image, folder)
            except DataError as exc:
                if len(self.files) == 1:
                    raise
                self.skipped.append((path, str(exc)))

    def _read_video(self, path: str) -> Iterator[Frame]:
        return read_video(path, self.every)


def kind_of(path: Path) -> str | None:
    """``image``, ``video`` or ``table`` by the file's extension; None for anything else."""
    suffix = path.suffix.lower()
    for kind, extensions in (("image", IMAGE_EXTENSIONS), ("video", VIDEO_EXTENSIONS), ("table", TABLE_EXTENSIONS)):
        if suffix in extensions:
            return kind
    return None


def expand(arguments: Sequence[str | Path], every: int = 1) -> Inputs:
    """The files behind the command line's inputs, or a DataError naming a missing path, a
    folder without images, or a file of a kind predict cannot read."""
    if every < 1:
        raise DataError(f"--every must be 1 or more (every Nth video frame), got {every}")
    files: list[tuple[str, str, str | None]] = []
    for argument in arguments:
        path = Path(argument).expanduser()
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise DataError(f"no images in folder {path} (looked for {', '.join(IMAGE_EXTENSIONS)}, recursively)")
            files.extend((f, "image", str(path)) for f in found)
        elif path.is_file():
            kind = kind_of(path)
            if kind is None:
                known = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS + TABLE_EXTENSIONS
                raise DataError(f"cannot tell what {path} is from its extension; predict reads {', '.join(known)}")
            files.append((str(path), kind, None))
        else:
            raise DataError(f"input not found: {path}")
    if not files:
        raise DataError("no inputs: give image files, folders, videos or a CSV with a pixels column")
    return Inputs(files, every)


def _read_photo(path: str) -> Iterator[Frame]:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            gray = img.mode in ("1", "L", "LA", "I", "I;16", "F")
            arr = np.asarray(img.convert("L" if gray else "RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's errors for damaged or unknown files
        raise DataError(f"cannot read image {path}: {exc}") from None
    yield Frame(path, None, arr)


def read_video(path: str, every: int = 1) -> Iterator[Frame]:
    """Frames 0, N, 2N, ... of a video as RGB arrays (frames in between are skipped undecoded)."""
    import cv2

    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise DataError(f"cannot read video {path}: OpenCV cannot open it (damaged, or a codec it lacks)")
        index, read = 0, 0
        while True:
            if index % every:
                if not capture.grab():
                    break
            else:
                ok, bgr = capture.read()
                if not ok:
                    break
                read += 1
                yield Frame(path, index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
        if read == 0:
            raise DataError(f"cannot read video {path}: no frame could be decoded")
    finally:
        capture.release()


def _read_table(path: str) -> Iterator[Frame]:
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read CSV {path}: {exc}") from None
    columns = {str(c).strip(): c for c in df.columns}  # icml_face_data.csv: " pixels"
    if "pixels" not in columns:
        raise DataError(
            f"{path} has no 'pixels' column (found: {', '.join(map(str, df.columns))}); predict reads a Kaggle "
            "FER CSV with one face per row as space-separated gray values (test.csv, fer2013.csv)"
        )
    for row, text in enumerate(df[columns["pixels"]]):
        yield Frame(path, row, parse_pixels(text, path, row))


def parse_pixels(text: str, path: str, row: int) -> np.ndarray:
    """A CSV cell of space-separated gray values as a square uint8 image, or a DataError naming
    the file, the row (as a spreadsheet numbers it: the header is row 1) and what was found."""
    values, problem = cell_pixels(text)
    if problem:
        raise DataError(f"{path} row {row + 2}: {problem}")
    side = int(round(np.sqrt(values.size)))
    if values.size == 0 or side * side != values.size:
        raise DataError(f"{path} row {row + 2}: {values.size} pixel values do not make a square image (48x48 is 2304)")
    return values.reshape(side, side)
