"""The MLflow ``python_function`` flavor of a fer_exp model (its ``loader_module``).

MLflow calls :func:`_load_pyfunc` with the model folder itself (the MLmodel names no ``data``
path), so ``best.keras`` and ``input_spec.json`` sit at the top of the logged ``model/``
artifact, where a run has always kept ``model/best.keras``.

Input: a DataFrame with an ``image`` column of encoded image files (PNG, JPEG, ...: bytes in
Python, base64 strings over REST), or in Python a uint8 array (N, H, W[, C]) or a list of
images. Output: a DataFrame with ``label`` (the most probable class) and one probability
column per class, named by the class.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np

from fer_exp.errors import DataError
from fer_exp.inference.loading import load_folder

IMAGE_COLUMN = "image"
LABEL_COLUMN = "label"


def _load_pyfunc(path: str):
    """MLflow's entry point: the model folder -> an object with ``predict``."""
    return FerPyfunc(load_folder(path))


class FerPyfunc:
    """A fer_exp predictor behind MLflow's ``predict(model_input, params)``."""

    def __init__(self, predictor):
        self.predictor = predictor

    def predict(self, model_input, params=None):
        """Raw images -> DataFrame of ``label`` and one probability column per class."""
        import pandas as pd

        probs = self.predictor.predict_proba(images_of(model_input))
        frame = pd.DataFrame(probs.astype(np.float64), columns=list(self.predictor.class_names))
        frame.insert(0, LABEL_COLUMN, self.predictor.labels(probs) if len(probs) else [])
        return frame


def images_of(model_input) -> list:
    """The images of any input :class:`FerPyfunc` accepts, one per row."""
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        if IMAGE_COLUMN not in model_input.columns:
            raise DataError(
                f"the input has columns {list(model_input.columns)}: send one column {IMAGE_COLUMN!r} "
                "of encoded image files (base64 strings over REST)"
            )
        return [_image(v, i) for i, v in enumerate(model_input[IMAGE_COLUMN])]
    if isinstance(model_input, dict) and IMAGE_COLUMN in model_input:
        return [_image(v, i) for i, v in enumerate(model_input[IMAGE_COLUMN])]
    if isinstance(model_input, np.ndarray) and model_input.dtype == np.uint8 and model_input.ndim in (3, 4):
        return list(model_input)  # a tensor of N images of one size
    return [_image(v, i) for i, v in enumerate(model_input)]


def _image(value, row: int):
    if isinstance(value, str):  # base64 (JSON has no bytes)
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise DataError(f"row {row}: {IMAGE_COLUMN!r} is a string but not base64 of an image file") from None
    return value
