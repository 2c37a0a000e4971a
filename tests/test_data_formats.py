"""Every way users hold images: folders, dataframes, the Kaggle fer2013.csv, arrays — through
both pipelines — plus the audit, de-duplication and bad input."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fer_exp.config import FER2013_EMOTIONS, compose
from fer_exp.data.sources import load_splits
from fer_exp.errors import ConfigError, DataError
from fer_exp.runs import JobInfo, run
from tests.conftest import REPO, SHARED_FER2013, mlflow_runs

SORTED = sorted(FER2013_EMOTIONS)


def _face(rng, emotion: int) -> np.ndarray:
    """A 48x48 image whose mean brightness encodes its emotion (so labels can be checked)."""
    return np.clip(rng.normal(30 * emotion + 20, 5, (48, 48)), 0, 255).astype(np.uint8)


@pytest.fixture
def fer_csv(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for usage, n in (("Training", 5), ("PublicTest", 2), ("PrivateTest", 2)):
        for emotion in range(7):
            for _ in range(n):
                rows.append(
                    {"emotion": emotion, "pixels": " ".join(map(str, _face(rng, emotion).reshape(-1))), "Usage": usage}
                )
    path = tmp_path / "fer2013.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_fer2013_csv_source(fer_csv):
    splits = load_splits(compose(["data=fer2013_csv", f"data.path={fer_csv}"]).data)
    assert splits.class_names == tuple(SORTED)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (35, 14, 14)
    # Kaggle's index 4 is "sad": it becomes the sorted index of "sad", like a class folder
    sad = SORTED.index("sad")
    means = splits.train.images[splits.train.labels == sad].mean()
    assert means == pytest.approx(30 * 4 + 20, abs=3)
    assert splits.train.images.shape[1:] == (48, 48, 1)


@pytest.mark.parametrize(
    "corrupt,message",
    [
        (lambda df: df.assign(pixels=df["pixels"].where(df.index != 3, "1 2 3")), "row 5: expected 2304 pixel values"),
        (lambda df: df.assign(emotion=df["emotion"].where(df.index != 7, 9)), "row 9: emotion 9 is not a class index"),
        (
            lambda df: df.assign(emotion=df["emotion"].astype(object).where(df.index != 4, "happy")),
            "row 6: emotion 'happy' is not a class index (0=angry, 1=disgust, 2=fear, 3=happy",
        ),
        (lambda df: df.drop(columns=["Usage"]), "no 'Usage' column"),
        (lambda df: df.assign(pixels=df["pixels"].where(df.index != 2, "a b")), "row 4: pixels must be"),
    ],
)
def test_fer2013_csv_errors_name_the_row(fer_csv, corrupt, message):
    corrupt(pd.read_csv(fer_csv)).to_csv(fer_csv, index=False)
    with pytest.raises(DataError) as err:
        load_splits(compose(["data=fer2013_csv", f"data.path={fer_csv}"]).data)
    assert message in str(err.value)


def _keep_usage(fer_csv: Path, *usages: str) -> None:
    df = pd.read_csv(fer_csv)
    df[df["Usage"].isin(usages)].to_csv(fer_csv, index=False)


def test_fer2013_csv_without_private_test_rows_has_no_test_split(fer_csv, caplog):
    # many copies of fer2013.csv hold Training and PublicTest rows only
    _keep_usage(fer_csv, "Training", "PublicTest")
    with caplog.at_level(logging.INFO, logger="fer_exp"):
        splits = load_splits(compose(["data=fer2013_csv", f"data.path={fer_csv}"]).data)
    assert (len(splits.train), len(splits.val), splits.test) == (35, 14, None)
    said = [r for r in caplog.records if "no test split" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO
    assert "data.test_values=['PrivateTest']" in said[0].getMessage()
    assert "'PublicTest': 14, 'Training': 35" in said[0].getMessage()


@pytest.mark.parametrize(
    "usages,message",
    [
        (
            ("Training", "PrivateTest"),
            "no validation rows: data.val_values=['PublicTest'] matches no value of column 'Usage', which holds "
            "'PrivateTest': 14, 'Training': 35. Set data.val_values to the value(s) that mark validation rows, "
            "e.g. data.val_values=[PrivateTest] data.test_values=[]",
        ),
        (
            ("PublicTest", "PrivateTest"),
            "no training rows: data.train_values=['Training'] matches no value of column 'Usage', which holds "
            "'PrivateTest': 14, 'PublicTest': 14. Set data.train_values",
        ),
    ],
)
def test_fer2013_csv_without_train_or_validation_rows_names_the_values_and_the_key(fer_csv, usages, message):
    _keep_usage(fer_csv, *usages)
    with pytest.raises(DataError) as err:
        load_splits(compose(["data=fer2013_csv", f"data.path={fer_csv}"]).data)
    assert message in str(err.value)


def test_prepare_fer2013_round_trip(fer_csv, tmp_path):
    script = REPO / "scripts" / "prepare_fer2013.py"
    folders = tmp_path / "folders"
    subprocess.run([sys.executable, str(script), "to-folders", str(fer_csv), str(folders)], check=True)
    assert sorted(p.name for p in folders.iterdir()) == ["test", "train", "validation"]
    back = tmp_path / "back.csv"
    subprocess.run([sys.executable, str(script), "to-csv", str(folders), str(back)], check=True)
    a, b = pd.read_csv(fer_csv), pd.read_csv(back)
    key = lambda df: sorted(zip(df["emotion"], df["pixels"], df["Usage"]))  # noqa: E731
    assert key(a) == key(b)
    # the folder layout and the CSV give the same training images per class
    from_csv = load_splits(compose(["data=fer2013_csv", f"data.path={fer_csv}"]).data)
    from_dirs = load_splits(
        compose(["data=fer2013", f"data.root={folders}", "data.test_dir=test", f"data.cache_dir={tmp_path / 'c'}"]).data
    )
    for c in range(7):
        x = np.sort(from_csv.train.images[from_csv.train.labels == c].reshape(5, -1), axis=0)
        y = np.sort(from_dirs.train.images[from_dirs.train.labels == c].reshape(5, -1), axis=0)
        np.testing.assert_array_equal(x, y)


def _image_files(root: Path, n_per_class: int = 6, classes=("happy", "sad")) -> list[tuple[str, str]]:
    rng = np.random.default_rng(1)
    rows = []
    for c, name in enumerate(classes):
        for i in range(n_per_class):
            rel = f"img/{name}_{i}.png"
            (root / "img").mkdir(parents=True, exist_ok=True)
            Image.fromarray(_face(rng, c * 3)).save(root / rel)
            rows.append((rel, name))
    return rows


def test_dataframe_source_with_split_column_and_missing_files(tmp_path, caplog):
    rows = _image_files(tmp_path)
    df = pd.DataFrame(rows, columns=["file", "label"])
    df["split"] = ["train", "train", "train", "train", "val", "val"] * 2
    df.loc[len(df)] = ["img/gone.png", "sad", "train"]
    df.to_csv(tmp_path / "labels.csv", index=False)
    overrides = [
        "data=dataframe",
        f"data.path={tmp_path / 'labels.csv'}",
        "data.x_col=file",
        "data.y_col=label",
        "data.split_col=split",
        "data.val_values=[val]",
        f"data.cache_dir={tmp_path / 'c'}",
    ]
    with caplog.at_level(logging.WARNING):
        splits = load_splits(compose(overrides).data)
    assert "1 listed image file(s) not found, dropped" in caplog.text and "gone.png" in caplog.text
    assert splits.class_names == ("happy", "sad")
    assert (len(splits.train), len(splits.val)) == (8, 4)
    df.loc[len(df)] = ["img/happy_0.png", "angry", "train"]
    df.to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match=r"row 15: label 'angry' .* not one of data.classes"):
        load_splits(compose([*overrides, "data.classes=[happy,sad]"]).data)
    with pytest.raises(DataError, match=r"missing column\(s\) \['path'\]"):
        load_splits(compose([*overrides, "data.x_col=path"]).data)


def test_dataframe_validation_split_takes_the_first_rows(tmp_path):
    pd.DataFrame(_image_files(tmp_path, 5), columns=["filename", "class"]).to_csv(tmp_path / "t.csv", index=False)
    splits = load_splits(
        compose(
            [
                "data=dataframe",
                f"data.path={tmp_path / 't.csv'}",
                "data.validation_split=0.3",
                f"data.cache_dir={tmp_path / 'c'}",
            ]
        ).data
    )
    assert [Path(p).name for p in splits.val.paths] == ["happy_0.png", "happy_1.png", "happy_2.png"]
    assert len(splits.train) == 7


def test_directory_validation_split_is_per_class_like_keras(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "all" / name).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((48, 48), i, np.uint8)).save(tmp_path / "all" / name / f"{i}.png")
    splits = load_splits(
        compose(
            [
                "data=fer2013",
                f"data.root={tmp_path}",
                "data.train_dir=all",
                "data.validation_split=0.2",
                f"data.cache_dir={tmp_path / 'c'}",
            ]
        ).data
    )
    assert [Path(p).name for p in splits.val.paths] == ["0.png", "1.png", "0.png", "1.png"]
    assert len(splits.train) == 16 and not splits.directory_layout


def _npz(tmp_path) -> Path:
    rng = np.random.default_rng(2)
    x = rng.random((20, 32, 32, 3)).astype(np.float32)  # other size, RGB, floats in [0, 1]
    y = np.eye(3)[np.arange(20) % 3]  # one-hot
    path = tmp_path / "faces.npz"
    np.savez(
        path,
        x_train=x,
        y_train=y,
        x_val=x[:9],
        y_val=np.arange(9) % 3,
        class_names=np.array(["neutral", "happy", "sad"]),
    )
    return path


def test_arrays_source_converts_size_mode_and_labels(tmp_path):
    splits = load_splits(compose(["data=arrays", f"data.path={_npz(tmp_path)}"]).data)
    assert splits.class_names == ("neutral", "happy", "sad")
    assert splits.train.images.shape == (20, 48, 48, 1) and splits.train.images.dtype == np.uint8
    assert splits.train.labels.tolist()[:4] == [0, 1, 2, 0] and splits.test is None
    with pytest.raises(DataError, match="no array 'x_valid'"):
        load_splits(compose(["data=arrays", f"data.path={_npz(tmp_path)}", "data.x_val=x_valid"]).data)


def _sources(tmp_path, fer_csv):
    pd.DataFrame(_image_files(tmp_path / "df", 8), columns=["filename", "class"]).to_csv(
        tmp_path / "df" / "t.csv", index=False
    )
    return {
        "directory": [],  # the synthetic faces: class folders
        "dataframe": ["data=dataframe", f"data.path={tmp_path / 'df' / 't.csv'}", "data.validation_split=0.25"],
        "fer2013_csv": ["data=fer2013_csv", f"data.path={fer_csv}"],
        "arrays": ["data=arrays", f"data.path={_npz(tmp_path)}"],
    }


def test_every_source_feeds_both_pipelines(tmp_path, fer_csv):
    """Each source through each pipeline: batches of the model's input shape and one-hot labels
    of its classes, every split there, and a training step that takes them."""
    import keras

    from fer_exp.runs.steps import build_inputs

    for source, overrides in _sources(tmp_path, fer_csv).items():
        for pipeline in ("tfdata", "keras"):
            cfg = compose([*overrides, f"data.pipeline={pipeline}", "batch_size=4", f"data.cache_dir={tmp_path / 'c'}"])
            splits = load_splits(cfg.data)
            inputs = build_inputs(cfg, splits, 0, None)
            k = len(splits.class_names)
            x, y = (np.asarray(t) for t in next(iter(inputs.train))[:2])
            assert x.shape == (4, *inputs.input_shape) and y.shape == (4, k), (source, pipeline)
            assert inputs.val_batches > 0 and (inputs.test is not None) == (source == "fer2013_csv")
            model = keras.Sequential([keras.Input(inputs.input_shape), keras.layers.Flatten(), keras.layers.Dense(k)])
            model.compile(loss=keras.losses.CategoricalCrossentropy(from_logits=True), jit_compile=False)
            assert np.isfinite(model.train_on_batch(x, y)), (source, pipeline)


def test_every_source_runs_end_to_end(tmp_path, fer_csv):
    """A whole run per source (the pipelines alternate: both are fed by every source above)."""
    for (source, overrides), pipeline in zip(_sources(tmp_path, fer_csv).items(), ["tfdata", "keras"] * 2):
        cfg = compose(
            [
                *overrides,
                f"data.pipeline={pipeline}",
                "debug=fast",
                "batch_size=4",
                "preview_images=4",
                "model.filters=[8]",  # the data is under test: a small graph traces in a fraction
                "model.convs_per_block=1",
                f"data.cache_dir={tmp_path / 'c'}",
                f"tracking_uri=sqlite:///{tmp_path}/mlflow.db",
            ]
        )
        result = run(cfg, JobInfo(output_dir=tmp_path / "out" / source))
        assert result.epochs_run == 1, source
    client, runs = mlflow_runs(tmp_path / "mlflow.db")
    assert [r.info.status for r in runs] == ["FINISHED"] * 4
    with_test = [r for r in runs if r.data.params["data.source"] == "fer2013_csv"][0]
    assert "test_accuracy" in with_test.data.metrics and "test_macro_f1" in with_test.data.metrics
    assert with_test.data.params["data.found.test"] == "14"


@pytest.mark.parametrize("class_mode", ["binary", "sparse"])
def test_class_modes_shape_the_head_and_loss(tmp_path, class_mode):
    pd.DataFrame(_image_files(tmp_path, 8), columns=["filename", "class"]).to_csv(tmp_path / "t.csv", index=False)
    cfg = compose(
        [
            "data=dataframe",
            f"data.path={tmp_path / 't.csv'}",
            f"data.class_mode={class_mode}",
            "data.validation_split=0.25",
            "debug=fast",
            "batch_size=4",
            "preview_images=0",
            f"data.cache_dir={tmp_path / 'c'}",
            f"tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        ]
    )
    result = run(cfg, JobInfo(output_dir=tmp_path / "out"))
    import keras

    model = keras.models.load_model(result.output_dir / "checkpoints" / "best.keras", safe_mode=True)
    assert model.output_shape == ((None, 1) if class_mode == "binary" else (None, 2))
    assert type(model.loss).__name__ == (
        "BinaryCrossentropy" if class_mode == "binary" else "SparseCategoricalCrossentropy"
    )


def test_binary_needs_two_classes_and_sparse_refuses_smoothing():
    with pytest.raises(ConfigError, match="label_smoothing needs one-hot"):
        compose(["data.class_mode=sparse", "label_smoothing=0.1"])
    with pytest.raises(ConfigError, match="yields no class labels"):
        compose(["data.class_mode=null"])
    cfg = compose(["data.class_mode=binary", "debug=fast"])
    with pytest.raises(ConfigError, match="binary needs exactly 2 classes, found 7"):
        run(cfg, JobInfo(output_dir=Path("unused")))


def _folders_with_duplicates(root: Path) -> Path:
    rng = np.random.default_rng(3)
    shared = _face(rng, 1)
    for split in ("train", "validation"):
        for c, name in enumerate(("happy", "sad")):
            (root / split / name).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(_face(rng, c * 4)).save(root / split / name / f"{i}.png")
    Image.fromarray(shared).save(root / "train" / "happy" / "dup_a.png")
    Image.fromarray(shared).save(root / "train" / "happy" / "dup_b.png")  # a copy inside train
    Image.fromarray(shared).save(root / "validation" / "happy" / "leak.png")  # and in validation
    return root


def test_duplicates_are_counted_and_dedupe_drops_them(tmp_path):
    root = _folders_with_duplicates(tmp_path / "d")
    base = ["data=fer2013", f"data.root={root}", f"data.cache_dir={tmp_path / 'c'}"]
    splits = load_splits(compose(base).data)
    d = splits.duplicates
    assert (d["train.files"], d["train.distinct"], d["train_val.shared_distinct"]) == (10, 9, 1)
    assert splits.val_in_train.sum() == 1 and splits.directory_layout
    within = load_splits(compose([*base, "data.dedupe=within"]).data)
    assert (len(within.train), len(within.val)) == (9, 9) and within.dropped["dedupe.train"] == 1
    cross = load_splits(compose([*base, "data.dedupe=cross_split"]).data)
    assert (len(cross.train), len(cross.val)) == (9, 8) and cross.dropped["dedupe.val"] == 1
    assert not cross.directory_layout  # the keras pipeline then reads the filtered list


def test_dedupe_and_leak_free_accuracy_land_in_mlflow(tmp_path):
    root = _folders_with_duplicates(tmp_path / "d")
    for dedupe in ("none", "cross_split"):
        cfg = compose(
            [
                "data=fer2013",
                f"data.root={root}",
                f"data.cache_dir={tmp_path / 'c'}",
                "debug=fast",
                "batch_size=4",
                "limit_val_batches=null",
                f"data.dedupe={dedupe}",
                "data.pipeline=keras",
                f"tracking_uri=sqlite:///{tmp_path}/mlflow.db",
            ]
        )
        run(cfg, JobInfo(output_dir=tmp_path / dedupe))
    client, (plain, deduped) = mlflow_runs(tmp_path / "mlflow.db")
    assert plain.data.metrics["audit.train_val.shared_distinct"] == 1
    assert "val_accuracy_leakfree" in plain.data.metrics and plain.data.metrics["val_leaked_images"] == 1
    assert deduped.data.params["data.dedupe"] == "cross_split"
    assert deduped.data.params["data.dropped.dedupe.val"] == "1"
    assert "audit/audit.json" in [a.path for a in client.list_artifacts(plain.info.run_id, "audit")]


def test_skipped_bad_images_are_counted(tmp_path):
    root = _folders_with_duplicates(tmp_path / "d")
    (root / "train" / "sad" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    splits = load_splits(
        compose(
            ["data=fer2013", f"data.root={root}", "data.on_bad_image=skip", f"data.cache_dir={tmp_path / 'c'}"]
        ).data
    )
    assert splits.dropped == {"bad_images.train": 1} and len(splits.train) == 10
    assert "broken.jpg" in splits.bad_images["train"][0]


def test_audit_cli(tmp_path):
    root = _folders_with_duplicates(tmp_path / "d")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fer_exp.audit",
            "data=fer2013",
            f"data.root={root}",
            f"data.cache_dir={tmp_path / 'c'}",
            "--out",
            str(tmp_path / "audit"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "train: 10 files hold 9 distinct images (1 repeated copies)" in out.stdout
    assert "train and val share 1 distinct images" in out.stdout
    assert (tmp_path / "audit" / "class_samples.png").stat().st_size > 1000
    bad = subprocess.run(
        [sys.executable, "-m", "fer_exp.audit", "data=fer2013", "data.root=/nowhere"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "data.root not found: /nowhere" in bad.stderr


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_FER2013 / "train").is_dir(), reason="shared FER-2013 not present")
def test_audit_of_the_shared_fer2013(tmp_path):
    splits = load_splits(compose(["data=fer2013", f"data.root={SHARED_FER2013}"]).data)
    d = splits.duplicates
    assert d["train.files"] == 28821
    # Exact content (file bytes or decoded pixels, any hash) gives 27,560 distinct train images
    # here; the issue quoted 27,562. 510 distinct images are shared with validation.
    assert d["train.distinct"] == 27560
    assert d["train_val.shared_distinct"] == 510
