"""Keras objects of fer_exp's own, registered with Keras so checkpoints load again: two
learning-rate schedules and the per-epoch macro-F1 metric."""

from __future__ import annotations

import math

import keras
from typing_extensions import override


@keras.saving.register_keras_serializable(package="fer_exp")
class OneCycleSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle policy (Smith 2018): cosine warm-up from ``peak / div_factor`` to ``peak``
    over ``warmup_pct`` of the steps, then cosine annealing to ``peak / final_div_factor``."""

    def __init__(self, peak_lr, total_steps, warmup_pct=0.3, div_factor=25.0, final_div_factor=1e4):
        self.peak_lr = float(peak_lr)
        self.total_steps = int(total_steps)
        self.warmup_pct = float(warmup_pct)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)

    @override
    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        warm = max(1.0, self.warmup_pct * self.total_steps)
        start, end = self.peak_lr / self.div_factor, self.peak_lr / self.final_div_factor

        def anneal(lo, hi, t):  # cosine from lo (t=0) to hi (t=1)
            return hi + (lo - hi) * 0.5 * (1.0 + ops.cos(math.pi * ops.clip(t, 0.0, 1.0)))

        up = anneal(start, self.peak_lr, step / warm)
        down = anneal(self.peak_lr, end, (step - warm) / max(1.0, self.total_steps - warm))
        return ops.where(step < warm, up, down)

    @override
    def get_config(self):
        return {
            "peak_lr": self.peak_lr,
            "total_steps": self.total_steps,
            "warmup_pct": self.warmup_pct,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
        }


@keras.saving.register_keras_serializable(package="fer_exp")
class BudgetFittedSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Plays ``inner`` (planned over ``planned_steps``) faster, so that it runs to its end in
    the steps a time budget leaves (see :class:`fer_exp.training.callbacks.TimeBudget`).

    The inner schedule's position is ``offset + (step - anchor) * rate``. :meth:`refit`
    changes the rate from the current step on, keeping the position continuous, so the
    learning rate never jumps; a cosine that had 35 planned epochs anneals fully in the 27
    that fit.
    """

    def __init__(self, inner, planned_steps, offset=0.0, anchor=0.0, rate=1.0):
        if not isinstance(inner, keras.optimizers.schedules.LearningRateSchedule):
            inner = keras.saving.deserialize_keras_object(inner)
        self.inner = inner
        self.planned_steps = int(planned_steps)
        # Variables, not Python floats: the traced train step reads their current values.
        self.offset = keras.Variable(float(offset), dtype="float32", trainable=False, name="budget_offset")
        self.anchor = keras.Variable(float(anchor), dtype="float32", trainable=False, name="budget_anchor")
        self.rate = keras.Variable(float(rate), dtype="float32", trainable=False, name="budget_rate")

    def position(self, step):
        """Where ``step`` is in the inner schedule: ``offset + (step - anchor) * rate``, capped
        at the plan's end so the learning rate stays at its final value past it."""
        ops = keras.ops
        pos = self.offset + (ops.cast(step, "float32") - self.anchor) * self.rate
        return ops.minimum(pos, float(self.planned_steps))

    @override
    def __call__(self, step):
        return self.inner(self.position(step))

    def refit(self, step: int, total_steps: int) -> None:
        """From ``step`` on, reach the end of the plan at ``total_steps``."""
        pos = float(keras.ops.convert_to_numpy(self.position(step)))
        remaining = total_steps - step
        rate = (self.planned_steps - pos) / remaining if remaining > 0 else 1.0
        self.offset.assign(pos)
        self.anchor.assign(float(step))
        self.rate.assign(max(rate, 1e-6))

    @override
    def get_config(self):
        def value(v):
            return float(keras.ops.convert_to_numpy(v))

        return {
            "inner": keras.saving.serialize_keras_object(self.inner),
            "planned_steps": self.planned_steps,
            "offset": value(self.offset),
            "anchor": value(self.anchor),
            "rate": value(self.rate),
        }


@keras.saving.register_keras_serializable(package="fer_exp")
class MacroF1(keras.metrics.F1Score):
    """Macro-F1 of the arg-max predictions over every class, per epoch: the number
    :func:`sklearn.metrics.f1_score` gives with ``average="macro"`` and ``zero_division=0``
    (the final ``val_macro_f1``), accumulated batch by batch as Keras metrics are.

    Keras's own ``F1Score`` wants one-hot labels and marks every class tied at the maximum;
    this one takes the labels of any ``data.class_mode`` and predicts exactly one class:

    - ``categorical``: one-hot labels, one probability per class;
    - ``sparse``: integer labels, one probability per class;
    - ``binary``: 0/1 labels, one sigmoid output, scored as two classes.

    Args:
        class_mode: how the labels come (``data.class_mode``).
        name: ``f1``, so Keras logs ``f1`` and ``val_f1``.
    """

    def __init__(self, class_mode: str = "categorical", name: str = "f1", dtype=None):
        super().__init__(average="macro", threshold=None, name=name, dtype=dtype)
        if class_mode not in ("categorical", "sparse", "binary"):
            raise ValueError(f"class_mode={class_mode!r}: expected categorical, sparse or binary")
        self.class_mode = class_mode

    @override
    def update_state(self, y_true, y_pred, sample_weight=None):
        ops = keras.ops
        y_pred = ops.cast(y_pred, "float32")
        if self.class_mode == "binary":  # one sigmoid unit: the classes are p < 0.5 and p >= 0.5
            y_pred = ops.concatenate([1.0 - y_pred, y_pred], axis=-1)
            y_true = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)) > 0.5, "int32"), 2)
        n_classes = y_pred.shape[-1]
        if self.class_mode == "sparse":
            y_true = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), n_classes)
        y_pred = ops.one_hot(ops.argmax(y_pred, axis=-1), n_classes)
        super().update_state(y_true, y_pred, sample_weight)

    @override
    def get_config(self):
        return {"class_mode": self.class_mode, "name": self.name, "dtype": self.dtype}
