"""Runs: the recipe of one run (:mod:`.recipe`) and its steps (:mod:`.steps`), the run folder
(:mod:`.folder`), sweeps grouped in MLflow (:mod:`.sweep`) and ensembles of finished runs
(:mod:`.ensemble`).

>>> from fer_exp.runs import run, JobInfo   # run(compose([...]), JobInfo(output_dir=...))
"""

from fer_exp.runs.context import JobInfo, RunResult
from fer_exp.runs.recipe import run

__all__ = ["JobInfo", "RunResult", "run"]
