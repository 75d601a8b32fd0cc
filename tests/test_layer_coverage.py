"""Layer coverage end to end, one case per layer type (issue #6).

Each case: a tiny model built around one layer type → real ``model.fit`` with
MagnitudePruning, then ``model.fit`` with WeightClustering → the Keras
invariants (zeros stay zero at the target sparsity, at most ``2**bits``
distinct non-zero values per variable) → ``converters.convert`` to a bundle →
``converters.restore`` → the restored flatbuffer in the real LiteRT interpreter
on fresh inputs, compared with Keras at the library's tolerance
(``|LiteRT − Keras| ≤ 1e-5 · (1 + |Keras|)``) → the compressed Keras weights
are in the flatbuffer as they were trained → the bundle is smaller than the
dense ``.tflite`` → the GPU delegate's static check says what it says. Then the
same model through ``convert(int8=True)`` (calibrated on its training inputs) →
restore → LiteRT on fresh inputs within `converters.quantized.TOLERANCE` of the
Keras output range → the int8 accelerator profile refuses the ops the case names;
or the error that names why the model cannot be fully integer (the README's int8
column).

Models compile with ``jit_compile=False``: XLA would compile every train-step
trace (the callbacks retrace when they install their constraints), which costs
more than the four steps per fit; ``jit_compile=True`` has its own test in
test_callbacks.py. The whole file takes about two minutes of CPU.

The README's "Layer coverage" table is what this file verifies.
"""

import dataclasses
import re
from collections.abc import Callable

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

import converters
import keras_dc
from converters import delegate, quantized
from converters.flatbuffer import op_name
from converters.layout import lay_out
from keras_dc import schedules

L = keras.layers
SPARSITY = 0.75
BITS = 3
MIN_SIZE = 32  # small enough to select every kernel of these tiny models
TOLERANCE = 1e-5  # converters.convert's float32 bound on |LiteRT − Keras| / (1 + |Keras|)


@dataclasses.dataclass
class Case:
    build: Callable  # () -> built model
    layer: str  # a fragment of the variable paths of the layer under test
    ops: tuple  # builtin ops the layer becomes (in any subgraph)
    vocab: int = 0  # > 0: integer token inputs in [0, vocab)
    folded: bool = False  # BatchNorm folded into the conv: checked per channel
    delegate: str = ""  # "": GPU-delegate compatible; else a problem the static check reports
    absent: tuple = ()  # builtin ops the layer does not become
    # The int8 pass (README's int8 column): "" = a full-integer bundle that runs close to
    # Keras; else a fragment of the error `convert(int8=True)` raises.
    int8: str = ""
    int8_refused: tuple = ()  # ops the int8 accelerator profile refuses (besides the
    # DEQUANTIZE of the float output, which every float-I/O int8 bundle has)
    int8_maybe: str = ""  # a pattern of the error convert(int8=True) raises on some runs only


def _head(h):
    return L.Dense(3, name="head")(L.Flatten()(h))


def _seq(input_shape, *layers, dtype="float32"):
    inputs = keras.Input(input_shape, dtype=dtype)
    h = inputs
    for layer in layers:
        h = layer(h)
    return keras.Model(inputs, _head(h))


def _mha():
    inputs = keras.Input((5, 16))
    h = L.MultiHeadAttention(num_heads=2, key_dim=8, name="mha")(inputs, inputs)
    return keras.Model(inputs, _head(h))


def _shared():
    inputs = keras.Input((16,))
    shared = L.Dense(16, activation="tanh", name="shared")
    h = shared(shared(inputs))  # the same kernel twice
    return keras.Model(inputs, _head(h))


def _nested():
    inner = keras.Sequential([L.Dense(24, activation="relu"), L.Dense(16)], name="inner")
    inputs = keras.Input((12,))
    h = L.Dense(16, activation="relu", name="outer")(inputs)
    return keras.Model(inputs, _head(inner(h)))


class TinyNet(keras.Model):
    """A subclassed model: conv → pooling → dense."""

    def __init__(self):
        super().__init__(name="tiny_net")
        self.conv = L.Conv2D(8, 3, activation="relu", name="conv")
        self.pool = L.GlobalAveragePooling2D()
        self.dense = L.Dense(16, activation="relu", name="hidden")
        self.out = L.Dense(3, name="head")

    def call(self, x):
        return self.out(self.dense(self.pool(self.conv(x))))


def _subclassed():
    model = TinyNet()
    model(np.zeros((1, 6, 6, 3), "float32"))
    return model


# Unrolled LSTM/GRU: on some runs (2 of 3 here for the LSTM, same seed; the untrained model
# converts alike in every process, so likely the trained weights, which training does not
# reproduce bit for bit) TF 2.21's int8 converter leaves the gates' SPLIT in float, and
# convert(int8=True) refuses the model with this message instead of writing a mixed one.
_GATE_SPLIT = r"int8 conversion failed: op\(s\) SPLIT .* still compute in float"

# TF 2.21's int8 converter kills the process (SIGSEGV) on the WHILE loop of a
# non-unrolled LSTM/GRU: `convert(int8=True)` refuses them before converting.
_WHILE_CRASH = "runs its time steps in a WHILE loop"

CASES = {
    "Dense": Case(
        lambda: _seq((12,), L.Dense(16, activation="relu", name="dense")),
        "dense",
        ("FULLY_CONNECTED",),
    ),
    "Conv1D": Case(lambda: _seq((10, 4), L.Conv1D(8, 3, name="conv1d")), "conv1d", ("CONV_2D",)),
    "Conv2D": Case(lambda: _seq((6, 6, 3), L.Conv2D(8, 3, name="conv2d")), "conv2d", ("CONV_2D",)),
    "Conv3D": Case(
        lambda: _seq((4, 4, 4, 2), L.Conv3D(4, 3, name="conv3d")),
        "conv3d",
        ("CONV_3D",),
        delegate="op 0 CONV_3D: not implemented by the GPU delegate",
        int8="CONV_3D",  # no int8 kernel: the converter leaves it in float
    ),
    "DepthwiseConv2D": Case(
        lambda: _seq((6, 6, 4), L.DepthwiseConv2D(3, depth_multiplier=2, name="depthwise")),
        "depthwise",
        ("DEPTHWISE_CONV_2D",),
    ),
    "SeparableConv2D": Case(
        lambda: _seq((6, 6, 4), L.SeparableConv2D(8, 3, depth_multiplier=2, name="separable")),
        "separable",
        ("DEPTHWISE_CONV_2D", "CONV_2D"),
    ),
    "Conv2DTranspose": Case(
        lambda: _seq((3, 3, 4), L.Conv2DTranspose(8, 3, strides=2, name="transpose")),
        "transpose",
        ("TRANSPOSE_CONV",),
    ),
    "Embedding": Case(
        lambda: _seq((6,), L.Embedding(20, 8, name="embedding"), dtype="int32"),
        "embedding",
        ("GATHER",),
        vocab=20,
        delegate="has type INT32",
        int8="expected type INT32",  # the calibration feeds int32 token ids as float32
    ),  # Keras wraps negative ids: LESS/ADD/SELECT on int32
    "LSTM": Case(
        lambda: _seq((5, 4), L.LSTM(32, name="lstm")),
        "lstm",
        ("WHILE", "FULLY_CONNECTED"),
        delegate="WHILE: not implemented by the GPU delegate",
        absent=("UNIDIRECTIONAL_SEQUENCE_LSTM",),
        int8=_WHILE_CRASH,
    ),  # not fused with Keras 3, TF 2.21
    "LSTM-unrolled": Case(
        lambda: _seq((5, 4), L.LSTM(32, unroll=True, name="lstm")),
        "lstm",
        ("UNPACK", "FULLY_CONNECTED"),
        int8_refused=("UNPACK",),
        int8_maybe=_GATE_SPLIT,
    ),
    "GRU": Case(
        lambda: _seq((5, 4), L.GRU(32, name="gru")),
        "gru",
        ("WHILE", "FULLY_CONNECTED"),
        delegate="WHILE: not implemented by the GPU delegate",
        int8=_WHILE_CRASH,
    ),
    "GRU-unrolled": Case(
        lambda: _seq((5, 4), L.GRU(32, unroll=True, name="gru")),
        "gru",
        ("UNPACK", "FULLY_CONNECTED"),
        int8_refused=("UNPACK",),
        int8_maybe=_GATE_SPLIT,
    ),
    "MultiHeadAttention": Case(
        _mha, "mha", ("FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX"), int8_refused=("BATCH_MATMUL",)
    ),
    "EinsumDense": Case(
        lambda: _seq((5, 8), L.EinsumDense("abc,cd->abd", (5, 16), bias_axes="d", name="einsum")),
        "einsum",
        ("FULLY_CONNECTED",),
    ),
    "Conv2D+BatchNormalization": Case(
        lambda: _seq(
            (6, 6, 8),
            L.Conv2D(16, 3, use_bias=False, name="conv2d"),
            L.BatchNormalization(name="bn"),
            L.ReLU(),
        ),
        "conv2d",
        ("CONV_2D",),
        folded=True,
    ),
    "shared-layer": Case(_shared, "shared", ("FULLY_CONNECTED",)),
    "nested-Sequential": Case(_nested, "inner", ("FULLY_CONNECTED",)),
    "subclassed": Case(_subclassed, "conv", ("CONV_2D", "MEAN", "FULLY_CONNECTED")),
}


def _inputs(model, case, rng, n):
    shape = (
        (n,) + tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else (n, 6, 6, 3)
    )
    if case.vocab:
        return rng.integers(0, case.vocab, size=shape).astype("int32")
    return rng.normal(size=shape).astype("float32")


def _ops(flatbuffer):
    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    return {
        op_name(model, op.opcodeIndex) for subgraph in model.subgraphs for op in subgraph.operators
    }


def _weight_buffers(flatbuffer):
    """The float32 weight buffers of a flatbuffer, as arrays in their stored shapes."""
    _, segments = lay_out(flatbuffer, mode="inline")
    return [
        (s, np.frombuffer(flatbuffer[s.offset : s.offset + s.size], np.float32).reshape(s.shape))
        for s in segments
        if s.role == "weight" and s.dtype == "float32"
    ]


def _distinct_nonzero(w):
    return np.unique(w[w != 0]).size


def _check_per_channel(kernel, buffer, bits):
    """A BatchNorm-folded conv filter: each output channel was scaled by its own factor."""
    segment, stored = buffer
    channels = kernel.shape[-1]
    assert segment.channels == channels and stored.shape[0] == channels
    stored_zero = stored.reshape(channels, -1) == 0
    keras_zero = np.moveaxis(kernel, -1, 0).reshape(channels, -1) == 0
    # Folding multiplies: zeros stay where pruning put them, in every channel ...
    np.testing.assert_array_equal(stored_zero, keras_zero)
    for c in range(channels):  # ... and each channel keeps at most 2**bits values
        assert _distinct_nonzero(stored[c]) <= 2**bits


@pytest.mark.parametrize("name", list(CASES))
def test_layer_end_to_end(name, tmp_path):
    case = CASES[name]
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model = case.build()
    model.compile(keras.optimizers.Adam(1e-3), "mse", jit_compile=False)
    x = _inputs(model, case, rng, 32)
    y = rng.normal(size=(32, 3)).astype("float32")

    kernels = keras_dc.compressible_variables(model, MIN_SIZE)
    paths = [keras_dc.variable_path(v) for v in kernels]
    assert any(case.layer in p for p in paths), paths
    assert not any(p.rsplit("/", 1)[-1] == "bias" for p in paths), paths  # biases are never pruned

    model.fit(
        x,
        y,
        batch_size=8,
        epochs=1,
        verbose=0,
        callbacks=[
            keras_dc.MagnitudePruning(
                SPARSITY, schedule=schedules.OneShot(), min_size=MIN_SIZE, verbose=0
            )
        ],
    )
    pruned = [np.asarray(v.numpy()) == 0 for v in kernels]
    clustering = keras_dc.WeightClustering(bits=BITS, min_size=MIN_SIZE, verbose=0)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[clustering])
    assert [item["path"] for item in clustering.selected] == paths
    for v, zero in zip(kernels, pruned):
        w = np.asarray(v.numpy())
        assert np.mean(zero) == pytest.approx(SPARSITY, abs=1.0 / w.size)
        assert np.all(w[zero] == 0), keras_dc.variable_path(v)  # zeros stayed zero
        assert np.mean(w == 0) == pytest.approx(SPARSITY, abs=1.0 / w.size)
        assert _distinct_nonzero(w) <= 2**BITS, keras_dc.variable_path(v)

    # strip_names=False: the checks below find each report row by the restored tensor's name.
    result = converters.convert(model, str(tmp_path), verbose=0, picture=False, strip_names=False)
    assert result.report["totals"]["bundle_bytes"] < result.report["totals"]["dense_tflite_bytes"]
    restored = converters.restore(str(tmp_path))
    assert set(case.ops) <= _ops(restored) and not set(case.absent) & _ops(restored)
    if case.delegate:
        assert any(case.delegate in p for p in result.delegate_problems), result.delegate_problems
    else:
        assert result.delegate_problems == []

    # The compressed weights reached the flatbuffer: every Keras kernel is exactly
    # one weight buffer (transposed or reshaped, same values; a shared layer's
    # kernel is stored once), and the layer under test's is clustered in the sidecar.
    buffers = _weight_buffers(restored)
    encodings = {r["tflite_name"]: r for r in result.report["buffers"]}
    for v in kernels:
        w = np.asarray(v.numpy())
        if case.folded and case.layer in keras_dc.variable_path(v):
            (folded,) = [b for b in buffers if b[0].op == "CONV_2D"]
            _check_per_channel(w, folded, BITS)
            row = encodings[folded[0].tensor_names[0]]
            assert row["keras_name"] == keras_dc.variable_path(v) + " + BN"  # the user's name
            assert row["encoding"].startswith("CLUSTERED")
            assert row["codebooks"] == w.shape[-1]  # one codebook per output channel
            assert row["codebook_entries"] <= w.shape[-1] * 2**BITS
            continue
        matches = [
            s
            for s, stored in buffers
            if stored.size == w.size and np.array_equal(np.sort(stored, None), np.sort(w, None))
        ]
        assert len(matches) == 1, f"{keras_dc.variable_path(v)} is in {len(matches)} weight buffers"
        row = encodings[matches[0].tensor_names[0]]
        assert keras_dc.variable_path(v) in row["keras_name"].split(" | ")  # the user's name
        assert row["nonzeros"] == np.count_nonzero(w)
        if case.layer in keras_dc.variable_path(v):  # (tiny heads may zlib smaller)
            assert row["encoding"].startswith("CLUSTERED"), row

    # The restored flatbuffer in LiteRT on fresh inputs, against Keras.
    interpreter = Interpreter(model_content=restored)
    interpreter.allocate_tensors()
    (detail,) = interpreter.get_input_details()
    (output,) = interpreter.get_output_details()
    for sample in _inputs(model, case, np.random.default_rng(1), 4):
        sample = sample[None]
        interpreter.set_tensor(detail["index"], sample)
        interpreter.invoke()
        lite = interpreter.get_tensor(output["index"])
        expected = np.asarray(model(sample, training=False))
        assert np.all(np.abs(lite - expected) <= TOLERANCE * (1 + np.abs(expected))), (
            lite,
            expected,
        )

    _int8_pass(case, model, x, tmp_path / "int8")


def _int8_pass(case, model, x, directory):
    """convert(int8=True) → restore → LiteRT on fresh inputs, within the int8 tolerance."""
    if case.int8:
        with pytest.raises(ValueError, match=case.int8):
            converters.convert(
                model, str(directory), int8=True, representative_data=x, verbose=0, picture=False
            )
        assert not directory.exists() or not list(directory.iterdir())
        return
    try:
        result = converters.convert(
            model,
            str(directory),
            int8=True,
            representative_data=x,
            num_samples=2,
            verbose=0,
            picture=False,
        )
    except ValueError as e:
        if not case.int8_maybe or not re.search(case.int8_maybe, str(e)):
            raise
        assert not directory.exists() or not list(directory.iterdir())  # nothing half-written
        return
    restored = converters.restore(str(directory))
    segments = lay_out(restored, mode="inline")[1]
    assert any(s.role == "weight" and s.dtype == "int8" for s in segments)
    assert not [s for s in segments if s.dtype == "float32"]  # no float weights left
    refused = {
        c.op for c in delegate.check_ops(restored) if c.problems["int8"] and c.op != "DEQUANTIZE"
    }
    assert refused == set(case.int8_refused), refused
    assert any("DEQUANTIZE" in p for p in result.delegate_problems)  # the float output's edge
    interpreter = Interpreter(model_content=restored)
    interpreter.allocate_tensors()
    (detail,) = interpreter.get_input_details()
    (output,) = interpreter.get_output_details()
    samples = _inputs(model, case, np.random.default_rng(1), 4)
    lite = []
    for sample in samples:
        interpreter.set_tensor(detail["index"], sample[None])
        interpreter.invoke()
        lite.append(interpreter.get_tensor(output["index"])[0])
    expected = np.asarray(model(samples, training=False))
    # The output tensor is quantized over the range it had on the calibration inputs.
    calibrated = np.asarray(model(x, training=False))
    span = max(expected.max(), calibrated.max()) - min(expected.min(), calibrated.min())
    assert np.max(np.abs(np.array(lite) - expected)) <= quantized.TOLERANCE * span


class Determinant(keras.layers.Layer):
    """A layer whose op (MatrixDeterminant) has no TFLite builtin kernel."""

    def call(self, x):
        return tf.linalg.det(tf.reshape(x, (-1, 2, 2)))


def test_layer_needing_flex_ops_is_named(tmp_path):
    inner = keras.Sequential([L.Dense(4), Determinant(name="det")], name="inner")
    inputs = keras.Input((8,))
    model = keras.Model(inputs, inner(inputs))
    out = tmp_path / "never"
    with pytest.raises(
        ValueError, match=r"MatrixDeterminant.*layer\(s\) 'det' \(Determinant"
    ) as failure:
        converters.convert(model, str(out), verbose=0, picture=False)
    assert "builtin" in str(failure.value) and len(str(failure.value)) < 400
    assert not out.exists() or not list(out.iterdir())
