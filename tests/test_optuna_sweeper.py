"""fer_exp's Optuna sweeper (hydra/sweeper=fer_exp_optuna): the search space, the checks made
before any trial, and (slow) persistent studies run by asynchronous workers."""

from __future__ import annotations

import os
import re
import time
from types import SimpleNamespace

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from fer_exp.errors import ConfigError
from fer_exp.sweeps.space import parse_space
from tests.conftest import artifact_paths, mlflow_runs, run_cli


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("choice(true, false)", CategoricalDistribution([True, False])),
        ("16,32,64", CategoricalDistribution([16, 32, 64])),
        ("choice(none, seed)", CategoricalDistribution(["none", "seed"])),
        ("interval(0.0, 0.25)", FloatDistribution(0.0, 0.25)),
        ("int(interval(1, 10))", IntDistribution(1, 10)),
        ("tag(log, interval(0.0001, 0.01))", FloatDistribution(0.0001, 0.01, log=True)),
        ("tag(log, int(interval(8, 128)))", IntDistribution(8, 128, log=True)),
        ("range(0, 30, step=5)", IntDistribution(0, 25, step=5)),  # Hydra's range excludes its stop
        ("range(0.0, 1.0, step=0.25)", FloatDistribution(0.0, 0.75, step=0.25)),
    ],
)
def test_each_search_space_syntax_becomes_its_distribution(typed, expected):
    space = parse_space({"augmentation.zoom_range": typed})
    assert space.distributions == {"augmentation.zoom_range": expected}
    assert space.fixed == []


def test_command_line_wins_over_params_and_plain_values_are_fixed():
    space = parse_space(
        {"optimizer.learning_rate": "interval(0.001, 0.1)", "epochs": "3"},
        ["optimizer.learning_rate=tag(log, interval(0.0001, 0.01))", "debug=fast"],
    )
    assert space.distributions == {"optimizer.learning_rate": FloatDistribution(0.0001, 0.01, log=True)}
    assert space.fixed == ["epochs=3", "debug=fast"]
    overrides = space.overrides({"optimizer.learning_rate": 0.0012})
    assert overrides == ["epochs=3", "debug=fast", "optimizer.learning_rate=0.0012"]
    flips = parse_space({"augmentation.horizontal_flip": "choice(true, false)", "run_name": "choice('a b', c)"})
    assert flips.overrides({"augmentation.horizontal_flip": False, "run_name": "a b"}) == [
        "augmentation.horizontal_flip=false",
        "run_name=a\\ b",  # read back by Hydra as the one string it was
    ]


@pytest.mark.parametrize(
    "typed", ["interval(0.3, 0.1)", "interval(0.2, 0.2)", "range(5, 1)", "tag(log, interval(0, 1))"]
)
def test_an_empty_search_space_is_refused(typed):
    with pytest.raises(ConfigError, match="augmentation.zoom_range="):
        parse_space({"augmentation.zoom_range": typed})


GOOD = {
    "study_name": "s",
    "storage": "sqlite:///optuna.db",
    "n_trials": 2,
    "n_jobs": 1,
    "direction": "maximize",
    "sampler": {"name": "tpe", "seed": 1},
    "pruner": {"name": "none"},
}


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"sampler": {"name": "tpee"}},
            "hydra.sweeper.sampler.name=tpee is not a sampler: did you mean tpe? (samplers: cmaes, nsga2, random, tpe)",
        ),
        (
            {"sampler": {"name": "tpe", "ranking": "shared_epochs"}},
            "hydra.sweeper.sampler.ranking=shared_epochs is not a ranking: did you mean shared_epoch?",
        ),
        (
            {"sampler": {"name": "random", "ranking": "shared_epoch"}},
            "hydra.sweeper.sampler.ranking=shared_epoch is TPE's: the random sampler does not rank trials",
        ),
        ({"pruner": {"name": "medain"}}, "hydra.sweeper.pruner.name=medain is not a pruner: did you mean median?"),
        ({"pruner": {"name": "median", "warmup_epoch": 1}}, "did you mean pruner.warmup_epochs?"),
        (
            {"pruner": {"name": "median", "monitor": "val_acc"}},
            "hydra.sweeper.pruner.monitor=val_acc is not a per-epoch value: did you mean val_accuracy?",
        ),
        (
            {"pruner": {"name": "median", "monitor": "val_loss"}},
            "hydra.sweeper.pruner.monitor=val_loss falls as a run improves, but the study maximizes best_val_accuracy",
        ),
        (
            {"direction": "minimize", "pruner": {"name": "successive_halving", "monitor": "val_f1"}},
            "hydra.sweeper.pruner.monitor=val_f1 rises as a run improves, but the study minimizes best_val_accuracy",
        ),
        ({"directions": ["maximize", "minimize"]}, "hydra.sweeper.directions has 2 entries for 1 objectives"),
        ({"objectives": ["best_val_accuracy", "train_time_s"]}, "give hydra.sweeper.directions one each"),
        ({"direction": "maximise"}, "hydra.sweeper.direction=maximise is not a direction: did you mean maximize?"),
        ({"n_trials": 0}, "hydra.sweeper.n_trials=0 must be at least 1"),
        ({"storage": "sqlite:///no/such/folder/optuna.db"}, "the folder"),
        (
            {"storage": "postgresql://alice:s3cr3t@127.0.0.1:9/optuna"},
            "hydra.sweeper.storage=postgresql://***@127.0.0.1:9/optuna cannot be reached",
        ),
    ],
)
def test_bad_study_settings_are_one_message(change, message, tmp_path):
    from fer_exp.sweeps.settings import check_settings

    with pytest.raises(ConfigError) as caught:
        check_settings({**GOOD, **change}, "best_val_accuracy", tmp_path)
    assert message in str(caught.value) and "s3cr3t" not in str(caught.value), str(caught.value)
    assert list(tmp_path.iterdir()) == []  # nothing created: no optuna.db
    check_settings(GOOD, "best_val_accuracy", tmp_path)  # the good settings pass


@pytest.mark.parametrize(
    "override, message",
    [
        ("hydra.sweeper.sampler.name=tpee", "hydra.sweeper.sampler.name=tpee is not a sampler"),
        ("hydra.sweeper.sampler.ranking=fair", "hydra.sweeper.sampler.ranking=fair is not a ranking"),
        ("augmentation.rotatoin_range=interval(0, 3)", "did you mean augmentation.rotation_range?"),
        ("augmentation.zoom_range=interval(0.3, 0.1)", "the interval's low end (0.3) must be below its high end (0.1)"),
        ("hydra.sweeper.pruner.reduction_factr=4", "did you mean hydra.sweeper.pruner.reduction_factor?"),
        ("hydra.sweeper.pruner.report=mean", "hydra.sweeper.pruner.report=mean is not one of: best"),
        ("hydra.sweeper.pruner.monitor=val_f2", "hydra.sweeper.pruner.monitor=val_f2 is not a per-epoch value"),
    ],
)
def test_the_command_line_is_checked_before_any_folder(override, message, tmp_path, monkeypatch):
    from fer_exp.cli.run import preflight

    monkeypatch.chdir(tmp_path)
    found = preflight(["-m", "hparams_search=optuna", override])
    assert found is not None and message in found, found
    assert list(tmp_path.iterdir()) == []  # no output folder, no optuna.db


def test_a_good_study_passes_the_checks_and_its_defaults_are_documented(tmp_path, monkeypatch):
    from fer_exp.cli.run import check_study
    from fer_exp.config.compose import compose_sweep

    monkeypatch.chdir(tmp_path)
    # any pruner's knob is a key to set, without the "+" of a new key
    overrides = ["hparams_search=optuna", "hydra.sweeper.pruner.name=successive_halving", "epochs=2"]
    overrides += ["hydra.sweeper.pruner.reduction_factor=4", "hydra.sweeper.pruner.report=last"]
    overrides += ["hydra.sweeper.pruner.monitor=val_f1"]  # macro-F1 rises, as the accuracy the study maximizes
    overrides += ["hydra.sweeper.sampler.ranking=shared_epoch"]  # a key of the defaults: no "+"
    _, settings = compose_sweep(overrides, multirun=True)
    check_study(settings, overrides)  # raises on any problem
    assert (settings["pruner"]["reduction_factor"], settings["pruner"]["report"]) == (4, "last")
    assert settings["sampler"] == {"name": "tpe", "seed": 123, "ranking": "shared_epoch"}
    assert settings["_target_"] == "hydra_plugins.fer_exp_optuna.sweeper.FerExpOptunaSweeper"
    assert (settings["study_name"], settings["storage"]) == ("hparams_search", "sqlite:///optuna.db")
    assert list(tmp_path.iterdir()) == []


def test_trial_run_names_are_short():
    from fer_exp.sweeps.trial import ActiveTrial

    trial = ActiveTrial(None, 7, {"optimizer.learning_rate": 0.000123456, "augmentation.zoom_range": 0.25, "seed": 3})
    assert trial.run_name() == "#7 lr=0.00012 zoom=0.25 seed=3"


def _launch(tmp_path, **settings):
    from hydra.core.singleton import Singleton

    from fer_exp.sweeps.worker import Launch

    return Launch(
        hydra_context=None,
        config=None,
        task_function=None,
        singleton_state=Singleton.get_state(),
        settings={**GOOD, "heartbeat_s": 1, **settings},
        space=parse_space({"augmentation.zoom_range": "interval(0.0, 0.3)"}),
        cwd=tmp_path,
        optimized_metric="best_val_accuracy",
        tracking_uri="sqlite:///unused.db",
    )


@pytest.fixture
def fake_trials(monkeypatch):
    """Trials that end as the list says (COMPLETE by default) without running a job."""
    import signal

    from fer_exp.sweeps import worker

    ends: list[str] = []
    State = worker.State

    def run_trial(launch, study, storage, trial):
        state = State[ends.pop(0)] if ends else State.COMPLETE
        study.tell(trial, trial.params["augmentation.zoom_range"] if state == State.COMPLETE else None, state=state)
        return state

    monkeypatch.setattr(worker, "run_trial", run_trial)
    previous = signal.getsignal(signal.SIGTERM)  # work() makes SIGTERM stop its trial
    yield ends
    signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize(
    ("report", "expected"), [("best", {1: 0.6, 2: 0.6}), (None, {1: 0.6, 2: 0.6}), ("last", {1: 0.6, 2: 0.4})]
)
def test_the_studys_pruner_settings_reach_the_trials_callback(tmp_path, report, expected, monkeypatch):
    """The worker hands ``pruner.monitor`` and ``pruner.report`` to the trial its job trains."""
    from hydra.core.utils import JobStatus

    from fer_exp.sweeps import trial as sweep_trial
    from fer_exp.sweeps import worker
    from fer_exp.training.pruning import OptunaPruning

    def job(launch, overrides, number):  # two epochs of a training that logs "val_acc"
        callback = OptunaPruning(sweep_trial.current())
        callback.set_model(SimpleNamespace(stop_training=False))
        for epoch, value in enumerate([0.6, 0.4]):
            callback.on_epoch_end(epoch, {"val_acc": value})
        sweep_trial.current().metrics = {"best_val_accuracy": 0.6}
        return SimpleNamespace(status=JobStatus.COMPLETED)

    monkeypatch.setattr(worker, "launch_job", job)
    pruner = {"name": "none", "monitor": "val_acc", **({"report": report} if report else {})}
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.suggest_float("augmentation.zoom_range", 0.0, 0.3)
    assert worker.run_trial(_launch(tmp_path, pruner=pruner), study, study._storage, trial) == worker.State.COMPLETE
    assert study.trials[0].intermediate_values == expected


def test_a_worker_runs_the_study_to_n_trials_in_total(tmp_path, fake_trials):
    from fer_exp.sweeps.worker import work

    fake_trials += ["COMPLETE", "FAIL", "PRUNED"]
    assert work(_launch(tmp_path, n_trials=3), 0) == 4  # the failed trial is replaced
    assert work(_launch(tmp_path, n_trials=3), 0) == 0  # the same command again: done already
    assert work(_launch(tmp_path, n_trials=5), 0) == 2  # up to 5 in total, not 5 more


def test_a_worker_stops_when_its_trials_keep_failing(tmp_path, fake_trials):
    from fer_exp.sweeps.worker import MAX_FAILED_IN_A_ROW, work

    fake_trials += ["FAIL"] * 10
    assert work(_launch(tmp_path, n_trials=3), 0) == MAX_FAILED_IN_A_ROW


def test_a_dead_workers_trial_is_marked_fail_its_run_killed_and_replaced(tmp_path, fake_trials, monkeypatch):
    import sqlite3

    from fer_exp.sweeps import study as studies
    from fer_exp.sweeps.worker import work

    launch = _launch(tmp_path, n_trials=2)
    storage = studies.open_storage("sqlite:///optuna.db", tmp_path, 1)
    dead = studies.open_study(launch.settings, "best_val_accuracy", storage).ask()
    storage.record_heartbeat(dead._trial_id)
    with sqlite3.connect(tmp_path / "optuna.db") as db:  # its worker went silent an hour ago
        db.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-1 hour')")
    killed = []
    monkeypatch.setattr(studies, "kill_stale_run", lambda uri, name, number: killed.append((uri, name, number)))
    assert work(launch, 0) == 2
    states = [t.state.name for t in studies.open_study(launch.settings, "x", storage).trials]
    assert states == ["FAIL", "COMPLETE", "COMPLETE"]
    assert killed == [("sqlite:///unused.db", "s", 0)]


# --- slow: real sweeps (debug=fast, the synthetic faces) -----------------------------------

STUDY = ["-m", "hparams_search=optuna", "debug=fast", "hydra.sweeper.heartbeat_s=1"]


def _trials(tmp_path, study="hparams_search"):
    import optuna

    s = optuna.load_study(study_name=study, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    return [(t.number, t.state.name) for t in s.get_trials(deepcopy=False)]


def _trial_runs(tmp_path):
    client, runs = mlflow_runs(tmp_path / "mlflow.db", "hparams_search")
    return client, sorted(
        (r for r in runs if "fer_exp.trial_number" in r.data.tags),
        key=lambda r: int(r.data.tags["fer_exp.trial_number"]),
    )


@pytest.mark.slow
def test_a_study_lands_its_trials_as_runs_and_a_rerun_continues_it_to_n_trials(tmp_path):
    proc = run_cli([*STUDY, "hydra.sweeper.n_trials=2"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _trials(tmp_path) == [(0, "COMPLETE"), (1, "COMPLETE")]
    client, runs = _trial_runs(tmp_path)
    assert len(runs) == 2
    for number, r in enumerate(runs):
        assert r.info.run_name.startswith(f"#{number} rot=") and " lr=" in r.info.run_name, r.info.run_name
        assert r.data.tags["fer_exp.study"] == "hparams_search"
        assert r.data.tags["fer_exp.trial_state"] == "COMPLETE"
        assert r.data.tags["hydra.job_num"] == str(number)
    again = run_cli([*STUDY, "hydra.sweeper.n_trials=2"], tmp_path)  # the study is complete: nothing to do
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(_trials(tmp_path)) == 2
    more = run_cli([*STUDY, "hydra.sweeper.n_trials=3"], tmp_path)  # up to 3 in total, not 3 more
    assert more.returncode == 0, more.stderr[-3000:]
    assert _trials(tmp_path) == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE")]
    assert len(_trial_runs(tmp_path)[1]) == 3
    results = sorted(tmp_path.glob("multirun/*/*/optimization_results.yaml"))
    assert len(results) == 3 and "best_value:" in results[-1].read_text()


@pytest.mark.slow
def test_two_asynchronous_workers_share_one_study(tmp_path):
    proc = run_cli([*STUDY, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(_trials(tmp_path)) == [(n, "COMPLETE") for n in range(4)]
    _, runs = _trial_runs(tmp_path)
    assert len(runs) == 4
    assert len({r.data.tags["fer_exp.pid"] for r in runs}) == 2, "both workers ran trials"
    for r in runs:  # two workers on this machine's cores: each takes its share
        assert r.data.params["threads.intra_op"] == str(max(1, (os.cpu_count() or 1) // 2))


@pytest.mark.slow
def test_a_killed_sweep_loses_only_its_trial_in_flight_and_a_rerun_finishes_the_study(tmp_path):
    # the whole sweep (its one worker) dies with SIGKILL in trial #1's first epoch
    killed = run_cli([*STUDY, "hydra.sweeper.n_trials=3"], tmp_path, env={"FER_EXP_FAULT": "epoch_start@2:sigkill"})
    assert killed.returncode == -9
    assert _trials(tmp_path) == [(0, "COMPLETE"), (1, "RUNNING")]
    time.sleep(3)  # past the heartbeat's grace period (2 x heartbeat_s)
    proc = run_cli([*STUDY, "hydra.sweeper.n_trials=3"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _trials(tmp_path) == [(0, "COMPLETE"), (1, "FAIL"), (2, "COMPLETE"), (3, "COMPLETE")]
    _, runs = _trial_runs(tmp_path)
    states = [
        (r.data.tags["fer_exp.trial_number"], r.info.status, r.data.tags.get("fer_exp.trial_state")) for r in runs
    ]
    assert states == [
        ("0", "FINISHED", "COMPLETE"),
        ("1", "KILLED", "FAIL"),
        ("2", "FINISHED", "COMPLETE"),
        ("3", "FINISHED", "COMPLETE"),
    ]


@pytest.mark.parametrize(
    "confirm, message",
    [
        ({"top_k": -1, "seeds": 3}, "hydra.sweeper.confirm.top_k=-1 must be a whole number of at least 0"),
        ({"top_k": 2, "seeds": 0}, "hydra.sweeper.confirm.seeds=0 must be a whole number of at least 1"),
        ({"top_k": 2, "seed": 3}, "hydra.sweeper.confirm.seed is not a setting: confirm takes top_k and seeds"),
    ],
)
def test_bad_confirmation_settings_are_one_message(confirm, message, tmp_path):
    from fer_exp.sweeps.settings import check_settings

    with pytest.raises(ConfigError, match=re.escape(message)):
        check_settings({**GOOD, "confirm": confirm}, "best_val_accuracy", tmp_path)
    two = {**GOOD, "confirm": {"top_k": 1, "seeds": 2}, "objectives": ["best_val_accuracy", "train_time_s"]}
    with pytest.raises(ConfigError, match="a Pareto front has no one best to confirm"):
        check_settings({**two, "directions": ["maximize", "minimize"]}, "best_val_accuracy", tmp_path)


@pytest.mark.slow
def test_a_study_confirms_its_best_trials_under_new_seeds_once(tmp_path):
    confirm = ["hydra.sweeper.n_trials=3", "hydra.sweeper.confirm.top_k=2", "hydra.sweeper.confirm.seeds=2"]
    proc = run_cli([*STUDY, *confirm], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [state for _, state in _trials(tmp_path)] == ["COMPLETE"] * 3  # confirmations are no trials
    client, runs = mlflow_runs(tmp_path / "mlflow.db", "hparams_search")
    confirmations = [r for r in runs if "fer_exp.confirm_of_trial" in r.data.tags]
    (parent,) = [r for r in runs if r.data.tags.get("fer_exp.sweep_role") == "parent"]
    trials_runs = {r.data.tags["fer_exp.trial_number"]: r for r in runs if "fer_exp.trial_number" in r.data.tags}
    top = sorted(trials_runs, key=lambda n: -trials_runs[n].data.metrics["best_val_accuracy"])[:2]
    assert sorted((r.data.tags["fer_exp.confirm_of_trial"], r.data.params["seed"]) for r in confirmations) == sorted(
        (n, s) for n in top for s in ("43", "44")
    )
    for r in confirmations:  # the trial's settings, a new seed, under the study's parent, never pruned
        trial = trials_runs[r.data.tags["fer_exp.confirm_of_trial"]]
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id and r.info.status == "FINISHED"
        assert r.data.params["optimizer.learning_rate"] == trial.data.params["optimizer.learning_rate"]
        assert r.info.run_name.startswith(f"confirm #{trial.data.tags['fer_exp.trial_number']} seed=")
        assert "fer_exp.best_trial" not in r.data.tags
    parent = client.get_run(parent.info.run_id)
    assert parent.data.tags["fer_exp.confirmed_best_trial"] in top
    low, mean, high = (parent.data.metrics[f"confirmed_best_val_accuracy{s}"] for s in ("_ci_low", "", "_ci_high"))
    assert low <= mean <= high
    assert "comparison/confirmation.csv" in artifact_paths(client, parent.info.run_id)
    assert "confirmation of the study's best trials under new seeds" in proc.stdout
    again = run_cli([*STUDY, *confirm], tmp_path)  # nothing left: no trial, no confirmation trained again
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        len(
            [
                r
                for r in mlflow_runs(tmp_path / "mlflow.db", "hparams_search")[1]
                if "fer_exp.confirm_of_trial" in r.data.tags
            ]
        )
        == 4
    )
