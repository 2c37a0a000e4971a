"""fer_exp's Optuna sweeper as a Hydra plugin (``hydra/sweeper=fer_exp_optuna``); the work is
done in :mod:`fer_exp.sweeps`."""
