"""One study on many machines, for real on one machine: a PostgreSQL server holds the Optuna
study and the MLflow server's backend store (proxied artifacts), and two sweep commands started
side by side in two folders are the two machines (``python -m pytest tests/test_many_machines.py
-m slow``; skips without PostgreSQL, which .ci/run installs).

Machine B's process group is killed with SIGKILL in the middle of a trial, as a machine that
dies; machine A goes on, and the same command is run again on B. The lost trial is marked FAIL
(Optuna's heartbeat: by whichever worker asks for a trial next once it is stale) and its MLflow
run KILLED, and the study ends complete: every trial in both stores exactly once, with the same
outcome.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.servers import free_port

pytestmark = pytest.mark.slow

N_TRIALS = 5
HEARTBEAT_S = 2  # a silent worker's trial is stale after 2 x this (the sweeper's grace period)
STUDY = "two_machines"
EXPERIMENT = "hparams_search"  # hparams_search=optuna's experiment_name


def _sweep_args(tracking_uri: str) -> list[str]:
    """The command each machine runs; the storage URL (with its password) comes from the environment."""
    return [
        "-m",
        "hparams_search=optuna",
        "debug=fast",
        "preview_images=0",
        "hydra.sweeper.storage=${oc.env:OPTUNA_STORAGE}",
        f"hydra.sweeper.study_name={STUDY}",
        f"hydra.sweeper.n_trials={N_TRIALS}",
        "hydra.sweeper.n_jobs=1",
        f"hydra.sweeper.heartbeat_s={HEARTBEAT_S}",
        f"tracking_uri={tracking_uri}",
    ]


def _start(args: list[str], machine: Path, env: dict[str, str]) -> subprocess.Popen:
    """A sweep command in ``machine``'s folder, leading its own process group (a machine to
    kill whole); its output goes to ``machine/sweep.log`` (two pipes nobody reads would fill up)."""
    machine.mkdir()
    with open(machine / "sweep.log", "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "fer_exp", *args],
            cwd=machine,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )


def _stopped_in_group(pgid: int) -> bool:
    """Whether a process of the group is stopped (a ``sigstop`` failpoint struck in it)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process has just ended
            continue
        if fields[0] == "T" and int(fields[2]) == pgid:
            return True
    return False


def _wait_until_stopped(proc: subprocess.Popen, machine: Path, timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while not _stopped_in_group(proc.pid):
        log = (machine / "sweep.log").read_text()
        assert proc.poll() is None, f"machine B ended ({proc.returncode}) before its trial stopped:\n{log[-3000:]}"
        assert time.monotonic() < deadline, f"machine B's trial never reached mid-epoch:\n{log[-3000:]}"
        time.sleep(0.2)


def test_one_study_on_two_machines_loses_nothing_when_one_dies(tmp_path, postgres, mlflow_postgres_server):
    import optuna
    from mlflow.tracking import MlflowClient

    env = {"OPTUNA_STORAGE": postgres.url("optuna")}
    args = _sweep_args(mlflow_postgres_server.uri)
    machine_a, machine_b = tmp_path / "machine_a", tmp_path / "machine_b"
    a = _start(args, machine_a, env)
    # B's second trial stops itself after its first batch (debug=fast: one batch an epoch); then
    # the machine "dies" whole
    b = _start(args, machine_b, {**env, "FER_EXP_FAULT": "mid_epoch@2:sigstop"})
    try:
        _wait_until_stopped(b, machine_b)
        os.killpg(b.pid, signal.SIGKILL)
        killed = time.monotonic()
        assert b.wait(timeout=30) == -signal.SIGKILL
        assert a.wait(timeout=240) == 0, (machine_a / "sweep.log").read_text()[-3000:]
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    # B is back once its lost trial is stale (no heartbeat for the grace period): the same command
    time.sleep(max(0.0, killed + 2 * HEARTBEAT_S + 1 - time.monotonic()))
    again = run_cli(args, machine_b, timeout=240, env=env)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]

    # Optuna: the study is complete, plus the one trial lost with machine B (a trial asked for
    # when others had taken the last places is told FAIL at once, tagged surplus: not a trial run)
    study = optuna.load_study(study_name=STUDY, storage=postgres.url("optuna"))
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("fer_exp.surplus")]
    states = Counter(t.state.name for t in trials)
    assert states["COMPLETE"] + states["PRUNED"] == N_TRIALS and states["FAIL"] == 1, states
    assert len(trials) == N_TRIALS + 1, states

    # MLflow: one child run per trial (nothing lost, nothing doubled), with the trial's outcome
    client = MlflowClient(mlflow_postgres_server.uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], f"tags.`fer_exp.study` = '{STUDY}'", max_results=1000)
    by_trial = {}
    for run in runs:
        if "fer_exp.trial_number" in run.data.tags:
            number = int(run.data.tags["fer_exp.trial_number"])
            assert number not in by_trial, f"trial {number} has two MLflow runs"
            by_trial[number] = run
    assert sorted(by_trial) == sorted(t.number for t in trials)
    machines = Counter()
    for t in trials:
        run = by_trial[t.number]
        assert run.data.tags.get("fer_exp.trial_state") == t.state.name, (t.number, run.data.tags)
        machines[Path(run.data.tags["output_dir"]).relative_to(tmp_path).parts[0], t.state.name] += 1
        if t.state.name == "FAIL":
            assert run.info.status in ("KILLED", "FAILED"), run.info
        elif t.state.name == "COMPLETE":
            assert run.info.status == "FINISHED", (t.number, run.info.status)
            assert run.data.metrics["best_val_accuracy"] == pytest.approx(t.value)
    # one study, one MLflow parent run: the machines and the rerun all file their trials under it
    parents = Counter(r.data.tags.get("mlflow.parentRunId") for r in by_trial.values())
    assert len(parents) == 1 and None not in parents, parents
    parent = client.get_run(next(iter(parents)))
    assert parent.data.tags.get("fer_exp.study") == STUDY and parent.info.status == "FINISHED", parent.info
    # the lost trial was B's; A and B (after its return) both completed trials of the one study
    assert machines["machine_b", "FAIL"] == 1 and machines["machine_a", "COMPLETE"] >= 1, machines
    assert machines["machine_b", "COMPLETE"] + machines["machine_b", "PRUNED"] >= 1, machines

    # the database password, read from the environment, is in nothing the machines wrote, logged
    # or uploaded (their folders, their output, MLflow's params, tags and artifacts)
    seen = [again.stdout, again.stderr, *(str(r.data.params) + str(r.data.tags) for r in runs)]
    for folder in (machine_a, machine_b, mlflow_postgres_server.root / "artifacts"):
        seen += [p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file() and p.stat().st_size < 2**20]
    secret = re.compile(rf".{{0,80}}{re.escape(postgres.password)}.{{0,20}}")
    leaks = [m.group(0) for text in seen for m in secret.finditer(text)]
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize("fault", ["wrong password", "wrong port"])
def test_a_storage_that_cannot_be_reached_is_one_error_before_any_trial(tmp_path, postgres, fault):
    url = postgres.url("optuna", password="wr0ng-pw")
    if fault == "wrong port":
        url = postgres.url("optuna").replace(f":{postgres.port}/", f":{free_port()}/")
    proc = run_cli(["-m", "hparams_search=optuna", "debug=fast", f"hydra.sweeper.storage={url}"], tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "hydra.sweeper.storage" in errors[0] and "***@127.0.0.1" in errors[0], errors[0]
    for secret in (postgres.password, "wr0ng-pw"):
        assert secret not in proc.stdout + proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing is written before the storage answers"
