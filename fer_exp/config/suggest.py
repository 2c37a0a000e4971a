"""What a mistyped command line meant: the closest valid key or option, and the data source
that reads a ``data.*`` key the chosen one does not.

A typo answers with the names it is close to (``difflib``), not with Hydra's advice to add
the typo as a new key (``+batch_sise=64``), which would only fail later.

>>> unknown_key("batch_sise", ["batch_size", "epochs", "seed"])
'batch_sise is not a fer_exp setting: did you mean batch_size?'
>>> unknown_option("augmentation", "heavvy", ["heavy", "light", "none"])
'augmentation=heavvy is not an option of augmentation: did you mean heavy? (options: heavy, light, none)'
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import SequenceMatcher
from functools import cache
from pathlib import Path

from omegaconf import OmegaConf

# What a data source does instead of reading the key the user set (default: "does not read it").
_INSTEAD = {"synthetic": "generates its faces"}
# fer_exp/conf, as compose.config_dir() finds it (not imported from there: compose -> validate -> here)
_DATA_OPTIONS = Path(__file__).resolve().parents[1] / "conf" / "data"


def close_names(name: str, candidates: Iterable[str]) -> list[str]:
    """The candidates ``name`` is most likely a typo of: the closest, and any about as close
    (none when nothing is close).

    >>> close_names("fer2013_smal_cnn", ["fer2013_small_cnn", "fer2013_ablation", "fer2013_resnet_long"])
    ['fer2013_small_cnn']
    """
    scored = sorted(((SequenceMatcher(None, name, c).ratio(), c) for c in set(candidates)), reverse=True)
    scored = [(score, c) for score, c in scored if score >= 0.6]  # difflib.get_close_matches' cutoff
    return [c for score, c in scored[:3] if score >= scored[0][0] - 0.05]


def unknown_key(key: str, siblings: Iterable[str], data_option: str | None = None, extras_allowed: bool = False) -> str:
    """The message for a dotted ``key`` the config does not have.

    Args:
        key: the key as typed, e.g. ``model.filtres``.
        siblings: the keys next to it (those of ``model``), group names included at the top.
        data_option: the chosen ``data=`` option, for a ``data.*`` key another source reads.
        extras_allowed: the section takes more keys than it lists (the optimizer's arguments).
    """
    parent, _, leaf = key.rpartition(".")
    if parent == "data" and data_option:
        readers = [o for o, keys in data_option_keys().items() if leaf in keys and o != data_option]
        if readers:
            doing = _INSTEAD.get(data_option, "does not read it")
            others = f" (or {', '.join('data=' + o for o in readers[1:])})" if readers[1:] else ""
            return f"{key} is set but data={data_option} {doing}: did you mean data={readers[0]}{others}?"
    prefix = f"{parent}." if parent else ""
    close = close_names(leaf, siblings)
    if close:
        return f"{key} is not a fer_exp setting: did you mean {' or '.join(prefix + c for c in close)}?"
    if parent == "data":  # a misspelt key of another source
        elsewhere = {k: o for o, keys in sorted(data_option_keys().items(), reverse=True) for k in keys}
        close = close_names(leaf, elsewhere)
        if close:
            owner = elsewhere[close[0]]
            return f"{key} is not a fer_exp setting: did you mean data.{close[0]} (a key of data={owner})?"
    if extras_allowed:
        return f"{key} is not a fer_exp setting: +{key}=<value> passes it to the {parent} as a new argument"
    listed = ", ".join(sorted(set(siblings)))
    return f"{key} is not a fer_exp setting; the keys of {parent or 'the config'} are: {listed}"


def unknown_option(group: str, option: str, options: Iterable[str]) -> str:
    """The message for ``group=option`` when the group has no such option: the options, and the
    closest ones."""
    options = sorted(options)
    close = close_names(str(option), options)
    guess = f": did you mean {' or '.join(close)}?" if close else ""
    return f"{group}={option} is not an option of {group}{guess} (options: {', '.join(options)})"


def unknown_name(key: str, value: str, names: Iterable[str], kind: str) -> str:
    """The message for ``key=value`` when ``value`` is not one of the ``names`` of a ``kind``.

    >>> unknown_name("hydra.sweeper.sampler.name", "tpee", ["tpe", "random"], "sampler")
    'hydra.sweeper.sampler.name=tpee is not a sampler: did you mean tpe? (samplers: random, tpe)'
    """
    names = sorted(names)
    close = close_names(str(value), names)
    guess = f": did you mean {' or '.join(close)}?" if close else ""
    return f"{key}={value} is not a {kind}{guess} ({kind}s: {', '.join(names)})"


@cache
def data_option_keys() -> dict[str, frozenset[str]]:
    """Each ``data=`` option of ``conf/data/`` and the keys its YAML sets."""
    return {p.stem: frozenset(str(k) for k in OmegaConf.load(p)) for p in sorted(_DATA_OPTIONS.glob("*.yaml"))}


def data_option_of(source: str) -> str | None:
    """The ``data=`` option whose YAML sets ``data.source=source`` (the first one, by name)."""
    for p in sorted(_DATA_OPTIONS.glob("*.yaml")):
        if OmegaConf.load(p).get("source") == source:
            return p.stem
    return None
