"""Input-pipeline benchmark: ImageDataGenerator vs Keras preprocessing layers vs fer_exp's
tfdata pipeline, side by side in one process, on the same images and the ``seed`` augmentation
(48x48 grayscale, batch 128).

    python scripts/bench_input.py                    # FER-2013 from ../shared if present
    python scripts/bench_input.py --quick            # under a minute on 2 cores
    python scripts/bench_input.py --root /data/fer2013

Prints a table, and as its last line one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fer_exp.config import compose  # noqa: E402
from fer_exp.data.sources import load_splits  # noqa: E402

BATCH = 128


def rate(batches, n_batches: int, warmup: int = 2) -> float:
    """Images per second over ``n_batches`` after ``warmup`` batches."""
    it = iter(batches)
    for _ in range(warmup):
        next(it)
    start, images = time.perf_counter(), 0
    for _ in range(n_batches):
        x = next(it)[0]
        images += len(x)
    return images / (time.perf_counter() - start)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.environ.get("FER2013_ROOT", REPO.parent / "shared/data/fer2013"))
    parser.add_argument("--quick", action="store_true", help="fewer batches and training steps (< 1 min)")
    parser.add_argument("--train-steps", type=int, default=None, help="steps per timed training epoch")
    args = parser.parse_args()
    n_batches = 25 if args.quick else 120
    train_steps = args.train_steps or (12 if args.quick else 120)

    root = Path(args.root)
    data = ["data=fer2013", f"data.root={root}"] if (root / "train").is_dir() else []
    cache = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    cfg = compose([*data, "augmentation=seed", f"batch_size={BATCH}", f"data.cache_dir={cache}", "preview_images=0"])
    splits = load_splits(cfg.data)
    print(
        f"data: {splits.root} ({len(splits.train)} train images), augmentation=seed, batch {BATCH}, "
        f"{os.cpu_count()} cores",
        flush=True,
    )

    import keras
    import tensorflow as tf
    from tensorflow.keras.preprocessing.image import ImageDataGenerator

    from fer_exp.augment import keras_idg
    from fer_exp.data import tf_pipeline
    from fer_exp.data.cache import decoded_images

    rows: list[tuple[str, float]] = []
    results: dict[str, float] = {}

    # (a) the notebook: flow_from_directory, JPEGs decoded and augmented per image
    idg = ImageDataGenerator(**keras_idg.train_kwargs(cfg.augmentation))
    flow = idg.flow_from_directory(
        str(splits.root / cfg.data.train_dir), target_size=(48, 48), color_mode="grayscale", batch_size=BATCH, seed=0
    )
    results["idg_img_s"] = rate(flow, n_batches // 2)
    rows.append(("(a) ImageDataGenerator.flow_from_directory", results["idg_img_s"]))

    # cache: decode every JPEG once (cold) vs load the cache (warm)
    fresh = Path(tempfile.mkdtemp(prefix="bench-decode-"))
    start = time.perf_counter()
    train_x = decoded_images(splits.train, 48, "grayscale", "nearest", fresh)[0]
    cold_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded_images(splits.train, 48, "grayscale", "nearest", fresh)
    warm_s = time.perf_counter() - start
    results["decode_jpegs_s"], results["load_cache_s"] = cold_s, warm_s
    results["cache_speedup"] = cold_s / warm_s

    # (b) ImageDataGenerator.flow from memory (no JPEG decoding)
    labels = keras.utils.to_categorical(splits.train.labels, 7)
    mem_flow = idg.flow(train_x.astype(np.float32), labels, batch_size=BATCH, seed=0)
    results["idg_flow_img_s"] = rate(mem_flow, n_batches // 2)
    rows.append(("(b) ImageDataGenerator.flow (decoded, in memory)", results["idg_flow_img_s"]))

    # (c) Keras 3 preprocessing layers in tf.data, the seed's transforms
    layers = keras.Sequential(
        [
            keras.layers.Rescaling(1 / 255),
            keras.layers.RandomRotation(20 / 360, fill_mode="nearest"),
            keras.layers.RandomTranslation(0.2, 0.2, fill_mode="nearest"),
            keras.layers.RandomShear(x_factor=0.2 / 45, y_factor=0.2 / 45, fill_mode="nearest"),
            keras.layers.RandomZoom(0.2, 0.2, fill_mode="nearest"),
            keras.layers.RandomFlip("horizontal"),
        ]
    )
    ds = (
        tf.data.Dataset.from_tensor_slices((np.asarray(train_x), labels))
        .repeat()
        .shuffle(4096)
        .batch(BATCH)
        .map(lambda x, y: (layers(tf.cast(x, tf.float32), training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    results["keras_layers_img_s"] = rate(ds, n_batches)
    rows.append(("(c) Keras 3 preprocessing layers in tf.data", results["keras_layers_img_s"]))

    # (d) fer_exp tfdata: first epoch with a cold cache (decode every JPEG, then augment), and warm
    cold_cache = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    start = time.perf_counter()
    cold_cfg = compose([*data, "augmentation=seed", f"batch_size={BATCH}", f"data.cache_dir={cold_cache}"])
    cold_inputs = tf_pipeline.build(cold_cfg, load_splits(cold_cfg.data))
    for _ in cold_inputs.train.take(cold_inputs.train_batches):
        pass
    results["tfdata_cold_img_s"] = len(splits.train) / (time.perf_counter() - start)
    rows.append(("(d) fer_exp tfdata, first epoch, cold cache (decode + augment)", results["tfdata_cold_img_s"]))
    for threads in sorted({1, tf_pipeline.default_threads()}):
        inputs = tf_pipeline.build(
            compose(
                [
                    *data,
                    "augmentation=seed",
                    f"batch_size={BATCH}",
                    f"data.cache_dir={cache}",
                    f"data.threads={threads}",
                ]
            ),
            splits,
        )
        speed = rate(inputs.train, n_batches * 4, warmup=4)
        results[f"tfdata_img_s_{threads}_threads"] = speed
        rows.append((f"(d) fer_exp tfdata, warm, {threads} thread(s)", speed))
    results["tfdata_img_s"] = results[f"tfdata_img_s_{tf_pipeline.default_threads()}_threads"]

    # memory: many epochs' worth of batches must not grow the process
    before = rss_mb()
    for _ in inputs.train.take(6 * inputs.train_batches if not args.quick else 300):
        pass
    results["rss_growth_mb"] = rss_mb() - before

    # training: small_cnn epoch time fed augmented vs un-augmented batches
    def epoch_time(aug: str) -> float:
        run_cfg = compose([*data, f"augmentation={aug}", f"batch_size={BATCH}", f"data.cache_dir={cache}"])
        feed = tf_pipeline.build(run_cfg, splits)
        keras.utils.set_random_seed(0)
        model = run_cfg.model.build((48, 48, 1), 7)
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
        times = []

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                times.append(time.perf_counter() - self.t)

        model.fit(feed.train, steps_per_epoch=train_steps, epochs=3, verbose=0, shuffle=False, callbacks=[Timer()])
        return min(times[1:])  # epoch 1 includes tracing

    results["epoch_s_noaug"] = epoch_time("none")
    results["epoch_s_aug"] = epoch_time("seed")
    results["epoch_time_ratio_aug_vs_noaug"] = results["epoch_s_aug"] / results["epoch_s_noaug"]
    results["train_img_s"] = train_steps * BATCH / results["epoch_s_aug"]

    results["speedup_vs_idg"] = results["tfdata_img_s"] / results["idg_img_s"]
    results["speedup_vs_keras_layers"] = results["tfdata_img_s"] / results["keras_layers_img_s"]
    results["n_images"] = len(splits.train)

    print(f"\n{'pipeline':66s} {'images/s':>10s}")
    for name, speed in rows:
        print(f"{name:66s} {speed:10,.0f}")
    print(
        f"\nspeed-up of tfdata (default threads) vs (a): {results['speedup_vs_idg']:.1f}x, "
        f"vs (c): {results['speedup_vs_keras_layers']:.1f}x"
    )
    print(
        f"decode {len(splits.train)} images: {cold_s:.2f} s; load the cache: {warm_s:.3f} s "
        f"({results['cache_speedup']:.0f}x)"
    )
    print(
        f"small_cnn epoch ({train_steps} steps of {BATCH}): {results['epoch_s_noaug']:.2f} s without "
        f"augmentation, {results['epoch_s_aug']:.2f} s with seed augmentation "
        f"(ratio {results['epoch_time_ratio_aug_vs_noaug']:.3f}); {results['train_img_s']:.0f} img/s"
    )
    print(f"RSS growth over repeated epochs: {results['rss_growth_mb']:.1f} MB")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()}))


if __name__ == "__main__":
    main()
