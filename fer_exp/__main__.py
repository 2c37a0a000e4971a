"""Command line: ``python -m fer_exp [overrides]`` or ``fer-exp [overrides]`` (a Hydra app)."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig


def config_dir() -> str:
    """``conf/`` beside the package in a checkout, ``fer_exp/conf`` in an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"fer_exp's config folder was not found beside {here}")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float:
    from fer_exp.app import run_job

    return run_job(cfg)


if __name__ == "__main__":
    main()
