"""scripts/benchmark_table.py: each record carries what reproduces its row, and the page shows it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
A, B, C = "a" * 32, "b" * 32, "c" * 32


def _table(record: Path, out: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "scripts/benchmark_table.py", "--record", str(record), "--out", str(out), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out.read_text()


def _row(page: str, run_id: str) -> list[str]:
    """The main table's cells of one run, by column title."""
    lines = page.split("## Recipes")[1].splitlines()
    titles = [t.strip() for t in next(line for line in lines if line.startswith("| recipe")).strip("|").split("|")]
    (line,) = [line for line in lines if line.startswith("|") and f"`{run_id[:8]}`" in line]
    return dict(zip(titles, (c.strip() for c in line.strip("|").split("|"))))


def _single(run_id, recipe, acc, tta, epochs, seconds, **extra):
    return {
        "run_id": run_id,
        "section": "main",
        "recipe": recipe,
        "model": "small_cnn",
        "parameters": 1000,
        "augmentation": "light",
        "epochs": epochs,
        "train_time_s": seconds,
        "best_val_accuracy": acc,
        "val_accuracy_tta": tta,
        "tta_views": "flip + 2 px shifts",
        "val_macro_f1": 0.5,
        "val_f1_disgust": 0.4,
        "val_accuracy_leakfree": 0.6,
        "precision": "float32",
        "cpu": "cpu · 2 cores",
        "date": "2026-11-26",
        **extra,
    }


def test_page_gives_each_row_its_command_and_an_ensemble_both_accuracies(tmp_path):
    run = _single(
        A,
        "fer2013_small_cnn",
        0.66,
        0.67,
        30,
        3000.0,
        kind="run",
        experiment="fer2013",
        overrides="experiment=fer2013_small_cnn data.root=/data seed=3",
        config={"seed": 3},
        config_source="logged",
    )
    ensemble = {
        **_single(B, "ensemble of 2 × fer2013_small_cnn", 0.68, 0.69, 60, 6000.0),
        "kind": "ensemble",
        "experiment": "fer2013",
        "members": [A, C],
        "members_source": "logged",
        "tta": True,
        "tta_shift": 2,
        "config_source": "logged",
        "val_macro_f1_tta": 0.61,
    }
    old = {
        **_single(C, "ensemble of 3 × fer2013_ensemble", None, 0.695, 90, 9000.0),
        "kind": "ensemble",
        "experiment": "fer2013",
        "members": None,
        "tta": True,
        "tta_shift": 2,
        "val_macro_f1": None,
        "val_f1_disgust": None,
        "val_accuracy_leakfree": None,
        "val_f1_disgust_tta": 0.7123,
        "config_source": "reconstructed from the record",
    }
    record = tmp_path / "runs.json"
    record.write_text(json.dumps([run, ensemble, old]))
    page = _table(record, tmp_path / "b.md")

    # plain and TTA accuracy side by side, with the same meaning for a run and an ensemble
    assert (_row(page, A)["val acc"], _row(page, A)["val acc, TTA"]) == ("66.00 %", "67.00 %")
    assert (_row(page, B)["val acc"], _row(page, B)["val acc, TTA"]) == ("68.00 %", "69.00 %")
    assert (_row(page, C)["val acc"], _row(page, C)["val acc, TTA"]) == ("—", "69.50 %")
    assert _row(page, C)["leak-free val acc"] == "—"
    # each row's command, under the table: the run's own overrides, the ensemble's member ids
    howto = page.split("### How to reproduce each row")[1]
    assert (
        f"`{A[:8]}` fer2013_small_cnn: `python -m fer_exp experiment=fer2013_small_cnn data.root=/data seed=3`" in howto
    )
    assert f"`python -m fer_exp.ensemble {A} {C} --tta --tta-shift 2 --experiment fer2013`" in howto
    # an ensemble recorded without its members: no command, and why --top N is none
    old_notes = howto.split(f"`{C[:8]}`")[1]
    assert old_notes.startswith(" ensemble of 3 × fer2013_ensemble: no command reproduces it")
    assert "members not recorded: `--top N`" in old_notes and "not a reproduction" in old_notes
    assert "recorded before ensembles logged both" in old_notes and "F1 disgust 0.7123" in old_notes
    # the record is rewritten with each row's command in it
    saved = {r["run_id"]: r for r in json.loads(record.read_text())}
    assert saved[B]["reproduce"] == f"python -m fer_exp.ensemble {A} {C} --tta --tta-shift 2 --experiment fer2013"


def test_migrate_reconstructs_old_configs_and_finds_ensemble_members(tmp_path):
    # records as they were before the record kept configs: an ensemble's figures were all with TTA
    m1 = _single(A, "fer2013_ensemble_noweights", 0.685, 0.694, 34, 2468.25)
    m2 = _single(B, "fer2013_ensemble_noweights", 0.690, 0.699, 35, 2485.5)
    ens = {
        **_single(C, "ensemble of 2 × fer2013_ensemble_noweights", 0.6976, 0.6976, 69, 4953.75),
        "parameters": 2000,
        "val_macro_f1": 0.67,
    }
    stray = {**ens, "run_id": "d" * 32, "epochs": 70}  # adds up to no recorded runs
    record = tmp_path / "runs.json"
    record.write_text(json.dumps([m1, m2, ens, stray]))
    page = _table(record, tmp_path / "b.md", "--migrate")
    saved = {r["run_id"]: r for r in json.loads(record.read_text())}

    run = saved[A]
    assert (
        run["config_source"]
        == "reconstructed from experiment=fer2013_ensemble_noweights data.root=../shared/data/fer2013"
    )
    assert run["config"]["class_weight"] == "none" and run["config"]["tta_shift"] == 2
    assert run["config"]["seed"] is None and "seed" in run["config_unknown"]  # the sweep's seed is not recorded
    assert (
        run["reproduce"] == "python -m fer_exp experiment=fer2013_ensemble_noweights data.root=../shared/data/fer2013"
    )
    ens = saved[C]
    assert ens["best_val_accuracy"] is None and ens["val_accuracy_tta"] == 0.6976
    assert ens["val_macro_f1"] is None and ens["val_macro_f1_tta"] == 0.67
    assert ens["members"] == [A, B] and ens["members_source"].startswith("inferred")
    assert ens["reproduce"] == f"python -m fer_exp.ensemble {A} {B} --tta --tta-shift 2 --experiment fer2013"
    assert saved["d" * 32]["members"] is None and saved["d" * 32]["reproduce"] is None
    assert _row(page, C)["val acc"] == "—" and _row(page, C)["val acc, TTA"] == "69.76 %"
    # once is enough: a second pass changes nothing
    before = record.read_text()
    _table(record, tmp_path / "b.md", "--migrate")
    assert record.read_text() == before


def test_records_from_mlflow_keep_the_logged_config_and_the_members(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("bench", artifact_location=str(tmp_path / "artifacts"))

    def finished(tags, params, metrics, config=None):
        run = client.create_run(exp, tags=tags)
        for k, v in params.items():
            client.log_param(run.info.run_id, k, v)
        for k, v in metrics.items():
            client.log_metric(run.info.run_id, k, v)
        if config:
            client.log_text(run.info.run_id, config, "config/config.yaml")
        client.set_terminated(run.info.run_id)
        return run.info.run_id

    single = finished(
        {"overrides": "experiment=fer2013_small_cnn seed=3"},
        {"preset.experiment": "fer2013_small_cnn", "model.name": "small_cnn", "tta": "True"},
        {"best_val_accuracy": 0.6, "val_accuracy_tta": 0.61, "val_macro_f1_tta": 0.55},
        "seed: 3\nmodel:\n  name: small_cnn\n",
    )
    other = finished({"overrides": "(defaults)"}, {"model.name": "small_cnn"}, {"best_val_accuracy": 0.5})
    ensemble_params = {
        "ensemble.members": f"{single},{other}",
        "ensemble.tta": "True",
        "ensemble.tta_shift": "1",
        "preset.experiment": "ensemble of 2 × fer2013_small_cnn",
    }
    both = finished(
        {"fer_exp.kind": "ensemble"},
        ensemble_params,
        {"best_val_accuracy": 0.62, "val_accuracy_tta": 0.63, "val_macro_f1_tta": 0.58},
    )
    tta_only = finished({"fer_exp.kind": "ensemble"}, ensemble_params, {"best_val_accuracy": 0.64})

    record = tmp_path / "runs.json"
    page = _table(record, tmp_path / "b.md", "--tracking-uri", uri, "--experiment", "bench")
    saved = {r["run_id"]: r for r in json.loads(record.read_text())}
    assert saved[single]["config"] == {"seed": 3, "model": {"name": "small_cnn"}}
    assert saved[single]["config_source"] == "logged" and saved[single]["val_macro_f1_tta"] == 0.55
    assert saved[single]["reproduce"] == "python -m fer_exp experiment=fer2013_small_cnn seed=3"
    assert saved[other]["reproduce"] == "python -m fer_exp" and saved[other]["config"] is None
    assert saved[both]["members"] == [single, other] and saved[both]["tta_shift"] == 1
    assert saved[both]["config"]["ensemble"]["members"] == [single, other]
    assert (saved[both]["best_val_accuracy"], saved[both]["val_accuracy_tta"]) == (0.62, 0.63)
    assert (
        saved[both]["reproduce"]
        == f"python -m fer_exp.ensemble {single} {other} --tta --tta-shift 1 --experiment bench"
    )
    # an ensemble logged before ensembles logged both: its one accuracy is a TTA accuracy
    assert (saved[tta_only]["best_val_accuracy"], saved[tta_only]["val_accuracy_tta"]) == (None, 0.64)
    assert _row(page, tta_only)["val acc"] == "—"
