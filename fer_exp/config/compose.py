"""Compose a run's config the way the command line does, without running anything."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from fer_exp.config.schema import RunConfig
from fer_exp.config.validate import validate

CONFIG_NAME = "config"


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
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # ${hydra:...} interpolations resolve as in a real run
        return validate(cfg)
