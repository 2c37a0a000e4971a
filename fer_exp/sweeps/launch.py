"""A sweep of fer_exp's Optuna sweeper from start to end: check the settings, parse the search
space, run the workers, write ``optimization_results.yaml`` in the sweep folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from omegaconf import DictConfig, OmegaConf

from fer_exp.sweeps.confirm import confirm_best
from fer_exp.sweeps.settings import check_settings, objectives, storage_url
from fer_exp.sweeps.space import parse_space
from fer_exp.sweeps.study import counted, open_storage, open_study, results
from fer_exp.sweeps.worker import Launch, run_workers
from fer_exp.tracking.redact import redact_text
from fer_exp.tracking.store import default_tracking_uri

log = logging.getLogger("fer_exp.sweeps")


def sweep(hydra_context, task_function, config: DictConfig, arguments: list[str]) -> dict[str, Any]:
    """Run the study ``hydra.sweeper`` describes up to ``n_trials`` trials in total, the
    command line's ``arguments`` over ``hydra.sweeper.params``; returns the results."""
    HydraConfig.instance().set_config(config)  # ${hydra:runtime.cwd} in tracking_uri
    settings = OmegaConf.to_container(config.hydra.sweeper, resolve=True)
    metric = str(OmegaConf.select(config, "optimized_metric") or "best_val_accuracy")
    cwd = Path(config.hydra.runtime.cwd)
    check_settings(settings, metric, cwd)
    space = parse_space(settings.get("params"), arguments, hydra_context.config_loader)
    tracking_uri = OmegaConf.select(config, "tracking_uri") or default_tracking_uri()
    sweep_dir = Path(config.hydra.sweep.dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")

    storage = open_storage(str(settings["storage"]), cwd, None)
    study = open_study(settings, metric, storage)
    where = redact_text(storage_url(str(settings["storage"]), cwd))
    done, total = counted(study), int(settings["n_trials"])
    log.info(
        "study %r in %s: %d of %d trials counted, %d worker(s); a fresh study: hydra.sweeper.study_name=<new name>",
        study.study_name,
        where,
        done,
        total,
        int(settings["n_jobs"]),
    )
    launch = Launch(
        hydra_context=hydra_context,
        config=config,
        task_function=task_function,
        singleton_state=Singleton.get_state(),
        settings=settings,
        space=space,
        cwd=cwd,
        optimized_metric=metric,
        tracking_uri=tracking_uri,
    )
    run_workers(launch)
    confirm_best(launch, open_study(settings, metric, storage))
    names, _ = objectives(settings, metric)
    out = results(open_study(settings, metric, storage), names)
    OmegaConf.save(OmegaConf.create(out), sweep_dir / "optimization_results.yaml")
    if "best_value" in out:
        log.info("best trial #%d: %s = %s, %s", out["best_trial"], metric, out["best_value"], out["best_params"])
    return out
