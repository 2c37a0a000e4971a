"""Config groups compose and validate; bad values fail fast with a message naming the key."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest

from fer_exp.config import compose
from fer_exp.config.compose import compose_jobs
from fer_exp.errors import ConfigError
from tests.conftest import REPO, run_cli

GROUPS = {
    g: sorted(p.stem for p in (REPO / "conf" / g).glob("*.yaml"))
    for g in ("data", "augmentation", "model", "optimizer")
}


def test_groups_have_the_required_options():
    assert {"synthetic", "fer2013"} <= set(GROUPS["data"])
    assert {"none", "light", "seed", "heavy"} <= set(GROUPS["augmentation"])
    assert {"seed_cnn", "small_cnn"} <= set(GROUPS["model"])
    assert {"adam", "sgd", "rmsprop", "adamw"} <= set(GROUPS["optimizer"])


@pytest.mark.parametrize(
    "aug,model,opt", itertools.product(GROUPS["augmentation"], GROUPS["model"], GROUPS["optimizer"])
)
def test_every_group_option_validates(aug, model, opt):
    cfg = compose([f"augmentation={aug}", f"model={model}", f"optimizer={opt}"])
    assert cfg.model.name == model
    assert cfg.optimizer.target.startswith("keras.optimizers.")


def test_defaults():
    cfg = compose()
    assert cfg.data.source == "synthetic"
    assert cfg.class_weight == "balanced"
    assert cfg.tracking_uri.startswith("sqlite:///") and cfg.tracking_uri.endswith("/mlflow.db")
    assert cfg.optimizer.target == "keras.optimizers.Adam" and cfg.optimizer.learning_rate == 1e-3


def test_seed_augmentation_is_the_notebooks():
    aug = compose(["augmentation=seed"]).augmentation
    assert aug.rescale == pytest.approx(1 / 255)
    assert (aug.rotation_range, aug.width_shift_range, aug.height_shift_range) == (20, 0.2, 0.2)
    assert (aug.shear_range, aug.zoom_range, aug.horizontal_flip, aug.fill_mode) == (0.2, 0.2, True, "nearest")
    assert not aug.vertical_flip and aug.brightness_range is None and aug.channel_shift_range == 0


def test_none_augmentation_only_rescales():
    aug = compose(["augmentation=none"]).augmentation
    from fer_exp.augment.keras_idg import NORMALIZATION_KEYS

    changed = {
        k for k, v in aug.model_dump().items() if v != type(aug)().model_dump()[k] and k not in NORMALIZATION_KEYS
    }
    assert changed == set()


def test_overrides_reach_the_config():
    cfg = compose(
        [
            "batch_size=128",
            "epochs=30",
            "seed=7",
            "optimizer=sgd",
            "optimizer.learning_rate=0.01",
            "augmentation.rotation_range=15",
            "data=fer2013",
            "data.root=/somewhere",
        ]
    )
    assert (cfg.batch_size, cfg.epochs, cfg.seed) == (128, 30, 7)
    assert cfg.optimizer.target == "keras.optimizers.SGD" and cfg.optimizer.learning_rate == 0.01
    assert cfg.optimizer.model_extra["nesterov"] is True
    assert cfg.augmentation.rotation_range == 15
    assert cfg.data.root == "/somewhere"


def test_keras_shift_forms_are_kept():
    # int 2 = integer pixel shifts {-1, 0, 1}; 2.0 = uniform pixels; list = choices: Keras's three meanings
    assert compose(["augmentation.width_shift_range=2"]).augmentation.width_shift_range == 2
    assert isinstance(compose(["augmentation.width_shift_range=2"]).augmentation.width_shift_range, int)
    assert compose(["augmentation.height_shift_range=[1,3]"]).augmentation.height_shift_range == [1, 3]
    assert compose(["augmentation.zoom_range=[0.8,1.1]"]).augmentation.zoom_range == [0.8, 1.1]


BAD = [
    (["augmentation.rotation_range=-5"], "augmentation.rotation_range=-5", "greater than or equal to 0"),
    (["augmentation.zoom_range=1.5"], "augmentation.zoom_range=1.5", "[0, 1)"),
    (["augmentation.zoom_range=[1.2,0.8]"], "augmentation.zoom_range=[1.2, 0.8]", "low <= high"),
    (
        ["augmentation.fill_mode=mirror"],
        "augmentation.fill_mode='mirror'",
        "'nearest', 'constant', 'reflect' or 'wrap'",
    ),
    (["augmentation.width_shift_range=-0.1"], "augmentation.width_shift_range=-0.1", ">= 0"),
    (["augmentation.brightness_range=[1.5]"], "augmentation.brightness_range=[1.5]", "pair"),
    (["batch_size=0"], "batch_size=0", "greater than or equal to 1"),
    (["epochs=0"], "epochs=0", "greater than or equal to 1"),
    (["class_weight=auto"], "class_weight='auto'", "'balanced' or 'none'"),
    (["optimizer.learning_rate=-1"], "optimizer.learning_rate=-1", "greater than 0"),
    (["model=seed_cnn", "model.kernel_sizes=[3,3]"], "model", "same length"),
    (["model.dropout=1.0"], "model.dropout=1.0", "less than 1"),
    (["+augmentation.rotaton_range=10"], "augmentation.rotaton_range", "did you mean augmentation.rotation_range"),
    (["data=fer2013"], "data.root", "required"),
    (["mixed_precision=fp8"], "mixed_precision='fp8'", "'off', 'auto', 'bfloat16' or 'float16'"),
]


@pytest.mark.parametrize("overrides,key,allowed", BAD, ids=[b[1] for b in BAD])
def test_bad_values_name_key_value_and_what_is_allowed(overrides, key, allowed):
    with pytest.raises(ConfigError) as err:
        compose(overrides)
    message = str(err.value)
    assert key in message and allowed in message, message


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as err:
        compose(["batch_size=0", "augmentation.zoom_range=1.5"])
    assert "batch_size=0" in str(err.value) and "augmentation.zoom_range=1.5" in str(err.value)


def test_cli_rejects_bad_config_before_importing_tensorflow(workdir):
    # -X importtime lists every module the process imported: a config error must come before
    # TensorFlow (the slow import) is loaded, and before any MLflow run exists.
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "fer_exp",
            "augmentation.zoom_range=1.5",
            "batch_size=0",
            "augmentation.fill_mode=mirror",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "augmentation.zoom_range=1.5" in proc.stderr and "batch_size=0" in proc.stderr
    assert "Traceback" not in proc.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert "fer_exp.config.validate" in imported  # the listing is there
    assert not [m for m in imported if m.split(".")[0] in ("tensorflow", "keras")]
    assert not (workdir / "mlflow.db").exists(), "no MLflow run may be created for a config error"


def test_config_validation_does_not_import_tensorflow():
    code = (
        "import sys; from fer_exp.config import compose; compose(['augmentation=heavy']); "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_cli_help_and_cfg_job(workdir):
    help_out = run_cli(["--help"], workdir)
    assert help_out.returncode == 0 and "augmentation: heavy, light, light_crop" in help_out.stdout
    assert "model: mini_xception, resnet, seed_cnn, small_cnn, vgg_fer" in help_out.stdout
    job = run_cli(["--cfg", "job", "augmentation=heavy", "batch_size=128"], workdir)
    assert job.returncode == 0
    assert "batch_size: 128" in job.stdout and "rotation_range: 25" in job.stdout
    assert not (workdir / "mlflow.db").exists()


EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))


def _leaves(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_config_composes_to_what_its_file_says(experiment, tmp_path):
    """Each value, group choice and swept option an experiment file sets reaches the run's config:
    a key the schema moved or a preset renamed fails here, not hours into a study."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    spec = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "experiment" / f"{experiment}.yaml"))
    root = [f"data.root={tmp_path}"] if experiment.startswith("fer2013") else []
    cfg = compose([f"experiment={experiment}", *root])
    choices = HydraConfig.get().runtime.choices
    assert cfg.experiment_name != "fer_exp"  # each study files its runs under its own name
    tree = cfg.to_tree()
    for default in spec.pop("defaults", []):
        if isinstance(default, str):  # another experiment it builds on: checked by its own case
            continue
        ((group, option),) = default.items()
        assert choices[group.removeprefix("override /")] == option, default
    sweep = spec.pop("hydra", {}).get("sweeper", {}).get("params", {})
    resolved = OmegaConf.create(tree)
    for key, value in _leaves(spec):
        found = OmegaConf.select(resolved, key)
        if isinstance(value, str) and value.startswith("${"):  # an interpolation: the value of its key
            value = OmegaConf.select(resolved, value.strip("${}"))
        assert found == value, f"{experiment}: {key} is {found!r}, the file says {value!r}"
    for key, options in sweep.items():
        if "(" in str(options):  # an Optuna search space (interval, choice, ...): the pre-flight checks it
            assert compose_jobs([f"experiment={experiment}", *root], multirun=True)
            continue
        for option in str(options).split(","):
            compose([f"experiment={experiment}", *root, f"{key}={option.strip()}"])


def recipe_changes(base: str, derived: str, data_root) -> dict:
    """The top-level keys where experiment ``derived`` differs from ``base``, with its values."""
    trees = [compose([f"experiment={name}", f"data.root={data_root}"]).to_tree() for name in (base, derived)]
    return {k: trees[1].get(k) for k in trees[0].keys() | trees[1].keys() if trees[0].get(k) != trees[1].get(k)}


def test_ensemble_members_are_the_60_minute_recipe_in_bfloat16(tmp_path):
    assert recipe_changes("fer2013_small_cnn", "fer2013_ensemble", tmp_path) == {
        "epochs": 60,
        "time_budget_min": 40,
        "mixed_precision": "auto",
    }


def test_unweighted_ensemble_differs_from_the_ensemble_recipe_in_class_weights_budget_and_tta_views(tmp_path):
    assert compose(["experiment=fer2013_ensemble", f"data.root={tmp_path}"]).class_weight == "balanced"
    assert recipe_changes("fer2013_ensemble", "fer2013_ensemble_noweights", tmp_path) == {
        "class_weight": "none",
        "time_budget_min": 42,
        "tta_shift": 2,
    }


@pytest.mark.parametrize(
    "value,policy",
    [
        ("false", "float32"),
        ("off", "float32"),
        ("true", "mixed_float16"),
        ("bfloat16", "mixed_bfloat16"),
        ("float16", "mixed_float16"),
    ],
)
def test_mixed_precision_values(value, policy):
    from fer_exp.training.setup import dtype_policy

    assert dtype_policy(compose([f"mixed_precision={value}"]).mixed_precision) == policy


def test_auto_precision_is_bfloat16_only_where_the_cpu_computes_it(monkeypatch):
    import fer_exp.training.hardware as hardware
    import fer_exp.training.setup as train

    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "avx512f", "amx_bf16", "amx_tile"})
    assert train.dtype_policy("auto") == "mixed_bfloat16"
    assert train.dtype_policy("auto", compose(["model=small_cnn"]).model) == "mixed_bfloat16"
    # measured slower in bfloat16 (depthwise convolutions): auto keeps it in float32
    assert train.dtype_policy("auto", compose(["model=mini_xception"]).model) == "float32"
    assert train.dtype_policy("bfloat16", compose(["model=mini_xception"]).model) == "mixed_bfloat16"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "avx512f"})  # bfloat16 would be emulated
    assert train.dtype_policy("auto") == "float32"
