"""The comparison's statistics: per-run intervals, pairing over images, seeds, Holm, verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from fer_exp.analysis import stats
from fer_exp.analysis.stats import RunScores, compare_settings

N = 4000


def _runs(rng, groups: dict[str, list[float]], fingerprints: dict[str, str] | None = None, shared=None):
    """Runs of each group, one per entry (its share of extra correct images); the images
    every run gets right or wrong alike (``shared``) make a paired comparison sharper."""
    y = np.zeros(N, int)
    shared = rng.random(N) < 0.65 if shared is None else shared
    out = []
    for g, extras in groups.items():
        for j, extra in enumerate(extras):
            correct = shared | (rng.random(N) < extra)
            out.append(RunScores(f"{g}{j}", g, None, y, np.where(correct, 0, 1), (fingerprints or {}).get(g, "same")))
    return out


def test_run_intervals_bracket_the_accuracy_and_shrink_with_more_images():
    rng = np.random.default_rng(1)
    widths = []
    for n in (500, 8000):
        y = rng.integers(0, 3, n)
        pred = np.where(rng.random(n) < 0.7, y, (y + 1) % 3)
        ci = stats.run_intervals(y, pred, 3, resamples=1000)
        acc = np.mean(pred == y)
        assert ci["best_val_accuracy_ci_low"] < acc < ci["best_val_accuracy_ci_high"]
        widths.append(ci["best_val_accuracy_ci_high"] - ci["best_val_accuracy_ci_low"])
        # the binomial standard error: a 95 % interval spans about 4 of them
        assert widths[-1] == pytest.approx(3.92 * np.sqrt(acc * (1 - acc) / n), rel=0.2)
    assert widths[1] < widths[0] / 3


def test_macro_f1_on_bootstrap_draws_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 300)
    pred = np.stack([np.where(rng.random(300) < p, y, rng.integers(0, 4, 300)) for p in (0.5, 0.8)])
    counts = stats.resample_counts(300, 5, rng)
    draws = stats.metric_scores(y, pred, 4, "macro_f1", counts)
    for b in range(5):
        idx = np.repeat(np.arange(300), counts[b].astype(int))
        for r in range(2):
            expected = f1_score(y[idx], pred[r][idx], average="macro", labels=range(4), zero_division=0)
            assert draws[b, r] == pytest.approx(expected, abs=1e-6)
    one = stats.metric_scores(y, pred, 4, "f1:2")
    assert one[1] == pytest.approx(f1_score(y, pred[1], labels=[2], average="macro"), abs=1e-6)


def test_pairing_over_images_sharpens_a_small_real_difference():
    rng = np.random.default_rng(3)
    shared = rng.random(N) < 0.65
    groups = {"base": [0.0] * 3, "better": [0.04] * 3}
    paired = compare_settings(_runs(rng, groups, shared=shared), "base", "accuracy", 2, resamples=500)
    unpaired = compare_settings(
        _runs(np.random.default_rng(3), groups, {"better": "other images"}, shared=shared),
        "base",
        "accuracy",
        2,
        resamples=500,
    )
    (p,), (u,) = paired.differences, unpaired.differences
    assert p["difference"] == pytest.approx(u["difference"], abs=0.02)
    assert p["verdict"] == "better" and p["ci_low"] > 0
    # unpaired, the images' noise of both sides adds up instead of cancelling
    assert u["ci_high"] - u["ci_low"] > 1.5 * (p["ci_high"] - p["ci_low"])


def test_seeds_widen_the_interval_and_one_seed_says_it_counts_images_only():
    rng = np.random.default_rng(4)
    spread = compare_settings(
        _runs(rng, {"a": [0.0, 0.03, 0.06], "b": [0.02, 0.05, 0.08]}), "a", "accuracy", 2, resamples=500
    )
    calm = compare_settings(
        _runs(rng, {"a": [0.03, 0.03, 0.03], "b": [0.05, 0.05, 0.05]}), "a", "accuracy", 2, resamples=500
    )
    width = lambda c: c.differences[0]["ci_high"] - c.differences[0]["ci_low"]  # noqa: E731
    assert width(spread) > 2 * width(calm)
    assert spread.groups[0]["noise"] == stats.SEEDS_AND_IMAGES and spread.groups[0]["n"] == 3
    single = compare_settings(_runs(rng, {"a": [0.0], "b": [0.02]}), "a", "accuracy", 2, resamples=500)
    assert single.groups[0]["noise"] == single.differences[0]["noise"] == stats.IMAGES_ONLY
    assert np.isnan(single.groups[0]["std"]) and not np.isnan(single.differences[0]["ci_low"])


def test_runs_without_predictions_count_seed_noise_only():
    runs = [RunScores(f"r{i}", g, v) for i, (g, v) in enumerate([("a", 0.60), ("a", 0.62), ("b", 0.70), ("b", 0.71)])]
    c = compare_settings(runs, "a", "accuracy", 2, resamples=200)
    assert c.groups[0]["mean"] == pytest.approx(0.61)
    assert c.differences[0]["noise"] == stats.SEEDS_ONLY
    # Welch's interval from two seeds each
    se = np.sqrt(np.var([0.60, 0.62], ddof=1) / 2 + np.var([0.70, 0.71], ddof=1) / 2)
    half = c.differences[0]["ci_high"] - c.differences[0]["difference"]
    assert half > 1.96 * se  # Student's t with few degrees of freedom, not the normal quantile
    lone = compare_settings([RunScores("x", "a", 0.6), RunScores("y", "b", 0.7)], "a", "accuracy", 2, resamples=50)
    assert np.isnan(lone.differences[0]["ci_low"]) and lone.differences[0]["verdict"] == "indistinguishable"


def test_verdicts_follow_the_holm_corrected_p_values():
    rng = np.random.default_rng(5)
    groups = {"base": [0.0] * 3, "same": [0.0] * 3, "worse": [-0.0] * 3, "better": [0.05] * 3}
    runs = _runs(rng, groups)
    worse = [RunScores(r.run_id, r.group, None, r.y_true, np.where(rng.random(N) < 0.06, 1, r.y_pred), r.fingerprint)
             if r.group == "worse" else r for r in runs]  # fmt: skip
    c = compare_settings(worse, "base", "accuracy", 2, resamples=500)
    by = {d["group"]: d for d in c.differences}
    assert [by[g]["verdict"] for g in ("same", "worse", "better")] == ["indistinguishable", "worse", "better"]
    assert [d["p_adjusted"] for d in c.differences] == stats.holm([d["p_value"] for d in c.differences])
    assert all(d["p_adjusted"] >= d["p_value"] for d in c.differences)
    assert by["better"]["p_improvement"] == 1.0 and by["worse"]["p_improvement"] == 0.0


def test_holm_corrects_more_than_one_comparison_and_keeps_one_alone():
    assert stats.holm([0.02]) == [0.02]
    assert stats.holm([0.02, 0.5]) == [0.04, 0.5]
    assert stats.holm([0.01, float("nan"), 0.03]) == pytest.approx([0.02, float("nan"), 0.03], nan_ok=True)
    assert stats.verdict(0.01, 0.04) == "better" and stats.verdict(-0.01, 0.04) == "worse"
    assert stats.verdict(0.01, 0.06) == "indistinguishable"


def test_a_baseline_that_is_no_setting_is_refused():
    with pytest.raises(ValueError, match="baseline 'c' is none of the settings"):
        compare_settings([RunScores("x", "a", 0.5), RunScores("y", "b", 0.6)], "c", "accuracy", 2)
