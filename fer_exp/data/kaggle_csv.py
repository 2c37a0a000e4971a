"""The Kaggle FER CSVs, checked row by row: ``fer2013.csv``, ``icml_face_data.csv`` (the same
columns with a leading space: ``emotion, Usage, pixels``), the challenge's ``train.csv``
(``emotion``, ``pixels``: no split column) and ``test.csv`` (``pixels`` only: input for
``predict``, not training data). Every error names the file, the row or column, what was found
and the key that fixes it; the reader that uses these is ``fer2013_csv`` in
:mod:`fer_exp.data.readers`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fer_exp.config.data import Fer2013CsvData
from fer_exp.errors import DataError

log = logging.getLogger(__name__)


def emotion_indices(column, names: list[str], path: Path) -> np.ndarray:
    """The ``emotion`` column as class indices into ``names``; a row that holds anything else
    (a word, a blank, an index out of range) is named with the labels that are allowed."""
    import pandas as pd

    values = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero(~values.isin(range(len(names))).to_numpy())
    if len(bad):
        row = int(bad[0])
        found = column.iloc[row]
        found = found.item() if hasattr(found, "item") else found  # numpy scalars print as np.int64(9)
        allowed = ", ".join(f"{i}={name}" for i, name in enumerate(names))
        raise DataError(
            f"{path} row {row + 2}: emotion {found!r} is not a class index ({allowed}); "
            f"{len(bad)} such row(s). Fix the rows, or set data.emotion_names to the names the "
            "file's indices stand for"
        )
    return values.to_numpy().astype(np.int64)


def kaggle_split_column(df, data: Fer2013CsvData, path: Path) -> str | None:
    """Which of Kaggle's FER CSVs this is, by its columns: ``fer2013.csv`` and
    ``icml_face_data.csv`` (a split column), the challenge's ``train.csv`` (no split column:
    validation is ``data.validation_split`` of its rows) or ``test.csv`` (pixels only: refused,
    it is input for ``predict``). Returns the split column to use, or None."""
    columns = list(df.columns)
    if "pixels" not in columns:
        raise DataError(
            f"{path}: no 'pixels' column; the file has columns {columns}. The Kaggle FER CSVs hold "
            "'emotion' and 'pixels' (48x48 space-separated integers); a table of image files is "
            "data=dataframe data.x_col=<file column> data.y_col=<label column>"
        )
    if "emotion" not in columns:
        raise DataError(
            f"{path}: no 'emotion' column (the file has columns {columns}): it holds no labels, like the "
            f"challenge's test.csv, so it is not training data. Predict on it with "
            f"`python -m fer_exp.predict MODEL {path}`; train on train.csv, icml_face_data.csv or fer2013.csv"
        )
    if data.split_col is None or data.split_col in columns:
        return data.split_col
    if not data.validation_split:
        raise DataError(
            f"{path}: no {data.split_col!r} column (the file has columns {columns}), so nothing says which rows "
            "are validation (the challenge's train.csv is like this). Set data.validation_split=0.1 to take the "
            f"first tenth of its rows for validation, or data.split_col to the column that names each row's split"
        )
    log.info(
        "%s: no %r column: validation is the first %s of the rows (data.validation_split)",
        path,
        data.split_col,
        data.validation_split,
    )
    return None


def cell_pixels(text: str) -> tuple[np.ndarray | None, str | None]:
    """One ``pixels`` cell as flat uint8 values, or None and what is wrong with it.

    >>> cell_pixels("0 128 255")[0].tolist()
    [0, 128, 255]
    >>> cell_pixels("7 x 9")[1], cell_pixels("300")[1]
    ("pixels must be space-separated integers, found 'x'", 'pixel values must be in 0..255, found 300..300')
    """
    try:
        values = np.array(text.split(), dtype=np.int64)
    except (ValueError, OverflowError):
        word = next((w for w in text.split() if not w.lstrip("-").isdigit()), text[:20])
        return None, f"pixels must be space-separated integers, found {word!r}"
    if values.size and (values.min() < 0 or values.max() > 255):
        return None, f"pixel values must be in 0..255, found {values.min()}..{values.max()}"
    return values.astype(np.uint8), None


def pixel_rows(column, path: Path, on_bad_image: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``pixels`` column as uint8 images (N, side, side, 1), side from the value count most
    rows hold (48x48 in Kaggle's files), and which rows were well formed. Malformed rows (a word,
    a blank, a value out of 0..255, another count) are listed by row: an error, or with
    ``data.on_bad_image=skip`` dropped with a warning."""
    rows: list[np.ndarray | None] = []  # uint8 per row: the whole file fits as Kaggle's 8-bit pixels
    problems: dict[int, str] = {}
    for i, text in enumerate(column.astype(str)):
        values, problem = cell_pixels(text)
        if problem:
            problems[i] = problem
        rows.append(values)
    sizes, counts = np.unique([r.size for r in rows if r is not None] or [0], return_counts=True)
    size = int(sizes[counts.argmax()])
    side = int(round(size**0.5))
    if side * side != size or not size:
        raise DataError(
            f"{path}: most rows of column 'pixels' hold {size} values, which is not a square image "
            "(Kaggle's 48x48 faces hold 2304)"
        )
    for i, r in enumerate(rows):
        if r is not None and r.size != size:
            problems[i] = f"expected {size} pixel values ({side}x{side}, as most rows), got {r.size}"
    keep = np.ones(len(rows), dtype=bool)
    keep[list(problems)] = False
    listed = [f"row {i + 2}: {msg}" for i, msg in sorted(problems.items())]
    if problems and on_bad_image == "error":
        raise DataError(
            f"{path}: {len(problems)} malformed row(s) in column 'pixels':\n  "
            + "\n  ".join(listed[:10])
            + ("\n  ..." if len(listed) > 10 else "")
            + "\nFix the rows, or set data.on_bad_image=skip to train without them"
        )
    if problems:
        log.warning("%s: skipping %d malformed pixel row(s): %s", path, len(problems), "; ".join(listed[:5]))
    images = np.zeros((len(rows), side, side, 1), dtype=np.uint8)
    for i in np.flatnonzero(keep):
        images[i, ..., 0] = rows[i].reshape(side, side)
    return images, keep
