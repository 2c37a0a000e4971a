"""The fault suite: one table of probes, each a row (stage, fault, expected outcome), run with
real processes (``python -m pytest tests/test_faults.py -m slow``).

A probe starts a short run with ``FER_EXP_FAULT`` naming a failpoint (:mod:`fer_exp.faults`),
so the fault strikes at exactly that stage; it checks what the run leaves behind (exit status,
the one-line message, the MLflow status, the epochs committed), then completes the run the way
docs/reliability.md says (``resume=``, or ``python -m fer_exp.sync`` once the server is back)
and checks the finished run: status FINISHED, every epoch's metrics exactly once, the final
metrics, the artifacts, no journal left. Beside the table: concurrent runs, and secrets planted
in the command line and the environment, looked for in every byte the runs wrote.

A probe that breaks fails with its id (``sigterm@final_evaluation``) and what it found.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import MlflowServer, artifact_paths

pytestmark = pytest.mark.slow

EPOCHS = 3
SHORT = [f"epochs={EPOCHS}", "limit_train_batches=3", "limit_val_batches=2", "preview_images=0", "model.filters=[8,16]"]
# Metrics of every epoch that the checkpoint holds too (so a back-fill can deliver them).
PER_EPOCH = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")
FINAL = ("best_val_accuracy", "val_macro_f1", "best_epoch", "epochs_run", "train_time_s")
ARTIFACTS = (
    "model/best.keras",
    "plots/confusion_matrix.png",
    "reports/metrics.json",
    "predictions/validation.npz",
    "config/config.yaml",
)
JOURNAL = "mlflow_journal.jsonl"


# ------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Stage:
    """A failpoint of the run and what a fault there leaves behind."""

    nth: int  # which pass of the failpoint: 3 batches an epoch, so mid_epoch@4 is epoch 2's first batch
    committed: int  # epochs checkpoints/state.json holds
    logged: int  # epochs MLflow has heard of
    evaluated: bool = False  # final metrics logged: the resume neither trains nor evaluates


STAGES = {
    "data_load": Stage(1, 0, 0),  # before the run folder and the MLflow run exist
    "epoch_start": Stage(2, 1, 1),
    "mid_epoch": Stage(4, 1, 1),
    "checkpoint_write": Stage(2, 2, 1),  # epoch 2 committed, MLflow not told yet: back-filled
    "final_evaluation": Stage(1, EPOCHS, EPOCHS),
    "artifact_upload": Stage(1, EPOCHS, EPOCHS, evaluated=True),  # plots uploaded, reports and model not yet
}


@dataclass(frozen=True)
class Fault:
    """What a probe does at the stage, and the run's state right after it."""

    action: str  # the failpoint's action (fer_exp.faults)
    status: str  # the MLflow status the run is left in (as the store knows it)
    exit: int  # the run's exit status (-9: killed)
    says: str | None  # a line of the run's output
    on_stop: tuple[str, ...] = ()  # sigstop faults: what the test does to the server at each stop
    also: str = ""  # a second failpoint rule
    then: str = "resume"  # how the run is completed: resume, sync, or nothing (it completed itself)


FAULTS = {
    "sigint": Fault("sigint", "KILLED", 128 + signal.SIGINT, "fer_exp: stopped by SIGINT"),
    "sigterm": Fault("sigterm", "KILLED", 128 + signal.SIGTERM, "fer_exp: stopped by SIGTERM"),
    "sigkill": Fault("sigkill", "RUNNING", -signal.SIGKILL, None),
    "raise": Fault("raise", "FAILED", 1, "InjectedFault"),
    # the tracking server goes away at the stage and is not back before the run ends
    "server_lost": Fault("sigstop", "RUNNING", 0, "python -m fer_exp.sync", on_stop=("stop",), then="sync"),
    # ... and is back when the run uploads its results: the run delivers its journal itself
    "server_lost_and_back": Fault(
        "sigstop", "FINISHED", 0, "MLflow is back: delivered", ("stop", "start"), "artifact_upload:sigstop", "nothing"
    ),
    # ... and the run is killed -9 after epoch 3's checkpoint, before MLflow heard of epoch 3
    "server_lost_then_sigkill": Fault(
        "sigstop", "RUNNING", -signal.SIGKILL, None, ("stop",), "checkpoint_write@3:sigkill"
    ),
}

TABLE = [
    ("data_load", "sigterm"),
    ("data_load", "sigkill"),
    ("epoch_start", "sigint"),
    ("mid_epoch", "sigterm"),
    ("mid_epoch", "sigkill"),
    ("mid_epoch", "raise"),
    ("checkpoint_write", "sigterm"),
    ("checkpoint_write", "sigkill"),
    ("final_evaluation", "sigterm"),
    ("final_evaluation", "sigkill"),
    ("final_evaluation", "raise"),
    ("artifact_upload", "sigint"),
    ("artifact_upload", "sigkill"),
    ("mid_epoch", "server_lost"),
    ("artifact_upload", "server_lost"),
    ("mid_epoch", "server_lost_and_back"),
    ("mid_epoch", "server_lost_then_sigkill"),
]

# Probes that break on a known bug out of this suite's reach, by id; strict: a fix turns the
# probe into a failure until its entry here is removed. None today.
KNOWN_BUGS: dict[str, str] = {}


def known(probe: str) -> list:
    """The strict xfail mark of a probe in :data:`KNOWN_BUGS`."""
    reason = KNOWN_BUGS.get(probe)
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


PROBES = [pytest.param(stage, fault, id=f"{fault}@{stage}", marks=known(f"{fault}@{stage}")) for stage, fault in TABLE]


# ------------------------------------------------------------------ the harness


class Job:
    """One ``python -m <module>`` process; its output goes to files (a full pipe would block a
    run the test is not reading, and the secrets probes grep these bytes too)."""

    def __init__(self, args: list[str], cwd: Path, logs: Path, name: str, env: dict | None = None, module="fer_exp"):
        logs.mkdir(parents=True, exist_ok=True)
        self.out, self.err = logs / f"{name}.out", logs / f"{name}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                cwd=cwd,
                stdout=out,
                stderr=err,
                env={**os.environ, **(env or {})},
            )

    @property
    def output(self) -> str:
        """stdout then stderr, as text."""
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def wait_stopped(self, timeout: float = 300) -> None:
        """Until the process stopped itself at a ``sigstop`` failpoint."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode} before reaching its sigstop failpoint")
            state = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state in ("T", "t"):
                return
            time.sleep(0.2)
        raise AssertionError(f"did not reach its sigstop failpoint in {timeout} s")

    def go_on(self) -> None:
        """Continue after a ``sigstop`` failpoint."""
        os.kill(self.proc.pid, signal.SIGCONT)

    def finish(self, timeout: float = 600) -> int:
        """Wait for the exit status."""
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """Kill it if it still lives (a probe that failed half-way)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def jobs():
    """Start jobs through this; whatever still runs when the test ends is killed."""
    started: list[Job] = []

    def start(*args, **kwargs) -> Job:
        job = Job(*args, **kwargs)
        started.append(job)
        return job

    yield start
    for job in started:
        job.kill()


class Check:
    """Assertions that name the probe: a broken probe says which stage and fault broke."""

    def __init__(self, probe: str):
        self.probe = probe

    def __call__(self, ok, what: str, job: Job | None = None) -> None:
        if not ok:
            tail = f"\n--- output of the run (tail) ---\n{job.output[-3000:]}" if job else ""
            pytest.fail(f"{self.probe}: {what}{tail}", pytrace=False)


def runs_in(uri: str):
    """The MLflow client of a store and the runs of experiment fer_exp in it (oldest first)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("fer_exp")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]) if exp else []
    return client, runs


def steps_of(client, run_id: str, key: str) -> list[int]:
    """The steps a metric was logged at, sorted, repeats kept."""
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def run_folders(cwd: Path) -> list[Path]:
    """The run folders (those holding a run.json) under ``cwd/outputs``."""
    return sorted(p.parent for p in (cwd / "outputs").rglob("run.json"))


def check_finished(check: Check, client, run_id: str, folder: Path, job: Job | None = None) -> None:
    """What a completed run holds: FINISHED, each epoch's metrics once, the final metrics once,
    the results uploaded, no journal left."""
    run = client.get_run(run_id)
    check(run.info.status == "FINISHED", f"MLflow status {run.info.status}, expected FINISHED", job)
    for key in PER_EPOCH:
        steps = steps_of(client, run_id, key)
        check(steps == list(range(1, EPOCHS + 1)), f"{key} logged at steps {steps}, expected each epoch once", job)
    for key in run.data.metrics:
        steps = steps_of(client, run_id, key)
        check(len(steps) == len(set(steps)), f"{key} logged twice at a step: {steps}", job)
    for key in FINAL:
        check(steps_of(client, run_id, key) == [0], f"final metric {key}: steps {steps_of(client, run_id, key)}", job)
    check(run.data.metrics["epochs_run"] == EPOCHS, f"epochs_run {run.data.metrics['epochs_run']}", job)
    missing = set(ARTIFACTS) - set(artifact_paths(client, run_id))
    check(not missing, f"artifacts missing: {sorted(missing)}", job)
    check(not (folder / JOURNAL).exists(), f"{folder / JOURNAL} is left", job)


@pytest.mark.parametrize("stage,fault", PROBES)
def test_probe(tmp_path, jobs, request, stage, fault):
    """A fault at a stage, what it leaves, and the completed run (see the table above)."""
    check, where, what = Check(f"{fault}@{stage}"), STAGES[stage], FAULTS[fault]
    cwd, logs = tmp_path / "work", tmp_path / "logs"
    cwd.mkdir()
    args, uri, server = list(SHORT), f"sqlite:///{cwd / 'mlflow.db'}", None
    if what.on_stop:
        server = MlflowServer(tmp_path / "server").start()
        request.addfinalizer(server.stop)
        args.append(f"tracking_uri={server.uri}")
        uri = server.uri
    rules = ",".join(r for r in (f"{stage}@{where.nth}:{what.action}", what.also) if r)
    env = {"FER_EXP_FAULT": rules}
    if "start" in what.on_stop:  # the run tries the server again within a second (else every 30 s)
        env["FER_EXP_TRACKING_RETRY_S"] = "1"
    job = jobs(args, cwd, logs, "run", env=env)
    for action in what.on_stop:
        job.wait_stopped()
        (server.stop if action == "stop" else server.start)()
        job.go_on()

    code, out = job.finish(), job.output
    check(code == what.exit, f"exit status {code}, expected {what.exit}", job)
    check(what.says is None or what.says in out, f"{what.says!r} is not in its output", job)
    check(what.action == "raise" or "Traceback" not in out, "a traceback in its output", job)
    if stage == "data_load":  # nothing to resume: no run folder, no MLflow run
        check(not run_folders(cwd), f"a run folder was left: {run_folders(cwd)}", job)
        check(not (cwd / "mlflow.db").exists() or not runs_in(uri)[1], "an MLflow run was created", job)
        return
    folders = run_folders(cwd)
    check(len(folders) == 1, f"run folders {folders}, expected one", job)
    folder = folders[0]
    if server and server.proc.poll() is not None:
        server.start()  # back, same store
    client, runs = runs_in(uri)
    check(len(runs) == 1, f"{len(runs)} MLflow runs, expected one", job)
    run_id = runs[0].info.run_id
    check(runs[0].info.status == what.status, f"MLflow status {runs[0].info.status}, expected {what.status}", job)
    state = json.loads((folder / "checkpoints" / "state.json").read_text())
    if not what.on_stop:  # the failpoint alone decides how far the run got
        done, logged = state["epochs_done"], steps_of(client, run_id, "loss")
        check(done == where.committed, f"state.json has {done} epochs, expected {where.committed}", job)
        check(logged == list(range(1, where.logged + 1)), f"MLflow has loss at steps {logged}", job)
    if what.action == "raise":
        check("error/traceback.txt" in artifact_paths(client, run_id), "no error/traceback.txt artifact", job)
    handle = str(folder)
    if what.status == "KILLED":  # the message names the way on, and it works
        hint = re.search(r"continue it with python -m fer_exp resume=(\S+)", out)
        check(hint and hint[1] == run_id, "no `continue it with python -m fer_exp resume=<run id>` line", job)
        handle = hint[1]

    if what.then == "sync":
        check((folder / JOURNAL).exists(), "no journal kept while the server was away", job)
        done = jobs([str(folder)], cwd, logs, "sync", module="fer_exp.sync")
        check(done.finish() == 0, "python -m fer_exp.sync failed", done)
    elif what.then == "resume":
        done = jobs([f"resume={handle}"], cwd, logs, "resume")
        code, again = done.finish(), done.output
        check(code == 0, f"resume={handle} exit status {code}", done)
        check("Traceback" not in again, "a traceback in the resume's output", done)
        trains = state["epochs_done"] < EPOCHS and not state.get("training_ended")
        check(("Epoch " in again) == trains, f"the resume {'did not train' if trains else 'trained again'}", done)
        evaluated = "classification report" in again
        check(
            evaluated != where.evaluated, f"the resume {'evaluated again' if evaluated else 'did not evaluate'}", done
        )
    else:
        done = job
    check_finished(check, client, run_id, folder, done)


# ------------------------------------------------------------------ concurrent runs


def test_concurrent_runs_in_one_output_folder(tmp_path, jobs):
    """Two runs started at once with the same ``hydra.run.dir``: each its own folder, its own
    MLflow run, and a ``logs/fer_exp.log`` artifact with its own lines only."""
    check, cwd = Check("concurrent@one_output_folder"), tmp_path / "work"
    cwd.mkdir()
    same = cwd / "outputs" / "same"
    started = [jobs([*SHORT, f"hydra.run.dir={same}", f"seed={i}"], cwd, tmp_path / "logs", f"run{i}") for i in (1, 2)]
    for job in started:
        check(job.finish() == 0, f"exit status {job.proc.returncode}", job)
    folders = run_folders(cwd)
    check(len(folders) == 2, f"run folders {folders}, expected two")
    client, runs = runs_in(f"sqlite:///{cwd / 'mlflow.db'}")
    ids = {json.loads((f / "run.json").read_text())["run_id"]: f for f in folders}
    check(sorted(ids) == sorted(r.info.run_id for r in runs), f"run.json ids {sorted(ids)} are not the MLflow runs")
    for run in runs:
        me, (other,) = run.info.run_id, set(ids) - {run.info.run_id}
        check_finished(check, client, me, ids[me])
        check(run.data.tags["output_dir"] == str(ids[me]), f"run {me} tags output_dir {run.data.tags['output_dir']}")
        log_file = Path(client.download_artifacts(me, "logs/fer_exp.log", str(tmp_path / me)))
        text = log_file.read_text()
        check(me in text, f"run {me}: its logs/fer_exp.log lacks its own lines")
        check(other not in text, f"run {me}: its logs/fer_exp.log holds lines of run {other}:\n{text[-2000:]}")


def test_concurrent_runs_into_one_sqlite_store(tmp_path, jobs):
    """Three runs started at once in a fresh folder: one new ``mlflow.db``, three complete runs."""
    check, cwd = Check("concurrent@one_sqlite_store"), tmp_path / "work"
    cwd.mkdir()
    started = [jobs([*SHORT, f"seed={i}"], cwd, tmp_path / "logs", f"run{i}") for i in (1, 2, 3)]
    for job in started:
        check(job.finish() == 0, f"exit status {job.proc.returncode}", job)
    client, runs = runs_in(f"sqlite:///{cwd / 'mlflow.db'}")
    folders = {json.loads((f / "run.json").read_text())["run_id"]: f for f in run_folders(cwd)}
    check(len(runs) == 3 and set(folders) == {r.info.run_id for r in runs}, f"{len(runs)} runs, folders {folders}")
    for run in runs:
        check_finished(check, client, run.info.run_id, folders[run.info.run_id])


# ------------------------------------------------------------------ secrets

SECRETS = {
    "password": "s3cretPw0rd7319",  # tracking_uri=http://alice:<password>@host
    "api_key": "key5ab8e0f3d2",  # tracking_uri=http://host/?api_key=<key>
    "token": "tok9fe1c2d4b6",  # run_name=${oc.env:MY_API_TOKEN}
}


@pytest.fixture(scope="module")
def secret_runs(tmp_path_factory):
    """Runs with secrets planted in the tracking URI and in an env variable read by
    interpolation into an ordinary key; every byte they wrote, by where it went."""
    root = tmp_path_factory.mktemp("secrets")
    cwd, logs = root / "work", root / "logs"
    cwd.mkdir()
    server, started = MlflowServer(root / "server").start(), []
    try:
        host = f"127.0.0.1:{server.port}"
        planted = Job(
            [*SHORT, f"tracking_uri=http://alice:{SECRETS['password']}@{host}", "run_name=${oc.env:MY_API_TOKEN}"],
            cwd,
            logs,
            "run",
            env={"MY_API_TOKEN": SECRETS["token"]},
        )
        started.append(planted)
        code = planted.finish()
        # MLflow cannot reach a store through a URL with a query: the run stops at its start.
        # (Hydra's override grammar wants the value quoted: it holds a '='.)
        query = Job([*SHORT, f"tracking_uri='http://{host}/?api_key={SECRETS['api_key']}'"], cwd, logs, "query")
        started.append(query)
        query_code = query.finish()
    finally:
        for job in started:
            job.kill()
        server.stop()
    assert code == 0, planted.output[-3000:]
    assert query_code == 2 and "is unreachable" in query.output, query.output
    return {"mlflow": [root / "server" / "server.db", root / "server" / "artifacts"], "console": [logs], "work": [cwd]}


def kept_as_typed(path: Path) -> bool:
    """The two files docs/reliability.md#secrets keeps secrets in on purpose (resume must
    reconnect): the run folder's run.json and Hydra's copies of the command line."""
    return path.name == "run.json" or (".hydra" in path.parts and path.suffix == ".yaml")


# mlflow: the store and its artifacts; console: stdout and stderr; run_folder: every file the
# runs wrote in their launch folder (outputs/, .hydra/) but the two kept_as_typed, which must
# be readable by their owner only.
WHERE = ("mlflow", "console", "run_folder", "kept_as_typed")
SECRET_PROBES = [
    pytest.param(secret, where, id=f"{secret}@{where}", marks=known(f"{secret}@{where}"))
    for secret in SECRETS
    for where in WHERE
]


@pytest.mark.parametrize("secret,where", SECRET_PROBES)
def test_planted_secret(secret_runs, secret, where):
    """Every byte written there, searched for the planted value; a hit names the file."""
    value = SECRETS[secret].encode()
    files = [
        p
        for top in secret_runs["work" if where in ("run_folder", "kept_as_typed") else where]
        for p in ([top] if top.is_file() else sorted(top.rglob("*")))
        if p.is_file()
    ]
    if where == "kept_as_typed":
        hits = [
            f"{p} (mode {p.stat().st_mode & 0o777:o})" for p in files if kept_as_typed(p) and value in p.read_bytes()
        ]
        hits = [hit for hit in hits if not hit.endswith("(mode 600)")]
    else:
        hits = [str(p) for p in files if value in p.read_bytes() and not (where == "run_folder" and kept_as_typed(p))]
    if hits:
        pytest.fail(f"secret {secret}@{where}: the planted {secret} is in\n  " + "\n  ".join(hits), pytrace=False)
