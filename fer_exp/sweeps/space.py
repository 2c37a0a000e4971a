"""Hydra's search-space syntax as Optuna distributions, and sampled values back as overrides.

``hydra.sweeper.params`` and the command line use Hydra's override grammar; the command line
wins over ``params`` for the same key. Each swept value becomes a distribution:

=========================================  ==========================================
``choice(a, b)`` / ``a,b``                  ``CategoricalDistribution``
``interval(a, b)``                          ``FloatDistribution(a, b)``
``int(interval(a, b))``                     ``IntDistribution(a, b)``
``tag(log, interval(a, b))``                the same with ``log=True``
``range(start, stop, step=s)``              ``Int/FloatDistribution(start, last, step=s)``
                                            (``stop`` excluded, as Hydra's range)
a plain value                               fixed: passed to every trial as typed
=========================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from hydra.errors import HydraException
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from fer_exp.config.compose import check_interval
from fer_exp.errors import ConfigError


@dataclass
class SearchSpace:
    """What a study samples (``distributions``, by override key) and what it fixes (``fixed``:
    overrides passed to every trial as typed)."""

    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """A trial's overrides: the fixed ones, then ``key=value`` for each sampled value."""
        return [*self.fixed, *(f"{key}={to_override_value(params[key])}" for key in self.distributions)]


def parse_space(params: Mapping[str, Any] | None, arguments: Sequence[str] = (), loader=None) -> SearchSpace:
    """The search space of ``hydra.sweeper.params`` with the command line's overrides over it.

    Raises:
        ConfigError: a value Hydra cannot parse, an empty interval or range.

    >>> space = parse_space({"optimizer.learning_rate": "tag(log, interval(0.0001, 0.01))"}, ["epochs=3"])
    >>> space.distributions["optimizer.learning_rate"]
    FloatDistribution(high=0.01, log=True, low=0.0001, step=None)
    >>> space.fixed
    ['epochs=3']
    """
    given = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    try:
        parsed = OverridesParser.create(config_loader=loader).parse_overrides(given)
    except HydraException as exc:
        raise ConfigError(": ".join(line.strip() for line in str(exc).splitlines()[:2])) from None
    by_key: dict[str, Override] = {}
    for o in parsed:  # the command line comes last: it wins
        by_key.pop(o.get_key_element(), None)
        by_key[o.get_key_element()] = o
    space = SearchSpace()
    for key, o in by_key.items():
        if o.is_sweep_override():
            space.distributions[key] = distribution(o)
        else:
            space.fixed.append(o.input_line)
    return space


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one swept override (see the module's table)."""
    key, value = override.get_key_element(), override.value()
    if isinstance(value, ChoiceSweep):
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if isinstance(value, RangeSweep):
        values = list(override.sweep_iterator())
        if not values:
            raise ConfigError(f"{key}={_typed(override)} is empty: range(start, stop, step) needs start < stop")
        if value.shuffle:
            return CategoricalDistribution(values)
        if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
            return IntDistribution(int(value.start), int(values[-1]), step=int(value.step))
        return FloatDistribution(float(value.start), float(values[-1]), step=float(value.step))
    if isinstance(value, IntervalSweep):
        low, high, log = value.start, value.end, "log" in value.tags
        check_interval(key, _typed(override), low, high)
        if log and low <= 0:
            raise ConfigError(f"{key}={_typed(override)}: a log interval needs a low end above 0")
        if isinstance(low, int) and isinstance(high, int):
            return IntDistribution(low, high, log=log)
        return FloatDistribution(float(low), float(high), log=log)
    raise ConfigError(f"{key}={_typed(override)}: {type(value).__name__} is not a search space Optuna can sample")


def to_override_value(value: Any) -> str:
    """A sampled value as Hydra reads it back on the command line.

    >>> [to_override_value(v) for v in (True, None, 0.25, 10, "seed")]
    ['true', 'null', '0.25', '10', 'seed']
    """
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, str):  # as typed in choice(...): special characters escaped again
        return Transformer.str(value)
    return str(value)


def _typed(override: Override) -> str:
    return override.input_line.split("=", 1)[1] if "=" in override.input_line else override.input_line
