"""Pruning: the pruners a study's config names, and the Keras callback that reports each
epoch's validation metric to the trial and stops a pruned run after that epoch."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import optuna
import pytest

from fer_exp.errors import ConfigError
from fer_exp.sweeps import trial as sweep_trial
from fer_exp.sweeps.pruning import describe, make_pruner

optuna.logging.set_verbosity(optuna.logging.WARNING)
P = optuna.pruners


@pytest.mark.parametrize(
    ("cfg", "kind", "attrs"),
    [
        ({"name": "none"}, P.NopPruner, {}),
        ({"name": "median", "warmup_epochs": 3}, P.MedianPruner, {"_n_warmup_steps": 3}),
        (
            {"name": "successive_halving", "warmup_epochs": 2, "reduction_factor": 4, "monitor": "val_loss"},
            P.SuccessiveHalvingPruner,
            {"_min_resource": 2, "_reduction_factor": 4},
        ),
        # epochs are 1-based steps: warm-up 0 is the first epoch, the smallest resource Optuna takes
        (
            {"name": "successive_halving", "warmup_epochs": 0},
            P.SuccessiveHalvingPruner,
            {"_min_resource": 1},
        ),
        (
            {"name": "hyperband", "warmup_epochs": 2, "max_epochs": 9},
            P.HyperbandPruner,
            {"_max_resource": 9},
        ),
        # a knob of another pruner is ignored: pruner.name=none on a successive-halving config
        ({"name": "none", "reduction_factor": 3, "warmup_epochs": 1}, P.NopPruner, {}),
    ],
)
def test_each_pruner_is_built_with_the_warmup_and_its_knobs(cfg, kind, attrs):
    pruner = make_pruner(cfg)
    assert type(pruner) is kind
    assert {k: getattr(pruner, k) for k in attrs} == attrs


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"name": "successive_halvng"}, "successive_halvng is not a pruner: did you mean successive_halving?"),
        ({"name": "asha"}, "pruner.name=asha is not a pruner (pruners: hyperband, median, none, successive_halving)"),
        (
            {"name": "median", "warmup_epoch": 2},
            "warmup_epoch is not a pruner setting: did you mean pruner.warmup_epochs?",
        ),
        ({"name": "hyperband", "reduction_factor": 1}, "pruner.reduction_factor=1 must be at least 2"),
        ({"name": "median", "warmup_epochs": "two"}, "pruner.warmup_epochs='two' must be a whole number"),
        ({"name": "successive_halving", "bootstrap_count": -1}, "pruner.bootstrap_count=-1 must be at least 0"),
    ],
)
def test_bad_pruner_settings_are_one_clear_message(cfg, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_pruner(cfg)


@pytest.mark.parametrize(("bootstrap_count", "first_trial_epochs"), [(0, 9), (1, 2)])
def test_bootstrap_count_stops_the_first_trial_at_the_first_cut(bootstrap_count, first_trial_epochs):
    """Without it a study's first trial has no rival at any rung and trains to the end, and
    TPE then ranks it above every pruned trial however poor it is (docs/studies.md)."""
    cfg = {"name": "successive_halving", "warmup_epochs": 2, "reduction_factor": 3, "bootstrap_count": bootstrap_count}
    study = optuna.create_study(direction="maximize", pruner=make_pruner(cfg))
    trial, trained = study.ask(), 0
    for epoch in range(1, 10):
        trial.report(0.2, epoch)
        trained = epoch
        if trial.should_prune():
            break
    assert trained == first_trial_epochs


def test_describe_names_the_pruner_and_its_settings():
    assert describe({"name": "none", "warmup_epochs": 2}) == "none"
    assert describe({"name": "median", "warmup_epochs": 2}) == (
        "median(warmup_epochs=2, n_startup_trials=5, interval_epochs=1, report=best)"
    )


class Tags:
    """A tracker stand-in that keeps the tags it was given."""

    def __init__(self):
        self.tags = {}

    def set_tags(self, tags):
        self.tags.update(tags)


def _epochs(callback, values):
    """Feed per-epoch logs to the callback until it stops training; the epochs that ran."""
    callback.set_model(SimpleNamespace(stop_training=False))
    ran = 0
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {"loss": 1.0, "val_accuracy": value})
        ran += 1
        if callback.model.stop_training:
            break
    return ran


def test_the_callback_reports_every_epoch_and_stops_after_the_pruned_one():
    from fer_exp.training.pruning import OptunaPruning

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.5))
    active = sweep_trial.ActiveTrial(study.ask(), number=0, monitor="val_accuracy", report="last")
    tracker = Tags()
    assert _epochs(OptunaPruning(active, tracker), [0.7, 0.6, 0.4, 0.8, 0.9]) == 3
    assert active.trial.storage.get_trial(active.trial._trial_id).intermediate_values == {1: 0.7, 2: 0.6, 3: 0.4}
    assert active.pruned_epoch == 3
    assert tracker.tags == {"fer_exp.trial_state": "PRUNED", "fer_exp.pruned_epoch": 3}


@pytest.mark.parametrize(
    ("direction", "monitor", "values", "reported"),
    [
        ("maximize", "val_accuracy", [0.6, 0.4, 0.45, 0.7], {1: 0.6, 2: 0.6, 3: 0.6, 4: 0.7}),
        ("minimize", "val_loss", [0.9, 1.2, 0.8], {1: 0.9, 2: 0.9, 3: 0.8}),
    ],
)
def test_the_default_report_is_the_best_value_so_far_so_one_bad_epoch_is_not_cut(direction, monitor, values, reported):
    """The threshold would cut the second epoch's value; the best so far stays on the right side."""
    from fer_exp.training.pruning import OptunaPruning

    threshold = {"lower": 0.5} if direction == "maximize" else {"upper": 1.0}
    study = optuna.create_study(direction=direction, pruner=optuna.pruners.ThresholdPruner(**threshold))
    active = sweep_trial.ActiveTrial(study.ask(), number=0, monitor=monitor)

    def ran(logs):
        callback = OptunaPruning(active, Tags())
        callback.set_model(SimpleNamespace(stop_training=False))
        for epoch, value in enumerate(logs):
            callback.on_epoch_end(epoch, {monitor: value})
            if callback.model.stop_training:
                return epoch + 1
        return len(logs)

    assert ran(values) == len(values) and not active.pruned
    assert active.trial.storage.get_trial(active.trial._trial_id).intermediate_values == reported


def test_a_bad_report_setting_is_one_clear_message():
    with pytest.raises(ConfigError, match=re.escape("pruner.report=mean is not one of: best")):
        make_pruner({"name": "median", "report": "mean"})


def test_a_trial_the_pruner_keeps_trains_every_epoch():
    from fer_exp.training.pruning import OptunaPruning

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.5))
    active = sweep_trial.ActiveTrial(study.ask(), number=0, monitor="val_accuracy")
    assert _epochs(OptunaPruning(active, Tags()), [0.7, 0.6, 0.8]) == 3
    assert not active.pruned


def test_the_run_has_a_pruning_callback_only_inside_a_prunable_trial(tmp_path):
    from fer_exp.config import compose
    from fer_exp.training.callbacks import Checkpointer
    from fer_exp.training.fit import make_callbacks
    from fer_exp.training.pruning import OptunaPruning

    cfg = compose(["epochs=2"])
    tracker = SimpleNamespace(run_id="r")

    def kinds():
        callbacks, _ = make_callbacks(cfg, tmp_path, tracker, None, steps_per_epoch=1, trial=sweep_trial.current())
        return [type(c) for c in callbacks]

    assert OptunaPruning not in kinds()
    one = optuna.create_study(direction="maximize")
    with sweep_trial.active(sweep_trial.ActiveTrial(one.ask(), number=0)):
        order = kinds()
    # it decides before the checkpoint commits the epoch (and whether training ended with it)
    assert order.index(OptunaPruning) < order.index(Checkpointer)
    two = optuna.create_study(directions=["maximize", "minimize"])  # Optuna cannot prune these
    with sweep_trial.active(sweep_trial.ActiveTrial(two.ask(), number=0)):
        assert OptunaPruning not in kinds()


@pytest.mark.slow
def test_a_pruned_run_keeps_its_metrics_and_checkpoints_and_ends_finished(tmp_path, monkeypatch):
    """Real training (in-process, tiny) inside a trial whose pruner stops everything after the
    second epoch (warm-up 2): the run evaluates its best weights, ends FINISHED, tagged PRUNED."""
    from fer_exp.config import compose
    from fer_exp.runs import JobInfo, run
    from tests.conftest import artifact_paths, mlflow_runs

    monkeypatch.chdir(tmp_path)
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0, n_warmup_steps=2)
    )
    active = sweep_trial.ActiveTrial(study.ask(), number=0, monitor="val_accuracy")
    overrides = ["epochs=4", "limit_train_batches=1", "limit_val_batches=1", "preview_images=0", "batch_size=16"]
    with sweep_trial.active(active):
        result = run(compose(overrides), JobInfo(tmp_path / "out"))
    client, (only,) = mlflow_runs(tmp_path / "mlflow.db")
    state = json.loads((tmp_path / "out" / "checkpoints" / "state.json").read_text())
    assert (active.pruned_epoch, result.epochs_run) == (2, 2)
    assert (state["epochs_done"], state["training_ended"]) == (2, True)  # a resume does not train on
    assert only.info.status == "FINISHED" and only.data.tags["fer_exp.trial_state"] == "PRUNED"
    assert sorted(m.step for m in client.get_metric_history(only.info.run_id, "val_accuracy")) == [1, 2]
    assert only.data.metrics["epochs_run"] == 2 and "val_macro_f1" in only.data.metrics  # evaluated as usual
    assert (tmp_path / "out" / "checkpoints" / "best.keras").exists()
    assert "plots/confusion_matrix.png" in artifact_paths(client, only.info.run_id)


def test_the_fer2013_augmentation_study_composes_and_every_corner_of_its_space_is_valid(tmp_path):
    """experiment=fer2013_augmentation_study: fer_exp's sweeper with a pruner and a time budget,
    its settings pass the sweeper's pre-flight, and the space's highest values together make a
    valid run config (mixup + cutmix <= 1, the photometric pair tied)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from fer_exp.config import compose, config_dir
    from fer_exp.sweeps.settings import TARGET, check_settings

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = hydra_compose("config", ["experiment=fer2013_augmentation_study"], return_hydra_config=True)
    sweeper = OmegaConf.to_container(cfg.hydra.sweeper, resolve=True)
    assert sweeper["_target_"] == TARGET and cfg.hydra.mode.name == "MULTIRUN"
    assert sweeper["pruner"]["name"] == "successive_halving" and cfg.time_budget_min
    assert (cfg.data.source, sweeper["study_name"]) == ("directory", "fer2013_augmentation_study")
    check_settings(sweeper, cfg.optimized_metric, tmp_path)
    make_pruner(sweeper["pruner"])
    keys = {k.split(".", 1)[1] for k in sweeper["params"]}
    families = {"rotation_range", "horizontal_flip", "crop_prob", "erasing_prob", "mixup_prob", "cutmix_prob"}
    assert families | {"contrast_prob", "learning_rate"} <= keys
    highest = ["experiment=fer2013_augmentation_study", f"data.root={tmp_path}"]
    highest += [
        "augmentation.rotation_range=20",
        "augmentation.crop_prob=0.5",
        "augmentation.erasing_prob=0.5",
        "augmentation.mixup_prob=0.5",
        "augmentation.cutmix_prob=0.5",
        "augmentation.contrast_prob=0.5",
    ]
    run = compose(highest)
    assert run.augmentation.gamma_prob == 0.5 and run.augmentation.mixup_prob + run.augmentation.cutmix_prob == 1
