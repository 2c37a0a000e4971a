"""The per-epoch values a run can watch, and which way each one improves.

Keras logs ``loss``, ``accuracy`` and ``f1`` (macro-F1 of the arg-max predictions,
:class:`~fer_exp.training.keras_objects.MacroF1`) for the training batches after every epoch,
and the same with ``val_`` for the validation set. Checkpoints, early stopping, the plateau
schedule and a study's pruner each watch one of them. ``val_f1`` is the one that sees a rare
class (FER-2013's disgust) that accuracy barely weighs.

Nothing here imports TensorFlow or pydantic: the sweeper's settings check a pruner's monitor
at Hydra's plugin scan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, get_args

Monitor = Literal["val_accuracy", "val_f1", "val_loss", "accuracy", "f1", "loss"]
MONITORS: tuple[str, ...] = get_args(Monitor)


def monitor_mode(monitor: str) -> str:
    """Whether a monitored value improves upward (``max``: accuracy, F1) or downward (``min``: losses).

    >>> monitor_mode("val_accuracy"), monitor_mode("val_f1"), monitor_mode("val_loss")
    ('max', 'max', 'min')
    """
    return "max" if monitor.endswith(("accuracy", "f1")) else "min"


def epoch_of_best(history: Mapping[str, Sequence[float]], monitor: str) -> int:
    """The 1-based epoch whose ``monitor`` value was best (the first of ties), 0 when the
    history has none: the epoch the checkpoint watching ``monitor`` kept as ``best.keras``.

    >>> epoch_of_best({"val_accuracy": [0.5, 0.7, 0.7], "val_loss": [1.0, 0.9, 0.8]}, "val_accuracy")
    2
    >>> epoch_of_best({"val_accuracy": [0.5, 0.7, 0.7], "val_loss": [1.0, 0.9, 0.8]}, "val_loss")
    3
    """
    values = list(history.get(monitor) or [])
    if not values:
        return 0
    pick = max if monitor_mode(monitor) == "max" else min
    return values.index(pick(values)) + 1
