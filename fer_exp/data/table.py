"""One split of a dataset: images (files and/or decoded pixels) with integer labels."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class ImageTable:
    """Labels index ``class_names``. File sources carry ``paths``; once loaded, every table
    carries ``images``: uint8 (N, rows, cols, channels). ``ids`` name items in messages."""

    labels: np.ndarray
    class_names: tuple[str, ...]
    paths: tuple[str, ...] | None = None
    images: np.ndarray | None = None
    ids: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        """Images per class name, every class included."""
        per_class = np.bincount(self.labels, minlength=len(self.class_names))
        return dict(zip(self.class_names, per_class.tolist()))

    def subset(self, keep: np.ndarray) -> ImageTable:
        """The rows where ``keep`` (bool mask or indices) holds, in order."""
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
        pick = (lambda seq: tuple(seq[i] for i in idx)) if len(idx) else (lambda seq: ())
        return replace(
            self,
            labels=self.labels[idx],
            paths=pick(self.paths) if self.paths is not None else None,
            images=np.asarray(self.images[idx]) if self.images is not None else None,
            ids=pick(self.ids) if self.ids is not None else None,
        )
