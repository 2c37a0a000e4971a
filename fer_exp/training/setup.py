"""Set TensorFlow up for a run: threads, seeds, determinism and the compute precision."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fer_exp.training.hardware import native_bfloat16

if TYPE_CHECKING:
    from fer_exp.config import RunConfig


def setup_tensorflow(cfg: RunConfig) -> None:
    """Threads, seeds and determinism; must run before TensorFlow executes any op."""
    import keras
    import tensorflow as tf

    if cfg.threads.intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(cfg.threads.intra_op)
    if cfg.threads.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(cfg.threads.inter_op)
    keras.utils.set_random_seed(cfg.seed)  # Python, NumPy, TensorFlow
    keras.mixed_precision.set_global_policy(dtype_policy(cfg.mixed_precision, cfg.model))
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()


def dtype_policy(mixed_precision: str, model=None) -> str:
    """The Keras dtype policy for ``mixed_precision``. Half precision pays only on hardware that
    computes it natively (emulated bfloat16 is several times slower), hence ``auto``: bfloat16 on
    CPUs with AMX or AVX512-BF16 unless ``model`` (its config) is one that runs slower so,
    float16 on a GPU, float32 elsewhere."""
    if mixed_precision == "auto":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            return "mixed_float16"
        pays = getattr(model, "bfloat16_pays_on_cpu", True)
        return "mixed_bfloat16" if native_bfloat16() and pays else "float32"
    return "float32" if mixed_precision == "off" else f"mixed_{mixed_precision}"
