"""The Kaggle FER CSVs people download: fer2013.csv, icml_face_data.csv (leading spaces in the
header), the challenge's train.csv (no Usage column) and test.csv (no labels) — and the
errors each can raise, every one naming the file, the row or column, what was found and the key."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from fer_exp.config import FER2013_EMOTIONS, compose
from fer_exp.data.sources import load_splits
from fer_exp.errors import DataError

SORTED = sorted(FER2013_EMOTIONS)
USAGES = ("Training",) * 4 + ("PublicTest",) * 2 + ("PrivateTest",)


def _pixels(emotion: int, side: int = 48) -> str:
    """A face whose brightness encodes its emotion, as Kaggle writes pixels (space-separated)."""
    rng = np.random.default_rng(emotion)
    return " ".join(map(str, np.clip(rng.normal(30 * emotion + 20, 5, side * side), 0, 255).astype(int)))


def _write(path: Path, header: str, rows: list[tuple]) -> Path:
    """A CSV written by hand, so the header is exactly Kaggle's (pandas would not keep ' Usage')."""
    lines = [header] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(with_usage: bool, with_emotion: bool = True, side: int = 48) -> list[tuple]:
    rows = []
    for usage in USAGES:
        for emotion in range(7):
            row = (emotion,) if with_emotion else ()
            rows.append((*row, usage, _pixels(emotion, side)) if with_usage else (*row, _pixels(emotion, side)))
    return rows


def _load(path: Path, *overrides: str):
    return load_splits(compose(["data=fer2013_csv", f"data.path={path}", *overrides]).data)


def _error(path: Path, *overrides: str) -> str:
    with pytest.raises(DataError) as err:
        _load(path, *overrides)
    return str(err.value)


def test_icml_face_data_reads_as_fer2013(tmp_path):
    path = _write(tmp_path / "icml_face_data.csv", "emotion, Usage, pixels", _rows(with_usage=True))
    splits = _load(path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (28, 14, 7)
    assert splits.class_names == tuple(SORTED)
    sad = splits.train.images[splits.train.labels == SORTED.index("sad")]  # Kaggle index 4
    assert sad.mean() == pytest.approx(30 * 4 + 20, abs=3)


def test_challenge_train_csv_takes_validation_from_validation_split(tmp_path, caplog):
    path = _write(tmp_path / "train.csv", "emotion,pixels", _rows(with_usage=False))  # 49 rows
    with caplog.at_level(logging.INFO, logger="fer_exp"):
        splits = _load(path, "data.validation_split=0.2")
    # the first fraction of rows, as data=dataframe and Keras's validation_split take it
    assert splits.val.ids == tuple(f"train.csv row {i + 2}" for i in range(9))
    assert (len(splits.train), len(splits.val), splits.test) == (40, 9, None)
    assert "no 'Usage' column: validation is the first 0.2 of the rows" in caplog.text


def test_challenge_train_csv_without_validation_split_says_to_set_it(tmp_path):
    path = _write(tmp_path / "train.csv", "emotion,pixels", _rows(with_usage=False))
    message = _error(path)
    assert f"{path}: no 'Usage' column (the file has columns ['emotion', 'pixels'])" in message
    assert "Set data.validation_split=0.1" in message


def test_challenge_test_csv_is_input_for_predict(tmp_path):
    path = _write(tmp_path / "test.csv", "pixels", _rows(with_usage=False, with_emotion=False))
    message = _error(path, "data.validation_split=0.1")
    assert f"{path}: no 'emotion' column (the file has columns ['pixels'])" in message
    assert f"python -m fer_exp.predict MODEL {path}" in message


def _corrupt(row: int, column: int, value: str):
    def edit(rows: list[tuple]) -> list[tuple]:
        rows[row] = tuple(value if i == column else v for i, v in enumerate(rows[row]))
        return rows

    return edit


@pytest.mark.parametrize(
    "edit,expected",
    [
        (_corrupt(3, 2, "1 2 3"), ["row 5: expected 2304 pixel values (48x48, as most rows), got 3"]),
        (_corrupt(0, 2, "7 x 9"), ["row 2: pixels must be space-separated integers, found 'x'"]),
        (_corrupt(6, 2, " ".join(["300"] * 2304)), ["row 8: pixel values must be in 0..255, found 300..300"]),
        (_corrupt(10, 1, "Validation"), ["row 12: 'Usage' is 'Validation', which is none of", "data.val_values"]),
    ],
)
def test_every_csv_error_names_file_row_found_and_key(tmp_path, edit, expected):
    path = _write(tmp_path / "fer2013.csv", "emotion,Usage,pixels", edit(_rows(with_usage=True)))
    message = _error(path)
    assert str(path) in message
    for part in expected:
        assert part in message
    if "pixel" in expected[0]:
        assert "1 malformed row(s) in column 'pixels'" in message and "data.on_bad_image=skip" in message


def test_a_missing_pixels_column_lists_the_columns_found(tmp_path):
    path = _write(tmp_path / "faces.csv", "emotion,Usage,image", _rows(with_usage=True))
    message = _error(path)
    assert f"{path}: no 'pixels' column; the file has columns ['emotion', 'Usage', 'image']" in message
    assert "data=dataframe" in message


def test_malformed_rows_are_skipped_when_asked(tmp_path, caplog):
    rows = _corrupt(1, 2, "1 2")(_corrupt(20, 2, "a b")(_rows(with_usage=True)))
    path = _write(tmp_path / "fer2013.csv", "emotion,Usage,pixels", rows)
    with caplog.at_level(logging.WARNING, logger="fer_exp"):
        splits = _load(path, "data.on_bad_image=skip")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (26, 14, 7)
    assert "skipping 2 malformed pixel row(s): row 3:" in caplog.text and "row 22:" in caplog.text
    assert "fer2013.csv row 3" not in splits.train.ids


def test_other_square_sizes_are_resized_to_pic_size(tmp_path):
    path = _write(tmp_path / "faces.csv", "emotion,Usage,pixels", _rows(with_usage=True, side=24))
    splits = _load(path)
    assert splits.train.images.shape[1:] == (48, 48, 1)
