"""Which Keras variable each weight buffer of a converted flatbuffer holds.

The TFLite converter renames tensors (``sequential_1/dense_1_2/MatMul`` for Keras
``dense_1``), transposes Dense kernels to ``[out, in]``, folds BatchNorm into
convolution kernels and merges identical constants. Reports name buffers the way
the user named them, so each buffer is matched to the Keras variables by value:

1. exact: the buffer holds the same multiset of values as the variable (any
   transpose or reshape; float16 buffers against the variable rounded to float16);
   identical constants merged into one buffer match every variable that holds them;
   a sparse tensor's buffer (shorter than its shape: only its non-zero blocks)
   matches the variable with the same non-zero values;
2. int8: a full-integer model's int8 weight buffer matches the kernel whose
   symmetric per-channel quantization (scale = max |w| / 127 per output channel,
   zero point 0, as the TFLite converter quantizes weights) gives the buffer's
   values within 1 (the converter's rounding), in the converter's layout: Dense
   ``[in, out]`` → ``[out, in]``, Conv2D ``[h, w, in, out]`` → ``[out, h, w, in]``,
   DepthwiseConv2D ``[h, w, in, 1]`` → ``[1, h, w, in]`` (channels last);
3. folded: a weight buffer that matched nothing exactly (BatchNorm folded into it)
   takes the one unmatched kernel (rank ≥ 2) of the same shape up to the order of
   the dimensions, and the same number of zeros when several have that shape.

Buffers that match nothing keep only their TFLite name. Pure NumPy: the caller
passes the variables as ``(path, array)`` pairs in model order.
"""

import dataclasses

import numpy as np

__all__ = ["KerasName", "match_buffers", "model_variables", "variable_path"]

_FLOAT = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}
_INT8 = np.dtype("i1")


@dataclasses.dataclass(frozen=True)
class KerasName:
    """The Keras variables a buffer holds.

    Attributes:
        paths: Variable paths (``layer/variable``), in model order; several when
            the converter merged identical constants.
        order: Position of the first of them in the model's weights (report order).
        folded: True when the values differ from the variable's (BatchNorm folded
            into the kernel), so the match is by shape and zeros, not by value.
    """

    paths: tuple
    order: int
    folded: bool = False

    @property
    def label(self):
        """``layer/variable`` (``+ BN`` when folded; ``a | b`` when merged)."""
        return " | ".join(self.paths) + (" + BN" if self.folded else "")


def variable_path(variable):
    """``layer/variable`` of a Keras 3 or tf_keras variable (no ``:0`` suffix)."""
    path = getattr(variable, "path", None) or variable.name
    return path.split(":")[0]


def model_variables(model):
    """``[(path, array), ...]`` of a Keras 3 or tf_keras model's weights, in model order."""
    return [(variable_path(v), np.asarray(v)) for v in model.weights]


def _sorted_values(array, dtype):
    return np.sort(np.asarray(array, dtype=np.float32).astype(dtype).ravel())


def _sparse_hits(arrays, candidates, values, dtype):
    """The variables whose non-zero values are those of a sparse tensor's value buffer.

    A TFLite sparse tensor (``Optimize.EXPERIMENTAL_SPARSITY``) stores only the
    entries of its non-zero blocks, so its buffer is shorter than its shape.
    """
    nonzero = values[values != 0]
    hits = []
    for i in candidates:
        expected = _sorted_values(arrays[i][1], dtype)
        if np.array_equal(expected[expected != 0], nonzero):
            hits.append(i)
    return hits


def _keras_layouts(array, shape):
    """The Keras kernel rearranged the ways the converter lays kernels out, as `shape`."""
    size = int(np.prod(shape))
    if array.size != size or array.ndim < 2:
        return []
    return [np.moveaxis(array, -1, 0).reshape(shape), array.reshape(shape)]


def quantize_per_channel(array, axis):
    """Symmetric int8 quantization with one scale per slice along `axis`.

    ``q = round(w / s)`` with ``s = max |w| / 127`` over the slice (zero point 0):
    the TFLite converter's quantization of weights. An all-zero slice gives zeros.
    """
    w = np.asarray(array, np.float64)
    other = tuple(i for i in range(w.ndim) if i != axis % w.ndim)
    scale = np.max(np.abs(w), axis=other, keepdims=True) / 127.0
    return np.round(np.divide(w, scale, out=np.zeros_like(w), where=scale > 0))


def _int8_hits(arrays, candidates, values):
    """The kernels whose per-channel int8 quantization is `values` (within 1)."""
    hits = []
    for i in candidates:
        for layout in _keras_layouts(arrays[i][1], values.shape):
            if any(
                np.max(np.abs(quantize_per_channel(layout, axis) - values)) <= 1 for axis in (0, -1)
            ):
                hits.append(i)
                break
    return hits


def match_buffers(variables, buffers, data):
    """Matches weight buffers to Keras variables by value.

    Args:
        variables: ``[(path, array), ...]`` in model order (``model.weights``).
        buffers: Objects with ``offset``, ``size``, ``dtype``, ``shape`` and
            ``role`` (`converters.flatbuffer.WeightBuffer`).
        data: The bytes the buffer offsets point into.

    Returns:
        ``{buffer offset: KerasName}`` for the buffers that matched.

    Example:
        >>> names = match_buffers([(variable_path(v), v.numpy()) for v in model.weights],
        ...                       buffers, restored)
    """
    arrays = [(str(path), np.asarray(value)) for path, value in variables]
    by_size = {}
    for order, (_, value) in enumerate(arrays):
        if value.dtype.kind == "f":
            by_size.setdefault(value.size, []).append(order)
    names, used = {}, set()
    floats = [b for b in buffers if b.dtype in _FLOAT and b.size > 0]
    for b in floats:
        dtype = _FLOAT[b.dtype]
        values = np.sort(np.frombuffer(data, dtype, b.size // dtype.itemsize, b.offset))
        hits = [
            i
            for i in by_size.get(values.size, ())
            if np.array_equal(_sorted_values(arrays[i][1], dtype), values, equal_nan=True)
        ]
        if not hits and values.size < int(np.prod(b.shape)):
            hits = _sparse_hits(arrays, by_size.get(int(np.prod(b.shape)), ()), values, dtype)
        if hits:
            names[b.offset] = KerasName(tuple(arrays[i][0] for i in hits), hits[0])
            used.update(hits)
    quantized = [b for b in buffers if b.dtype == "int8" and b.size > 0 and b.role == "weight"]
    for b in quantized:
        values = np.frombuffer(data, _INT8, b.size, b.offset).astype(np.float64)
        if values.size != int(np.prod(b.shape)):
            continue
        hits = _int8_hits(arrays, by_size.get(values.size, ()), values.reshape(b.shape))
        if hits:
            names[b.offset] = KerasName(tuple(arrays[i][0] for i in hits), hits[0])
            used.update(hits)
    for b in floats + quantized:
        if b.offset in names or b.role != "weight" or len(b.shape) < 2:
            continue
        dtype = _FLOAT.get(b.dtype, _INT8)
        candidates = [
            i
            for i in by_size.get(int(np.prod(b.shape)), ())
            if i not in used
            and arrays[i][1].ndim >= 2
            and sorted(arrays[i][1].shape) == sorted(b.shape)
        ]
        if len(candidates) > 1:
            zeros = np.count_nonzero(
                np.frombuffer(data, dtype, b.size // dtype.itemsize, b.offset) == 0
            )
            candidates = [i for i in candidates if np.count_nonzero(arrays[i][1] == 0) == zeros]
        if len(candidates) == 1:
            (i,) = candidates
            names[b.offset] = KerasName((arrays[i][0],), i, folded=True)
            used.add(i)
    return names
