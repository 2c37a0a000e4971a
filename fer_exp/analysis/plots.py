"""Pictures of a run: confusion matrix, learning curves, a grid of images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fer_exp.data.sources import Splits


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix_png(confusion: np.ndarray, class_names: Sequence[str], path: Path, title: str) -> Path:
    """Row-normalized confusion matrix (each row: where the images of one true class went)."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    ConfusionMatrixDisplay(confusion, display_labels=list(class_names)).plot(
        ax=ax, cmap="Blues", values_format=".2f", colorbar=True, xticks_rotation=45
    )
    ax.images[-1].set_clim(0, 1)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves_png(history: Mapping[str, Sequence[float]], path: Path, title: str) -> Path:
    """Loss, accuracy and learning rate per epoch, train vs validation."""
    plt = pyplot()
    panels = [("loss", "loss"), ("accuracy", "accuracy"), ("learning_rate", "learning rate")]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, (key, label) in zip(axes, panels):
        for name, style in ((key, "-o"), (f"val_{key}", "-s")):
            if history.get(name):
                epochs = np.arange(1, len(history[name]) + 1)
                ax.plot(epochs, history[name], style, ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if key == "learning_rate":
            ax.set_yscale("log")
        if ax.lines:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def image_grid_png(
    images: np.ndarray, labels: Sequence[int], class_names: Sequence[str], path: Path, title: str, columns: int = 8
) -> Path:
    """Images (N, H, W, C) with their class names; each image is min-max scaled for display."""
    plt = pyplot()
    n = len(images)
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.45 + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, label in zip(axes.flat, images, labels):
        img = np.asarray(img, dtype=np.float32)
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(class_names[int(label)], fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
