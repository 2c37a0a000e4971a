"""Evaluation on the validation split: accuracy, macro-F1, per-class report, confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fer_exp.augment.tta import tta_views
from fer_exp.data.targets import to_labels


@dataclass
class Evaluation:
    """A model's predictions on a split, scored: accuracy, macro-F1, per-class report, confusion."""

    class_names: tuple[str, ...]
    y_true: np.ndarray
    y_prob: np.ndarray
    accuracy: float
    macro_f1: float
    report: dict[str, Any]  # sklearn classification_report(output_dict=True)
    report_text: str
    confusion: np.ndarray  # image counts: rows the true class, columns the predicted one
    y_pred: np.ndarray  # the most probable class of each image

    def metrics(self, prefix: str = "val_") -> dict[str, float]:
        """Macro-F1 and per-class F1, precision and recall as MLflow metric names."""
        # Accuracy is left to the caller: ``val_accuracy`` is already Keras's per-epoch metric.
        out = {f"{prefix}macro_f1": self.macro_f1}
        for name in self.class_names:
            row = self.report[name]
            out[f"{prefix}f1.{name}"] = row["f1-score"]
            out[f"{prefix}precision.{name}"] = row["precision"]
            out[f"{prefix}recall.{name}"] = row["recall"]
        return out


def predict(model, batches, n_batches: int, tta: bool = False, tta_shift: int = 0):
    """Integer labels and class probabilities over the first ``n_batches`` batches; with
    ``tta``, also the probabilities averaged over the test-time views of each image
    (``tta_views``: the image and its mirror, and with ``tta_shift`` their shifted copies)."""
    labels, probs, averaged = [], [], []
    # A Keras generator is indexed (its iterator protocol never stops); tf.data is iterated.
    stream = (batches[i] for i in range(n_batches)) if hasattr(batches, "__getitem__") else batches
    for i, (x, y) in enumerate(stream):
        if i >= n_batches:
            break
        x = np.asarray(x)
        if tta:  # all views of a batch in one call: one big batch is faster than ten small ones
            views = tta_views(x, tta_shift)
            p = _probabilities(model, np.concatenate(views)).reshape(len(views), len(x), -1)
            probs.append(p[0])
            averaged.append(p.mean(axis=0))
        else:
            probs.append(_probabilities(model, x))
        labels.append(to_labels(y))
    y_true, y_prob = np.concatenate(labels), np.concatenate(probs)
    if tta:
        return y_true, y_prob, np.concatenate(averaged)
    return y_true, y_prob


def _probabilities(model, x) -> np.ndarray:
    p = np.asarray(model.predict_on_batch(x))
    return np.concatenate([1 - p, p], axis=1) if p.shape[1] == 1 else p  # binary: one sigmoid unit


def evaluate(y_true: np.ndarray, y_prob: np.ndarray, class_names: tuple[str, ...]) -> Evaluation:
    """Score class probabilities against integer labels (scikit-learn's metrics).

    >>> ev = evaluate(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), ("a", "b"))
    >>> round(ev.accuracy, 3), ev.y_pred.tolist()
    (0.667, [0, 1, 0])
    """
    from sklearn.metrics import classification_report, confusion_matrix, f1_score

    y_pred = y_prob.argmax(axis=1)
    labels = list(range(len(class_names)))
    kwargs = dict(labels=labels, target_names=list(class_names), zero_division=0, digits=4)
    return Evaluation(
        class_names=class_names,
        y_true=y_true,
        y_prob=y_prob,
        y_pred=y_pred,
        accuracy=float(np.mean(y_pred == y_true)),
        macro_f1=float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        report=classification_report(y_true, y_pred, output_dict=True, **kwargs),
        report_text=classification_report(y_true, y_pred, **kwargs),
        confusion=confusion_matrix(y_true, y_pred, labels=labels),  # counts: the plot normalizes
    )


def leak_free(y_true: np.ndarray, y_pred: np.ndarray, val_in_train: np.ndarray | None) -> dict[str, float]:
    """Accuracy on the validation images that have no copy in train (FER-2013 has 510 such
    distinct images); empty when there are none, or when every image has one."""
    if val_in_train is None:
        return {}
    in_train = val_in_train[: len(y_true)]
    if not in_train.any() or in_train.all():
        return {}
    clean = ~in_train
    return {
        "val_accuracy_leakfree": float(np.mean(y_pred[clean] == y_true[clean])),
        "val_leaked_images": float(in_train.sum()),
    }
