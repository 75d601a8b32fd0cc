"""Checks of a full-integer int8 model against the Keras model it came from.

Two kinds of checks, both for ``convert(int8=True)`` (docs/int8.md):

- structure (`weight_structure`): per int8 weight tensor matched to a Keras kernel,
  its zeros (the converter's zero point is 0, so a pruned zero stays exactly 0) and
  the most distinct non-zero int8 values in one output channel (at most
  ``2^bits`` after ``WeightClustering(bits=...)``);
- outputs (`run`, `output_error`): the model runs in LiteRT on float inputs
  (quantized with the input tensors' scale and zero point when its inputs are
  int8, outputs dequantized likewise), and its error is measured relative to the
  range of the Keras outputs, the scale at which int8 activations are quantized.
"""

import dataclasses

import numpy as np

from converters import litert

__all__ = ["TOLERANCE", "Int8Weight", "output_error", "run", "weight_structure"]

# Largest max |LiteRT − Keras| / (max − min of the Keras outputs) accepted for an int8
# model: 256 levels quantize each activation, so one step is ~0.4% of its range, and
# a few layers of rounding stay well below 5%.
TOLERANCE = 0.05


@dataclasses.dataclass(frozen=True)
class Int8Weight:
    """The structure of one int8 weight tensor.

    Attributes:
        keras_name: The Keras kernel it holds (`converters.keras_names.KerasName.label`).
        tflite_name: Its TFLite tensor name as converted.
        shape: Its TFLite shape.
        channels: Output channels (slices with one scale each).
        zeros: Elements equal to 0 in the int8 tensor.
        keras_zeros: Elements equal to 0 in the Keras kernel.
        max_distinct_per_channel: Most distinct non-zero int8 values in one channel.
    """

    keras_name: str
    tflite_name: str
    shape: tuple
    channels: int
    zeros: int
    keras_zeros: int
    max_distinct_per_channel: int

    @property
    def zeros_preserved(self):
        """True when the int8 tensor has exactly as many zeros as the Keras kernel."""
        return self.zeros == self.keras_zeros

    def as_dict(self):
        """The fields and ``zeros_preserved``, JSON-serialisable."""
        out = dataclasses.asdict(self)
        out["shape"] = list(self.shape)
        out["zeros_preserved"] = self.zeros_preserved
        return out


def _channel_axis(buffer):
    """The output-channel axis: last for DEPTHWISE_CONV_2D ([1, h, w, c]), else 0."""
    return len(buffer.shape) - 1 if buffer.op == "DEPTHWISE_CONV_2D" else 0


def weight_structure(buffers, keras, variables, data):
    """Zeros and distinct values per channel of each int8 weight matched to a Keras kernel.

    Args:
        buffers: `converters.flatbuffer.WeightBuffer`s of the model.
        keras: ``{buffer offset: KerasName}`` (`converters.keras_names.match_buffers`).
        variables: ``[(path, array), ...]`` (`converters.keras_names.model_variables`).
        data: The bytes the buffer offsets point into.

    Returns:
        One `Int8Weight` per int8 weight buffer with a Keras name, in file order.
    """
    arrays = dict(variables)
    found = []
    for b in buffers:
        name = keras.get(b.offset)
        if b.dtype != "int8" or b.role != "weight" or name is None or b.size == 0:
            continue
        values = np.frombuffer(data, np.int8, b.size, b.offset)
        if values.size != int(np.prod(b.shape)):
            continue
        values = values.reshape(b.shape)
        axis = _channel_axis(b)
        slices = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
        distinct = max((np.unique(s[s != 0]).size for s in slices), default=0)
        found.append(
            Int8Weight(
                keras_name=name.label,
                tflite_name=b.tensor_names[0] if b.tensor_names else "",
                shape=tuple(b.shape),
                channels=int(values.shape[axis]),
                zeros=int(np.count_nonzero(values == 0)),
                keras_zeros=int(np.count_nonzero(np.asarray(arrays[name.paths[0]]) == 0)),
                max_distinct_per_channel=int(distinct),
            )
        )
    return found


def _quantization(detail):
    scale, zero_point = detail["quantization"]
    return float(scale), int(zero_point)


def run(model_bytes, batches, names=()):
    """`converters.litert.run` on float batches, quantizing int8 inputs and dequantizing outputs.

    An int8 input receives ``clip(round(x / scale) + zero_point, -128, 127)`` and an
    int8 output is returned as ``(q − zero_point) × scale`` (float32); float inputs and
    outputs pass unchanged.
    """
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top

    interpreter = Interpreter(model_content=model_bytes)
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    order = litert._input_order(inputs, list(names))  # pylint: disable=protected-access
    quantized = []
    for batch in batches:
        batch = list(batch)
        for d, k in zip(inputs, order):
            if np.dtype(d["dtype"]) == np.int8:
                scale, zero_point = _quantization(d)
                q = np.round(np.asarray(batch[k], np.float64) / scale) + zero_point
                batch[k] = np.clip(q, -128, 127).astype(np.int8)
        quantized.append(batch)
    results = litert.run(model_bytes, quantized, names)
    for result in results:
        for j, d in enumerate(outputs):
            if np.dtype(d["dtype"]) == np.int8:
                scale, zero_point = _quantization(d)
                result[j] = ((result[j].astype(np.float32) - zero_point) * scale).astype(np.float32)
    return results


def output_error(lite, reference):
    """``(max |a − b|, max |a − b| / (max b − min b))`` over all outputs of all batches.

    The range is taken over every Keras output value of every batch (1 when they are
    all equal), the scale an int8 output quantizes. `lite` and `reference` are the
    outputs of `run` and `converters.litert.keras_outputs` for the same batches.
    """
    diff, _ = litert.compare_outputs(lite, reference)
    values = np.concatenate([np.ravel(o) for batch in reference for o in batch])
    span = float(values.max() - values.min()) if values.size else 0.0
    return diff, diff / (span if span > 0 else 1.0)
