"""The Hydra sweeper plugin: registers ``hydra/sweeper: fer_exp_optuna`` and hands the sweep
to :func:`fer_exp.sweeps.launch.sweep`.

Hydra finds plugins in the ``hydra_plugins`` namespace package (no ``__init__.py`` at its
top). The name is not ``optuna``, so that a leftover install of hydra-optuna-sweeper, which
registers that one, cannot take its place.
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig

from fer_exp.sweeps.settings import OptunaSweeperConf

ConfigStore.instance().store(group="hydra/sweeper", name="fer_exp_optuna", node=OptunaSweeperConf, provider="fer_exp")


class FerExpOptunaSweeper(Sweeper):
    """Persistent, resumable Optuna studies run by asynchronous workers (docs/studies.md)."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.hydra_context = None
        self.task_function = None
        self.config: DictConfig | None = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        """Keep what the workers need to run jobs as Hydra does."""
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def sweep(self, arguments: list[str]) -> Any:
        """Run the study to ``n_trials`` (see :func:`fer_exp.sweeps.launch.sweep`)."""
        from fer_exp.sweeps.launch import sweep

        return sweep(self.hydra_context, self.task_function, self.config, arguments)
