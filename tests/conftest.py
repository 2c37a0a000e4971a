"""Shared fixtures: a per-session synthetic dataset, CLI runner, MLflow reader, real servers
(MLflow, PostgreSQL: tests/servers.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# MlflowServer and free_port are imported from here by many tests
from tests.servers import MlflowServer, PostgresServer, free_port, postgres_bindir  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
# Images per class in the shared FER-2013 train split (as `python -m fer_exp.audit` counts them).
FER2013_TRAIN_COUNTS = {
    "angry": 3993,
    "disgust": 436,
    "fear": 4103,
    "happy": 7164,
    "neutral": 4982,
    "sad": 4938,
    "surprise": 3205,
}
SHARED_FER2013 = Path(os.environ.get("FER2013_ROOT", REPO.parent / "shared" / "data" / "fer2013"))


def pytest_xdist_auto_num_workers(config) -> int:
    """Workers for ``-n auto`` (pyproject's addopts): the default suite on up to 4 (each imports
    TensorFlow once, and its runs are small); the slow tests one at a time, in this process,
    since each starts servers, sweeps or runs of its own whose time limits assume the machine."""
    if (config.option.markexpr or "").strip() != "not slow":
        return 0
    return min(os.cpu_count() or 1, 4)


@pytest.fixture(scope="session", autouse=True)
def fer_cache(tmp_path_factory) -> Path:
    """Synthetic data is generated once per test session into a private cache."""
    cache = tmp_path_factory.mktemp("fer_cache")
    os.environ["FER_EXP_CACHE"] = str(cache)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["FER_EXP_PROGRESS"] = "0"  # one line per epoch in captured output
    return cache


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A fresh directory outside the repo, as a new user's working directory."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def run_cli(args: list[str], cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m fer_exp <args>`` in ``cwd``; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "fer_exp", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def mlflow_runs(db: Path, experiment: str = "fer_exp"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r} in {db}"
    return client, client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def artifact_paths(client, run_id: str, path: str | None = None) -> list[str]:
    out = []
    for item in client.list_artifacts(run_id, path):
        out.extend(artifact_paths(client, run_id, item.path) if item.is_dir else [item.path])
    return out


@pytest.fixture
def mlflow_server(tmp_path):
    """A real MLflow server on 127.0.0.1 (sqlite backend store), for one test."""
    server = MlflowServer(tmp_path / "mlflow-server").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session (databases ``optuna`` and ``mlflow``, a
    password-authenticated user: ``postgres.url("optuna")``); skips without PostgreSQL."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb, no initdb on PATH)")
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def mlflow_postgres_server(tmp_path, postgres):
    """A real MLflow server with its backend store on the session's PostgreSQL (proxied artifacts)."""
    server = MlflowServer(tmp_path / "mlflow-server", backend=postgres.url("mlflow")).start()
    yield server
    server.stop()


def start_run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """``python -m fer_exp <args>`` in the background, output as text lines."""
    return subprocess.Popen(
        [sys.executable, "-m", "fer_exp", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_for_line(proc: subprocess.Popen, needle: str, seen: list[str] | None = None) -> list[str]:
    """Read the run's output until a line containing ``needle``; returns the lines read."""
    seen = [] if seen is None else seen
    for line in proc.stdout:
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never appeared:\n" + "".join(seen)[-3000:])
