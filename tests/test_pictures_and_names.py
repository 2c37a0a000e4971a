"""Pictures that do not mislead and names that read well (issue 17): the comparison's bars
start at zero, epoch axes tick whole epochs, the confusion matrix shows counts and says how it
is normalized; runs are named after their overrides, the sweep parent's best metric is named
once, and the comparison table formats each column alike. The figures are checked through
their matplotlib objects, not their PNG bytes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fer_exp.analysis.compare import compare_runs
from fer_exp.analysis.comparison_plots import comparison_figure
from fer_exp.analysis.evaluate import evaluate
from fer_exp.analysis.plots import CONFUSION_NOTE, confusion_matrix_figure, learning_curves_figure
from fer_exp.config import compose
from fer_exp.runs import JobInfo
from fer_exp.runs.context import run_name


def _run(run_id: str, overrides: str, metrics: dict, job: int, seconds: float = 10.0):
    """A stand-in for an MLflow run, as ``MlflowClient.search_runs`` returns them."""
    return SimpleNamespace(
        info=SimpleNamespace(
            run_id=run_id,
            run_name=f"#{job} {overrides}",
            status="FINISHED",
            start_time=1_700_000_000_000,  # ms since 1970, as MLflow keeps them
            end_time=1_700_000_000_000 + seconds * 1000,
        ),
        data=SimpleNamespace(
            params={"augmentation.rotation_range": overrides.split("=")[1], "data.found.train.disgust": "5"},
            metrics=metrics,
            tags={"hydra.job_num": str(job), "overrides": overrides},
        ),
    )


class _Client:
    """The two calls of ``MlflowClient`` a comparison and a sweep's end make, recorded."""

    def __init__(self, epochs: int = 3):
        self.epochs = epochs
        self.metrics: dict[str, float] = {}
        self.histories_read: set[str] = set()

    def get_metric_history(self, run_id, key):
        self.histories_read.add(key)
        return [SimpleNamespace(step=e, value=0.1 * e) for e in range(1, self.epochs + 1)]

    def log_metric(self, run_id, key, value):
        self.metrics[key] = value

    def set_tag(self, *args):
        pass

    def set_terminated(self, *args, **kwargs):
        pass


# Two runs far apart on a scale that does not start at their minimum: drawn from the
# minimum, 0.136 would look twenty times shorter than 0.320.
RUNS = [
    _run(
        "a",
        "augmentation.rotation_range=0",
        {"best_val_accuracy": 0.320, "val_macro_f1": 0.25, "epochs_run": 10.0, "train_time_s": 11.0},
        0,
        seconds=75.0,
    ),
    _run(
        "b",
        "augmentation.rotation_range=20",
        {"best_val_accuracy": 0.136, "val_macro_f1": 0.5, "epochs_run": 3.0, "train_time_s": 8.3873},
        1,
        seconds=12.5,
    ),
]


def _rows():
    return [
        {"run": r.info.run_name, "run_id": r.info.run_id, "job": r.data.tags["hydra.job_num"], "status": "FINISHED"}
        | {"overrides": r.data.tags["overrides"], "best_val_accuracy": r.data.metrics["best_val_accuracy"]}
        for r in RUNS
    ]


def _ticks(ax) -> list[float]:
    """The x ticks matplotlib draws (those inside the view)."""
    lo, hi = ax.get_xlim()
    ticks = [float(t) for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks
    return ticks


@pytest.mark.parametrize("epochs", [1, 3])
def test_epoch_axes_tick_whole_epochs(epochs):
    # a short run is where matplotlib's default ticks (1.25, 1.75; 0.96, 1.02) show
    curve = [0.1 * (e + 1) for e in range(epochs)]
    group = {"group": "a", "n": 1, "mean": 0.3, "std": float("nan"), "ci_low": 0.28, "ci_high": 0.32, "noise": "x"}
    curves = comparison_figure([group], [], {"a": [list(enumerate(curve, 1))]}, "best_val_accuracy").axes[-1]
    history = {k: curve for k in ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate")}
    axes = [curves, *learning_curves_figure(history, f"{epochs} epochs").axes]
    assert len(axes) == 4
    for ax in axes:
        assert ax.get_xlabel() == "epoch"
        assert _ticks(ax) == list(range(1, epochs + 1)), (ax.get_title(), ax.get_ylabel(), ax.get_xticks())


def test_confusion_matrix_shows_counts_and_names_its_normalization():
    y_true = np.array([0] * 5 + [1] * 3 + [2] * 2)  # no "surprise" images at all
    y_pred = np.array([0, 0, 0, 0, 1, 1, 1, 0, 2, 3])
    ev = evaluate(y_true, np.eye(4)[y_pred], ("angry", "happy", "sad", "surprise"))
    counts = [[4, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]]
    np.testing.assert_array_equal(ev.confusion, counts)  # counts, not fractions
    fig = confusion_matrix_figure(ev.confusion, ev.class_names, "val accuracy 0.700")
    ax = fig.axes[0]
    cells = np.array([t.get_text() for t in ax.texts]).reshape(4, 4)
    assert cells[0].tolist() == ["0.80\n(4)", "0.20\n(1)", "0.00\n(0)", "0.00\n(0)"]
    assert cells[1, 1] == "0.67\n(2)" and cells[2, 3] == "0.50\n(1)"
    assert cells[3].tolist() == ["–\n(0)"] * 4  # no images: no recall, not a recall of 0
    assert ax.get_title() == f"val accuracy 0.700\n{CONFUSION_NOTE}"
    assert "rows normalized to 1 (recall)" in CONFUSION_NOTE and "counts" in CONFUSION_NOTE


@pytest.mark.parametrize("curves, title", [("val_accuracy", "validation accuracy"), ("val_f1", "validation macro-F1")])
def test_comparison_picture_draws_the_chosen_per_epoch_metric(curves, title, tmp_path, monkeypatch):
    import fer_exp.analysis.comparison_plots as plots

    drawn = []
    monkeypatch.setattr(plots, "save", lambda fig, path: drawn.append(fig) or path)
    client = _Client()
    compare_runs(client, RUNS, "best_val_accuracy", tmp_path, curves=curves)
    assert client.histories_read == {curves}
    lines = drawn[0].axes[-1]  # settings, differences, curves
    assert curves in lines.get_ylabel() and lines.get_title().startswith(title)
    assert len(lines.lines) == 2  # one setting each: one line each


def test_comparison_table_formats_each_column_alike(tmp_path):
    report = compare_runs(_Client(), RUNS, "best_val_accuracy", tmp_path)
    header, _, *lines = report.markdown.splitlines()
    names = [c.strip() for c in header.strip("|").split("|")]
    cells = [dict(zip(names, (c.strip() for c in line.strip("|").split("|")))) for line in lines]
    assert [c["best_val_accuracy"] for c in cells] == ["0.3200", "0.1360"]
    assert [c["val_macro_f1"] for c in cells] == ["0.2500", "0.5000"]
    assert [c["epochs"] for c in cells] == ["10", "3"]
    assert [c["train time"] for c in cells] == ["11.0 s", "8.4 s"]  # one unit, one precision
    assert [c["wall time"] for c in cells] == ["1:15", "0:12"]  # a minute or more: m:ss
    assert [c["f1_disgust"] for c in cells] == ["", ""]
    # the CSV keeps the raw numbers
    assert "8.3873" in (tmp_path / "comparison.csv").read_text()


def test_sweep_parent_logs_the_best_metric_under_one_best_prefix(tmp_path, monkeypatch):
    from fer_exp.runs import sweep

    client = _Client()
    monkeypatch.setattr(sweep, "open_client", lambda uri: client)
    monkeypatch.setattr(sweep, "child_runs", lambda c, parent: RUNS)
    monkeypatch.setattr(sweep, "log_files", lambda *args: None)
    info = {"parent_run_id": "p", "tracking_uri": "unused", "sweep_dir": str(tmp_path), "metric": "best_val_accuracy"}
    assert sweep.finalize(dict(info)) == 0
    assert client.metrics == {"best_val_accuracy": 0.320}
    sweep.finalize(dict(info, metric="val_macro_f1"))
    assert client.metrics["best_val_macro_f1"] == 0.5


def test_a_single_run_is_named_like_a_sweep_job():
    cfg = compose(["epochs=3"])
    overrides = ("epochs=3", "tracking_uri=http://alice:s3cr3t@host:5000", "+db.password=hunter2")
    single = JobInfo(Path("out"), overrides, secret_keys=frozenset({"db.password"}))
    assert run_name(cfg, single) == "epochs=3 tracking_uri=http://***@host:5000 +db.password=***"
    job = JobInfo(Path("out"), overrides, job_num=2, secret_keys=frozenset({"db.password"}))
    assert run_name(cfg, job) == "#2 " + run_name(cfg, single)  # the sweep's rule, plus the job number
    defaults = JobInfo(Path("out"), choices={"model": "small_cnn", "augmentation": "light"})
    assert run_name(cfg, defaults) == "defaults: model=small_cnn augmentation=light"
    assert run_name(compose(["run_name=baseline"]), single) == "baseline"  # an explicit name wins
    # ... unless it is read from a secret: then it is masked like any secret override
    secret = JobInfo(Path("out"), ("run_name=${oc.env:MY_API_TOKEN}",), secret_keys=frozenset({"run_name"}))
    assert run_name(compose(["run_name=tok3nV4lue"]), secret) == "run_name=***"


def _recording_tracker(started: dict):
    """A Tracker stand-in whose ``start`` records the run name and tags it was given."""

    class _Tracker:
        run_id, uri, experiment_id = "p1", "sqlite:///unused", "1"

        @classmethod
        def start(cls, uri, experiment, name, tags, journal_dir=None):
            started.update(name=name, tags=tags)
            return cls()

        def set_tags(self, tags):
            pass

    return _Tracker


def test_the_run_is_started_under_that_name(tmp_path, monkeypatch):
    from fer_exp.runs import recipe

    started = {}
    monkeypatch.setattr(recipe, "Tracker", _recording_tracker(started))
    recipe._start_tracker(compose(["epochs=3"]), JobInfo(tmp_path, ("epochs=3",)), tmp_path)
    assert started["name"] == "epochs=3" and started["tags"]["overrides"] == "epochs=3"


def test_the_sweep_parent_names_its_overrides_without_secrets(tmp_path, monkeypatch):
    """The parent run's ``overrides`` tag reads the overrides as typed: an override that
    reads a secret env variable shows ``***``, never the secret (Hydra's list resolves it)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from fer_exp.config import config_dir
    from fer_exp.runs import sweep

    started = {}

    monkeypatch.setenv("MY_API_TOKEN", "tok3nV4lue")
    monkeypatch.setattr(sweep, "Tracker", _recording_tracker(started))
    monkeypatch.setattr(sweep, "_open_sweeps", [])
    overrides = ["run_name=${oc.env:MY_API_TOKEN}", "tracking_uri=http://alice:s3cr3t@host:5000", "epochs=2"]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = hydra_compose("config", [*overrides, f"hydra.sweep.dir={tmp_path}"], return_hydra_config=True)
    sweep.MlflowSweepCallback().on_multirun_start(cfg)
    assert started["tags"]["overrides"] == "run_name=*** tracking_uri=http://***@host:5000 epochs=2"


def test_a_study_names_its_trials_briefly_and_its_sampled_values_to_a_few_digits(tmp_path):
    """Optuna samples 0.00915226100278092: the table shows 0.00915 (the CSV keeps it all) and
    the picture labels each trial with its short run name, not its long overrides."""
    trials = []
    for job, (rate, name) in enumerate([("0.00915226100278092", "lr=0.0092"), ("0.0001316302763942842", "lr=0.00013")]):
        run = _run(f"t{job}", f"optimizer.learning_rate={rate}", {"best_val_accuracy": 0.3 + job / 10}, job)
        run.info.run_name = f"#{job} {name}"
        run.data.params = {"optimizer.learning_rate": rate}
        trials.append(run)
    report = compare_runs(_Client(), trials, "best_val_accuracy", tmp_path)
    header, _, *lines = report.markdown.splitlines()
    names = [c.strip() for c in header.strip("|").split("|")]
    cells = [dict(zip(names, (c.strip() for c in line.strip("|").split("|")))) for line in lines]
    # best first: trial 1
    assert [c["optimizer.learning_rate"] for c in cells] == ["0.000132", "0.00915"]
    assert [c["overrides"] for c in cells] == ["optimizer.learning_rate=0.000132", "optimizer.learning_rate=0.00915"]
    assert "0.00915226100278092" in (tmp_path / "comparison.csv").read_text()
    # grouped by their differing param: one setting per trial, the first trial the baseline
    assert [g["setting"] for g in report.grouped.groups] == [
        "optimizer.learning_rate=0.00915226100278092",
        "optimizer.learning_rate=0.0001316302763942842",
    ]
