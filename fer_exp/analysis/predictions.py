"""A run's validation predictions, kept as one small artifact (``predictions/validation.npz``).

The final evaluation writes the labels and class probabilities of the best checkpoint (with
``tta``, the test-time-augmented ones too; a test split's when there is one) and a
:func:`fingerprint` of which validation images they are, in which order. Comparisons then
resample images instead of trusting one number (:mod:`fer_exp.analysis.stats`): two runs pair
image by image only when their fingerprints are equal. :func:`dataset_digest` names a whole
split the same way for MLflow's dataset inputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_exp.data.sources import image_hashes, pixel_hashes
from fer_exp.data.table import ImageTable
from fer_exp.errors import UserError

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "validation.npz"  # under the run's artifact folder predictions/
DIGEST_CHARS = 16  # hex characters of a fingerprint or digest (MLflow keeps up to 36)
_REQUIRED = ("labels", "probabilities", "class_names", "fingerprint")


def _digest(hashes, labels: np.ndarray, *extra: str) -> str:
    """sha256 over per-image hashes (in order), the labels as int64 and ``extra`` strings."""
    h = hashlib.sha256()
    for value in hashes:
        h.update(value if isinstance(value, bytes) else bytes.fromhex(value))
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    for text in extra:
        h.update(b"\0" + text.encode())
    return h.hexdigest()[:DIGEST_CHARS]


def fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """Which images, in which order, with which labels: equal fingerprints mean two runs'
    predictions can be compared image by image (a paired bootstrap); anything else differs.

    >>> x = np.zeros((2, 4, 4, 1), np.uint8)
    >>> fingerprint(x, np.array([0, 1])) == fingerprint(x, np.array([1, 0]))
    False
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    return _digest(pixel_hashes(images), labels)


def evaluated_fingerprint(table: ImageTable, y_true: np.ndarray, filepaths=None) -> str:
    """The :func:`fingerprint` of the images that predictions ``y_true`` are of, in their order:
    the first ``len(y_true)`` rows of ``table``, or, for an iterator that lists its own files
    (``flow_from_directory``), the table's rows of its ``filepaths``. Empty (such a run never
    pairs with another) when the labels do not match the images: the files changed on disk."""
    n = len(y_true)
    rows = np.arange(n)
    if filepaths is not None and table.paths is not None:
        where = {os.path.abspath(p): i for i, p in enumerate(table.paths)}
        found = [where.get(os.path.abspath(p)) for p in list(filepaths)[:n]]
        if None in found or len(found) != n:
            log.warning("the evaluated files are not the ones loaded: the predictions get no fingerprint")
            return ""
        rows = np.asarray(found, dtype=np.int64)
    if len(rows) > len(table) or not np.array_equal(table.labels[rows], y_true):
        log.warning("the evaluated labels are not the loaded images' labels: the predictions get no fingerprint")
        return ""
    return fingerprint(table.images[rows], y_true)


def dataset_digest(table: ImageTable) -> str:
    """A split's identity for MLflow's dataset inputs: changes when any decoded image, label,
    their order or the class names change (another copy, size, seed or de-duplication)."""
    return _digest(image_hashes(table), table.labels, *table.class_names)


def dataset_input(table: ImageTable, name: str, source: str, context: str) -> dict[str, str]:
    """One split as a plain record for :meth:`~fer_exp.tracking.tracker.Tracker.log_inputs`
    (JSON, so it can wait in the journal): its :func:`dataset_digest`, where it came from
    (``source``: a path or a source name), a tensor schema the MLflow UI shows, and a small
    profile (images, classes, images per class)."""
    schema = {
        "features": _tensor_spec(str(table.images.dtype), [-1, *table.images.shape[1:]]),
        "targets": _tensor_spec("int64", [-1]),
    }
    profile = {"images": len(table), "classes": len(table.class_names), "per_class": table.counts()}
    return {
        "name": name,
        "digest": dataset_digest(table),
        "source_type": "local",
        "source": json.dumps({"uri": source}),
        "schema": json.dumps({"mlflow_tensorspec": schema}),
        "profile": json.dumps(profile),
        "context": context,
    }


def _tensor_spec(dtype: str, shape: list[int]) -> str:
    """MLflow's tensor schema of one array (what ``mlflow.data.from_numpy`` writes)."""
    return json.dumps([{"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}])


def half_precision(probabilities: np.ndarray) -> np.ndarray:
    """``probabilities`` as float16 with each row's argmax kept: two close classes that round to
    one float16 value (a tie argmax would break toward the first) get the chosen class one
    float16 step higher.

    >>> p = np.array([[0.49999, 0.50001]])
    >>> p.astype(np.float16).argmax(axis=1), half_precision(p).argmax(axis=1)
    (array([0]), array([1]))
    """
    p = np.asarray(probabilities)
    half = p.astype(np.float16)
    rows = np.flatnonzero(half.argmax(axis=1) != p.argmax(axis=1))
    cols = p.argmax(axis=1)[rows]
    half[rows, cols] = np.nextafter(half[rows, cols], np.float16(np.inf))
    return half


def save_predictions(
    path: str | Path,
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names,
    fingerprint: str,
    tta: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
    test_probabilities: np.ndarray | None = None,
) -> Path:
    """Write the predictions compressed (float16 probabilities, uint8 labels for up to 256
    classes): a FER-2013 validation set stays well under 200 KB, so every run can keep one. The
    float16 probabilities keep each image's most probable class (:func:`half_precision`), so
    scores recomputed from the file equal the logged ones."""
    label_type = np.uint8 if len(class_names) <= 256 else np.int64
    arrays = {
        "labels": np.asarray(labels).astype(label_type),
        "probabilities": half_precision(probabilities),
        "class_names": np.asarray(list(class_names), dtype=str),
        "fingerprint": np.asarray(fingerprint, dtype=str),
    }
    if tta is not None:
        arrays["probabilities_tta"] = half_precision(tta)
    if test_labels is not None and test_probabilities is not None:
        arrays["test_labels"] = np.asarray(test_labels).astype(label_type)
        arrays["test_probabilities"] = half_precision(test_probabilities)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:  # a file object: numpy would append .npz to another name
        np.savez_compressed(f, **arrays)
    return path


@dataclass(frozen=True)
class Predictions:
    """A run's validation predictions as :func:`load_predictions` reads them.

    Attributes:
        labels: (n,) int64 true classes of the evaluated validation images.
        probabilities: (n, classes) float32 class probabilities of the best checkpoint.
        class_names: the class names, in label order.
        fingerprint: which images, in which order (:func:`fingerprint`; empty when unknown).
        tta: (n, classes) test-time-augmented probabilities, or None.
        test_labels: the test split's labels, or None.
        test_probabilities: the test split's probabilities, or None.
    """

    labels: np.ndarray
    probabilities: np.ndarray
    class_names: tuple[str, ...]
    fingerprint: str
    tta: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    test_probabilities: np.ndarray | None = None

    @property
    def y_pred(self) -> np.ndarray:
        """The most probable class of each image (ties: the first class)."""
        return self.probabilities.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        """The share of images whose most probable class is the true one."""
        return float(np.mean(self.y_pred == self.labels))


def load_predictions(path: str | Path) -> Predictions:
    """Read a file :func:`save_predictions` wrote; a damaged or foreign file is a UserError
    naming it and what is wrong (one line)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:  # a .npy array has no __enter__: TypeError
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, TypeError, AttributeError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        why = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UserError(_bad(path, f"not a predictions file ({why})")) from None
    missing = [key for key in _REQUIRED if key not in arrays]
    if missing:
        raise UserError(
            _bad(path, f"no {', '.join(missing)} in it (it holds {', '.join(sorted(arrays)) or 'nothing'})")
        )
    labels, probs = arrays["labels"].astype(np.int64), arrays["probabilities"].astype(np.float32)
    names = tuple(str(n) for n in arrays["class_names"].ravel())
    if probs.ndim != 2 or probs.shape != (len(labels), len(names)):
        raise UserError(
            _bad(path, f"probabilities of shape {probs.shape} for {len(labels)} labels and {len(names)} classes")
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
        raise UserError(_bad(path, f"labels outside 0..{len(names) - 1}"))
    tta = arrays["probabilities_tta"].astype(np.float32) if "probabilities_tta" in arrays else None
    if tta is not None and tta.shape != probs.shape:
        raise UserError(_bad(path, f"TTA probabilities of shape {tta.shape}, not {probs.shape}"))
    test_labels = arrays["test_labels"].astype(np.int64) if "test_labels" in arrays else None
    test_probs = arrays["test_probabilities"].astype(np.float32) if "test_probabilities" in arrays else None
    return Predictions(labels, probs, names, str(arrays["fingerprint"]), tta, test_labels, test_probs)


def _bad(path: Path, why: str) -> str:
    return f"{path} is not a usable predictions file: {why}"
