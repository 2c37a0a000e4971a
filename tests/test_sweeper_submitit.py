"""The Optuna sweeper's workers as submitit jobs (hydra/launcher=slurm, submitit_local): the
launcher's settings as executor parameters, the checks before any job, waiting for the jobs,
and (slow) a real study whose two workers are submitit jobs on this machine."""

from __future__ import annotations

import inspect
import logging
import os
import signal

import pytest
from omegaconf import OmegaConf

from fer_exp.errors import ConfigError
from fer_exp.sweeps.settings import SUBMITIT_CLUSTERS
from tests.conftest import mlflow_runs, run_cli

SLURM, LOCAL = sorted(SUBMITIT_CLUSTERS)[::-1]  # ...SlurmLauncher, ...LocalLauncher
BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
GOOD = {"storage": "sqlite:///optuna.db", "n_trials": 2, "n_jobs": 2, "sampler": {"name": "tpe"}}


def _hydra_config(overrides):
    """Hydra's composed config (hydra node included), as the sweep's process holds it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from fer_exp.config.compose import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_the_slurm_launchers_settings_become_the_executors_parameters_as_the_plugin_maps_them():
    from submitit import AutoExecutor
    from submitit.slurm.slurm import SlurmExecutor

    from fer_exp.sweeps.submit import executor_parameters, submitit_cluster

    cfg = _hydra_config(
        [
            "hparams_search=optuna",
            "hydra/launcher=slurm",
            "hydra.launcher.partition=cpu",
            "+hydra.launcher.additional_parameters.mail-type=END",
        ]
    )
    assert submitit_cluster(cfg) == "slurm"
    init, update = executor_parameters("slurm", OmegaConf.to_container(cfg.hydra.launcher, resolve=True))
    assert init == {"folder": f"{cfg.hydra.sweep.dir}/.submitit/%j", "slurm_max_num_timeout": 0}
    assert {k: update[k] for k in ("timeout_min", "cpus_per_task", "mem_gb", "nodes", "tasks_per_node")} == {
        "timeout_min": 240,
        "cpus_per_task": 8,
        "mem_gb": 16,
        "nodes": 1,
        "tasks_per_node": 1,
    }
    assert update["slurm_partition"] == "cpu" and update["slurm_array_parallelism"] == 32
    assert update["slurm_additional_parameters"] == {"mail-type": "END"}
    # every parameter is one submitit's AutoExecutor takes (it refuses the others)
    generic, slurm = AutoExecutor._valid_parameters(), SlurmExecutor._valid_parameters()
    wrong = [k for k in update if k not in generic and not (k.startswith("slurm_") and k[6:] in slurm)]
    assert wrong == []
    assert "max_num_timeout" in inspect.signature(SlurmExecutor).parameters
    assert submitit_cluster(_hydra_config(["hparams_search=optuna"])) is None  # the basic launcher


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"launcher": SLURM},
            "hydra.sweeper.storage=sqlite:///optuna.db with hydra/launcher=slurm: Slurm jobs on several machines "
            "cannot share an sqlite file reliably; use a PostgreSQL storage, e.g. "
            "'hydra.sweeper.storage=${oc.env:OPTUNA_STORAGE}' (see docs/many-machines.md)",
        ),
        (
            {"launcher": LOCAL, "n_jobs": 0},
            "hydra.sweeper.n_jobs=0 with a submitit launcher: it is the number of jobs, each one worker of the "
            "study; give at least 1 (e.g. hydra.sweeper.n_jobs=8)",
        ),
        ({"launcher": SLURM, "n_jobs": -1}, "hydra.sweeper.n_jobs=-1 with a submitit launcher"),
    ],
)
def test_a_submitit_launcher_is_checked_before_any_job(change, message, tmp_path):
    from fer_exp.sweeps.settings import check_settings

    with pytest.raises(ConfigError) as caught:
        check_settings({**GOOD, **change}, "best_val_accuracy", tmp_path)
    assert message in str(caught.value), str(caught.value)
    check_settings({**GOOD, "launcher": LOCAL}, "best_val_accuracy", tmp_path)  # one machine: sqlite is fine
    check_settings({**GOOD, "launcher": BASIC, "n_jobs": 1}, "best_val_accuracy", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_slurm_without_sbatch_on_this_machine_is_one_error(tmp_path, monkeypatch):
    import shutil

    from fer_exp.sweeps.settings import check_settings

    monkeypatch.setattr(shutil, "which", lambda name: None)
    postgres = {**GOOD, "launcher": SLURM, "storage": "postgresql://u@127.0.0.1:9/optuna"}
    with pytest.raises(ConfigError, match="hydra/launcher=slurm: no sbatch on this machine's PATH; run the command"):
        check_settings(postgres, "best_val_accuracy", tmp_path)
    check_settings({**GOOD, "launcher": LOCAL}, "best_val_accuracy", tmp_path)  # local jobs need no Slurm


def test_the_command_line_with_slurm_and_sqlite_is_one_error_before_anything(tmp_path, monkeypatch):
    from fer_exp.cli.run import preflight

    monkeypatch.chdir(tmp_path)
    found = preflight(["-m", "hparams_search=optuna", "hydra/launcher=slurm", "hydra.sweeper.n_jobs=8"])
    assert found is not None and "with hydra/launcher=slurm" in found and "PostgreSQL" in found, found
    assert list(tmp_path.iterdir()) == []


def _launch(tmp_path, launcher: str, n_jobs: int):
    from hydra.core.singleton import Singleton

    from fer_exp.sweeps.space import parse_space
    from fer_exp.sweeps.worker import Launch

    return Launch(
        hydra_context=None,
        config=OmegaConf.create({"hydra": {"launcher": {"_target_": launcher}}}),
        task_function=None,
        singleton_state=Singleton.get_state(),
        settings={**GOOD, "n_jobs": n_jobs},
        space=parse_space({"augmentation.zoom_range": "interval(0.0, 0.3)"}),
        cwd=tmp_path,
        optimized_metric="best_val_accuracy",
        tracking_uri=None,
    )


@pytest.mark.parametrize(
    "launcher, n_jobs, how",
    [
        (SLURM, 8, "submitit slurm"),
        (LOCAL, 1, "submitit local"),
        (BASIC, 2, "processes"),
        ("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", 2, "processes"),
        (BASIC, 1, "in this process"),
    ],
)
def test_only_submitit_launchers_run_the_workers_as_jobs(launcher, n_jobs, how, tmp_path, monkeypatch):
    from fer_exp.sweeps import worker

    used = []

    class Process:  # spawned workers, not started
        def __init__(self, target, args, name):
            used.append("processes")
            self.exitcode = 0

        def start(self):
            pass

        def join(self, timeout=None):
            pass

    monkeypatch.setattr(worker.multiprocessing, "get_context", lambda method: type("Ctx", (), {"Process": Process}))
    monkeypatch.setattr(worker, "submit_workers", lambda launch, cluster, *_: used.append(f"submitit {cluster}") or [0])
    monkeypatch.setattr(worker, "work", lambda launch, i: used.append("in this process"))
    worker.run_workers(_launch(tmp_path, launcher, n_jobs))
    assert set(used) == {how}


def test_a_slurm_workers_threads_are_its_jobs_cpus_unless_set(monkeypatch):
    from fer_exp.sweeps.submit import worker_threads
    from fer_exp.sweeps.worker import give_threads

    assert worker_threads("slurm", 8, {}) == 8
    assert worker_threads("slurm", 8, {"SLURM_CPUS_PER_TASK": "6"}) == 6  # what Slurm granted
    assert worker_threads("slurm", None, {}) == len(os.sched_getaffinity(0))
    assert worker_threads("local", 8, {"SLURM_CPUS_PER_TASK": "6"}) is None  # cores / n_jobs, as local workers
    cfg = _hydra_config(["hparams_search=optuna"])
    give_threads(cfg, 6)
    assert (cfg.threads.intra_op, cfg.threads.inter_op, cfg.data.threads) == (6, 1, 6)
    typed = _hydra_config(["hparams_search=optuna", "threads.intra_op=2", "data.threads=3"])
    give_threads(typed, 6)
    assert (typed.threads.intra_op, typed.threads.inter_op, typed.data.threads) == (2, 0, 3)
    shared = _hydra_config(["hparams_search=optuna"])
    give_threads(shared, None)
    assert (shared.threads.intra_op, shared.data.threads) == (0, None)


class _Job:
    def __init__(self, done=None):
        self.done_calls, self.cancelled, self._done = 0, False, done

    def done(self):
        self.done_calls += 1
        return self._done(self) if self._done else True

    def cancel(self, check=True):
        self.cancelled = True


def test_ctrl_c_while_waiting_cancels_every_job_and_is_raised_again(monkeypatch):
    from fer_exp.sweeps import submit

    def interrupted(job):
        raise KeyboardInterrupt

    monkeypatch.setattr(submit, "POLL_S", 0.01)
    jobs = [_Job(lambda job: job.done_calls > 2), _Job(interrupted)]
    with pytest.raises(KeyboardInterrupt):
        submit.wait_for(jobs, signal.default_int_handler)
    assert [j.cancelled for j in jobs] == [True, True]
    finished = [_Job(lambda job: job.done_calls > 2), _Job()]
    submit.wait_for(finished, signal.default_int_handler)  # returns once every job is done
    assert not any(j.cancelled for j in finished) and finished[0].done_calls == 3


def test_a_failed_job_is_one_warning_naming_its_worker_and_log(tmp_path, caplog):
    import submitit

    from fer_exp.sweeps.submit import outcome

    executor = submitit.AutoExecutor(folder=tmp_path / "%j", cluster="local")
    failed, ok = executor.submit(int, "postgresql://alice:s3cr3t@db/x"), executor.submit(int, "1")
    with caplog.at_level(logging.WARNING, logger="fer_exp.sweeps"):
        assert [outcome(3, failed), outcome(4, ok)] == [1, 0]
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        f"worker 3 (submitit job {failed.job_id}) stopped "
        "(ValueError: invalid literal for int() with base 10: 'postgresql://***@db/x'); "
        f"the others went on. Its log: {failed.paths.stderr}"
    ]


# --- slow: a real study, its two workers submitit jobs on this machine --------------------


@pytest.mark.slow
def test_a_study_runs_as_two_submitit_jobs_each_an_asynchronous_worker(tmp_path):
    import optuna

    (tmp_path / "study-marker").mkdir()
    storage = f"sqlite:///{tmp_path / 'study-marker' / 'optuna.db'}"
    proc = run_cli(
        [
            "-m",
            "hparams_search=optuna",
            "debug=fast",
            "hydra.sweeper.heartbeat_s=1",
            "hydra/launcher=submitit_local",
            "hydra.sweeper.storage=${oc.env:OPTUNA_STORAGE}",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=4",
        ],
        tmp_path,
        env={"OPTUNA_STORAGE": storage},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 worker job(s) submitted (local)" in proc.stdout + proc.stderr
    study = optuna.load_study(study_name="hparams_search", storage=storage)
    assert sorted((t.number, t.state.name) for t in study.trials) == [(n, "COMPLETE") for n in range(4)]
    _, runs = mlflow_runs(tmp_path / "mlflow.db", "hparams_search")
    trials = [r for r in runs if "fer_exp.trial_number" in r.data.tags]
    assert sorted(int(r.data.tags["fer_exp.trial_number"]) for r in trials) == [0, 1, 2, 3]
    for r in trials:
        assert (r.info.status, r.data.tags["fer_exp.trial_state"]) == ("FINISHED", "COMPLETE")
        assert "mlflow.parentRunId" in r.data.tags
        assert r.data.params["threads.intra_op"] == str(max(1, (os.cpu_count() or 1) // 2))  # shared cores
    assert len({r.data.tags["fer_exp.pid"] for r in trials}) == 2, "both workers ran trials"
    (sweep,) = tmp_path.glob("multirun/*/*")
    assert (sweep / "optimization_results.yaml").is_file()
    logs = sorted((sweep / ".submitit").glob("*/*_0_log.err"))  # submitit's folders, in the sweep folder
    assert len(logs) == 2
    workers = []
    for log in logs:  # each job says which worker it is, then runs trials
        said = log.read_text() + log.with_name(log.name.replace(".err", ".out")).read_text()
        line = next(line for line in said.splitlines() if ": submitit job " in line)
        assert line.endswith(f": submitit job {log.parent.name}, cores / n_jobs threads per run"), line
        workers.append(int(line.split(" - worker ")[1].split(":")[0]))
        assert "trial #" in said
    assert sorted(workers) == [0, 1]
    for path in (sweep / ".submitit").rglob("*"):  # the jobs resolved the storage URL themselves
        assert not path.is_file() or b"study-marker" not in path.read_bytes(), path
