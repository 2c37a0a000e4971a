"""Tracker: journaling while the store is down, delivery in order when it is back; redaction."""

from __future__ import annotations

import pytest
import requests
from omegaconf import OmegaConf

from fer_exp.tracking import Tracker, flatten, journal, tracker
from fer_exp.tracking.redact import redact_text, redact_tree, secret_keys


class FlakyClient:
    """Records calls; raises a connection error while ``down``."""

    def __init__(self):
        self.down = False
        self.calls = []

    def _maybe_fail(self):
        if self.down:
            raise requests.exceptions.ConnectionError("Connection refused")

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        self._maybe_fail()
        self.calls.append(("batch", [(m.key, m.step) for m in metrics], [p.key for p in params]))

    def log_artifact(self, run_id, path, artifact_path=None):
        self._maybe_fail()
        self.calls.append(("artifact", path))

    def set_terminated(self, run_id, status):
        self._maybe_fail()
        self.calls.append(("end", status))


def test_calls_are_journaled_while_down_and_delivered_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(tracker, "RETRY_SECONDS", 0.0)
    client = FlakyClient()
    t = Tracker(client, "run1", "http://store", journal_dir=tmp_path)
    t.log_metrics({"loss": 1.0}, step=1)
    client.down = True
    t.log_metrics({"loss": 0.9}, step=2)  # goes to the journal, training goes on
    t.log_params({"a": 1})
    (tmp_path / "f.txt").write_text("x")
    t.log_artifact(tmp_path / "f.txt", "files")
    assert t.pending() == 3 and len(client.calls) == 1
    client.down = False
    t.log_metrics({"loss": 0.8}, step=3)  # the store answers: backlog first, then this
    t.end("FINISHED")
    assert [c[0] for c in client.calls] == ["batch", "batch", "batch", "artifact", "batch", "end"]
    assert [c[1] for c in client.calls if c[0] == "batch" and c[1]] == [[("loss", 1)], [("loss", 2)], [("loss", 3)]]
    assert t.pending() == 0 and not (tmp_path / journal.JOURNAL).exists()


def test_end_while_down_keeps_everything_for_sync(tmp_path, caplog):
    client = FlakyClient()
    t = Tracker(client, "run1", "http://u:p@store", journal_dir=tmp_path)
    client.down = True
    t.log_metrics({"loss": 1.0}, step=1)
    t.end("FINISHED")
    assert t.pending() == 2
    assert "python -m fer_exp.sync" in caplog.text and "u:p@" not in caplog.text
    client.down = False
    assert t.flush(force=True) and [c[0] for c in client.calls] == ["batch", "end"]


def test_rejected_request_is_not_swallowed(tmp_path):
    class Rejecting(FlakyClient):
        def log_batch(self, *args, **kwargs):
            raise ValueError("INVALID_PARAMETER_VALUE: param changed")

    t = Tracker(Rejecting(), "run1", "http://store", journal_dir=tmp_path)
    with pytest.raises(ValueError):
        t.log_params({"a": 1})


def test_flatten_batches_respect_mlflow_limits(tmp_path):
    client = FlakyClient()
    t = Tracker(client, "run1", "sqlite://")
    t.log_params({f"p{i}": "x" * 7000 for i in range(250)})
    assert [len(c[2]) for c in client.calls] == [100, 100, 50]
    assert flatten({"a": {"b": [1, 2]}}) == {"a.b": "[1, 2]"}


def test_secrets_are_redacted():
    raw = OmegaConf.create(
        {
            "tracking_uri": "https://bob:pw@mlflow.example/x?access_token=abc",
            "data": {"root": "/data", "token": "${oc.env:HF_TOKEN,zzz}"},
            "optimizer": {"api_key": "k", "lr": 1},
            # an ordinary key is hidden when it reads a secret-named variable, not any variable
            "run_name": "${oc.env:MY_API_TOKEN,zzz}",
            "experiment_name": "${oc.env:USER,zzz}",
        }
    )
    masked = secret_keys(raw)
    assert masked == {"data.token", "optimizer.api_key", "run_name"}
    tree = redact_tree(OmegaConf.to_container(raw, resolve=True), masked)
    assert tree["tracking_uri"] == "https://***@mlflow.example/x?access_token=***"
    assert tree["data"] == {"root": "/data", "token": "***"} and tree["optimizer"]["lr"] == 1
    assert redact_text("sqlite:////tmp/a b/mlflow.db") == "sqlite:////tmp/a b/mlflow.db"


def test_hydra_escaped_overrides_are_redacted():
    assert redact_text(r"tracking_uri=http\://alice\:pw@127.0.0.1\:5000") == r"tracking_uri=http\://***@127.0.0.1\:5000"


def test_every_log_record_is_redacted_whoever_logs_it(caplog):
    import logging

    from fer_exp.tracking.redact import redact_log_records

    redact_log_records()
    redact_log_records()  # idempotent: one factory, not two stacked
    with caplog.at_level(logging.INFO):
        logging.getLogger("urllib3.connectionpool").warning("Retrying %s", "http://bob:hunter2@h:1/?api_key=k")
        logging.getLogger("HYDRA").info("\t#0 : tracking_uri=http\\://bob\\:hunter2@h\\:1")
    assert "hunter2" not in caplog.text and "api_key=k" not in caplog.text
    assert "http://***@h:1/?api_key=***" in caplog.text


def test_an_experiment_named_from_a_secret_is_refused_without_showing_it(monkeypatch):
    from fer_exp.config import compose
    from fer_exp.errors import ConfigError

    monkeypatch.setenv("MY_API_TOKEN", "tok3nV4lue")
    with pytest.raises(ConfigError, match=r"experiment_name=exp-\$\{oc.env:MY_API_TOKEN\} reads a secret") as err:
        compose(["experiment_name=exp-${oc.env:MY_API_TOKEN}"])
    assert "tok3nV4lue" not in str(err.value)
    assert compose(["experiment_name=exp-${oc.env:HOME}"]).experiment_name.startswith("exp-/")  # not a secret


def test_the_store_lock_lives_in_the_cache_not_in_tmp(tmp_path, fer_cache):
    import hashlib
    import tempfile
    from pathlib import Path

    from fer_exp.tracking.store import open_client

    db = tmp_path / "mlflow.db"
    open_client(f"sqlite:///{db}")
    digest = hashlib.sha1(str(db.resolve()).encode()).hexdigest()[:16]
    assert (fer_cache / "locks" / f"mlflow-{digest}.lock").exists()
    assert not (Path(tempfile.gettempdir()) / f"fer_exp-mlflow-{digest}.lock").exists()


def test_what_others_print_is_redacted_too(monkeypatch):
    import io
    import sys

    from fer_exp.tracking.redact import redact_streams

    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    redact_streams()
    redact_streams()  # idempotent: one wrapper
    sys.stderr.write("Error executing job with overrides: ['tracking_uri=http://bob:hunter2@h:1']\n")
    assert out.getvalue() == "Error executing job with overrides: ['tracking_uri=http://***@h:1']\n"
    assert not sys.stderr.isatty()  # otherwise the stream it wraps


def test_a_failed_sweep_job_prints_no_secret(tmp_path):
    """Hydra writes the failed job's overrides and the error straight to stderr."""
    import subprocess
    import sys

    from tests.conftest import free_port

    uri = f"http://bob:hunter2PW@127.0.0.1:{free_port()}/?api_key=supersecretQ"
    proc = subprocess.run(
        [sys.executable, "-m", "fer_exp", "-m", f"tracking_uri='{uri}'", "debug=fast"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0 and "Error executing job with overrides" in proc.stderr
    printed = proc.stdout + proc.stderr + "".join(p.read_text() for p in tmp_path.rglob("*.log"))
    assert "hunter2PW" not in printed and "supersecretQ" not in printed
