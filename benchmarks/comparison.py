"""How fast and how right :func:`fer_exp.analysis.stats.compare_settings` is, and how big saved
predictions are: ``python -m benchmarks.comparison [--quick] [--seed 0] [--out docs/bench_comparison.json]``.

1. Speed: 25 settings x 4 seeds (100 runs), 7,066 images of 7 classes, 2,000 resamples.
2. Calibration on simulated experiments of known truth: run ``j`` of setting ``s`` gets image ``i``
   right with probability ``expit(a + b z_i + delta_s + c w_si + e u_sj)`` (``z_i`` the image's
   ease, ``w_si`` which images a setting gets right, ``u_sj`` a seed's offset; each run's own luck
   per image, the Bernoulli draw, is the rest of the seed noise); a wrong answer is another class at
   random. Compared on accuracy, whose population value is an integral (quadrature).
3. Artifact size: ``np.savez_compressed`` of the labels and float16 softmax outputs.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy
from scipy import stats as st
from scipy.optimize import brentq
from scipy.special import expit, softmax

from fer_exp.analysis.stats import LEVEL, RunScores, compare_settings, holm, resample_counts, verdict

# FER-2013's class shares (angry, disgust, fear, happy, neutral, sad, surprise in the train split)
CLASS_COUNTS = np.array([3993, 436, 4103, 7164, 4982, 4938, 3205])
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(121)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()
# (labels, predictions (settings, seeds, n), n_classes, rng) -> baseline's mean (low, high), [(low, high, verdict)]
FIGURES = ("coverage_one_point", "coverage_zero", "coverage_mean", "aa_false_verdicts")
Method = Callable[[np.ndarray, np.ndarray, int, np.random.Generator], tuple[tuple, list[tuple]]]


@dataclass(frozen=True)
class World:
    """The simulated validation set and the runs trained on it (see the module docstring)."""

    images: int = 7066
    classes: int = 7
    accuracy_target: float = 0.68
    ease: float = 4.0  # b: std of the images' ease on the logit scale
    interaction: float = 1.0  # c: std of the setting x image term
    seed_offset: float = 0.045  # e: std of a run's offset on the logit scale

    @cached_property
    def intercept(self) -> float:
        """``a``: what makes the population accuracy of ``delta = 0`` the target."""
        return brentq(lambda a: self._accuracy(a) - self.accuracy_target, -10, 10, xtol=1e-12)

    def _accuracy(self, a: float) -> float:
        scale = np.sqrt(self.ease**2 + self.interaction**2 + self.seed_offset**2)
        return float(_WEIGHTS @ expit(a + scale * _NODES))

    def accuracy(self, delta: float = 0.0) -> float:
        """The population accuracy of a setting shifted by ``delta`` (over images, seeds, interactions)."""
        return self._accuracy(self.intercept + delta)

    def delta_for(self, difference: float) -> float:
        """The ``delta`` whose population accuracy is ``difference`` above ``delta = 0``'s (bisection)."""
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.accuracy(mid) - self.accuracy() < difference else (lo, mid)
        return (lo + hi) / 2


def simulate(world: World, deltas, seeds: int, rng: np.random.Generator, images: int | None = None):
    """One experiment: the labels (n,) and every run's predicted classes (settings, seeds, n), uint8."""
    n, c = images or world.images, world.classes
    y = rng.choice(c, size=n, p=CLASS_COUNTS[:c] / CLASS_COUNTS[:c].sum())
    shape, m = (len(deltas), seeds, n), len(deltas)
    z, w, u = rng.standard_normal(n), rng.standard_normal((m, 1, n)), rng.standard_normal((m, seeds, 1))
    logit = world.intercept + world.ease * z + world.interaction * w + world.seed_offset * u
    logit += np.asarray(deltas, float)[:, None, None]
    correct = rng.random(shape) < expit(logit)
    wrong = (y + rng.integers(1, c, size=shape)) % c
    return y.astype(np.uint8), np.where(correct, y, wrong).astype(np.uint8)


def as_runs(y: np.ndarray, pred: np.ndarray) -> list[RunScores]:
    """The runs of ``pred`` (settings, seeds, n) as :class:`RunScores`; setting ``s`` is ``s<s>``."""
    return [
        RunScores(str(i), f"s{i // pred.shape[1]}", None, y, p, "val") for i, p in enumerate(pred.reshape(-1, len(y)))
    ]


def fer_exp_method(resamples: int = 500, quantile: float | None = None) -> Method:
    """fer_exp's :func:`compare_settings`; with ``quantile`` its standard errors times that number
    instead of Student's t (``1.0``: a deliberately broken interval the benchmark must catch)."""

    def method(y, pred, n_classes, rng):
        c = compare_settings(as_runs(y, pred), "s0", "accuracy", n_classes, resamples, int(rng.integers(2**31)))
        g, rows = c.groups[0], c.differences
        if quantile is None:
            return (g["ci_low"], g["ci_high"]), [(r["ci_low"], r["ci_high"], r["verdict"]) for r in rows]
        diffs = [(r["difference"] - quantile * r["se"], r["difference"] + quantile * r["se"]) for r in rows]
        flagged = [(lo, hi, "indistinguishable" if lo <= 0 <= hi else "different") for lo, hi in diffs]
        return (g["mean"] - quantile * g["se"], g["mean"] + quantile * g["se"]), flagged

    return method


def welch_method(y, pred, n_classes, rng):
    """Seeds only: Welch's t-interval on the runs' accuracies (Holm-corrected verdicts)."""
    acc = (pred == y).mean(axis=2)
    k, q = acc.shape[1], (1 + LEVEL) / 2
    m, v = acc.mean(axis=1), acc.var(axis=1, ddof=1) / k
    d, se, half = m[1:] - m[0], np.sqrt(v[1:] + v[0]), st.t.ppf(q, k - 1) * np.sqrt(v[0])
    df = se**4 / ((v[1:] ** 2 + v[0] ** 2) / (k - 1))
    t, ps = st.t.ppf(q, df), holm(2 * st.t.sf(np.abs(d) / se, df))
    return (m[0] - half, m[0] + half), [(x - h, x + h, verdict(x, p)) for x, h, p in zip(d, t * se, ps)]


def naive_bootstrap_method(resamples: int = 500) -> Method:
    """A two-level percentile bootstrap: each draw resamples the images (shared by every run) and,
    within each setting, its seeds with replacement; the interval is the draws' 2.5-97.5 %."""

    def method(y, pred, n_classes, rng):
        settings, k, n = pred.shape
        correct = (pred == y).reshape(settings * k, n).astype(np.float32)
        draws = (resample_counts(n, resamples, rng) @ correct.T / n).reshape(resamples, settings, k)
        means = np.take_along_axis(draws, rng.integers(0, k, draws.shape), axis=2).mean(axis=2)
        point, pct = correct.reshape(settings, k, n).mean(axis=(1, 2)), [50 * (1 - LEVEL), 50 * (1 + LEVEL)]
        diffs = (means[:, 1:] - means[:, :1]).T
        ps = holm([min(1.0, 2 * min((d <= 0).mean(), (d >= 0).mean())) for d in diffs])
        rows = [(*np.percentile(d, pct), verdict(e, p)) for d, e, p in zip(diffs, point[1:] - point[0], ps)]
        return tuple(np.percentile(means[:, 0], pct)), rows

    return method


def calibrate(
    world: World, methods: dict[str, Method], seeds: int, experiments: int, seed: int = 0, images: int | None = None
) -> dict[str, dict]:
    """Each method's coverage and A/A false verdicts on the same simulated experiments: a baseline, a
    setting one point better and three equal to the baseline. A method sees the baseline with the
    better one (coverage of +1 point and of the baseline's mean), then with the three equal ones
    (coverage of 0 from the first; A/A: whether any gets a verdict other than ``indistinguishable``)."""
    delta = world.delta_for(0.01)
    truths = np.array([world.accuracy(delta) - world.accuracy(), 0.0, world.accuracy()])  # FIGURES' order
    sim, *rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, seeds]).spawn(1 + len(methods))]
    bounds = {name: np.full((experiments, 3, 2), np.nan) for name in methods}
    verdicts = {name: np.zeros((experiments, 2), bool) for name in methods}  # +1 point found better; A/A
    for e in range(experiments):
        y, pred = simulate(world, [0.0, delta, 0.0, 0.0, 0.0], seeds, sim, images)
        for (name, method), rng in zip(methods.items(), rngs):
            mean, (one,) = method(y, pred[[0, 1]], world.classes, rng)
            _, null = method(y, pred[[0, 2, 3, 4]], world.classes, rng)
            bounds[name][e] = [one[:2], null[0][:2], mean]
            verdicts[name][e] = one[2] == "better", any(row[2] != "indistinguishable" for row in null)
    out = {}
    for name, b in bounds.items():  # a NaN bound never covers
        power, aa = verdicts[name].mean(axis=0).tolist()
        rates = [*((b[..., 0] <= truths) & (truths <= b[..., 1])).mean(axis=0).tolist(), aa]
        out[name] = {"experiments": experiments, "seeds": seeds, "true_one_point": float(truths[0]), "power": power}
        out[name]["width_one_point"] = float(np.mean(b[:, 0, 1] - b[:, 0, 0]))  # NaN when a method gives none
        out[name] |= {k: {"rate": p, "se": (p * (1 - p) / experiments) ** 0.5} for k, p in zip(FIGURES, rates)}
    return out


def describe(world: World, seed: int = 0, experiments: int = 20) -> dict:
    """What the simulated runs look like: accuracy, seed-to-seed std of one run's accuracy on fixed
    images, and how often two runs are both right or both wrong on an image."""
    rng, rows = np.random.default_rng(seed), []
    for y, pred in (simulate(world, [0.0, 0.0], 5, rng) for _ in range(experiments)):
        a = (c := pred == y).mean(axis=2)
        rows.append([a.mean(), a.var(axis=1, ddof=1).mean(), (c[0, 0] == c[0, 1]).mean(), (c[0, 0] == c[1, 0]).mean()])
    acc, var, same, other = np.mean(rows, axis=0).tolist()
    return {"accuracy": acc, "seed_std_points": 100 * var**0.5, "agree_same_setting": same, "agree_other": other}


def speed(world: World, settings: int = 25, seeds: int = 4, resamples: int = 2000, repeats: int = 3) -> dict:
    """Wall seconds of :func:`compare_settings` on ``settings x seeds`` runs, per metric."""
    y, pred = simulate(world, np.linspace(0.0, 0.1, settings), seeds, np.random.default_rng(1))
    runs, out = as_runs(y, pred), {"runs": settings * seeds, "images": world.images, "resamples": resamples}
    for metric in ("accuracy", "macro_f1"):
        times = []
        for r in range(repeats):
            start = time.perf_counter()
            compare_settings(runs, "s0", metric, world.classes, resamples=resamples, seed=r)
            times.append(time.perf_counter() - start)
        out[metric] = {"best_s": min(times), "median_s": float(np.median(times)), "all_s": times}
    return out


def artifact_size(world: World, seed: int = 0) -> dict:
    """Bytes of ``np.savez_compressed`` of the labels and float16 softmax outputs of one simulated
    run (confident on most images: the predicted class's logit 0.5-6 above the others'), with and
    without a second (TTA) array of the same outputs slightly perturbed."""
    rng = np.random.default_rng(seed)
    y, pred = simulate(world, [0.0], 1, rng)
    n, pred = len(y), pred[0, 0]
    logits = rng.normal(0.0, 1.0, (n, world.classes))
    logits[np.arange(n), pred] += 0.5 + rng.gamma(2.0, 1.2, n)
    probs = softmax(logits, axis=1).astype(np.float16)
    tta = softmax(logits + rng.normal(0.0, 0.4, logits.shape), axis=1).astype(np.float16)

    def size(**arrays) -> int:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getbuffer().nbytes

    out = {"images": n, "mean_max_probability": float(probs.max(axis=1).mean()), "bytes": size(y=y, p=probs)}
    return out | {"bytes_with_tta": size(y=y, p=probs, tta=tta)}


@dataclass(frozen=True)
class Sizes:
    """How much each part measures (the defaults: the full run)."""

    experiments: int = 1000
    resamples: int = 500  # inside the calibration loop (compare_settings' default is 2,000)
    seed_counts: tuple[int, ...] = (1, 2, 3, 5)
    baseline_seeds: int = 3  # the seed count at which the baselines are measured too
    images: int | None = None  # None: the world's (7,066)
    speed: dict = field(default_factory=lambda: {"settings": 25, "seeds": 4, "resamples": 2000, "repeats": 3})


def _cpu() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown")
    return {"model": model, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0))}


def benchmark(sizes: Sizes | None = None, seed: int = 0, world: World | None = None, log=print) -> dict:
    """All three parts (default sizes and world: the full run); ``log`` is called with each printed line."""
    sizes, world, started = sizes or Sizes(), world or World(), time.perf_counter()
    result = {
        "cpu": _cpu(),
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "python": platform.python_version()},
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "sizes": asdict(sizes),
        "world": {**asdict(world), "intercept": world.intercept, "delta_one_point": world.delta_for(0.01)},
        "simulated": describe(world, seed),
        "notes": f"calibration: {sizes.resamples} resamples per comparison; {world.classes} classes, on accuracy",
    }
    log(f"cpu: {result['cpu']['model']} ({result['cpu']['usable_cores']} usable cores)")
    log("simulated runs: " + ", ".join(f"{k} {v:.4g}" for k, v in result["simulated"].items()))
    result["speed"] = speed(world, **sizes.speed)
    for metric, s in ((m, result["speed"][m]) for m in ("accuracy", "macro_f1")):
        log(f"speed {metric}: best {s['best_s']:.2f} s, median {s['median_s']:.2f} s ({result['speed']['runs']} runs)")
    result["calibration"], calibration_started, resamples = {}, time.perf_counter(), sizes.resamples
    for k in sizes.seed_counts:
        methods = {"fer_exp": fer_exp_method(sizes.resamples)}
        if k == sizes.baseline_seeds:
            methods |= {"welch_seeds_only": welch_method, "naive_bootstrap": naive_bootstrap_method(resamples)}
        for name, r in calibrate(world, methods, k, sizes.experiments, seed, sizes.images).items():
            result["calibration"].setdefault(name, {})[str(k)] = r
            figures = ", ".join(f"{key} {100 * r[key]['rate']:.1f} ± {100 * r[key]['se']:.1f} %" for key in FIGURES)
            more = f"mean width {100 * r['width_one_point']:.2f} points, +1 point found {100 * r['power']:.1f} %"
            log(f"{name}, {k} seed(s), {sizes.experiments} experiments: {figures}; {more}")
    result["calibration_seconds"] = time.perf_counter() - calibration_started
    result["artifact"] = a = artifact_size(world, seed)
    log(f"artifact: {a['bytes'] / 1000:.1f} kB, with TTA {a['bytes_with_tta'] / 1000:.1f} kB ({a['images']} images)")
    three = result["calibration"]["fer_exp"].get(str(sizes.baseline_seeds), {})
    rate = {k: v["rate"] for k, v in three.items() if isinstance(v, dict)} or dict.fromkeys(FIGURES, np.nan)
    result["goals"] = {
        "speed_10s": max(result["speed"][m]["best_s"] for m in ("accuracy", "macro_f1")) <= 10,
        "coverage_90_97": all(0.90 <= rate[k] <= 0.97 for k in ("coverage_one_point", "coverage_zero")),
        "aa_at_most_10": rate["aa_false_verdicts"] <= 0.10,
        "artifact_200kB": a["bytes_with_tta"] <= 200_000,
    }
    log("goals: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in result["goals"].items()))
    result["total_seconds"] = time.perf_counter() - started
    log(f"{result['total_seconds']:.0f} s in all, {result['calibration_seconds']:.0f} s of them calibrating")
    return result


def main(argv: list[str] | None = None, sizes: Sizes | None = None) -> dict:
    """The command line; ``sizes`` overrides what ``--quick`` chooses (the tests' tiny runs)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.comparison",
        description="fer_exp's comparison of settings: speed, calibration, artifact size",
    )
    parser.add_argument("--quick", action="store_true", help="100 experiments per figure instead of 1,000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    sizes = sizes or (Sizes(experiments=100) if args.quick else Sizes())
    result = {"quick": args.quick, **benchmark(sizes, args.seed, log=lambda line: print(line, flush=True))}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
