"""Shared fixtures: a per-session synthetic dataset, CLI runner, MLflow reader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1 (sqlite backend, artifacts in a folder)."""

    def __init__(self, root: Path, port: int | None = None):
        self.root = root
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> MlflowServer:
        import time
        import urllib.request

        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--backend-store-uri",
                f"sqlite:///{self.root / 'server.db'}",
                "--artifacts-destination",
                str(self.root / "artifacts"),
                "--workers",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "server.log", "ab"),
            start_new_session=True,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, (self.root / "server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"mlflow server did not answer /health in {timeout} s")

    def stop(self) -> None:
        """Stop it by its PID (and its workers: it leads its own process group)."""
        import signal

        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture
def mlflow_server(tmp_path):
    server = MlflowServer(tmp_path / "mlflow-server").start()
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
