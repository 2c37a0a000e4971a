"""Shared fixtures: a per-session synthetic dataset, CLI runner, MLflow reader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_FER2013 = Path(os.environ.get("FER2013_ROOT", REPO.parent / "shared" / "data" / "fer2013"))


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
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
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
