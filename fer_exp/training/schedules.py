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
from typing_extensions import override

from fer_exp.registry import subclasses_by_tag, tagged_union
from fer_exp.training.monitors import Monitor, monitor_mode


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
    """``optimizer.learning_rate`` throughout."""

    name: Literal["constant"] = Field(description="Selects this schedule (`schedule=constant`).")


class Plateau(Schedule):
    """Keras's ReduceLROnPlateau (the notebook's policy): multiply the rate by ``factor`` when the
    monitored value stalls; its counters are checkpointed, so a resumed run continues them."""

    name: Literal["plateau"] = Field(description="Selects this schedule (`schedule=plateau`).")
    monitor: Monitor = Field("val_loss", description="The per-epoch value whose stalling lowers the rate.")
    factor: Annotated[
        float, Field(gt=0, lt=1, description="Multiply the rate by this when the monitored value stalls.")
    ] = 0.5
    patience: Annotated[int, Field(ge=0, description="Epochs without improvement before the rate is lowered.")] = 3
    min_lr: NonNegativeFloat = Field(1e-6, description="The rate never goes below this.")

    @override
    def callbacks(self, initial_state=None):
        from fer_exp.training.callbacks import ResumableReduceLROnPlateau

        return {
            "reduce_lr": ResumableReduceLROnPlateau(
                monitor=self.monitor,
                mode=monitor_mode(self.monitor),
                factor=self.factor,
                patience=self.patience,
                min_lr=self.min_lr,
                verbose=1,
                initial_state=(initial_state or {}).get("reduce_lr"),
            )
        }


class Cosine(Schedule):
    """Linear warm-up for ``warmup_epochs``, then cosine decay to ``alpha`` x the base rate."""

    name: Literal["cosine"] = Field(description="Selects this schedule (`schedule=cosine`).")
    warmup_epochs: NonNegativeFloat = Field(
        1.0, description="Epochs of linear warm-up to the base rate (fractions allowed; 0 = none)."
    )
    alpha: Annotated[float, Field(ge=0, le=1, description="The final rate as a fraction of the base.")] = 0.0

    @override
    def learning_rate(self, base_lr, steps_per_epoch, epochs):
        import keras

        total = max(1, steps_per_epoch * epochs)
        warmup = min(int(self.warmup_epochs * steps_per_epoch), total - 1)
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=base_lr / 100 if warmup else base_lr,
            decay_steps=total - warmup,
            alpha=self.alpha,
            warmup_target=base_lr if warmup else None,
            warmup_steps=warmup,
        )


class OneCycle(Schedule):
    """One-cycle: warm up from base/``div_factor`` to the base rate over ``warmup_pct`` of training,
    then anneal to base/``final_div_factor``."""

    name: Literal["onecycle"] = Field(description="Selects this schedule (`schedule=onecycle`).")
    warmup_pct: Annotated[float, Field(gt=0, lt=1, description="The fraction of training spent warming up.")] = 0.3
    div_factor: Annotated[float, Field(ge=1, description="The rate starts at base / div_factor.")] = 25.0
    final_div_factor: Annotated[float, Field(ge=1, description="The rate ends at base / final_div_factor.")] = 1e4

    @override
    def learning_rate(self, base_lr, steps_per_epoch, epochs):
        from fer_exp.training.keras_objects import OneCycleSchedule

        return OneCycleSchedule(
            base_lr, max(2, steps_per_epoch * epochs), self.warmup_pct, self.div_factor, self.final_div_factor
        )


class Step(Schedule):
    """Multiply the rate by ``gamma`` every ``step_epochs`` epochs."""

    name: Literal["step"] = Field(description="Selects this schedule (`schedule=step`).")
    step_epochs: PositiveInt = Field(10, description="Epochs between two steps down.")
    gamma: Annotated[float, Field(gt=0, le=1, description="Multiply the rate by this at every step.")] = 0.1

    @override
    def learning_rate(self, base_lr, steps_per_epoch, epochs):
        import keras

        return keras.optimizers.schedules.ExponentialDecay(
            base_lr, decay_steps=self.step_epochs * steps_per_epoch, decay_rate=self.gamma, staircase=True
        )


# The ``schedule`` config section: one policy, chosen by ``schedule.name``.
ScheduleConfig = tagged_union(subclasses_by_tag(Schedule, "name"), "name")
