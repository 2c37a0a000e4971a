"""Pictures of a run: confusion matrix, learning curves, a grid of images.

Each picture is built by a ``*_figure`` function that returns the matplotlib
:class:`~matplotlib.figure.Figure` (tests and notebooks look at its axes), and written by the
matching ``*_png`` function. Figures are made without pyplot: no display, no global figure
registry to leak into, nothing to close. Pictures are read at a glance, so they must not
mislead: bars start at zero, epoch axes have whole-number ticks, and a normalized confusion
matrix says so and shows the counts beside the fractions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from fer_exp.data.sources import Splits

CONFUSION_NOTE = "rows normalized to 1 (recall); counts in brackets"


def new_figure(**kwargs) -> Figure:
    """A matplotlib Figure outside pyplot (``Figure(**kwargs)``): it saves to PNG through the
    Agg canvas, needs no display and is freed like any object."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def save(fig: Figure, path: Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (the format follows the suffix) and return ``path``."""
    fig.savefig(path, dpi=dpi)
    return path


def integer_epochs(ax: Axes) -> None:
    """Whole-number ticks on an epoch axis: a 3-epoch run has no epoch 1.5, and a 1-epoch run
    one tick, 1 (``min_n_ticks=1``: else matplotlib falls back to fractions)."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def confusion_matrix_figure(counts: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """The confusion matrix with each row normalized to 1 (the fraction of a true class
    predicted as each class: the diagonal is the recall) and the count of images in brackets
    in every cell, e.g. ``0.82`` over ``(412)``; the row of a class without images is blank.
    The title says how it is normalized.

    Args:
        counts: (k, k) image counts, rows the true class, columns the predicted one
            (``Evaluation.confusion``).
        class_names: the k class names in label order.
        title: the first title line; the normalization note is the second.
    """
    import matplotlib

    counts = np.asarray(counts)
    totals = counts.sum(axis=1, keepdims=True)
    # A class without images has no recall: its row is blank and says "–", not 0.00.
    fractions = np.divide(counts, totals, out=np.full(counts.shape, np.nan), where=totals > 0)
    k = len(class_names)
    fig = new_figure(figsize=(1.1 * k + 2.6, 1.0 * k + 2.2), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="0.92")
    image = ax.imshow(np.ma.masked_invalid(fractions), cmap=cmap, vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    for i in range(k):
        for j in range(k):
            dark = fractions[i, j] > 0.5  # white text on the dark cells
            ax.text(
                j,
                i,
                f"{fractions[i, j]:.2f}\n({counts[i, j]})" if totals[i, 0] else f"–\n({counts[i, j]})",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
            )
    ax.set_xticks(range(k), list(class_names), rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), list(class_names))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title}\n{CONFUSION_NOTE}", fontsize=10)
    return fig


def confusion_matrix_png(counts: np.ndarray, class_names: Sequence[str], path: Path, title: str) -> Path:
    """:func:`confusion_matrix_figure`, written to ``path``."""
    return save(confusion_matrix_figure(counts, class_names, title), path)


def learning_curves_figure(history: Mapping[str, Sequence[float]], title: str) -> Figure:
    """Loss, accuracy, macro-F1 (when the run logged it) and learning rate per epoch, train vs
    validation, on whole-epoch ticks."""
    panels = [("loss", "loss"), ("accuracy", "accuracy"), ("f1", "macro-F1"), ("learning_rate", "learning rate")]
    panels = [p for p in panels if p[0] != "f1" or history.get("val_f1") or history.get("f1")]
    fig = new_figure(figsize=(4.7 * len(panels), 4), layout="constrained")
    axes = fig.subplots(1, len(panels))
    for ax, (key, label) in zip(axes, panels):
        for name, style in ((key, "-o"), (f"val_{key}", "-s")):
            if history.get(name):
                epochs = np.arange(1, len(history[name]) + 1)
                ax.plot(epochs, history[name], style, ms=3, label=name)
        integer_epochs(ax)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if key == "learning_rate":
            ax.set_yscale("log")
        if ax.lines:
            ax.legend()
    fig.suptitle(title)
    return fig


def learning_curves_png(history: Mapping[str, Sequence[float]], path: Path, title: str) -> Path:
    """:func:`learning_curves_figure`, written to ``path``."""
    return save(learning_curves_figure(history, title), path)


def image_grid_png(
    images: np.ndarray, labels: Sequence[int], class_names: Sequence[str], path: Path, title: str, columns: int = 8
) -> Path:
    """Images (N, H, W, C) with their class names; each image is min-max scaled for display."""
    n = len(images)
    rows = max(1, -(-n // columns))
    fig = new_figure(figsize=(columns * 1.3, rows * 1.45 + 0.4), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, label in zip(axes.flat, images, labels):
        img = np.asarray(img, dtype=np.float32)
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(class_names[int(label)], fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save(fig, path, dpi=100)


def class_grid_png(splits: Splits, path: Path, per_class: int = 8, rescale: float = 1 / 255) -> Path:
    """The first ``per_class`` training images of every class, one row per class."""
    images, labels = [], []
    for c in range(len(splits.class_names)):
        rows = np.flatnonzero(splits.train.labels == c)[:per_class]
        images.extend(np.asarray(splits.train.images[rows], dtype=np.float32) * rescale)
        labels.extend([c] * len(rows))
        images.extend([np.zeros(splits.train.images.shape[1:], np.float32)] * (per_class - len(rows)))
        labels.extend([c] * (per_class - len(rows)))
    return image_grid_png(
        np.stack(images),
        labels,
        splits.class_names,
        path,
        f"first {per_class} training images of each class",
        columns=per_class,
    )
