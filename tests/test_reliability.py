"""Fault injection with real processes: interrupts, kill -9, a tracking server that goes away,
concurrent writers, hostile configs."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import MlflowServer, artifact_paths, mlflow_runs, run_cli, start_run, wait_for_line

TRAIN = [
    "epochs=6",
    "limit_train_batches=15",
    "limit_val_batches=2",
    "preview_images=0",
    "callbacks.early_stopping.enabled=false",
    "schedule=cosine",
    "schedule.warmup_epochs=0",
]


def _checkpoint_dir(cwd: Path) -> Path:
    (state,) = cwd.glob("outputs/*/*/checkpoints/state.json")
    return state.parent


def _assert_resumed_to_completion(cwd: Path, run_id: str):
    client, runs = mlflow_runs(cwd / "mlflow.db")
    assert [r.info.run_id for r in runs] == [run_id], "resume must continue the same MLflow run"
    assert runs[0].info.status == "FINISHED"
    for key in ("loss", "val_accuracy", "learning_rate"):
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert sorted(steps) == [1, 2, 3, 4, 5, 6], (key, steps)  # each epoch exactly once
    # the cosine schedule went on from the restored optimizer step, not from scratch
    lr = [m.value for m in sorted(client.get_metric_history(run_id, "learning_rate"), key=lambda m: m.step)]
    assert all(a > b for a, b in zip(lr, lr[1:])), lr
    assert runs[0].data.metrics["epochs_run"] == 6
    assert "model/best.keras" in artifact_paths(client, run_id)


@pytest.mark.slow
def test_interrupt_then_resume(tmp_path):
    """Ctrl-C stops a fresh run, SIGTERM (a scheduler's stop) the resumed one; both resume."""
    proc = start_run(TRAIN, tmp_path)
    wait_for_line(proc, "Epoch 3/6")  # epochs 1-2 are complete and committed
    _stop_cleanly(proc, signal.SIGINT)
    client, runs = mlflow_runs(tmp_path / "mlflow.db")
    assert runs[0].info.status == "KILLED"
    ckpt = _checkpoint_dir(tmp_path)
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epochs_done"] >= 2
    assert (ckpt / state["last_checkpoint"]).exists() and (ckpt / "best.keras").exists()
    assert sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "loss")) == list(
        range(1, state["epochs_done"] + 1)
    )

    run_id = runs[0].info.run_id
    again = start_run([f"resume={run_id}"], tmp_path)  # a resumed run can be stopped and resumed too
    wait_for_line(again, f"resuming MLflow run {run_id}")
    wait_for_line(again, "Epoch 5/6")
    _stop_cleanly(again, signal.SIGTERM)
    assert [r.info.status for r in mlflow_runs(tmp_path / "mlflow.db")[1]] == ["KILLED"]

    resumed = run_cli([f"resume={run_id}"], tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"resuming MLflow run {run_id}" in resumed.stdout + resumed.stderr
    _assert_resumed_to_completion(tmp_path, run_id)


def _stop_cleanly(proc: subprocess.Popen, sig: int) -> None:
    """The signal ends the run with the shell's 128+N status and a hint, not a traceback."""
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, rest[-3000:]
    assert "Traceback" not in rest, rest[-3000:]
    assert "continue it with python -m fer_exp resume=" in rest, rest[-3000:]


@pytest.mark.slow
def test_resume_refuses_a_run_that_is_still_training(tmp_path):
    proc = start_run(TRAIN, tmp_path)
    try:
        wait_for_line(proc, "Epoch 2/6")
        second = run_cli([f"resume={_checkpoint_dir(tmp_path).parent}"], tmp_path)
        assert second.returncode != 0 and "still being trained by process" in second.stderr
    finally:
        proc.kill()


def test_unreachable_tracking_server_fails_before_training(tmp_path):
    from tests.conftest import free_port

    uri = f"http://user:hunter2@127.0.0.1:{free_port()}"
    proc = run_cli(["debug=fast", f"tracking_uri={uri}"], tmp_path, timeout=120)
    assert proc.returncode != 0
    assert "is unreachable" in proc.stderr and "http://***@127.0.0.1" in proc.stderr
    # Only Hydra's echo of the user's own command line may repeat it; fer_exp never prints it.
    ours = [line for line in (proc.stdout + proc.stderr).splitlines() if "Error executing job" not in line]
    assert not any("hunter2" in line for line in ours)
    assert "Epoch 1/" not in proc.stdout


def test_unreachable_server_can_fall_back_to_a_local_store(tmp_path, monkeypatch, caplog):
    """In-process (the CLI's part, exit codes and messages, is tested above)."""
    import logging

    from fer_exp.config import compose
    from fer_exp.runs import JobInfo, run
    from tests.conftest import free_port

    monkeypatch.chdir(tmp_path)  # the local store is ./mlflow.db
    cfg = compose(["debug=fast", f"tracking_uri=http://127.0.0.1:{free_port()}", "tracking_fallback=local"])
    with caplog.at_level(logging.WARNING):
        run(cfg, JobInfo(output_dir=tmp_path / "out"))
    assert "logging to sqlite:///" in caplog.text
    _, runs = mlflow_runs(tmp_path / "mlflow.db")
    assert [r.info.status for r in runs] == ["FINISHED"]


@pytest.mark.slow
def test_server_coming_back_mid_run_gets_the_journal_replayed_by_the_run(tmp_path):
    """No sync needed when the server returns while the run trains: the run itself replays
    what it journaled, in order, and every epoch lands exactly once."""
    server = MlflowServer(tmp_path / "server").start()
    longer = [o for o in TRAIN if not o.startswith(("epochs=", "limit_train_batches="))]
    train = [*longer, "epochs=40", "limit_train_batches=4", f"tracking_uri={server.uri}"]
    proc = start_run(train, tmp_path, env={"FER_EXP_TRACKING_RETRY_S": "1"})
    try:
        seen = wait_for_line(proc, "Epoch 3/40")
        server.stop()
        wait_for_line(proc, "Epoch 6/40", seen)
        assert any("training goes on" in line for line in seen), "".join(seen)[-3000:]
        server.start()
        wait_for_line(proc, "MLflow is back: delivered", seen)
        training_after_replay = "".join(proc.communicate(timeout=600)[0])
    finally:
        proc.kill()
    try:
        assert proc.returncode == 0, training_after_replay[-3000:]
        assert "Epoch 40/40" in training_after_replay, "the replay came only at the end of the run"
        from mlflow.tracking import MlflowClient

        client = MlflowClient(server.uri)
        (run,) = client.search_runs([client.get_experiment_by_name("fer_exp").experiment_id])
        assert run.info.status == "FINISHED"
        for key in ("loss", "val_loss", "learning_rate"):
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == list(range(1, 41)), (key, steps)
        assert not list(tmp_path.glob("outputs/*/*/mlflow_journal.jsonl"))
    finally:
        server.stop()


def _image_folders(root: Path) -> Path:
    from PIL import Image

    for split in ("train", "validation"):
        for name in ("happy", "sad"):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(6):
                Image.fromarray(np.full((48, 48), 40 * i, np.uint8)).save(d / f"{i}.png")
    return root


# A wrong command line is one `error:` line, exit status 2. The first case goes through the real
# CLI; the others through preflight, the check the CLI makes before Hydra starts (in-process, no
# TensorFlow). Bad values by key and rule: tests/test_config.py; typos: tests/test_first_hour.py.
BAD_CONFIGS = [
    (["batch_sise=64"], "batch_sise is not a fer_exp setting: did you mean batch_size?"),
    (["augmentation=heavvy"], "augmentation=heavvy is not an option of augmentation: did you mean heavy?"),
    (["data.root=/data/faces"], "data.root is set but data=synthetic generates its faces: did you mean data=fer2013?"),
    (["data=fer2013"], "data.root='???': required: pass the path on the command line"),
    (["resume=/no/such/run"], "resume='/no/such/run' is neither a run folder nor an MLflow run id"),
]


@pytest.mark.parametrize("overrides,message", BAD_CONFIGS, ids=[o[0] for o, _ in BAD_CONFIGS])
def test_bad_config_gives_one_clear_message(workdir, monkeypatch, overrides, message):
    from fer_exp.cli.run import preflight

    monkeypatch.delenv("FER2013_ROOT", raising=False)
    if overrides != BAD_CONFIGS[0][0]:
        assert message in (preflight(overrides) or ""), preflight(overrides)
        return
    proc = run_cli(overrides, workdir)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: {message}"]  # no Hydra wrapper lines, no traceback
    assert not (workdir / "outputs").exists(), "a config error leaves no output folder"
    assert not (workdir / "mlflow.db").exists() or not mlflow_runs_or_none(workdir / "mlflow.db")


def mlflow_runs_or_none(db: Path):
    try:
        return mlflow_runs(db)[1]
    except AssertionError:
        return []


def test_paths_with_spaces_and_non_ascii_work(tmp_path, monkeypatch):
    from fer_exp.config import compose
    from fer_exp.runs import JobInfo, run

    work = tmp_path / "my experiments ü"
    work.mkdir()
    monkeypatch.chdir(work)
    data = _image_folders(tmp_path / "données faciales" / "fer 2013")
    # Hydra's override grammar wants a value with spaces quoted: data.root='/my data/fer 2013'
    cfg = compose(["debug=fast", "data=fer2013", f"data.root='{data}'", "batch_size=4", "model.filters=[8]"])
    run(cfg, JobInfo(output_dir=work / "outputs" / "run ü"))
    _, runs = mlflow_runs(work / "mlflow.db")
    assert runs[0].info.status == "FINISHED" and runs[0].data.params["data.root"] == str(data)


@pytest.mark.parametrize("pipeline", ["tfdata", "keras"])
@pytest.mark.parametrize("damage", ["corrupt.jpg", "truncated.png"])
def test_damaged_image_is_reported_by_path(tmp_path, pipeline, damage):
    from PIL import Image

    data = _image_folders(tmp_path / "imgs")
    bad = data / "train" / "sad" / damage
    if damage.endswith(".jpg"):
        bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    else:
        Image.fromarray(np.full((48, 48), 9, np.uint8)).save(bad)
        bad.write_bytes(bad.read_bytes()[:60])
    proc = run_cli(
        [
            "debug=fast",
            "data=fer2013",
            f"data.root={data}",
            "batch_size=4",
            f"data.pipeline={pipeline}",
            f"data.cache_dir={tmp_path / 'cache'}",
        ],
        tmp_path,
    )
    assert proc.returncode != 0
    assert f"cannot read image {bad}" in proc.stderr


def test_two_runs_claiming_one_output_folder_get_their_own(tmp_path):
    """Two runs started in the same second with the same folder name never share a folder."""
    import os

    from fer_exp.runs.folder import CLAIM, claim_output_dir

    first = claim_output_dir(tmp_path / "out")
    second = claim_output_dir(tmp_path / "out")
    assert first == tmp_path / "out" and second.parent == first
    assert (second / CLAIM).read_text().split()[0] == str(os.getpid())
