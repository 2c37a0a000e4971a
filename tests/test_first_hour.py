"""A new user's first hour with ``python -m fer_exp`` (issue 17): a key of a source that was not
chosen, typos, one-line errors, ``--help``, and quiet output that writes only where it should."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fer_exp.cli.run import preflight
from fer_exp.config import compose
from fer_exp.config.compose import compose_jobs
from fer_exp.errors import ConfigError
from tests.conftest import REPO, run_cli

# ------------------------------------------------------------------ a key the chosen source does not read

SYNTHETIC_ROOT = "data.root is set but data=synthetic generates its faces: did you mean data=fer2013?"


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.root=/data/faces"], SYNTHETIC_ROOT),
        (["+data.root=/data/faces"], SYNTHETIC_ROOT),
        (
            ["data=fer2013", "data.path=labels.csv"],
            "data.path is set but data=fer2013 does not read it: did you mean data=arrays (or data=dataframe, "
            "data=fer2013_csv)?",
        ),
        (["data=fer2013", "data.root=/d", "data.n_train=100"], "did you mean data=synthetic?"),
    ],
)
def test_a_key_of_another_data_source_names_the_sources_that_read_it(overrides, message):
    with pytest.raises(ConfigError) as err:
        compose(overrides)
    assert message in str(err.value)


def test_synthetic_faces_are_written_under_the_cache_only(tmp_path, monkeypatch):
    """The generator has no root of the user's: its files land in the cache, not in the launch folder."""
    from fer_exp.config.data import SyntheticData
    from fer_exp.data.readers import read_source

    cache, work = tmp_path / "cache", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("FER_EXP_CACHE", str(cache))
    monkeypatch.chdir(work)
    assert "root" not in SyntheticData.model_fields
    _, root = read_source(compose(["data.n_train=14", "data.n_val=14"]).data)
    assert cache in root.parents and len(list(root.rglob("*.png"))) == 28
    assert not list(work.iterdir())


# ------------------------------------------------------------------ typos: the closest valid names


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["batch_sise=64"], "batch_sise is not a fer_exp setting: did you mean batch_size?"),
        (["+batch_sise=64"], "batch_sise is not a fer_exp setting: did you mean batch_size?"),
        (["model.filtres=[8,16]"], "model.filtres is not a fer_exp setting: did you mean model.filters?"),
        (["modle.filters=[8,16]"], "modle is not a fer_exp setting: did you mean model?"),
        (["augmentaton=heavy"], "augmentaton is not a fer_exp setting: did you mean augmentation?"),
        (["data=dataframe", "data.path=t.csv", "data.xcol=f"], "did you mean data.x_col?"),
        (["data.xcol=f"], "did you mean data.x_col (a key of data=dataframe)?"),
        (
            ["augmentation=heavvy"],
            "augmentation=heavvy is not an option of augmentation: did you mean heavy? (options: heavy, light, ",
        ),
        (["experiment=fer2013_smal_cnn"], "did you mean fer2013_small_cnn? (options: augmentation_study,"),
        (["hydra/launcher=jobllib"], "did you mean joblib?"),
    ],
)
def test_a_typo_answers_with_the_closest_valid_name(overrides, message):
    with pytest.raises(ConfigError) as err:
        compose(overrides)
    text = str(err.value)
    assert message in text
    assert "+batch_sise" not in text and "To append" not in text and "Config search path" not in text


# ------------------------------------------------------------------ sweeps: every job checked first


def test_every_combination_of_a_sweep_is_checked_before_any_job_starts():
    jobs = compose_jobs(["augmentation=none,seed", "seed=1,2"], multirun=True)
    assert [job for job, _ in jobs] == [
        ["augmentation=none", "seed=1"],
        ["augmentation=none", "seed=2"],
        ["augmentation=seed", "seed=1"],
        ["augmentation=seed", "seed=2"],
    ]
    assert [(cfg.augmentation.rotation_range, cfg.seed) for _, cfg in jobs] == [(0, 1), (0, 2), (20, 1), (20, 2)]
    # each value alone is fine; only this combination is not
    message = preflight(["-m", "augmentation.mixup_prob=0,0.5", "data.class_mode=sparse"])
    assert message.startswith("in the sweep's job augmentation.mixup_prob=0.5 data.class_mode=sparse: invalid config")
    assert "mixup and cutmix mix one-hot labels" in message
    assert "did you mean heavy?" in preflight(["-m", "augmentation=none,heavvy"])


def test_an_experiment_that_sweeps_is_checked_like_a_sweep(monkeypatch):
    monkeypatch.delenv("FER2013_ROOT", raising=False)
    jobs = compose_jobs(["experiment=fer2013_ablation", "data.root=/data/fer2013"])
    assert len(jobs) == 8 and len({cfg.augmentation.model_dump_json() for _, cfg in jobs}) == 8
    assert "data.root='???': required" in preflight(["experiment=fer2013_ablation"])


@pytest.mark.parametrize(
    "argv",
    [
        ["debug=fast", "batch_size=128"],
        ["-m", "augmentation=none,seed", "hydra/launcher=joblib"],
        ["-m", "hparams_search=optuna"],
        ["+optimizer.amsgrad=true", "~experiment", "hydra.job.chdir=false", "hydra.run.dir=out"],
        ["--cfg", "job", "batch_sise=1"],  # Hydra answers --cfg, --help and --info itself
        ["--help"],
    ],
)
def test_good_command_lines_pass_the_check(argv):
    assert preflight(argv) is None


@pytest.mark.parametrize(
    ("argv", "key"),
    [
        (
            ["-m", "hparams_search=optuna", "hydra.sweeper.storage=${oc.env:FER_EXP_TEST_UNSET}"],
            "hydra.sweeper.storage",
        ),
        (["tracking_uri=${oc.env:FER_EXP_TEST_UNSET}"], "tracking_uri"),
    ],
)
def test_an_unset_environment_variable_is_named(monkeypatch, argv, key):
    monkeypatch.delenv("FER_EXP_TEST_UNSET", raising=False)
    assert preflight(argv) == (
        f"{key} reads the environment variable FER_EXP_TEST_UNSET, which is not set here: "
        "export FER_EXP_TEST_UNSET=... (or source the file that sets it), then run the command again"
    )
    monkeypatch.setenv("FER_EXP_TEST_UNSET", "sqlite:///elsewhere.db")
    assert preflight(argv) is None


def test_the_message_keeps_secrets_out():
    message = preflight(["tracking_fallback=http://alice:s3cret@mlflow.lab"])
    assert "tracking_fallback=" in message and "s3cret" not in message and "http://***@mlflow.lab" in message


def test_a_data_problem_found_while_running_is_one_error_line_too(tmp_path):
    proc = run_cli(["data=fer2013", f"data.root={tmp_path / 'nowhere'}"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: data.root not found: {tmp_path / 'nowhere'} (expected a folder with one sub-folder per class)"
    ]
    assert not (tmp_path / "outputs").exists(), "the folder Hydra made for the run that never started is gone"


# ------------------------------------------------------------------ --help


def test_help_says_what_fer_exp_does_how_to_use_it_and_where_the_docs_are(tmp_path):
    proc = run_cli(["--help"], tmp_path)
    assert proc.returncode == 0
    text = proc.stdout
    assert len(text.splitlines()) < 40, text
    for needle in ("facial-expression", "python -m fer_exp -m ", "resume=", "python -m fer_exp.compare", "mlflow ui"):
        assert needle in text, needle
    assert "optimizer: adam, adamw, rmsprop, sgd" in text and "docs/" in text and "getting-started" in text
    assert "powered by Hydra" not in text and "batch_size: 64" not in text  # the config is --cfg job's


# ------------------------------------------------------------------ quiet output


def test_tensorflow_start_up_lines_are_dropped_and_the_rest_kept(capfd):
    from fer_exp.training.setup import filtered_stderr

    noise = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1795784933.565710   29677 port.cc:153] oneDNN custom operations are on.\n"
        "I0000 00:00:1795784933.566638   29677 cudart_stub.cc:31] Could not find cuda drivers on your machine\n"
        "E0000 00:00:1795784936.243519   29677 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n"
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with flags.\n"
    )
    real = "E0000 00:00:1795784936.2 29677 op_kernel.cc:1] OOM when allocating tensor\n"
    with filtered_stderr():
        os.write(2, (noise + real).encode())
    assert capfd.readouterr().err == real
    with filtered_stderr(verbose=True):
        os.write(2, noise.encode())
    assert capfd.readouterr().err == noise


def test_progress_bar_on_a_terminal_one_line_per_epoch_elsewhere(monkeypatch):
    from fer_exp.training.setup import progress_bar

    monkeypatch.delenv("FER_EXP_PROGRESS", raising=False)
    for tty in (True, False):
        monkeypatch.setattr(sys.stdout, "isatty", lambda tty=tty: tty)
        assert progress_bar() is tty
        monkeypatch.setenv("FER_EXP_PROGRESS", "1")
        assert progress_bar() is True
        monkeypatch.setenv("FER_EXP_PROGRESS", "0")
        assert progress_bar() is False
        monkeypatch.delenv("FER_EXP_PROGRESS")


def _git_status() -> str | None:
    proc = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """``python -m fer_exp debug=fast`` as a new user starts it: a fresh home folder and cache,
    output to files (not a terminal), no FER_EXP_PROGRESS."""
    work, cache, home = (tmp_path_factory.mktemp(name) for name in ("work", "cache", "home"))
    before = _git_status()
    env = {k: v for k, v in os.environ.items() if k not in ("FER_EXP_PROGRESS", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")}
    proc = subprocess.run(
        [sys.executable, "-m", "fer_exp", "debug=fast", "data.n_train=140", "data.n_val=70", "batch_size=16"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
        env={**env, "HOME": str(home), "FER_EXP_CACHE": str(cache)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, home, before


@pytest.mark.slow
def test_a_run_writes_only_in_its_launch_folder_and_the_cache(first_run):
    _, home, before = first_run
    assert not list(home.rglob("*")), "the run wrote into the home folder"
    if before is not None:
        assert _git_status() == before, "the run wrote into the repository"


@pytest.mark.slow
def test_a_run_is_quiet_and_its_log_has_no_progress_bar_codes(first_run):
    proc, _, _ = first_run
    noise = ("absl::InitializeLog", "oneDNN", "cuInit", "cuda", "cpu_feature_guard", "retracing", "I0000", "E0000")
    assert not [n for n in noise if n in proc.stderr], proc.stderr[-3000:]
    assert "\x1b[" not in proc.stdout and "\r" not in proc.stdout  # one line per epoch, no redraws
    assert "val_accuracy:" in proc.stdout
    assert (proc.stdout + proc.stderr).count("compute: CPU") == 1


@pytest.mark.slow
def test_verbose_brings_tensorflow_start_up_lines_back(tmp_path):
    proc = run_cli(["debug=fast", "data.n_train=140", "data.n_val=70", "batch_size=16", "verbose=true"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "oneDNN" in proc.stderr or "absl::InitializeLog" in proc.stderr, proc.stderr[-3000:]
