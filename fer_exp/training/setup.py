"""Set TensorFlow up for a run: threads, seeds, determinism and the compute precision — and keep
what TensorFlow prints as it starts out of the run's output unless ``verbose=true``.

TensorFlow writes its start-up lines from C++ (absl's "All log messages before
absl::InitializeLog()", oneDNN, ``cpu_feature_guard``, "Could not find cuda drivers"), some of
them before ``TF_CPP_MIN_LOG_LEVEL`` is read, and a machine without a GPU answers the CUDA probe
with an ``E0000 ... failed call to cuInit`` error line. None of these can be switched off from
Python, so the import and the probe run with file descriptor 2 in a temporary file, and only
the lines that are not known noise (:data:`NOISE`) go on to stderr.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fer_exp.training.hardware import cpu_name, native_bfloat16

if TYPE_CHECKING:
    from fer_exp.config import RunConfig

log = logging.getLogger("fer_exp")

NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} [\d:. ]+\d+ \S+:\d+\]"  # absl's INFO and WARNING lines
    r"|E\d{4} [\d:. ]+\d+ \S+:\d+\] .*(cuInit|CUDA|cuda|cuDNN|cuFFT|cuBLAS)"  # the probe of no GPU
    r"|To enable the following instructions: .* rebuild TensorFlow"  # cpu_feature_guard's 2nd line
)
"""The lines TensorFlow prints as it starts on any machine, dropped unless ``verbose=true``."""


def quiet_tensorflow(verbose: bool) -> None:
    """Keep TensorFlow's start-up lines out of the output (unless ``verbose``); call it before
    TensorFlow is imported: ``TF_CPP_MIN_LOG_LEVEL`` is read then, and the first import runs
    with its C++ lines filtered (:data:`NOISE`). A level the user set is kept."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ INFO and WARNING lines; errors stay
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())


@contextmanager
def filtered_stderr(verbose: bool = False) -> Iterator[None]:
    """Run the block with file descriptor 2 (C++ writes there too) in a temporary file, then
    pass on its lines but those of :data:`NOISE`. With ``verbose``, nothing is filtered."""
    if verbose:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to keep clean
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines(True) if not NOISE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, for a loader that executes it inside :func:`filtered_stderr`."""

    def find_spec(self, fullname, path, target=None):
        """TensorFlow's own spec, its loader wrapped; None for every other module."""
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: find the real spec below, without this finder
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self._loader  # TensorFlow sees its own loader
        with filtered_stderr():
            self._loader.exec_module(module)


class _DropRetracing(logging.Filter):
    """tf.function's retracing warning: expected when a sweep builds a model per job."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def progress_bar() -> bool:
    """Keras's live progress bar on a terminal; one line per epoch when the output goes to a
    file or a pipe (CI, nohup, Slurm), where every redraw of the bar would pile up.
    ``FER_EXP_PROGRESS=1`` (or ``0``) forces the bar (or the lines)."""
    forced = os.environ.get("FER_EXP_PROGRESS", "")
    if forced:
        return forced != "0"
    return sys.stdout.isatty()


def setup_tensorflow(cfg: RunConfig) -> None:
    """Threads, seeds and determinism; must run before TensorFlow executes any op. Says on
    which device and in which precision the run computes."""
    import keras
    import tensorflow as tf

    with filtered_stderr(cfg.verbose):
        gpus = tf.config.list_physical_devices("GPU")  # CUDA's probe: one error line without a GPU
    tf_log = tf.get_logger()
    for f in [f for f in tf_log.filters if isinstance(f, _DropRetracing)]:
        tf_log.removeFilter(f)
    if not cfg.verbose:
        tf_log.addFilter(_DropRetracing())
    if cfg.threads.intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(cfg.threads.intra_op)
    if cfg.threads.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(cfg.threads.inter_op)
    keras.utils.set_random_seed(cfg.seed)  # Python, NumPy, TensorFlow
    keras.mixed_precision.set_global_policy(dtype_policy(cfg.mixed_precision, cfg.model))
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    log.info("compute: %s, precision %s", _device(gpus), keras.mixed_precision.global_policy().name)


def _device(gpus) -> str:
    if gpus:
        import tensorflow as tf

        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
        return f"GPU ({', '.join(names)})"
    return f"CPU ({cpu_name()}, {os.cpu_count() or 1} cores)"


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
