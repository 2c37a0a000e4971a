"""Test-time augmentation: the views of a batch whose predictions are averaged, the same for a
run's evaluation (:mod:`fer_exp.analysis.evaluate`) and for ``predict`` on new images
(:mod:`fer_exp.inference.predict`)."""

from __future__ import annotations

import numpy as np


def tta_views(x: np.ndarray, shift: int = 0) -> list[np.ndarray]:
    """The batch itself first, then: with ``shift``, the batch moved ``shift`` pixels up, down,
    left and right (edge pixels repeated, as ``fill_mode=nearest`` training shifts fill them),
    and all of these mirrored left-right. FER models are trained on small shifts and flips, so
    averaging over them removes some of the dependence on where exactly the face sits."""
    views = [x]
    if shift:
        h, w = x.shape[1:3]
        padded = np.pad(x, ((0, 0), (shift, shift), (shift, shift), (0, 0)), mode="edge")
        for dy, dx in ((-shift, 0), (shift, 0), (0, -shift), (0, shift)):
            views.append(padded[:, shift + dy : shift + dy + h, shift + dx : shift + dx + w])
    return views + [v[:, :, ::-1] for v in views]


def tta_label(shift: int = 0) -> str:
    """What ``tta_views`` averages, as run reports and the benchmark table name it."""
    return f"flip + {shift} px shifts" if shift else "flip"
