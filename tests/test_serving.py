"""``mlflow models serve`` of a run's logged model answers REST requests with the run's own
probabilities (slow: a run, then a server in a fresh process)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fer_exp.serving import rest
from tests.conftest import free_port
from tests.test_model_logging import own_predictions, tiny_run


@pytest.mark.slow
def test_served_model_answers_with_the_runs_probabilities(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the store's artifacts go to ./mlruns
    cfg, result = tiny_run(tmp_path, "data.pic_size=40", "augmentation.rescale=0.00392156862745098")
    expected, files, names = own_predictions(cfg, result.output_dir, 32)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with rest.ModelServer(f"runs:/{result.run_id}/model", free_port(), uri, tmp_path) as server:
        predictions = rest.invoke(server.url, files)
        one = rest.invoke(server.url, files[:1])
    got = rest.probabilities(predictions, names)
    assert np.abs(got - expected).max() <= 1e-5, np.abs(got - expected).max()
    assert rest.labels(predictions) == [names[i] for i in expected.argmax(1)]
    np.testing.assert_allclose(rest.probabilities(one, names), expected[:1], atol=1e-5)
    assert not os.path.exists(Path(tmp_path) / "serve.log") or "Traceback" not in (tmp_path / "serve.log").read_text()
