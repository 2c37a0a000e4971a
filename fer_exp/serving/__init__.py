"""A run's best model as an MLflow Model: raw images in, class probabilities and labels out.

:mod:`.pyfunc` is what MLflow loads (``mlflow.pyfunc.load_model``, ``mlflow models serve``);
:mod:`.model_dir` writes the model folder; :mod:`.logged` sends it to a run (and MLflow 3's
logged models) through the run's tracker, so that a run whose server is away journals it.
"""
