"""fer_exp's Optuna sweeper: persistent, resumable studies run by asynchronous workers.

:mod:`~fer_exp.sweeps.trial` holds the trial a process runs (read by the job and the pruning
callback); :mod:`~fer_exp.sweeps.space` turns Hydra's search-space syntax into Optuna
distributions; :mod:`~fer_exp.sweeps.study` opens the study (storage, sampler, pruner,
heartbeat), whose TPE sampler may rank trials at their shared epoch
(:mod:`~fer_exp.sweeps.ranking`); :mod:`~fer_exp.sweeps.worker` runs the ask -> job -> tell loop; the Hydra plugin
(``hydra_plugins/fer_exp_optuna``) only registers the config and delegates here.
"""
