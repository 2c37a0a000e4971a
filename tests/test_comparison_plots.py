"""The comparison picture shows the noise: each setting's interval (a forest plot whose axis
does not start at zero), each difference to the baseline coloured by its verdict around a line
at zero, a note when the intervals count image noise only, and the mean learning curve of each
setting with a band of one standard deviation over its runs. Checked through the matplotlib
objects (found by their ``gid``), not the PNG bytes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.colors import to_hex

from fer_exp.analysis.comparison_plots import (
    EARLY_STOP_NOTE,
    IMAGES_ONLY_NOTE,
    VERDICT_COLORS,
    comparison_figure,
    comparison_png,
    mean_curve,
    short_labels,
    style_of,
)
from fer_exp.analysis.stats import IMAGES_ONLY, SEEDS_AND_IMAGES, RunScores, compare_settings

NAN = float("nan")
BASE, LIGHT, HEAVY = "preset.augmentation=none", "preset.augmentation=light", "preset.augmentation=heavy"


def _group(name, mean, low, high, n=3, noise=SEEDS_AND_IMAGES):
    """A row of ``compare_settings``'s groups."""
    std = 0.01 if n > 1 else NAN
    return {"group": name, "n": n, "mean": mean, "std": std, "ci_low": low, "ci_high": high, "noise": noise}


def _difference(name, d, low, high, verdict, p_improvement=0.83, noise=SEEDS_AND_IMAGES):
    """A row of ``compare_settings``'s differences (to ``BASE``)."""
    row = {"group": name, "baseline": BASE, "difference": d, "ci_low": low, "ci_high": high, "p_adjusted": 0.2}
    return row | {"p_improvement": p_improvement, "verdict": verdict, "noise": noise}


# the baseline is deliberately not first: the picture puts it on top
GROUPS = [_group(LIGHT, 0.61, 0.60, 0.62), _group(BASE, 0.58, 0.57, 0.59), _group(HEAVY, 0.55, 0.53, 0.57)]
DIFFERENCES = [_difference(LIGHT, 0.03, 0.01, 0.05, "better"), _difference(HEAVY, -0.03, -0.05, -0.01, "worse", 0.0)]
# three runs per setting; one of the baseline's runs stopped early after 3 of 5 epochs
HISTORIES = {
    BASE: [[(1, 0.30), (2, 0.40), (3, 0.50), (4, 0.55), (5, 0.58)], [(1, 0.32), (2, 0.44), (3, 0.48)]]
    + [[(1, 0.34), (2, 0.42), (3, 0.52), (4, 0.57), (5, 0.58)]],
    LIGHT: [[(e, 0.1 * e + 0.01 * s) for e in range(1, 6)] for s in range(3)],
    HEAVY: [[(e, 0.09 * e + 0.01 * s) for e in range(1, 6)] for s in range(3)],
}


def _by_gid(artists, gid):
    found = [a for a in artists if a.get_gid() == gid]
    assert len(found) == 1, (gid, [a.get_gid() for a in artists])
    return found[0]


def _texts(ax) -> list[str]:
    return [" ".join(t.get_text().split()) for t in ax.texts]


def test_the_forest_panel_has_one_row_per_setting_at_its_interval_and_the_baseline_on_top():
    settings, _, _ = comparison_figure(GROUPS, DIFFERENCES, HISTORIES, "best_val_accuracy").axes
    ticks = [t.get_text() for t in settings.get_yticklabels()]
    assert ticks == ["augmentation=none\n(baseline)", "augmentation=light", "augmentation=heavy"]
    for y, name in enumerate([BASE, LIGHT, HEAVY]):
        row = next(g for g in GROUPS if g["group"] == name)
        interval = _by_gid(settings.lines, f"interval:{name}")
        assert list(interval.get_xdata()) == [row["ci_low"], row["ci_high"]] and list(interval.get_ydata()) == [y, y]
        mean = _by_gid(settings.lines, f"mean:{name}")
        assert (mean.get_xdata()[0], mean.get_ydata()[0]) == (row["mean"], y)
        assert to_hex(mean.get_color()) == to_hex(interval.get_color()) == style_of(y)[0]
    assert _texts(settings) == ["0.580 n=3", "0.610 n=3", "0.550 n=3"]
    low, high = settings.get_xlim()
    assert 0.5 < low < 0.53 and 0.62 < high < 0.65  # around the intervals, not from zero
    assert settings.get_ylim()[0] > settings.get_ylim()[1]  # first row on top


def test_the_differences_panel_has_a_zero_line_and_colours_each_difference_by_its_verdict():
    _, differences, _ = comparison_figure(GROUPS, DIFFERENCES, HISTORIES, "best_val_accuracy").axes
    zero = _by_gid(differences.lines, "zero")
    assert list(zero.get_xdata()) == [0, 0]
    low, high = differences.get_xlim()
    assert low < -0.05 and high > 0.05
    for d, y in ((DIFFERENCES[0], 1), (DIFFERENCES[1], 2)):  # the rows of panel 1
        line = _by_gid(differences.lines, f"difference:{d['group']}")
        assert list(line.get_xdata()) == [d["ci_low"], d["ci_high"]] and list(line.get_ydata()) == [y, y]
        assert to_hex(line.get_color()) == VERDICT_COLORS[d["verdict"]]
    assert VERDICT_COLORS["better"] != VERDICT_COLORS["worse"] != VERDICT_COLORS["indistinguishable"]
    texts = _texts(differences)
    assert "better +0.030 P(better)=0.83" in texts and "worse -0.030 P(better)=0.00" in texts
    assert "baseline" in texts
    assert IMAGES_ONLY_NOTE not in texts


def test_one_run_per_setting_says_the_intervals_count_image_noise_only():
    groups = [_group(g["group"], g["mean"], g["ci_low"], g["ci_high"], n=1, noise=IMAGES_ONLY) for g in GROUPS]
    differences = [d | {"noise": IMAGES_ONLY} for d in DIFFERENCES]
    fig = comparison_figure(groups, differences, {k: v[:1] for k, v in HISTORIES.items()}, "best_val_accuracy")
    settings, panel, curves = fig.axes
    assert IMAGES_ONLY_NOTE in _texts(panel)
    assert "intervals count: images only" in settings.get_xlabel()
    assert "P(better)=0.83 (runs: 1 vs 1)" in " ".join(_texts(panel))  # one pair: only the sign
    assert not curves.collections  # no band from one run
    assert "(1 seed)" in fig.get_suptitle()
    # a single setting with one run among seeded ones: the intervals count seeds somewhere, no note
    mixed = [differences[0], DIFFERENCES[1]]
    assert IMAGES_ONLY_NOTE not in _texts(comparison_figure(GROUPS, mixed, HISTORIES, "best_val_accuracy").axes[1])


def test_the_curve_band_spans_mean_plus_minus_std_where_several_runs_reached_the_epoch():
    *_, curves = comparison_figure(GROUPS, DIFFERENCES, HISTORIES, "best_val_accuracy").axes
    line = _by_gid(curves.lines, f"curve:{BASE}")
    assert list(line.get_xdata()) == [1, 2, 3, 4, 5]
    assert line.get_ydata()[3] == pytest.approx(0.56)  # epoch 4: the two runs that reached it
    assert line.get_ydata()[1] == pytest.approx(0.42)
    band = _by_gid(curves.collections, f"band:{BASE}")
    vertices = np.concatenate([p.vertices for p in band.get_paths()])
    at_2 = vertices[np.isclose(vertices[:, 0], 2), 1]
    std = np.std([0.40, 0.44, 0.42], ddof=1)
    assert (at_2.min(), at_2.max()) == pytest.approx((0.42 - std, 0.42 + std))
    assert to_hex(band.get_facecolor()[0][:3]) == to_hex(line.get_color()) == style_of(0)[0]
    assert EARLY_STOP_NOTE in curves.get_title()
    assert [t.get_text() for t in curves.get_legend().get_texts()][0] == "augmentation=none"
    assert curves.get_xlabel() == "epoch"
    lo, hi = curves.get_xlim()
    assert [t for t in curves.get_xticks() if lo <= t <= hi] == [1, 2, 3, 4, 5]


def test_mean_curve_averages_what_exists_and_has_no_spread_from_one_run():
    epochs, mean, std, n = mean_curve([[(1, 0.2), (2, 0.4), (3, 0.5)], [(1, 0.4), (2, 0.6)]])
    assert epochs.tolist() == [1, 2, 3] and n.tolist() == [2, 2, 1]
    assert mean.tolist() == pytest.approx([0.3, 0.5, 0.5])
    assert std[:2] == pytest.approx([math.sqrt(0.02)] * 2) and math.isnan(std[2])


def test_a_single_setting_draws_two_panels():
    fig = comparison_figure([GROUPS[1]], [], {BASE: HISTORIES[BASE]}, "best_val_accuracy")
    assert len(fig.axes) == 2
    settings, curves = fig.axes
    assert [t.get_text() for t in settings.get_yticklabels()] == ["augmentation=none"]
    assert curves.get_xlabel() == "epoch"


def test_settings_and_differences_without_an_interval_show_the_dot_and_say_so(tmp_path):
    groups = [GROUPS[1], _group(LIGHT, 0.61, NAN, NAN, n=1, noise="none")]
    differences = [_difference(LIGHT, 0.03, NAN, NAN, "indistinguishable", p_improvement=NAN, noise="none")]
    settings, panel, _ = comparison_figure(groups, differences, {}, "best_val_accuracy").axes
    assert [line.get_gid() for line in settings.lines if line.get_gid().startswith("interval:")] == [f"interval:{BASE}"]
    assert _by_gid(settings.lines, f"mean:{LIGHT}").get_xdata()[0] == 0.61
    assert "0.610 n=1 no interval" in _texts(settings)
    assert not [line for line in panel.lines if line.get_gid().startswith("difference:")]
    assert to_hex(_by_gid(panel.lines, f"dot:{LIGHT}").get_color()) == VERDICT_COLORS["indistinguishable"]
    assert "indistinguishable +0.030 no interval" in _texts(panel)
    assert comparison_png(groups, differences, {}, "best_val_accuracy", tmp_path / "c.png").stat().st_size > 0


def test_many_long_settings_keep_their_labels_short_and_the_figure_grows():
    names = [f"optimizer.learning_rate=0.000{i} model.head.dropout_rate_of_the_last_layer=0.{i}" for i in range(1, 10)]
    groups = [_group(n, 0.5 + 0.01 * i, 0.49 + 0.01 * i, 0.51 + 0.01 * i) for i, n in enumerate(names)]
    differences = [
        _difference(n, 0.01 * i, 0.0, 0.02 * i, "indistinguishable") | {"baseline": names[0]}
        for i, n in enumerate(names[1:], 1)
    ]
    histories = {n: [[(1, 0.3), (2, 0.4)]] * 2 for n in names}
    fig = comparison_figure(groups, differences, histories, "best_val_accuracy", title="nine settings")
    assert fig.get_suptitle() == "nine settings"
    assert fig.get_size_inches()[1] > comparison_figure(GROUPS, DIFFERENCES, {}, "x").get_size_inches()[1]
    settings, _, curves = fig.axes
    for tick in settings.get_yticklabels():
        assert all(len(line) <= 26 for line in tick.get_text().split("\n")), tick.get_text()
    legend = [t.get_text() for t in curves.get_legend().get_texts()]
    assert len(set(legend)) == 9 and all(label.endswith("…") for label in legend)
    assert short_labels(["a.b=1", "c.b=2"]) == {"a.b=1": "a.b=1", "c.b=2": "c.b=2"}  # "b=" twice: keys kept whole


def test_the_picture_draws_what_compare_settings_returns(tmp_path):
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 7, 400)
    runs = [
        RunScores(f"{g}{s}", g, None, y_true, np.where(rng.random(400) < acc, y_true, (y_true + 1) % 7), "same")
        for g, acc in ((BASE, 0.55), (HEAVY, 0.65))
        for s in range(3)
    ]
    comparison = compare_settings(runs, BASE, "accuracy", 7, resamples=200)
    path = comparison_png(comparison.groups, comparison.differences, HISTORIES, "best_val_accuracy", tmp_path / "c.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    fig = comparison_figure(comparison.groups, comparison.differences, HISTORIES, "best_val_accuracy")
    assert fig.get_suptitle() == "best_val_accuracy: mean and 95 % interval per setting (3 seeds)"
    line = _by_gid(fig.axes[1].lines, f"difference:{HEAVY}")
    assert to_hex(line.get_color()) == VERDICT_COLORS[comparison.differences[0]["verdict"]] == VERDICT_COLORS["better"]
