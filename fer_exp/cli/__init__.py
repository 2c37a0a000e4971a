"""Every command of fer_exp, one module each, sharing one error wrapper (:mod:`.common`):

- ``python -m fer_exp`` / ``fer-exp``: a run or a sweep (:mod:`.run`, a Hydra app)
- ``python -m fer_exp.audit``: the data audit (:mod:`.audit`)
- ``python -m fer_exp.compare``: a comparison of runs (:mod:`.compare`)
- ``python -m fer_exp.ensemble``: an ensemble of finished runs (:mod:`.ensemble`)
- ``python -m fer_exp.sync``: deliver journals kept while MLflow was away (:mod:`.sync`)
"""
