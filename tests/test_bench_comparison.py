"""benchmarks/comparison.py (``python -m benchmarks.comparison``) on tiny sizes: the JSON holds every
figure the docs quote, and the calibration can fail: an interval that uses its standard error times
1.0 instead of Student's t must show coverage well below the 90 % goal."""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import asdict

from benchmarks.comparison import FIGURES, Sizes, World, calibrate, fer_exp_method, main

TINY = Sizes(
    experiments=6,
    resamples=50,
    seed_counts=(1, 3),
    images=500,
    speed={"settings": 3, "seeds": 2, "resamples": 50, "repeats": 1},
)


def test_json_holds_every_figure(tmp_path, capsys):
    out = tmp_path / "docs" / "bench.json"
    result = main(["--quick", "--seed", "7", "--out", str(out)], sizes=TINY)
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data == json.loads(json.dumps(result))
    assert data["quick"] is True and data["seed"] == 7 and data["sizes"] == json.loads(json.dumps(asdict(TINY)))
    assert data["cpu"]["model"] and data["cpu"]["cores"] >= 1 and data["cpu"]["usable_cores"] >= 1
    assert set(data["versions"]) == {"numpy", "scipy", "python"}
    datetime.datetime.fromisoformat(data["date"])
    assert data["world"]["images"] == 7066 and data["world"]["delta_one_point"] > 0
    assert 0.6 < data["simulated"]["accuracy"] < 0.75 and 0.2 < data["simulated"]["seed_std_points"] < 1.0
    assert "resamples" in data["notes"]

    for metric in ("accuracy", "macro_f1"):
        assert 0 < data["speed"][metric]["best_s"] <= data["speed"][metric]["median_s"]
    assert data["speed"]["runs"] == 6

    calibration = data["calibration"]
    assert set(calibration) == {"fer_exp", "welch_seeds_only", "naive_bootstrap"}
    assert set(calibration["fer_exp"]) == {"1", "3"}  # the baselines at 3 seeds only
    assert set(calibration["welch_seeds_only"]) == set(calibration["naive_bootstrap"]) == {"3"}
    for by_seeds in calibration.values():
        for seeds, row in by_seeds.items():
            assert row["seeds"] == int(seeds) and row["experiments"] == 6
            assert math.isclose(row["true_one_point"], 0.01, abs_tol=1e-9)
            assert 0 <= row["power"] <= 1 and row["width_one_point"] > 0
            for figure in FIGURES:
                rate, se = row[figure]["rate"], row[figure]["se"]
                assert 0 <= rate <= 1 and math.isclose(se, math.sqrt(rate * (1 - rate) / 6))

    assert 0 < data["artifact"]["bytes"] < data["artifact"]["bytes_with_tta"]
    assert 0.4 < data["artifact"]["mean_max_probability"] < 0.95  # confident-ish, not uniform
    assert set(data["goals"]) == {"speed_10s", "coverage_90_97", "aa_at_most_10", "artifact_200kB"}
    assert 0 < data["calibration_seconds"] < data["total_seconds"]
    assert "fer_exp, 3 seed(s)" in printed and "coverage_one_point" in printed and f"wrote {out}" in printed


def test_calibration_catches_an_interval_without_t():
    """On the same 200 small experiments (1,000 images, 100 resamples: a few seconds), fer_exp's
    interval covers near 95 % and the broken one far below."""
    methods = {"fer_exp": fer_exp_method(100), "broken": fer_exp_method(100, quantile=1.0)}
    found = calibrate(World(), methods, seeds=3, experiments=200, seed=1, images=1000)
    good, broken = found["fer_exp"], found["broken"]
    for figure in ("coverage_one_point", "coverage_zero"):
        assert good[figure]["rate"] >= 0.88, good
        assert broken[figure]["rate"] < 0.80, broken
    assert good["aa_false_verdicts"]["rate"] <= 0.12, good
    assert broken["aa_false_verdicts"]["rate"] > 0.25, broken
