"""The benchmark page's replicated comparison: recorded from real runs, rendered with its tables."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.seed_comparisons import main, render
from tests.test_compare_groups import _sweep


def test_a_recorded_comparison_renders_its_tables_verdicts_and_picture(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client, ids = _sweep(tmp_path, {"none": 0.0, "heavy": 0.08})
    record = tmp_path / "docs" / "bench.json"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["--tracking-uri", uri, "--experiment", "cmp", "--baseline", "none", "--note", "Made in two commands."]
    assert main([*args, "--record", str(record)]) == 0
    (entry,) = json.loads(record.read_text())
    assert (tmp_path / "docs" / "images" / "cmp.png").stat().st_size > 10_000
    assert {r["run_id"] for r in entry["runs"]} == set(ids.values())
    diff = entry["comparisons"]["best_val_accuracy"]["differences"][0]
    assert (diff["setting"], diff["verdict"]) == ("augmentation=heavy", "better")
    page = render([entry])
    assert "## Augmentation over seeds" in page
    assert "![cmp: intervals per setting and differences](images/cmp.png)" in page
    assert "| augmentation=none (baseline) | 3 | 1 2 3 |" in page
    assert "| augmentation=heavy | +" in page and "| better | seeds and images |" in page
    assert page.count("**val_macro_f1**") == 1 and "\nMade in two commands.\n" in page
    # recorded again: the entry is replaced, not added
    main(["--tracking-uri", uri, "--experiment", "cmp", "--record", str(record)])
    assert len(json.loads(record.read_text())) == 1


def test_the_calibration_section_gives_every_method_and_seed_count_from_the_benchmarks_json():
    from benchmarks.comparison import FIGURES
    from benchmarks.seed_comparisons import CALIBRATION_FIGURES, render_calibration

    assert CALIBRATION_FIGURES == FIGURES  # the page reads the figures the benchmark writes
    result = json.loads((Path(__file__).parents[1] / "docs" / "bench_comparison.json").read_text())
    page = render_calibration(result)
    assert "## Comparisons: calibration" in page
    rows = [line for line in page.splitlines() if line.startswith("| fer_exp |")]
    assert [row.split(" | ")[1] for row in rows] == list(result["calibration"]["fer_exp"])
    three = result["calibration"]["fer_exp"]["3"]["coverage_one_point"]
    assert f"| fer_exp | 3 | {100 * three['rate']:.1f} ± {100 * three['se']:.1f} % |" in page
    assert render_calibration(None) == ""
