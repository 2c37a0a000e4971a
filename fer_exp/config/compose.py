"""Compose a run's config the way the command line does, without running anything: one config
(:func:`compose`), or every job a command line launches (:func:`compose_jobs`), so that a bad
key, option or value fails before Hydra creates an output folder or TensorFlow is imported.

A config Hydra cannot compose (an unknown key or option) becomes one
:class:`~fer_exp.errors.ConfigError` naming the closest valid names
(:mod:`fer_exp.config.suggest`), instead of Hydra's advice to append the typo.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from fer_exp.config.schema import RunConfig
from fer_exp.config.suggest import unknown_key, unknown_option
from fer_exp.config.validate import unresolvable, validate
from fer_exp.errors import ConfigError

CONFIG_NAME = "config"
# A grid sweep larger than this is checked one swept value at a time, not every combination.
MAX_CHECKED_JOBS = 200
_BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def config_dir() -> str:
    """The folder of fer_exp's YAML configs: ``fer_exp/conf`` (``conf/`` at the top of a
    checkout is a link to it).

    >>> Path(config_dir(), "config.yaml").is_file()
    True
    """
    conf = Path(__file__).resolve().parents[1] / "conf"
    if not (conf / f"{CONFIG_NAME}.yaml").is_file():
        raise FileNotFoundError(f"fer_exp's config folder {conf} is missing: reinstall fer_exp")
    return str(conf)


def compose(overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The validated config for command-line style overrides, without running anything.

    Args:
        overrides: ``key=value`` and ``group=option`` strings, as typed after ``python -m fer_exp``.

    Returns:
        The frozen :class:`~fer_exp.config.schema.RunConfig` a run with these overrides would use.

    >>> compose(["augmentation=seed", "batch_size=128"]).augmentation.rotation_range
    20.0
    """
    with _hydra() as loader:
        return validate(_compose(list(overrides), loader))


def compose_jobs(overrides: Sequence[str], multirun: bool = False) -> list[tuple[list[str], RunConfig]]:
    """Every job a command line launches, each with its overrides and validated config.

    With ``multirun`` (``-m``, or an experiment that sets ``hydra.mode: MULTIRUN``), the sweep
    expands as Hydra's basic sweeper expands it: ``hydra.sweeper.params`` first, the command
    line over them, every combination of the swept values. Other sweepers (Optuna) draw their
    own values: each swept value is checked on its own, an interval by its lower end (and its
    low end must be below its high end).

    Raises:
        ConfigError: the first job that does not compose or validate, named by its overrides.
    """
    return compose_sweep(overrides, multirun)[0]


def compose_sweep(
    overrides: Sequence[str], multirun: bool = False
) -> tuple[list[tuple[list[str], RunConfig]], dict | None]:
    """:func:`compose_jobs`, and the sweep's ``hydra.sweeper`` settings resolved (with
    ``optimized_metric`` added), None for a single run: what a sweeper checks before it starts.
    A value that cannot be resolved (``${oc.env:X}`` with X unset) is a ConfigError."""
    try:
        return _compose_sweep(overrides, multirun)
    except InterpolationResolutionError as exc:
        raise unresolvable(exc) from None


def _compose_sweep(overrides: Sequence[str], multirun: bool) -> tuple[list[tuple[list[str], RunConfig]], dict | None]:
    with _hydra() as loader:
        parsed = _parse(list(overrides), loader)
        base = _compose([_first_value(o) for o in parsed], loader)
        mode = OmegaConf.select(base, "hydra.mode", default=None)  # an experiment may set MULTIRUN
        multirun = multirun or getattr(mode, "name", mode) == "MULTIRUN"
        if not multirun:
            if any(o.is_sweep_override() for o in parsed):  # a sweep without -m: Hydra's message says so
                base = _compose(list(overrides), loader)
            return [(list(overrides), validate(base))], None
        jobs = _sweep_jobs(base, list(overrides), loader)
        checked = []
        for job in jobs:
            try:
                checked.append((job, validate(_compose(job, loader))))
            except ConfigError as exc:
                where = f"in the sweep's job {' '.join(job)}: " if len(jobs) > 1 else ""
                raise ConfigError(f"{where}{exc}") from None
        settings = OmegaConf.to_container(base.hydra.sweeper, resolve=True)
        settings["optimized_metric"] = OmegaConf.select(base, "optimized_metric", default=None)
        return checked, settings


@contextmanager
def _hydra() -> Iterator:
    """Hydra initialised on fer_exp's configs; yields its config loader (for group options)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        yield GlobalHydra.instance().config_loader()


def _compose(overrides: list[str], loader) -> DictConfig:
    """Hydra's composed config (hydra node included), or a ConfigError saying what is wrong."""
    try:
        cfg = _hydra_compose(overrides)
    except HydraException as exc:
        raise ConfigError(_explain(overrides, loader, exc)) from None
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} interpolations resolve as in a real run
    return cfg


def _hydra_compose(overrides: list[str]) -> DictConfig:
    from hydra import compose as hydra_compose

    return hydra_compose(config_name=CONFIG_NAME, overrides=overrides, return_hydra_config=True)


def _parse(overrides: list[str], loader) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create(config_loader=loader).parse_overrides(overrides)
    except HydraException as exc:
        raise ConfigError(_first_lines(exc)) from None


def _first_value(override) -> str:
    """A swept override as its first value (what the base config of a sweep is composed with)."""
    if not override.is_sweep_override():
        return override.input_line
    key = override.get_key_element()
    if override.is_discrete_sweep():
        return f"{key}={next(iter(override.sweep_string_iterator()))}"
    interval = override.value()
    check_interval(key, override.input_line.split("=", 1)[-1], interval.start, interval.end)
    return f"{key}={interval.start}"  # an interval: its lower end


def check_interval(key: str, typed: str, low, high) -> None:
    """A search-space interval ``key=typed`` must have its low end below its high end.

    >>> check_interval("epochs", "interval(3, 1)", 3, 1)
    Traceback (most recent call last):
    fer_exp.errors.ConfigError: epochs=interval(3, 1): the interval's low end (3) must be below its high end (1)
    """
    if low >= high:
        raise ConfigError(f"{key}={typed}: the interval's low end ({low}) must be below its high end ({high})")


def _sweep_jobs(base: DictConfig, overrides: list[str], loader) -> list[list[str]]:
    """The overrides of each job of the sweep, as the basic sweeper makes them."""
    params = OmegaConf.select(base, "hydra.sweeper.params", default=None) or {}
    given = [f"{k}={v}" for k, v in params.items()] + overrides
    values: dict[str, list[str]] = {}  # key -> its overrides; the command line wins over params
    for o in _parse(given, loader):
        key = o.get_key_element()
        if not o.is_sweep_override():
            values[key] = [o.input_line]
        elif o.is_discrete_sweep():
            values[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:
            values[key] = [_first_value(o)]
    sweeper = OmegaConf.select(base, "hydra.sweeper._target_", default=_BASIC_SWEEPER)
    grid = 1
    for options in values.values():
        grid *= len(options)
    if sweeper == _BASIC_SWEEPER and grid <= MAX_CHECKED_JOBS:
        return [list(job) for job in itertools.product(*values.values())]
    firsts = {k: v[0] for k, v in values.items()}
    jobs = [list(firsts.values())]
    for key, options in values.items():
        jobs += [list({**firsts, key: option}.values()) for option in options[1:]]
    return jobs


def _explain(overrides: list[str], loader, exc: HydraException) -> str:
    """Why Hydra could not compose ``overrides``: an option a group does not have, a key the
    config does not have (with the closest names), else Hydra's own first lines."""
    parsed = _parse(overrides, loader)
    groups = [o for o in parsed if loader.get_group_options(o.key_or_group)]
    for o in groups:
        options = loader.get_group_options(o.key_or_group)
        value = o.value()
        if not o.is_delete() and isinstance(value, str) and value not in options:
            return unknown_option(o.key_or_group, value, options)
    try:
        base = _hydra_compose([o.input_line for o in groups])
    except HydraException:
        return _first_lines(exc)
    for o in parsed:
        if o in groups or o.is_add() or o.is_force_add():
            continue
        missing = _missing_part(base, o.key_or_group)
        if missing:
            return _unknown(base, missing, loader)
    return _first_lines(exc)


def _missing_part(cfg: DictConfig, key: str) -> str | None:
    """The shortest prefix of dotted ``key`` that ``cfg`` does not hold, None if it holds it all."""
    node, parts = cfg, key.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, DictConfig) and part in node.keys():  # `in node` is False for a ??? value
            node = node._get_node(part)
        elif isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
            node = node._get_node(int(part))
        else:
            return ".".join(parts[: i + 1])
    return None


def _unknown(cfg: DictConfig, key: str, loader) -> str:
    parent_key, _, _ = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    siblings = [str(k) for k in parent.keys()] if isinstance(parent, DictConfig) else []
    if not parent_key:  # a typo of a group name is a top-level key too
        siblings = [k for k in siblings + loader.list_groups("") if k != "hydra"]
    choice = OmegaConf.select(cfg, "hydra.runtime.choices.data", default=None)
    extras = parent_key == "optimizer"  # the optimizer takes any argument its Keras class does
    return unknown_key(key, siblings, choice, extras_allowed=extras)


def _first_lines(exc: BaseException) -> str:
    """Hydra's message without its config search path block and trailing blank lines."""
    text = str(exc).split("\nConfig search path:")[0]
    return "\n".join(line for line in text.strip().splitlines() if line.strip())
