"""How sure a comparison is: bootstrap intervals over validation images and seeds.

Two sources of noise make one run's accuracy move: the validation images (another sample of
faces scores differently) and the training (another seed trains another network). A run alone
shows only the first; a setting run under several seeds shows both. Everything here works on
arrays and knows nothing of MLflow: :mod:`fer_exp.analysis.groups` feeds it runs.

- :func:`run_intervals`: a run's accuracy and macro-F1 with their 95 % percentile interval from
  resampling its validation images.
- :func:`compare_settings`: runs grouped by setting; each group's mean with its interval, and
  each setting's difference to a baseline with its interval, its ``p_value`` corrected for the
  number of settings (Holm), a verdict, and the probability of improvement.

A setting's mean has two parts of variance. The spread between its runs (``std**2 / k``, as in
Welch's test) holds the training noise and each run's own luck on the images. The image noise
that all its runs share is not in that spread: the bootstrap resamples the validation images,
once per draw for every run that saw the same images (paired: an easy draw is easy for every
setting, and cancels in a difference), and takes from that variance the part each run has alone,
which the spread already holds, so that nothing is counted twice. The interval is the estimate
plus or minus Student's ``t`` (Satterthwaite's degrees of freedom) times the standard error. A
naive two-level bootstrap (resample seeds, then images, percentile interval) counts each run's
own luck twice, and how far that puts it off depends on how the seed noise splits between
per-image luck and a global offset; a seeds-only Welch interval misses the shared image noise
of a setting's mean. ``python -m benchmarks.comparison`` measures all three on simulated
experiments of FER-2013's size.

This module is longer than 300 lines: the per-run intervals, the comparison and its small
helpers (Holm, the probability of improvement, seeds needed) share one bootstrap and are read
together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

LEVEL = 0.95
RESAMPLES = 2000

# What the intervals of a row account for (the ``noise`` column and the verdicts say it).
SEEDS_AND_IMAGES = "seeds and images"
IMAGES_ONLY = "images only"
SEEDS_ONLY = "seeds only"
NO_NOISE = "none"


@dataclass(frozen=True)
class RunScores:
    """One run as a comparison sees it.

    Attributes:
        run_id: the MLflow run id.
        group: the label of its setting (every param that differs but the seed).
        value: the run's logged value of the metric, used when it has no predictions.
        y_true: the validation labels (integers), or None when the run kept no predictions.
        y_pred: the predicted class of each validation image, or None.
        fingerprint: which validation images, in which order (runs pair only when it is equal).
    """

    run_id: str
    group: str
    value: float | None
    y_true: np.ndarray | None = None
    y_pred: np.ndarray | None = None
    fingerprint: str | None = None

    @property
    def has_predictions(self) -> bool:
        """True when the run kept its validation predictions."""
        return self.y_pred is not None and self.y_true is not None


@dataclass
class Comparison:
    """What :func:`compare_settings` found.

    Attributes:
        groups: one dict per setting, in the order given: ``group``, ``n``, ``mean``, ``std``,
            ``ci_low``, ``ci_high``, ``noise``.
        differences: one dict per setting but the baseline: ``group``, ``baseline``,
            ``difference``, ``ci_low``, ``ci_high``, ``p_value``, ``p_adjusted``,
            ``p_improvement``, ``verdict``, ``noise``.
    """

    groups: list[dict]
    differences: list[dict]


# ---------------------------------------------------------------------------- scores


def resample_counts(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of ``n`` images is drawn in each of ``resamples`` bootstrap samples:
    a (resamples, n) float32 matrix whose rows sum to ``n`` (a score is then one matrix product)."""
    picks = rng.integers(0, n, size=(resamples, n))
    offsets = (np.arange(resamples) * n)[:, None]
    return np.bincount((picks + offsets).ravel(), minlength=resamples * n).reshape(resamples, n).astype(np.float32)


def metric_scores(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, metric: str, counts: np.ndarray | None = None
) -> np.ndarray:
    """A metric of every run on the images, or on each bootstrap sample of them.

    Args:
        y_true: (n,) integer labels.
        y_pred: (runs, n) predicted classes, one row per run.
        n_classes: how many classes the labels index.
        metric: ``accuracy``, ``macro_f1`` (scikit-learn's: every class counts, an empty one
            scores 0) or ``f1:<class index>``.
        counts: (resamples, n) image counts (:func:`resample_counts`); None scores the images once.

    Returns:
        (runs,) without ``counts``, else (resamples, runs).

    >>> metric_scores(np.array([0, 1, 1]), np.array([[0, 1, 0], [0, 1, 1]]), 2, "accuracy").round(3).tolist()
    [0.667, 1.0]
    """
    w = np.ones((1, len(y_true)), np.float32) if counts is None else counts
    y_pred = np.atleast_2d(y_pred)
    if metric == "accuracy":
        out = w @ (y_pred == y_true).T.astype(np.float32) / w.sum(axis=1, keepdims=True)
    else:
        classes = range(n_classes) if metric == "macro_f1" else [int(metric.removeprefix("f1:"))]
        f1 = []
        for k in classes:
            truth = (y_true == k).astype(np.float32)
            said = (y_pred == k).astype(np.float32)  # (runs, n)
            hits = w @ (said * truth).T
            support_plus_said = (w @ truth)[:, None] + w @ said.T
            with np.errstate(invalid="ignore", divide="ignore"):
                f1.append(np.where(support_plus_said > 0, 2 * hits / support_plus_said, 0.0))
        out = np.mean(f1, axis=0)
    out = out.astype(np.float64)
    return out[0] if counts is None else out


def run_intervals(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, float]:
    """A run's accuracy and macro-F1 on its validation images, each with the 95 % percentile
    interval over ``resamples`` bootstrap samples of the images (the image noise alone: another
    seed would add the training noise). Keys: ``best_val_accuracy_ci_low`` / ``_ci_high`` and
    ``val_macro_f1_ci_low`` / ``_ci_high``.

    >>> y = np.arange(1000) % 2
    >>> ci = run_intervals(y, np.where(np.arange(1000) % 10 == 0, 1 - y, y), 2)
    >>> ci["best_val_accuracy_ci_low"] < 0.9 < ci["best_val_accuracy_ci_high"]
    True
    """
    counts = resample_counts(len(y_true), resamples, np.random.default_rng(seed))
    out = {}
    for name, metric in (("best_val_accuracy", "accuracy"), ("val_macro_f1", "macro_f1")):
        draws = metric_scores(y_true, y_pred[None], n_classes, metric, counts)[:, 0]
        low, high = np.percentile(draws, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = float(low), float(high)
    return out


# ---------------------------------------------------------------------------- comparisons


def compare_settings(
    runs: Sequence[RunScores],
    baseline: str,
    metric: str,
    n_classes: int,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> Comparison:
    """Each setting's mean with its interval, and its difference to ``baseline``.

    Args:
        runs: the runs, each labelled with its setting (``group``); a group's order of first
            appearance is the tables' order.
        baseline: the group every other group is compared with.
        metric: what is compared (see :func:`metric_scores`); runs without predictions
            contribute their logged ``value``, without image noise.
        n_classes: the number of classes the labels index.
        resamples: bootstrap draws.
        seed: of the bootstrap's random numbers (the same seed gives the same intervals).
        level: of every interval, and ``1 - level`` the significance of the verdicts.

    Returns:
        The group and difference rows and the notes that qualify them.
    """
    rng = np.random.default_rng(seed)
    order = list(dict.fromkeys(r.group for r in runs))
    if baseline not in order:
        raise ValueError(f"baseline {baseline!r} is none of the settings {order}")
    values = _draws(runs, n_classes, metric, resamples, rng)  # (1 + resamples, runs)
    members = {g: [i for i, r in enumerate(runs) if r.group == g] for g in order}
    parts = {g: _Parts.of(values[:, idx], all(runs[i].has_predictions for i in idx)) for g, idx in members.items()}
    quantile = (1 + level) / 2

    groups = []
    for g, part in parts.items():
        se = np.sqrt(part.seeds + part.shared_images())
        t = scipy_stats.t.ppf(quantile, _satterthwaite(part.seeds + part.shared_images(), [part]))
        groups.append(
            {
                "group": g,
                "n": part.k,
                "mean": part.point,
                "std": part.std,
                "ci_low": part.point - t * se if part.noise != NO_NOISE else np.nan,
                "ci_high": part.point + t * se if part.noise != NO_NOISE else np.nan,
                "se": se,
                "noise": part.noise,
            }
        )

    differences = []
    base = parts[baseline]
    for g, part in parts.items():
        if g == baseline:
            continue
        shared = np.var(part.centre - base.centre, ddof=1) - part.own_images / part.k - base.own_images / base.k
        variance = part.seeds + base.seeds + max(0.0, float(shared))
        se, d = np.sqrt(variance), part.point - base.point
        df = _satterthwaite(variance, [part, base])
        noise = _noise(part.k > 1 and base.k > 1, part.images and base.images)
        known = noise != NO_NOISE
        t = scipy_stats.t.ppf(quantile, df) if se > 0 else 0.0
        differences.append(
            {
                "group": g,
                "baseline": baseline,
                "difference": d,
                "ci_low": d - t * se if known else np.nan,
                "ci_high": d + t * se if known else np.nan,
                "se": se,
                "p_value": _p_value(d, se, df) if known else np.nan,
                "p_improvement": probability_of_improvement(part.runs, base.runs),
                "noise": noise,
            }
        )
    adjusted = holm([row["p_value"] for row in differences])
    for row, p_adj in zip(differences, adjusted):
        row["p_adjusted"] = p_adj
        row["verdict"] = verdict(row["difference"], p_adj, 1 - level)
    return Comparison(groups, differences)


@dataclass
class _Parts:
    """A setting's runs and the parts of its mean's variance.

    ``seeds``: the spread between its runs (``std**2 / k``), which holds the training noise and
    each run's own luck on the images; ``own_images``: that luck alone (how much more a single
    run moves than the mean of all runs when the images are resampled); the rest of the image
    noise, which all its runs share, is what :meth:`shared_images` and a difference's paired
    draws add. With one run, nothing separates the two: the images' noise counts whole.
    """

    runs: np.ndarray  # (k,) each run on all images
    centre: np.ndarray  # (resamples,) the runs' mean on each image draw
    own_images: float
    images: bool  # every run kept its predictions

    @classmethod
    def of(cls, values: np.ndarray, images: bool) -> _Parts:
        """From ``values``: (1 + resamples, k) the runs on all images, then on each draw."""
        runs, draws = values[0], values[1:]
        centre = draws.mean(axis=1)
        k = len(runs)
        own = 0.0
        if k > 1 and images:
            own = max(0.0, float(np.var(draws, axis=0, ddof=1).mean() - np.var(centre, ddof=1)) * k / (k - 1))
        return cls(runs, centre, own, images)

    @property
    def k(self) -> int:
        """The number of runs (seeds)."""
        return len(self.runs)

    @property
    def point(self) -> float:
        """The mean of the runs on all images."""
        return float(np.mean(self.runs))

    @property
    def std(self) -> float:
        """The standard deviation between the runs (NaN for one run)."""
        return float(np.std(self.runs, ddof=1)) if self.k > 1 else np.nan

    @property
    def seeds(self) -> float:
        """The variance of the mean from the spread between runs (0 for one run)."""
        return float(np.var(self.runs, ddof=1) / self.k) if self.k > 1 else 0.0

    def shared_images(self) -> float:
        """The variance of the mean from the images that all the runs share."""
        if not self.images:
            return 0.0
        return max(0.0, float(np.var(self.centre, ddof=1)) - self.own_images / self.k)

    @property
    def noise(self) -> str:
        """What this setting's interval counts (:data:`SEEDS_AND_IMAGES`, ...)."""
        return _noise(self.k > 1, self.images)


def _p_value(difference: float, se: float, df: float) -> float:
    """Two-sided p-value of ``difference`` against 0 (identical predictions: 1, or 0 when they differ)."""
    if se == 0:
        return 1.0 if difference == 0 else 0.0
    return float(2 * scipy_stats.t.sf(abs(difference) / se, df))


def _satterthwaite(variance: float, parts: Sequence[_Parts]) -> float:
    """Welch-Satterthwaite degrees of freedom of a variance whose seed parts were estimated
    from ``k - 1`` degrees of freedom each and whose image part from many (infinite)."""
    den = sum(p.seeds**2 / (p.k - 1) for p in parts if p.k > 1)
    return float(variance**2 / den) if den > 0 else np.inf


def _draws(runs, n_classes, metric, resamples, rng) -> np.ndarray:
    """The metric of every run on all images (row 0) and on each bootstrap draw (rows 1...):
    runs that saw the same images (one fingerprint) share each draw; other image sets are drawn
    independently; runs without predictions keep their logged value."""
    values = np.empty((1 + resamples, len(runs)))
    by_images: dict[str, list[int]] = {}
    for i, r in enumerate(runs):
        if r.has_predictions:
            by_images.setdefault(r.fingerprint or f"unknown {r.run_id}", []).append(i)
        else:
            values[:, i] = np.nan if r.value is None else r.value
    for idx in by_images.values():
        y_true = runs[idx[0]].y_true
        y_pred = np.stack([runs[i].y_pred for i in idx])
        values[0, idx] = metric_scores(y_true, y_pred, n_classes, metric)
        values[1:, idx] = metric_scores(y_true, y_pred, n_classes, metric, resample_counts(len(y_true), resamples, rng))
    return values


def _noise(seeds: bool, images: bool) -> str:
    return {(True, True): SEEDS_AND_IMAGES, (False, True): IMAGES_ONLY, (True, False): SEEDS_ONLY}.get(
        (seeds, images), NO_NOISE
    )


def probability_of_improvement(a: Sequence[float], b: Sequence[float]) -> float:
    """The probability that a run of ``a`` scores higher than a run of ``b`` (ties count half):
    the Mann-Whitney statistic over every pair of runs, as rliable defines it.

    >>> probability_of_improvement([0.7, 0.8], [0.75, 0.75])
    0.5
    """
    a, b = np.asarray(a, float)[:, None], np.asarray(b, float)[None, :]
    return float(np.mean((a > b) + 0.5 * (a == b)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down correction for comparing several settings with one baseline: each
    p-value adjusted so that the chance of any false verdict stays at the significance level.
    NaN stays NaN and is not counted.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, float)
    out = np.full(len(p), np.nan)
    known = np.flatnonzero(~np.isnan(p))
    order = known[np.argsort(p[known], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return [round(float(v), 12) for v in out]


def verdict(difference: float, p_adjusted: float, alpha: float = 1 - LEVEL) -> str:
    """``better``, ``worse`` or ``indistinguishable``: a difference counts only when its
    corrected p-value is below ``alpha``."""
    if np.isnan(p_adjusted) or p_adjusted >= alpha:
        return "indistinguishable"
    return "better" if difference > 0 else "worse"


def seeds_needed(std: float, difference: float, level: float = LEVEL) -> int | None:
    """About how many seeds per setting would tell ``difference`` apart from nothing when runs
    vary by ``std`` between seeds (a two-sided interval at ``level``, seed noise alone);
    None when either is unknown or zero.

    >>> seeds_needed(0.005, 0.005)
    9
    """
    if not (std > 0 and abs(difference) > 0) or np.isnan(std):
        return None
    z = scipy_stats.norm.ppf((1 + level) / 2)
    k = 2
    while k < 1000:
        t = scipy_stats.t.ppf((1 + level) / 2, 2 * k - 2)
        if t * std * np.sqrt(2 / k) < abs(difference):
            return k
        k += 1
    return int(np.ceil(2 * (z * std / difference) ** 2))


def group_label(params: Mapping[str, str]) -> str:
    """A setting's label: its differing params as ``key=value``, joined by spaces
    (``(all runs)`` when nothing differs).

    >>> group_label({"preset.augmentation": "heavy", "lr": "0.01"})
    'preset.augmentation=heavy lr=0.01'
    """
    return " ".join(f"{k}={v}" for k, v in params.items()) or "(all runs)"
