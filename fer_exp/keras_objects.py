"""Keras objects of fer_exp's own, registered so saved models and checkpoints load again."""

from __future__ import annotations

import math

import keras


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

    def get_config(self):
        return {"peak_lr": self.peak_lr, "total_steps": self.total_steps, "warmup_pct": self.warmup_pct,
                "div_factor": self.div_factor, "final_div_factor": self.final_div_factor}
