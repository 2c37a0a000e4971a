"""A study in MLflow: the parent run is the study's, found again when the same command runs
again; when the sweep ends it holds the best value and params, the best trial's run is tagged,
and the study's pictures are in its comparison folder."""

from __future__ import annotations

import optuna
import pytest
from omegaconf import OmegaConf, open_dict

from fer_exp.errors import UserError
from fer_exp.runs import sweep
from fer_exp.sweeps.settings import TARGET
from tests.conftest import artifact_paths, mlflow_runs

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _config(sweep_dir, experiment="e", **sweeper):
    """The composed config of ``-m`` with fer_exp's Optuna sweeper set as ``sweeper`` says
    (Hydra's own compose, then the sweeper node replaced: no trial runs)."""
    from hydra import compose, initialize_config_dir

    from fer_exp.config import config_dir

    overrides = [f"hydra.sweep.dir={sweep_dir}", f"experiment_name={experiment}"]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides, return_hydra_config=True)
    OmegaConf.set_readonly(cfg.hydra, False)
    settings = {
        "_target_": TARGET,
        "study_name": "${experiment_name}",
        "storage": "sqlite:///optuna.db",
        "n_trials": 4,
        "direction": "maximize",
        "sampler": {"name": "tpe", "seed": 7},
        "pruner": {"name": "successive_halving", "warmup_epochs": 1, "monitor": "val_accuracy"},
        **sweeper,
    }
    with open_dict(cfg):
        cfg.hydra.sweeper = OmegaConf.create(settings)
    return cfg


def _start(cfg):
    sweep.MlflowSweepCallback().on_multirun_start(cfg)
    return sweep._open_sweeps[-1]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One launch folder and MLflow store for the module (creating a store takes seconds);
    each test has an experiment of its own."""
    return tmp_path_factory.mktemp("launch")


@pytest.fixture
def launch(store, tmp_path, monkeypatch):
    """The launch folder (mlflow.db and optuna.db are there) with no sweep left open; the
    test's experiment is ``e<n>``."""
    monkeypatch.chdir(store)
    monkeypatch.setattr(sweep, "_open_sweeps", [])
    return store


def test_running_the_same_study_again_reuses_its_parent_run(launch):
    first = _start(_config(launch / "multirun" / "a", "reuse"))
    again = _start(_config(launch / "multirun" / "b", "reuse", n_trials=6))  # the rerun that raises n_trials
    other = _start(_config(launch / "multirun" / "c", "reuse", study_name="another"))
    assert again["parent_run_id"] == first["parent_run_id"] != other["parent_run_id"]
    client, runs = mlflow_runs(launch / "mlflow.db", "reuse")
    assert len(runs) == 2
    parent = client.get_run(first["parent_run_id"])
    assert parent.info.status == "RUNNING" and parent.data.tags["fer_exp.study"] == "reuse"
    assert parent.data.params["study.name"] == "reuse"
    assert parent.data.params["study.storage"] == f"sqlite:///{launch / 'optuna.db'}"
    assert parent.data.params["study.sampler"] == "tpe(seed=7)"
    assert parent.data.params["study.pruner"].startswith("successive_halving(warmup_epochs=1")
    # params are write-once: the rerun's n_trials is a tag
    assert (parent.data.params["study.n_trials"], parent.data.tags["fer_exp.study.n_trials"]) == ("4", "6")
    # the jobs' file names the study, never its storage URL
    assert (launch / "multirun" / "b" / sweep.SWEEP_FILE).read_text().count("storage_url") == 0


def test_the_storage_password_is_never_logged(launch):
    url = "postgresql://alice:s3cr3t@db.example:5432/studies"
    info = _start(_config(launch / "multirun" / "d", "secret", storage=url))
    client, (parent,) = mlflow_runs(launch / "mlflow.db", "secret")
    shown = str(parent.data.params) + str(parent.data.tags) + (launch / "multirun" / "d" / sweep.SWEEP_FILE).read_text()
    assert "s3cr3t" not in shown and "alice" not in shown
    assert parent.data.params["study.storage"] == "postgresql://***@db.example:5432/studies"
    assert info["study"]["storage_url"] == url  # kept in memory to load the study at the end
    # compare cannot read the study from the masked URL: it asks for the real one
    from fer_exp.analysis.study_plots import parent_study_plots

    with pytest.raises(UserError, match="pass the storage URL with --storage"):
        parent_study_plots(client, parent.info.run_id, launch / "unused")


def test_a_grid_sweep_keeps_its_own_parent_per_sweep(launch):
    from hydra import compose, initialize_config_dir

    from fer_exp.config import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", [f"hydra.sweep.dir={launch / 'm'}", "experiment_name=grid"], return_hydra_config=True)
    ids = {_start(cfg)["parent_run_id"] for _ in range(2)}
    client, runs = mlflow_runs(launch / "mlflow.db", "grid")
    assert len(ids) == 2 and not any("fer_exp.study" in r.data.tags for r in runs)


def _trial_run(client, info, number, value):
    """A finished child run of trial ``number``, as a trial's job leaves it."""
    run = client.create_run(
        info["experiment_id"],
        tags={
            "mlflow.parentRunId": info["parent_run_id"],
            "hydra.job_num": str(number),
            "fer_exp.study": "best",
            "fer_exp.trial_number": str(number),
            "overrides": f"optimizer.learning_rate={number}",
        },
    )
    client.log_param(run.info.run_id, "optimizer.learning_rate", number)
    for epoch in (1, 2):
        client.log_metric(run.info.run_id, "val_accuracy", value - 0.1 / epoch, step=epoch)
    client.log_metric(run.info.run_id, "best_val_accuracy", value)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def test_the_end_of_the_sweep_logs_the_best_trial_and_the_study_pictures(launch):
    info = _start(_config(launch / "multirun" / "e", "best"))
    client, _ = mlflow_runs(launch / "mlflow.db", "best")
    study = optuna.create_study(study_name="best", storage=f"sqlite:///{launch / 'optuna.db'}", direction="maximize")
    runs = {}
    for number, value in enumerate([0.5, 0.7, 0.6]):
        trial = study.ask({"optimizer.learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)})
        trial.report(value - 0.05, 1)
        study.tell(trial, value)
        runs[number] = _trial_run(client, info, number, value)
    client.set_tag(runs[0], "fer_exp.best_trial", "true")  # the best of an earlier run of the study
    assert sweep.finalize_open_sweeps() == 0
    parent = client.get_run(info["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(0.7)
    assert parent.data.tags["fer_exp.best_trial_number"] == "1"
    assert float(parent.data.tags["fer_exp.best.optimizer.learning_rate"]) == pytest.approx(
        study.trials[1].params["optimizer.learning_rate"]
    )
    assert parent.data.tags["fer_exp.best_run_id"] == runs[1]
    tagged = {n: client.get_run(r).data.tags.get("fer_exp.best_trial") for n, r in runs.items()}
    assert tagged == {0: "false", 1: "true", 2: None}
    pictures = {p for p in artifact_paths(client, parent.info.run_id, "comparison") if p.endswith(".png")}
    assert {"comparison/optimization_history.png", "comparison/param_importances.png"} <= pictures

    # python -m fer_exp.compare --study: the study's trials and pictures, again
    from fer_exp.cli.compare import main

    out = launch / "again"
    assert main(["--tracking-uri", f"sqlite:///{launch / 'mlflow.db'}", "--study", "best", "--out", str(out)]) == 0
    assert {"optimization_history.png", "param_importances.png", "intermediate_values.png"} <= {
        p.name for p in out.glob("*.png")
    }


def test_compare_names_the_studies_when_the_study_is_unknown(launch, capsys):
    from fer_exp.cli.compare import main

    _start(_config(launch / "multirun" / "f", "named", study_name="augmentation_lr"))
    assert main(["--tracking-uri", f"sqlite:///{launch / 'mlflow.db'}", "--study", "augmentaton_lr"]) == 2
    err = capsys.readouterr().err
    assert "no study 'augmentaton_lr'" in err and "the studies are:" in err and "augmentation_lr" in err
