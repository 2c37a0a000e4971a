"""What a user sees of fer_exp's runs in the MLflow UI: experiments tagged as model training, a
quiet store set-up, and (slow) a real headless Chromium showing a sweep's jobs nested under
their parent run in the runs table."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fer_exp.tracking.store import (
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING_KIND,
    get_or_create_experiment,
    open_client,
    runs_table_url,
)
from tests.conftest import MlflowServer, run_cli

CHROMIUM = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None
)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


SETUP_LOGGERS = ("mlflow.store.db.utils", "alembic")


@pytest.fixture(scope="module")
def setup_log(tmp_path_factory):
    """A new sqlite store opened with its set-up loggers at INFO (as in a Hydra run), one for the
    module (creating its schema is the slow part): the client, the records those loggers let
    through, and their levels after."""
    import mlflow  # noqa: F401  (importing it sets its own loggers' levels: set ours after)

    loggers = [logging.getLogger(name) for name in SETUP_LOGGERS]
    before = [logger.level for logger in loggers]
    handler = _Records()
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
    try:
        client = open_client(f"sqlite:///{tmp_path_factory.mktemp('ui-store') / 'mlflow.db'}")
        levels_after = [logger.level for logger in loggers]
    finally:
        for logger, level in zip(loggers, before):
            logger.removeHandler(handler)
            logger.setLevel(level)
    return client, handler.records, levels_after


@pytest.fixture
def client(setup_log):
    return setup_log[0]


def test_new_store_is_set_up_quietly(setup_log):
    """No "Creating initial MLflow database tables..." nor alembic's INFO lines; the loggers'
    levels are restored after."""
    _, records, levels_after = setup_log
    assert [f"{r.name}: {r.getMessage()}" for r in records if r.levelno < logging.WARNING] == []
    assert levels_after == [logging.INFO, logging.INFO]


def _kind(client, experiment_id: str) -> str | None:
    return client.get_experiment(experiment_id).tags.get(EXPERIMENT_KIND_TAG)


def test_new_experiment_is_tagged_model_training(client):
    experiment_id = get_or_create_experiment(client, "new")
    assert _kind(client, experiment_id) == MODEL_TRAINING_KIND


def test_existing_experiment_without_kind_gets_it(client):
    experiment_id = client.create_experiment("made-by-an-older-fer_exp")
    assert _kind(client, experiment_id) is None
    assert get_or_create_experiment(client, "made-by-an-older-fer_exp") == experiment_id
    assert _kind(client, experiment_id) == MODEL_TRAINING_KIND


def test_deleted_experiment_is_restored_and_tagged(client):
    experiment_id = client.create_experiment("deleted")
    client.delete_experiment(experiment_id)
    assert get_or_create_experiment(client, "deleted") == experiment_id
    experiment = client.get_experiment(experiment_id)
    assert (experiment.lifecycle_stage, experiment.tags.get(EXPERIMENT_KIND_TAG)) == ("active", MODEL_TRAINING_KIND)


def test_users_own_kind_is_kept(client):
    experiment_id = client.create_experiment("genai-by-choice", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    assert get_or_create_experiment(client, "genai-by-choice") == experiment_id
    assert _kind(client, experiment_id) == "genai_development"


# ------------------------------------------------------------------ the UI in a real browser


class DevTools:
    """Headless Chromium driven over the DevTools protocol (aiohttp's websocket, which MLflow
    already depends on): navigate, evaluate JavaScript, take a screenshot."""

    def __init__(self, ws):
        self._ws = ws
        self._id = 0

    async def call(self, method: str, **params) -> dict:
        self._id += 1
        await self._ws.send_json({"id": self._id, "method": method, "params": params})
        async for message in self._ws:
            reply = json.loads(message.data)
            if reply.get("id") == self._id:
                assert "error" not in reply, reply
                return reply["result"]
        raise ConnectionError("Chromium closed the DevTools connection")

    async def js(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = 60):
        """The expression's first truthy value; fails naming ``what`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.25)
        text = await self.js("document.body ? document.body.innerText.slice(0, 1500) : ''")
        raise AssertionError(f"{what} never appeared at {await self.js('location.href')}; the page shows:\n{text}")


def start_chromium(profile: Path) -> tuple[subprocess.Popen, str]:
    """Headless Chromium on a free DevTools port; returns it and its page's websocket URL."""
    import urllib.request

    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1400,900"]
        + [f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    port_file = profile / "DevToolsActivePort"  # Chromium writes the port it chose here
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (port_file.exists() and port_file.read_text().strip()):
        assert proc.poll() is None, f"{CHROMIUM} exited with {proc.returncode}"
        time.sleep(0.1)
    port = port_file.read_text().split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
        pages = [t for t in json.load(r) if t["type"] == "page"]
    return proc, pages[0]["webSocketDebuggerUrl"]


def stop_chromium(proc: subprocess.Popen) -> None:
    """Stop Chromium and its helper processes by its process group (it leads its own)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


# The rows of the runs table, in display order: run id, name, whether it has an expand button, and
# its name cell's indent (MLflow indents child runs under their parent).
ROWS_JS = """[...document.querySelectorAll('[role=gridcell][col-id*="Run Name"]')]
  .map(cell => [cell.closest('[role=row]'), cell])
  .sort(([a], [b]) => Number(a.getAttribute('row-index')) - Number(b.getAttribute('row-index')))
  .map(([row, cell]) => ({
    id: row.getAttribute('row-id'),
    name: (cell.querySelector('a[href*="/runs/"]') || {}).innerText,
    expandable: Boolean(cell.querySelector('button')),
    indent: parseFloat((cell.querySelector('div[style*="width"]') || {style: {}}).style.width) || 0,
  }))"""


async def look_at_sweep(ws_url: str, url: str, screenshot: Path) -> dict:
    """Open ``url``; the rows as first shown, then with the parent expanded, and where it landed."""
    import aiohttp

    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:
        page = DevTools(ws)
        await page.call("Page.navigate", url=url)
        await page.wait_for(f"{ROWS_JS}.length > 0 && /matching runs/.test(document.body.innerText)", "the runs table")
        seen = {"landed_on": await page.js("location.hash"), "collapsed": await page.js(ROWS_JS)}
        seen["expanded"] = seen["collapsed"]
        if seen["collapsed"][0]["expandable"]:
            await page.js("""document.querySelector('[role=gridcell][col-id*="Run Name"] button').click()""")
            rows = len(seen["collapsed"])
            seen["expanded"] = await page.wait_for(f"(r => r.length > {rows} && r)({ROWS_JS})", "the child runs")
        shot = await page.call("Page.captureScreenshot", format="png")
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        return seen


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)")
def test_ui_shows_a_sweep_as_nested_training_runs(tmp_path):
    pytest.importorskip("aiohttp", reason="aiohttp (an MLflow dependency) drives Chromium's DevTools")
    server_root = tmp_path / "mlflow-server"
    server_root.mkdir()
    store = f"sqlite:///{server_root / 'server.db'}"  # the sweep's store, then the server's
    proc = run_cli(["-m", "augmentation=none,seed", "debug=fast", f"tracking_uri={store}"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert "Creating initial MLflow database tables" not in output and "alembic" not in output, output[-3000:]

    client = open_client(store)
    experiment = client.get_experiment_by_name("fer_exp")
    assert experiment.tags.get(EXPERIMENT_KIND_TAG) == MODEL_TRAINING_KIND
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_id: r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId")}
    assert len(children) == 2

    server = MlflowServer(server_root).start()
    (tmp_path / "profile").mkdir()
    browser, ws_url = start_chromium(tmp_path / "profile")
    try:
        url = runs_table_url(server.uri, experiment.experiment_id)
        screenshot = tmp_path / "mlflow-ui.png"  # outside the repo; look at it when this fails
        seen = asyncio.run(look_at_sweep(ws_url, url, screenshot))
    finally:
        stop_chromium(browser)
        server.stop()

    # The runs table, not the GenAI overview (traces, tokens, latency) MLflow 3 opens on by default.
    assert seen["landed_on"].startswith(f"#/experiments/{experiment.experiment_id}/runs"), seen
    # First shown: the sweep's parent run alone, expandable; its jobs are folded under it.
    assert [(r["id"], r["name"], r["expandable"]) for r in seen["collapsed"]] == [
        (parent.info.run_id, parent.info.run_name, True)
    ], seen
    # Expanded: the jobs right under their parent, indented one level deeper.
    top, *jobs = seen["expanded"]
    assert top["id"] == parent.info.run_id, seen
    assert {r["id"]: r["name"] for r in jobs} == children, seen
    assert all(r["indent"] > top["indent"] for r in jobs), seen
    assert screenshot.stat().st_size > 0
