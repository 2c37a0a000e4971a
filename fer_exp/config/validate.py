"""From Hydra's composed DictConfig to a validated :class:`~fer_exp.config.schema.RunConfig`,
or one :class:`~fer_exp.errors.ConfigError` listing every problem by key, value and rule."""

from __future__ import annotations

import re
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException
from pydantic import ValidationError

from fer_exp.config.schema import RunConfig
from fer_exp.config.suggest import data_option_of, unknown_key
from fer_exp.errors import ConfigError
from fer_exp.tracking.redact import secret_keys

_NO_ENV = re.compile(r"Environment variable '([^']+)' not found")


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """Resolve interpolations; a missing mandatory value becomes a ConfigError."""
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
    except InterpolationResolutionError as exc:
        raise unresolvable(exc) from None
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        if "Missing mandatory value" in str(exc):
            raise ConfigError(f"{key} is required but not set: pass {key}=<value> on the command line") from None
        raise ConfigError(f"{key}: {exc}".splitlines()[0]) from None


def unresolvable(exc: InterpolationResolutionError) -> ConfigError:
    """One line for a setting whose value cannot be resolved, an unset environment variable named.

    >>> from omegaconf import OmegaConf
    >>> try:
    ...     OmegaConf.create({"storage": "${oc.env:NO_SUCH_VARIABLE_SET}"}).storage
    ... except InterpolationResolutionError as exc:
    ...     print(str(unresolvable(exc)).split(":")[0])
    storage reads the environment variable NO_SUCH_VARIABLE_SET, which is not set here
    """
    key = getattr(exc, "full_key", None) or "a setting"
    if missing := _NO_ENV.search(str(exc)):
        name = missing[1]
        return ConfigError(
            f"{key} reads the environment variable {name}, which is not set here: export {name}=... "
            "(or source the file that sets it), then run the command again"
        )
    return ConfigError(f"{key} cannot be resolved: {str(exc).splitlines()[0]}")


def validate(cfg: DictConfig | dict[str, Any]) -> RunConfig:
    """Check every value of a composed config; raise ConfigError listing each problem."""
    if isinstance(cfg, DictConfig):
        _refuse_public_secrets(cfg)
        cfg = to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))
    container = {k: v for k, v in cfg.items() if k != "hydra"}
    try:
        return RunConfig.model_validate(container)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, container)) from None


# Keys whose values MLflow shows to everyone who can open the store, and that cannot be masked:
# an experiment must have a name (a run name from a secret is replaced by its overrides).
_PUBLIC_KEYS = ("experiment_name",)


def _refuse_public_secrets(cfg: DictConfig) -> None:
    """An experiment named from a secret variable would publish the secret."""
    for key in sorted(set(_PUBLIC_KEYS) & secret_keys(cfg)):
        raise ConfigError(
            f"{key}={cfg._get_node(key)._value()} reads a secret environment variable: MLflow shows "
            f"{key} to everyone who can open the store; name it without the secret"
        )


def format_validation_error(exc: ValidationError, container: dict[str, Any]) -> str:
    """pydantic's errors as one message, a line per problem: the dotted key, the value given
    and the rule it breaks (unknown and missing keys, and checks across keys, by name)."""
    lines = []
    for err in exc.errors():
        key_parts = _key_path(container, [str(p) for p in err["loc"]])
        key = ".".join(key_parts) or "<config>"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            lines.append(_unknown_key(container, key_parts))
        elif err["type"] == "missing":
            lines.append(f"{key}: required but not set")
        elif not key_parts:  # a check across keys: its message names them (the value is the whole config)
            lines.append(msg)
        else:
            lines.append(f"{key}={_lookup(container, key_parts)!r}: {msg}")
    return "invalid config:\n  " + "\n  ".join(dict.fromkeys(lines))


_TYPE_TAGS = {"float", "int", "str", "bool", "none"}


def _key_path(container: Any, loc: list[str]) -> list[str]:
    """pydantic's error location minus its schema tags (union members, discriminator values)."""
    keys, node = [], container
    for part in loc:
        if isinstance(node, dict) and part in node:
            keys.append(part)
            node = node[part]
        elif isinstance(node, list) and part.isdigit():
            keys.append(part)
            node = node[int(part)] if int(part) < len(node) else None
        elif (
            part in _TYPE_TAGS
            or "[" in part
            or part.startswith(("function-", "constrained-"))
            or (isinstance(node, dict) and part in (node.get("name"), node.get("source")))
        ):
            continue
        else:  # a key that is not in the config: unknown or missing
            keys.append(part)
            node = None
    return keys


def _unknown_key(container: dict[str, Any], key_parts: list[str]) -> str:
    """A key the schema does not have (added with ``+key=``): the keys it is close to, or the
    data source that reads it."""
    parent = _lookup(container, key_parts[:-1])
    siblings = [k for k in parent if k != key_parts[-1]] if isinstance(parent, dict) else []
    source = container.get("data", {}).get("source") if isinstance(container.get("data"), dict) else None
    data_option = data_option_of(source) if key_parts[0] == "data" and source else None
    return unknown_key(".".join(key_parts), siblings, data_option)


def _lookup(container: Any, parts: list[str]) -> Any:
    node = container
    for p in parts:
        if isinstance(node, dict) and p in node:
            node = node[p]
        elif isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
        else:
            return "<unset>"
    return node
