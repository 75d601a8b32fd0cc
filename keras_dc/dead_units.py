"""Weights that no output depends on: the inputs of units whose outputs nothing reads.

After heavy pruning some units of a Dense layer keep incoming weights but lose every
outgoing one (the next Dense layer's row for that unit is all zero). What such a unit
computes is multiplied by zeros only, so its incoming weights change no output, yet
they cost bytes in the bundle. `remove_dead_units` zeroes them, from the last layer
backwards (a unit that lost its readers can leave units of the layer before without
readers too).
"""

import numpy as np

from keras_dc import _keras_glue as glue

__all__ = ["remove_dead_units"]

# Layers between two Dense layers that act on each unit alone (unit j's output depends
# only on unit j's input): a unit the next Dense layer does not read is not read at all.
_PER_UNIT = {
    "Activation",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "Dropout",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "BatchNormalization",
}


def _dense_pairs(model):
    """(layer, next_layer) for each Dense layer of a Sequential model that feeds the next
    Dense layer directly or through per-unit layers only."""
    if type(model).__name__ != "Sequential":
        return []
    pairs, previous = [], None
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Dense":
            if previous is not None:
                pairs.append((previous, layer))
            previous = layer
        elif kind not in _PER_UNIT:
            previous = None
    return pairs


def remove_dead_units(model):
    """Zeroes the incoming weights of Dense units whose outputs no later layer reads.

    In a `keras.Sequential` model (Keras 3 or tf_keras), a unit j of a Dense layer
    that feeds the next Dense layer (directly, or through per-unit layers such as
    activations, dropout or BatchNormalization) is *dead* when that layer's kernel row
    j is all zero: unit j's output is multiplied by zeros only. Its incoming kernel
    column is set to zero — the model's outputs do not change (bit for bit: every term
    it removes was a finite value times zero) — and the layers are visited from the
    last pair backwards, so units left without readers by an earlier removal are found
    too. Biases stay as they are. Other models (functional, subclassed) are left
    unchanged: their graph is not walked.

    `compress_to_budget` calls it at the end of pruning. Call it yourself after
    pruning, before clustering, so that no cluster is spent on these weights.

    Args:
        model: A built Keras model.

    Returns:
        The number of non-zero weights set to zero.

    Example:
        >>> model.fit(x, y, epochs=5, callbacks=[keras_dc.MagnitudePruning(0.97)])
        >>> keras_dc.remove_dead_units(model)  # e.g. 126 weights that fed nothing
    """
    removed = 0
    for layer, reader in reversed(_dense_pairs(model)):
        rows = glue.read(reader.kernel)
        dead = ~np.any(rows != 0, axis=1)
        if not dead.any():
            continue
        kernel = glue.read(layer.kernel)
        count = int(np.count_nonzero(kernel[:, dead]))
        if count:
            kernel = kernel.copy()
            kernel[:, dead] = 0
            layer.kernel.assign(kernel)
            removed += count
    return removed
