"""The documentation cannot drift: the configuration reference (generated from the schema) has a
row for every key a composed config holds, and the README stays a short front door with no
hand-typed measurements (measured figures live on the generated benchmark page)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from fer_exp.config import compose

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
README_MAX_BYTES = 12_000
# a number followed by a percent sign, a speed in images per second or a speed-up factor
MEASUREMENT = re.compile(r"\d[\d.,]*\s?(%|img/s|images/s|×)|\d[\d.,]*\s?x (faster|slower)", re.IGNORECASE)

# One composition per option of the groups with a union in the schema (data sources, models,
# schedules) and per optimizer, so every variant's keys are checked, not only the defaults'.
VARIANTS = [
    [],
    ["data=fer2013", "data.root=/data/fer2013"],
    ["data=dataframe", "data.path=labels.csv"],
    ["data=fer2013_csv", "data.path=fer2013.csv"],
    ["data=arrays", "data.path=faces.npz"],
    ["model=seed_cnn", "schedule=cosine", "optimizer=adamw"],
    ["model=mini_xception", "schedule=onecycle", "optimizer=sgd"],
    ["model=vgg_fer", "schedule=step", "optimizer=rmsprop"],
    ["model=resnet", "schedule=constant"],
]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_config_reference", REPO / "scripts/gen_config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _leaf_keys(tree: dict, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for k, v in tree.items():
        if isinstance(v, dict):
            keys |= _leaf_keys(v, f"{prefix}{k}.")
        else:
            keys.add(f"{prefix}{k}")
    return keys


@pytest.fixture(scope="module")
def reference() -> str:
    return _generator().render()


def test_reference_has_a_row_for_every_key(reference):
    documented = _generator().keys(reference)
    for overrides in VARIANTS:
        missing = _leaf_keys(compose(overrides).to_tree()) - documented
        assert not missing, f"keys of compose({overrides}) missing from the configuration reference: {sorted(missing)}"


def _schema_rows(reference: str) -> list[list[str]]:
    """The cells of every row of the schema tables (key, type, default, allowed, description)."""
    rows, in_table = [], False
    for line in reference.splitlines():
        if line.startswith("| key | type | default | allowed | description |"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and line.startswith("| <code>"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def test_reference_rows_are_complete(reference):
    rows = _schema_rows(reference)
    assert len(rows) > 50
    undescribed = [
        re.sub(r"<[^>]+>", "", key)
        for key, type_, default, _allowed, description in rows
        if not (type_ and default and description)
    ]
    assert undescribed == [], f"keys without a type, default or description (Field(description=...)): {undescribed}"


def test_readme_is_a_short_front_door():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail to docs/ (limit {README_MAX_BYTES})"


def test_readme_has_no_hand_typed_measurements():
    hits = [
        f"README.md:{n}: {line.strip()}"
        for n, line in enumerate(README.read_text().splitlines(), 1)
        if MEASUREMENT.search(line)
    ]
    assert not hits, "measured figures belong on the generated docs/benchmarks.md:\n" + "\n".join(hits)
