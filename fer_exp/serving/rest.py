"""Talking to a served fer_exp model over REST: the request body for some image files, the
probabilities out of the answer, and ``mlflow models serve`` started and stopped from Python
(the serving test and ``scripts/bench_serving.py`` use it).

A request is MLflow's ``dataframe_split`` JSON with one ``image`` column of base64 image files::

    {"dataframe_split": {"columns": ["image"], "data": [["iVBORw0KGgo..."], ...]}}

and the answer ``{"predictions": [{"label": "happy", "angry": 0.01, ...}, ...]}``.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from fer_exp.errors import UserError
from fer_exp.serving.pyfunc import IMAGE_COLUMN, LABEL_COLUMN


def payload(files: list[bytes]) -> dict:
    """The ``/invocations`` body for encoded image files (PNG, JPEG, ...)."""
    rows = [[base64.b64encode(f).decode("ascii")] for f in files]
    return {"dataframe_split": {"columns": [IMAGE_COLUMN], "data": rows}}


def invoke(url: str, files: list[bytes], timeout: float = 60) -> list[dict]:
    """POST the files to ``<url>/invocations``; the answer's predictions, one dict per image."""
    body = json.dumps(payload(files)).encode()
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read())["predictions"]


def probabilities(predictions: list[dict], class_names) -> np.ndarray:
    """(N, k) probabilities out of :func:`invoke`'s predictions, columns in ``class_names`` order."""
    return np.asarray([[p[c] for c in class_names] for p in predictions], dtype=np.float64)


def labels(predictions: list[dict]) -> list[str]:
    """The predicted class of each image."""
    return [p[LABEL_COLUMN] for p in predictions]


class ModelServer:
    """``mlflow models serve -m <model> --env-manager local`` on 127.0.0.1, as a context manager.

    Args:
        model_uri: ``runs:/<id>/model``, ``models:/NAME@alias`` or a model folder.
        port: a free port.
        tracking_uri: the store the URI is resolved in (passed as ``MLFLOW_TRACKING_URI``).
        cwd: where the server runs (its log goes to ``serve.log`` there).
    """

    def __init__(self, model_uri: str, port: int, tracking_uri: str | None = None, cwd: Path | None = None):
        self.model_uri, self.port, self.tracking_uri = model_uri, port, tracking_uri
        self.cwd = Path(cwd or Path.cwd())
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 180) -> ModelServer:
        """Start the server and wait until ``/ping`` answers."""
        env = dict(os.environ)
        if self.tracking_uri:
            env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", self.model_uri]
        command += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        self.log = self.cwd / "serve.log"
        with self.log.open("w") as out:
            # its own session: stop() ends the server and the workers it started, and nothing else
            self.proc = subprocess.Popen(
                command, cwd=self.cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise UserError(
                    f"mlflow models serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        self.stop()
        raise UserError(f"mlflow models serve did not answer within {timeout:.0f} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """End the server's process group (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
