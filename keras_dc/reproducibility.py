"""Bit-reproducible training runs on one machine.

`make_reproducible(seed)` seeds Python, NumPy and the backend through
`keras.utils.set_random_seed` and turns on TensorFlow's op determinism, so that
the same script with the same seed gives the same weights, bit for bit, on the
same machine and software versions — and so the same bundle. It cannot make
runs agree across machines, CPU instruction sets, thread counts or library
versions, and deterministic kernels can be slower (BENCHMARKS.md, "Reproducible
runs", measures the cost).
"""

import keras
import tensorflow as tf

__all__ = ["make_reproducible"]


def make_reproducible(seed):
    """Seeds every random generator and makes TensorFlow's ops deterministic.

    Call it once, before building the model. Op determinism stays on for the
    rest of the process.

    Args:
        seed: An int ≥ 0.

    Example:
        >>> keras_dc.make_reproducible(0)
        >>> model = build_model()   # same initial weights, same shuffles, same result
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TypeError(f"seed must be an int >= 0, received {seed!r}.")
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
