"""Resume: one rule for how far a run got (trained -> evaluated -> finished), so that a resume
does only what is missing; and each metric step reaches MLflow once, whatever mix of store,
journal and checkpoint back-fill delivers it. Fast tests build run folders by hand and use an
in-memory store; the end-to-end reproductions (real processes, signals, a server) are slow."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from fer_exp.config import compose
from fer_exp.errors import UserError
from fer_exp.runs import JobInfo, recipe, run
from fer_exp.runs.folder import RunFolder, Stage
from fer_exp.tracking import tracker as tracker_module
from fer_exp.tracking.journal import Journal
from tests.conftest import artifact_paths, mlflow_runs, run_cli, start_run, wait_for_line

RUN_ID = "0123456789abcdef0123456789abcdef"


class MemoryStore:
    """An MLflow client over an in-memory run; raises a connection error while ``down``."""

    def __init__(self, status: str = "KILLED"):
        self.down = False
        self.status = status
        self.metrics: list[tuple[str, float, int]] = []  # (key, value, step), in arrival order
        self.artifacts: list[str] = []  # MLflow folders uploaded, in order

    def _check(self):
        if self.down:
            raise requests.exceptions.ConnectionError("Connection refused")

    def get_run(self, run_id):
        self._check()
        info = SimpleNamespace(status=self.status, experiment_id="1")
        return SimpleNamespace(info=info, data=SimpleNamespace(metrics={k: v for k, v, _ in self.metrics}))

    def get_metric_history(self, run_id, key):
        self._check()
        return [SimpleNamespace(key=k, value=v, step=s) for k, v, s in self.metrics if k == key]

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        self._check()
        self.metrics += [(m.key, m.value, m.step) for m in metrics]

    def log_artifact(self, run_id, path, artifact_path=None):
        self._check()
        self.artifacts.append(artifact_path)

    log_artifacts = log_artifact

    def update_run(self, run_id, status):
        self._check()
        self.status = status

    def set_terminated(self, run_id, status):
        self._check()
        self.status = status

    def steps(self, key: str) -> list[int]:
        return [s for k, _, s in self.metrics if k == key]


def _history(epochs: int) -> dict[str, list[float]]:
    return {"loss": [1.0 / e for e in range(1, epochs + 1)], "val_accuracy": [0.1 * e for e in range(1, epochs + 1)]}


def _run_folder(root: Path, epochs_done: int, epochs: int = 5, **state) -> RunFolder:
    """A run folder as an interrupted run leaves it: run.json and checkpoints/state.json."""
    folder = RunFolder(root)
    root.mkdir(parents=True, exist_ok=True)
    cfg = compose([f"epochs={epochs}"])
    folder.write_info(RUN_ID, "http://store.invalid", cfg.to_tree())
    state = {
        "epochs_done": epochs_done,
        "last_checkpoint": f"last-{epochs_done:04d}.keras",
        "history": _history(epochs_done),
        **state,
    }
    (folder.checkpoints / "state.json").write_text(json.dumps(state))
    return folder


@pytest.fixture
def store(monkeypatch) -> MemoryStore:
    """The store every Tracker in this test opens."""
    memory = MemoryStore()
    monkeypatch.setattr(tracker_module, "open_client", lambda uri: memory)
    monkeypatch.setattr(tracker_module, "RETRY_SECONDS", 0.0)
    return memory


# ------------------------------------------------------------------ the rule


@pytest.mark.parametrize(
    "state,recorded,mlflow_status,expected",
    [
        ({"epochs_done": 2}, None, "KILLED", Stage.TRAINING),  # a run of the previous version, mid-training
        ({"epochs_done": 5}, None, "KILLED", Stage.TRAINED),  # all epochs done, killed in the evaluation
        ({"epochs_done": 2, "training_ended": True}, None, "KILLED", Stage.TRAINED),  # early stop / time budget
        ({"epochs_done": 2, "training_ended": False}, None, "RUNNING", Stage.TRAINING),
        ({"epochs_done": 2, "callbacks": {"early_stopping": {"stopped_epoch": 1}}}, None, "KILLED", Stage.TRAINED),
        ({"epochs_done": 5}, "evaluated", "KILLED", Stage.EVALUATED),  # killed in the upload
        ({"epochs_done": 5}, "evaluated", None, Stage.EVALUATED),  # the store is unreachable
        ({"epochs_done": 5}, "finished", "RUNNING", Stage.FINISHED),  # its end is still journaled
        ({"epochs_done": 5}, None, "FINISHED", Stage.FINISHED),  # finished by the previous version
    ],
)
def test_one_rule_says_how_far_a_run_got(tmp_path, state, recorded, mlflow_status, expected):
    folder = _run_folder(tmp_path / "run", **state)
    if recorded:
        (folder.root / "stage.json").write_text(json.dumps({"stage": recorded}))
    assert folder.stage(folder.read_state(), 5, mlflow_status) == expected


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"epochs_done": "3", "last_checkpoint": "x", "history": {}}'])
def test_a_damaged_state_json_is_one_clear_message(tmp_path, text):
    folder = _run_folder(tmp_path / "run", 3)
    (folder.checkpoints / "state.json").write_text(text)
    with pytest.raises(UserError) as err:
        recipe.resume_context(compose([f"resume={folder.root}"]), JobInfo(tmp_path / "unused"))
    message = str(err.value)
    assert str(folder.checkpoints / "state.json") in message and "is damaged" in message
    assert "start the run again" in message and "\n" not in message


# ------------------------------------------------------------------ each step once


def test_resume_replays_the_journal_first_and_back_fills_only_what_neither_holds(tmp_path, store):
    """Server down from epoch 2, killed after epoch 4 before MLflow heard of it: the store has
    epoch 1, the journal epochs 2-3, the checkpoint 1-4. Each reaches MLflow once, in order."""
    folder = _run_folder(tmp_path / "run", 4)
    store.metrics = [("loss", 1.0, 1), ("val_accuracy", 0.1, 1)]
    journal = Journal(folder.root)
    for step in (2, 3):
        journal.append("log_batch", {"metrics": [["loss", 1 / step, 0, step], ["val_accuracy", 0.1 * step, 0, step]]})
    tracker = tracker_module.Tracker.open("http://store.invalid", RUN_ID, folder.root)
    recipe._backfill_metrics(tracker, folder.read_state())
    tracker.log_metrics({"loss": 0.2}, step=5)  # the resumed run's next epoch
    assert store.steps("loss") == [1, 2, 3, 4, 5] and store.steps("val_accuracy") == [1, 2, 3, 4]
    assert not journal.path.exists()


def test_with_the_store_still_down_at_resume_the_journal_counts_as_delivered_later(tmp_path, store):
    folder = _run_folder(tmp_path / "run", 4)
    store.metrics = [("loss", 1.0, 1), ("val_accuracy", 0.1, 1)]
    Journal(folder.root).append("log_batch", {"metrics": [["loss", 0.5, 0, 2], ["val_accuracy", 0.2, 0, 2]]})
    store.down = True
    tracker = tracker_module.Tracker.open("http://store.invalid", RUN_ID, folder.root)
    assert tracker.status is None  # unknown: the stage rule then goes by the run folder alone
    tracker.reopen()
    recipe._backfill_metrics(tracker, folder.read_state())
    tracker.log_metrics({"loss": 0.2}, step=5)
    assert store.metrics == [("loss", 1.0, 1), ("val_accuracy", 0.1, 1)]  # nothing reached it yet
    store.down = False
    assert tracker.flush(force=True)
    assert store.steps("loss") == [1, 2, 3, 4, 5] and store.steps("val_accuracy") == [1, 2, 3, 4]
    assert store.status == "RUNNING"


def test_new_calls_queue_behind_a_pending_journal(tmp_path, store):
    Journal(tmp_path).append("log_batch", {"metrics": [["loss", 0.5, 0, 2]]})
    tracker = tracker_module.Tracker(store, RUN_ID, "http://store.invalid", tmp_path)  # as fer_exp.sync makes one
    tracker.log_metrics({"loss": 0.4}, step=3)
    assert store.steps("loss") == [2, 3]


def test_a_reopened_run_reads_its_status_after_its_journal_is_delivered(tmp_path, store):
    """A run of the previous version that ended while the store was away: its FINISHED is in
    the journal, and the stage rule must see it (else the resume would evaluate it again)."""
    folder = _run_folder(tmp_path / "run", 5)
    Journal(folder.root).append("set_terminated", {"status": "FINISHED"})
    tracker = tracker_module.Tracker.open("http://store.invalid", RUN_ID, folder.root)
    assert tracker.status == "FINISHED" and folder.stage(folder.read_state(), 5, tracker.status) == Stage.FINISHED


def test_final_metrics_logged_again_after_an_interrupt_are_not_repeated(tmp_path, store):
    tracker = tracker_module.Tracker(store, RUN_ID, "http://store.invalid", tmp_path)
    tracker.log_metrics_once({0: {"best_val_accuracy": 0.5, "epochs_run": 3}})
    tracker.log_metrics_once({0: {"best_val_accuracy": 0.5, "epochs_run": 3, "test_accuracy": 0.4}})
    assert sorted(store.metrics) == [("best_val_accuracy", 0.5, 0), ("epochs_run", 3, 0), ("test_accuracy", 0.4, 0)]


# ------------------------------------------------------------------ resume finishes a run


def _evaluated_folder(root: Path, uploaded: list[str]) -> RunFolder:
    """A run killed while uploading its results: evaluated, some artifacts sent."""
    folder = _run_folder(root, 3, epochs=3, training_ended=True)
    (folder.checkpoints / "best.keras").write_bytes(b"model")
    (folder.plots / "confusion_matrix.png").write_bytes(b"png")
    final = {"best_val_accuracy": 0.5, "val_macro_f1": 0.4, "best_epoch": 2, "epochs_run": 3, "train_time_s": 1.0}
    (folder.reports / "metrics.json").write_text(json.dumps(final))
    (folder.root / "stage.json").write_text(json.dumps({"stage": "evaluated", "uploaded": uploaded}))
    return folder


def test_a_run_killed_in_its_upload_uploads_what_is_missing_and_finishes(tmp_path, store):
    folder = _evaluated_folder(tmp_path / "run", ["plots", "reports"])
    store.metrics = [(k, v, s) for s in (1, 2, 3) for k, v in (("loss", 1 / s), ("val_accuracy", 0.1 * s))]
    store.metrics += [("best_val_accuracy", 0.5, 0)]
    result = run(compose([f"resume={folder.root}"]), JobInfo(tmp_path / "unused"))
    assert store.artifacts == ["predictions", "model"] and store.status == "FINISHED"
    assert store.steps("best_val_accuracy") == [0] and store.steps("loss") == [1, 2, 3]
    assert (result.best_val_accuracy, result.epochs_run) == (0.5, 3)
    assert json.loads((folder.root / "stage.json").read_text())["stage"] == "finished"
    with pytest.raises(UserError, match=r"is finished \(MLflow status FINISHED\): nothing to resume"):
        run(compose([f"resume={folder.root}"]), JobInfo(tmp_path / "unused"))
    assert store.artifacts == ["predictions", "model"] and store.status == "FINISHED"


def test_the_last_epochs_checkpoint_says_training_ended(tmp_path):
    """state.json commits "training ended" with the epoch that ended it (here early stopping,
    after 2 of 5 epochs), so that no interrupt can fall between the two."""
    import keras
    import numpy as np

    from fer_exp.training.callbacks import Checkpointer, ResumableEarlyStopping

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    stop = ResumableEarlyStopping(monitor="loss", mode="min", patience=1, min_delta=100.0)  # no epoch improves
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(json.loads((tmp_path / "state.json").read_text()))
    )
    checkpointer = Checkpointer(tmp_path, "loss", "min", {"early_stopping": stop})
    model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=5, callbacks=[stop, checkpointer, record], verbose=0)
    assert [(s["epochs_done"], s["training_ended"]) for s in seen] == [(1, False), (2, True)]


@pytest.mark.slow
def test_early_stopped_run_killed_in_its_evaluation_resumes_without_training(tmp_path, monkeypatch):
    """Real training (in-process, tiny): early stopping ends it after 2 of 4 epochs, then a
    signal lands in the final evaluation; the resume evaluates the best weights without
    training, a signal lands in its upload of the model; the next resume uploads only that."""
    from fer_exp.runs import steps
    from fer_exp.training import fit

    monkeypatch.chdir(tmp_path)  # the store is ./mlflow.db
    overrides = ["epochs=4", "limit_train_batches=1", "limit_val_batches=1", "preview_images=0", "batch_size=16"]
    overrides += ["callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=2"]  # stops at epoch 2
    real_evaluation, real_upload = steps.final_metrics, tracker_module.Tracker.log_artifact

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(steps, "final_metrics", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(compose(overrides), JobInfo(tmp_path / "out"))
    client, (first,) = mlflow_runs(tmp_path / "mlflow.db")
    run_id = first.info.run_id
    state = json.loads((tmp_path / "out" / "checkpoints" / "state.json").read_text())
    assert first.info.status == "KILLED" and (state["epochs_done"], state["training_ended"]) == (2, True)

    def upload_without_the_model(self, path, artifact_path=None):
        if artifact_path == "model":
            raise KeyboardInterrupt
        real_upload(self, path, artifact_path)

    monkeypatch.setattr(steps, "final_metrics", real_evaluation)
    monkeypatch.setattr(fit, "fit", lambda *args, **kwargs: pytest.fail("a run whose training ended trained again"))
    monkeypatch.setattr(tracker_module.Tracker, "log_artifact", upload_without_the_model)
    with pytest.raises(KeyboardInterrupt):
        run(compose([f"resume={run_id}"]), JobInfo(tmp_path / "unused"))
    assert "model/best.keras" not in artifact_paths(client, run_id)
    assert {"plots/confusion_matrix.png", "predictions/validation.npz"} <= set(artifact_paths(client, run_id))

    monkeypatch.setattr(tracker_module.Tracker, "log_artifact", real_upload)
    result = run(compose([f"resume={tmp_path / 'out'}"]), JobInfo(tmp_path / "unused"))
    (finished,) = mlflow_runs(tmp_path / "mlflow.db")[1]
    assert finished.info.status == "FINISHED" and result.epochs_run == 2
    assert "model/best.keras" in artifact_paths(client, run_id)
    assert sorted(m.step for m in client.get_metric_history(run_id, "loss")) == [1, 2]
    assert [m.step for m in client.get_metric_history(run_id, "best_val_accuracy")] == [0]


# ------------------------------------------------------------------ end to end (slow)

SMALL = ["epochs=3", "limit_train_batches=5", "limit_val_batches=8", "preview_images=0"]


def _run_dir(cwd: Path) -> Path:
    (state,) = cwd.glob("outputs/*/*/checkpoints/state.json")
    return state.parent.parent


@pytest.mark.slow
def test_sigterm_in_the_final_evaluation_then_resume_finishes_the_run(tmp_path):
    proc = start_run(SMALL, tmp_path)
    seen: list[str] = []
    for _ in range(3):
        wait_for_line(proc, "val_loss", seen)
    proc.send_signal(signal.SIGTERM)  # all epochs done: the final evaluation is running
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, "".join(seen) + rest
    client, (killed,) = mlflow_runs(tmp_path / "mlflow.db")
    assert killed.info.status == "KILLED" and "best_val_accuracy" not in killed.data.metrics

    resumed = run_cli([f"resume={_run_dir(tmp_path)}"], tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Epoch " not in resumed.stdout, "training had ended: the resume must not train"
    (run_,) = mlflow_runs(tmp_path / "mlflow.db")[1]
    run_id = run_.info.run_id
    assert run_.info.status == "FINISHED" and run_.data.metrics["epochs_run"] == 3
    assert {"model/best.keras", "plots/confusion_matrix.png"} <= set(artifact_paths(client, run_id))
    for key in ("loss", "val_loss"):
        assert sorted(m.step for m in client.get_metric_history(run_id, key)) == [1, 2, 3]
    assert [m.step for m in client.get_metric_history(run_id, "best_val_accuracy")] == [0]

    again = run_cli([f"resume={run_id}"], tmp_path)
    assert again.returncode != 0
    assert f"run {run_id} in " in again.stderr
    assert "is finished (MLflow status FINISHED): nothing to resume" in again.stderr


def test_a_run_moved_out_of_a_shared_folder_logs_to_its_own_file(tmp_path):
    """Two runs started in one hydra.run.dir: the one moved to a sub-folder stops writing the
    shared fer_exp.log (the other run uploads it) and writes, then uploads, its own."""
    import logging

    from fer_exp.runs.runlog import close_own_log, own_log_file

    shared_file = tmp_path / "fer_exp.log"
    shared = logging.FileHandler(shared_file)
    root = logging.getLogger()
    root.addHandler(shared)
    try:
        (tmp_path / "sub").mkdir()
        own = own_log_file(tmp_path / "sub", shared_file)
        logging.getLogger("fer_exp").warning("line of the moved run")
        close_own_log(own)
        logging.getLogger("fer_exp").warning("line after it")
        assert shared in root.handlers and own.name == "fer_exp.log" and own.parent.name == "sub"
        assert "line of the moved run" in own.read_text() and "line after it" not in own.read_text()
        assert "line of the moved run" not in shared_file.read_text() and "line after it" in shared_file.read_text()
    finally:
        root.removeHandler(shared)
        shared.close()


def test_run_json_holding_a_secret_is_its_owners_only(tmp_path):
    from fer_exp.runs.folder import RunFolder

    for private, mode in ((True, 0o600), (False, 0o644)):
        folder = RunFolder(tmp_path / str(private))
        folder.root.mkdir()
        folder.write_info("r1", "http://bob:pw@host", {"epochs": 1}, private=private)
        assert (folder.root / "run.json").stat().st_mode & 0o777 == mode & ~_umask()
        assert folder.read_info()["tracking_uri"] == "http://bob:pw@host"  # resume reconnects with it


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_checkpoint_that_would_run_code_is_refused_in_one_message(tmp_path):
    import keras

    from fer_exp.errors import UserError
    from fer_exp.training.fit import load_checkpoint

    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Dense(2)])
    model.save(tmp_path / "best.keras")
    with pytest.raises(UserError, match=r"best.keras holds code that loading would run \(a Lambda layer\)"):
        load_checkpoint(tmp_path / "best.keras")
