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


def cli() -> None:
    """Entry point: the Hydra app, then close any sweep it opened — also when a job failed
    and Hydra is exiting non-zero (its on_multirun_end is skipped then)."""
    import signal
    import sys

    from fer_exp.sweep import finalize_open_sweeps

    try:
        main()
    except KeyboardInterrupt as exc:
        # The run has already ended KILLED with its checkpoints kept and said how to resume it
        # (tracking.tracked_run): the stack of wherever the signal landed would only bury that.
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"fer_exp: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        raise SystemExit(128 + signum) from None
    finally:
        if finalize_open_sweeps():
            raise SystemExit(1)


if __name__ == "__main__":
    cli()
