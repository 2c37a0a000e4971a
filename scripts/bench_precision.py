"""Training speed of each model in float32 and in bfloat16 (mixed_precision=bfloat16), side by
side in one process on the same random batches, with batch norm as Keras computes it (upcast to
float32, separate ops) and through TensorFlow's fused kernel (what fer_exp builds).

    python scripts/bench_precision.py                                  # the zoo, 30 steps each
    python scripts/bench_precision.py --models "small_cnn model.filters=[32,64,128,256]" --steps 60

Half precision pays only where the processor computes it natively: the first line says whether
this one has AMX / AVX512-BF16 (what ``mixed_precision=auto`` looks for). Prints a table, and as
its last line one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fer_exp.config import compose  # noqa: E402
from fer_exp.models import base as model_base  # noqa: E402
from fer_exp.training.hardware import cpu_name, native_bfloat16  # noqa: E402

ZOO = [
    "small_cnn",
    "small_cnn model.filters=[32,64,128,256]",
    "mini_xception",
    "resnet",
    "vgg_fer model.width=0.5",
    "seed_cnn",
]
VARIANTS = {  # name: (Keras dtype policy, fused batch norm in half precision)
    "float32": ("float32", True),
    "bf16, Keras BN": ("mixed_bfloat16", False),
    "bf16, fused BN": ("mixed_bfloat16", True),
}


def build_variant(overrides: list[str], policy: str, fused: bool):
    """The model for ``overrides`` built under a Keras dtype policy, with fused or Keras batch
    norm in half precision; the global policy is float32 again afterwards."""
    import keras

    keras.mixed_precision.set_global_policy(policy)
    model_base.FUSED_HALF_PRECISION_BN = fused
    try:
        return compose(overrides).model.build((48, 48, 1), 7)
    finally:
        model_base.FUSED_HALF_PRECISION_BN = True
        keras.mixed_precision.set_global_policy("float32")


def train_rate(overrides: list[str], policy: str, fused: bool, batch: int, steps: int) -> tuple[float, int]:
    """Images per second of ``model.fit`` steps (after a warm-up that traces the graph)."""
    import keras
    import numpy as np
    import tensorflow as tf

    model = build_variant(overrides, policy, fused)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy", jit_compile=False)
    rng = np.random.default_rng(0)
    x = rng.random((batch * 8, 48, 48, 1), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 7, batch * 8), 7)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).repeat()
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch / (time.perf_counter() - start), model.count_params()


def main(argv: list[str] | None = None) -> None:
    """Measure every model in every variant; print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models",
        nargs="+",
        default=ZOO,
        help='models as config overrides, e.g. "resnet model.blocks_per_stage=1" (model= implied)',
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per model and variant")
    args = parser.parse_args(argv)

    native = native_bfloat16()
    print(
        f"{cpu_name()}: bfloat16 {'native (' + ', '.join(native) + ')' if native else 'emulated'}; "
        f"batch {args.batch}, {args.steps} steps",
        flush=True,
    )
    print(f"\n{'model':42s} {'params':>10s} " + " ".join(f"{v:>15s}" for v in VARIANTS) + f" {'speed-up':>9s}")
    results = {}
    for spec in args.models:
        name, *rest = spec.split()
        overrides = [f"model={name}", *rest]
        rates = {}
        for variant, (policy, fused) in VARIANTS.items():
            rates[variant], params = train_rate(overrides, policy, fused, args.batch, args.steps)
        speedup = rates["bf16, fused BN"] / rates["float32"]
        results[spec] = {"params": params, **{k: round(v, 1) for k, v in rates.items()}, "speedup": round(speedup, 2)}
        print(
            f"{spec:42s} {params:10,d} " + " ".join(f"{rates[v]:11,.0f} i/s" for v in VARIANTS) + f" {speedup:8.2f}x",
            flush=True,
        )
    print(json.dumps({"cpu": cpu_name(), "native_bf16": bool(native), "batch": args.batch, "img_s": results}))


if __name__ == "__main__":
    main()
