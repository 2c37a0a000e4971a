"""Learning-rate schedules: one config schema per policy, built once the step counts are known.

``optimizer.learning_rate`` is the base (peak) rate; the schedule shapes it over training:

- ``constant``: the base rate throughout;
- ``plateau``: Keras's ReduceLROnPlateau (the notebook's policy);
- ``cosine``: linear warm-up, then cosine decay to ``alpha`` x base;
- ``onecycle``: warm-up from base/``div_factor`` to base, cosine down to base/``final_div_factor``;
- ``step``: multiply by ``gamma`` every ``step_epochs`` epochs.

Schedules are per optimizer step, so a resumed run continues them from the restored
optimizer's iteration count.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveInt

Monitor = Literal["val_accuracy", "val_loss", "accuracy", "loss"]


def monitor_mode(monitor: str) -> str:
    """Whether a monitored value improves upward (``max``: accuracies) or downward (``min``: losses).

    >>> monitor_mode("val_accuracy"), monitor_mode("val_loss")
    ('max', 'min')
    """
    return "max" if monitor.endswith("accuracy") else "min"


class Schedule(BaseModel):
    """The ``schedule.*`` keys of one learning-rate policy, chosen by ``schedule.name``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def learning_rate(self, base_lr: float, steps_per_epoch: int, epochs: int) -> Any:
        """What the optimizer gets as ``learning_rate``: a float or a Keras schedule."""
        return base_lr

    def callbacks(self, initial_state: dict | None = None) -> dict[str, Any]:
        """Callbacks the schedule needs, by name (their counters are checkpointed by name)."""
        return {}


class Constant(Schedule):
    name: Literal["constant"]


class Plateau(Schedule):
    name: Literal["plateau"]
    monitor: Monitor = "val_loss"
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.5
    patience: Annotated[int, Field(ge=0)] = 3
    min_lr: NonNegativeFloat = 1e-6

    def callbacks(self, initial_state=None):
        from fer_exp.training.callbacks import ResumableReduceLROnPlateau

        return {"reduce_lr": ResumableReduceLROnPlateau(
            monitor=self.monitor, mode=monitor_mode(self.monitor), factor=self.factor, patience=self.patience, min_lr=self.min_lr,
            verbose=1, initial_state=(initial_state or {}).get("reduce_lr"))}


class Cosine(Schedule):
    name: Literal["cosine"]
    warmup_epochs: NonNegativeFloat = 1.0
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.0  # final rate as a fraction of the base

    def learning_rate(self, base_lr, steps_per_epoch, epochs):
        import keras

        total = max(1, steps_per_epoch * epochs)
        warmup = min(int(self.warmup_epochs * steps_per_epoch), total - 1)
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=base_lr / 100 if warmup else base_lr, decay_steps=total - warmup,
            alpha=self.alpha, warmup_target=base_lr if warmup else None, warmup_steps=warmup,
        )


class OneCycle(Schedule):
    name: Literal["onecycle"]
    warmup_pct: Annotated[float, Field(gt=0, lt=1)] = 0.3
    div_factor: Annotated[float, Field(ge=1)] = 25.0
    final_div_factor: Annotated[float, Field(ge=1)] = 1e4

    def learning_rate(self, base_lr, steps_per_epoch, epochs):
        from fer_exp.training.keras_objects import OneCycleSchedule

        return OneCycleSchedule(base_lr, max(2, steps_per_epoch * epochs), self.warmup_pct,
                                self.div_factor, self.final_div_factor)


class Step(Schedule):
    name: Literal["step"]
    step_epochs: PositiveInt = 10
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.1

    def learning_rate(self, base_lr, steps_per_epoch, epochs):
        import keras

        return keras.optimizers.schedules.ExponentialDecay(
            base_lr, decay_steps=self.step_epochs * steps_per_epoch, decay_rate=self.gamma, staircase=True)


# The ``schedule`` config section: one policy, chosen by ``schedule.name``.
ScheduleConfig = Annotated[Constant | Plateau | Cosine | OneCycle | Step, Field(discriminator="name")]
