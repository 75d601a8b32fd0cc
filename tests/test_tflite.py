"""converters.export, .flatbuffer, .layout and .delegate with the real TFLite converter
and the real LiteRT interpreter.

Every model is tiny: the file converts about a dozen models and stays well
under two minutes on two cores.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.tools import flatbuffer_utils

from converters import delegate, export
from converters.flatbuffer import drop_informational, op_name, strip_names
from converters.layout import lay_out

RNG = np.random.default_rng(0)


def _run(flatbuffer, *inputs):
    interpreter = Interpreter(model_content=bytes(flatbuffer))
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def _keras(model, x):
    return np.asarray(model(x, training=False))


def _ops(flatbuffer):
    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    return [op_name(model, op.opcodeIndex) for op in model.subgraphs[0].operators]


def _segment(segments, op, role="weight"):
    found = [s for s in segments if s.op == op and s.role == role]
    assert found, (op, role, segments)
    return found[0]


def _values(flatbuffer, segment):
    raw = flatbuffer[segment.offset : segment.offset + segment.size]
    return np.frombuffer(raw, dtype=segment.dtype).reshape(segment.shape)


def _repack(model_t):
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model_t))


@pytest.fixture(scope="module")
def mlp():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8,))  # batch None: convert fixes it to batch_size
    hidden = keras.layers.Dense(16, activation="relu", bias_initializer="random_normal")(inputs)
    outputs = keras.layers.Dense(4, bias_initializer="random_normal")(hidden)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def mlp_tflite(mlp):
    return export.to_tflite(mlp)


@pytest.fixture(scope="module")
def conv_bn():
    """Conv2D whose kernel holds 4 shared values, then a non-trivial BatchNorm."""
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            keras.layers.Conv2D(5, 3, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
        ]
    )
    conv, bn = model.layers[0], model.layers[1]
    shared = np.array([-0.5, -0.1, 0.2, 0.7], np.float32)
    conv.kernel.assign(RNG.choice(shared, size=conv.kernel.shape).astype("float32"))
    bn.set_weights(
        [RNG.uniform(0.5, 2, 5), RNG.normal(size=5), RNG.normal(size=5), RNG.uniform(0.5, 2, 5)]
    )
    return model


# ---------------------------------------------------------------------------
# convert: models and outputs.


def test_dense_mlp_matches_keras_and_describes_its_buffers(mlp, mlp_tflite):
    x = RNG.normal(size=(1, 8)).astype("float32")
    np.testing.assert_allclose(_run(mlp_tflite, x)[0], _keras(mlp, x), atol=1e-5)
    _, segments = lay_out(mlp_tflite)
    kernel = _segment(segments, "FULLY_CONNECTED")
    # The converter stores Dense kernels transposed: [out, in].
    big = max((s for s in segments if s.role == "weight"), key=lambda s: s.size)
    assert big.shape == (16, 8) and big.channels == 16 and big.dtype == "float32"
    np.testing.assert_array_equal(
        _values(lay_out(mlp_tflite)[0], big), np.asarray(mlp.layers[1].kernel).T
    )
    assert kernel.tensor_names and all(isinstance(n, str) for n in kernel.tensor_names)
    biases = [s for s in segments if s.role == "bias"]
    assert sorted(s.shape for s in biases) == [(4,), (16,)]
    assert all(s.channels == 1 and s.op == "FULLY_CONNECTED" for s in biases)


def test_conv_batchnorm_folds_but_keeps_per_channel_structure(conv_bn):
    flatbuffer = export.to_tflite(conv_bn)
    assert "CONV_2D" in _ops(flatbuffer)
    x = RNG.normal(size=(1, 6, 6, 3)).astype("float32")
    np.testing.assert_allclose(_run(flatbuffer, x)[0], _keras(conv_bn, x), atol=1e-5)
    restored, segments = lay_out(flatbuffer)
    kernel = _segment(segments, "CONV_2D")
    assert kernel.shape == (5, 3, 3, 3) and kernel.channels == 5
    assert _segment(segments, "CONV_2D", role="bias").shape == (5,)  # from BatchNorm
    values = _values(restored, kernel)
    # BatchNorm scaled each output channel differently: more than 4 values in
    # all, but each contiguous channel slice still holds at most 4.
    assert len(np.unique(values)) > 4
    for channel in values.reshape(kernel.channels, -1):
        assert len(np.unique(channel)) <= 4


def test_depthwise_conv_reports_one_channel_slice():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((5, 5, 3)),
            keras.layers.DepthwiseConv2D(3, depth_multiplier=2, bias_initializer="ones"),
        ]
    )
    flatbuffer = export.to_tflite(model)
    x = RNG.normal(size=(1, 5, 5, 3)).astype("float32")
    np.testing.assert_allclose(_run(flatbuffer, x)[0], _keras(model, x), atol=1e-5)
    _, segments = lay_out(flatbuffer)
    kernel = _segment(segments, "DEPTHWISE_CONV_2D")
    # [1, h, w, channels]: the output channel is the last, strided, dimension.
    assert kernel.shape == (1, 3, 3, 6) and kernel.channels == 1


def test_embedding_table_is_a_weight():
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(10, 3)])
    flatbuffer = export.to_tflite(model)
    x = np.array([[0, 3, 9, 1, 1]], np.int32)
    np.testing.assert_allclose(_run(flatbuffer, x)[0], _keras(model, x), atol=1e-6)
    _, segments = lay_out(flatbuffer)
    table = _segment(segments, "GATHER")
    assert table.shape == (10, 3) and table.channels == 1 and table.dtype == "float32"


class TwoDense(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(6, activation="tanh")
        self.out = keras.layers.Dense(2)

    def call(self, x):
        return self.out(self.hidden(x))


def test_subclassed_model_after_one_call_and_batch_size():
    keras.utils.set_random_seed(5)
    model = TwoDense()
    model(np.zeros((7, 4), np.float32))  # any batch: only dims 1.. are kept
    flatbuffer = export.to_tflite(model, batch_size=3)
    x = RNG.normal(size=(3, 4)).astype("float32")
    np.testing.assert_allclose(_run(flatbuffer, x)[0], _keras(model, x), atol=1e-5)
    interpreter = Interpreter(model_content=flatbuffer)
    assert list(interpreter.get_input_details()[0]["shape_signature"]) == [3, 4]


def test_subclassed_model_never_called_needs_a_signature():
    with pytest.raises(ValueError, match="input_signature"):
        export.to_tflite(TwoDense())


def test_keras_file_path(conv_bn, tmp_path):
    path = tmp_path / "conv.keras"
    conv_bn.save(path)
    flatbuffer = export.to_tflite(str(path))
    x = RNG.normal(size=(1, 6, 6, 3)).astype("float32")
    np.testing.assert_allclose(_run(flatbuffer, x)[0], _keras(conv_bn, x), atol=1e-5)
    assert export.load_model(path).count_params() == conv_bn.count_params()


# ---------------------------------------------------------------------------
# tf_keras (Keras 2) and tensorflow-model-optimization, in this process.


@pytest.fixture(scope="module")
def tfmot():
    """Imports tfmot without leaking its side effects into other tests.

    Importing tfmot sets TF_USE_LEGACY_KERAS=1 and resolves `tf.keras`; resolve
    `tf.keras` to Keras 3 first (tfmot then imports tf_keras itself) and
    restore the environment variable afterwards.
    """
    pytest.importorskip("tf_keras")
    _ = tf.keras.layers  # resolve the lazy tf.keras alias as this process expects
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        module = pytest.importorskip("tensorflow_model_optimization")
    finally:
        if before is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = before
    return module


def test_tf_keras_functional_model():
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(6)
    inputs = tf_keras.Input((6,))
    outputs = tf_keras.layers.Dense(3, bias_initializer="ones")(inputs)
    model = tf_keras.Model(inputs, outputs)
    assert export.load_model(model) is model
    flatbuffer = export.to_tflite(model, batch_size=2)
    x = RNG.normal(size=(2, 6)).astype("float32")
    np.testing.assert_allclose(_run(flatbuffer, x)[0], model(x).numpy(), atol=1e-5)


def test_tfmot_pruned_clustered_stripped_model(tfmot):
    import tf_keras  # pylint: disable=g-import-not-at-top

    tf_keras.utils.set_random_seed(7)
    model = tf_keras.Sequential(
        [
            tf_keras.layers.Dense(16, activation="relu", input_shape=(8,)),
            tf_keras.layers.Dense(4),
        ]
    )
    x = RNG.normal(size=(32, 8)).astype("float32")
    y = RNG.normal(size=(32, 4)).astype("float32")
    schedule = tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=1)
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    pruned.compile("sgd", "mse")
    pruned.fit(
        x,
        y,
        epochs=1,
        batch_size=16,
        verbose=0,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    with pytest.raises(ValueError, match="strip_pruning"):
        export.to_tflite(pruned)
    clustered = tfmot.clustering.keras.cluster_weights(
        tfmot.sparsity.keras.strip_pruning(pruned),
        number_of_clusters=4,
        cluster_centroids_init=tfmot.clustering.keras.CentroidInitialization.LINEAR,
        preserve_sparsity=True,
    )
    final = tfmot.clustering.keras.strip_clustering(clustered)
    flatbuffer = export.to_tflite(final)
    np.testing.assert_allclose(_run(flatbuffer, x[:1])[0], final(x[:1]).numpy(), atol=1e-5)
    restored, segments = lay_out(flatbuffer)
    kernel = max((s for s in segments if s.role == "weight"), key=lambda s: s.size)
    values = _values(restored, kernel)
    assert kernel.shape == (16, 8)
    assert len(np.unique(values)) <= 5  # 4 centroids (+ the pruned zeros)
    assert np.mean(values == 0) >= 0.4


# ---------------------------------------------------------------------------
# layout.


@pytest.mark.parametrize("alignment", [16, 64])
def test_offset_layout_runs_identically_and_is_well_formed(mlp_tflite, alignment):
    restored, segments = lay_out(mlp_tflite, alignment=alignment)
    x = RNG.normal(size=(1, 8)).astype("float32")
    np.testing.assert_array_equal(_run(restored, x)[0], _run(mlp_tflite, x)[0])
    indices = [s.buffer_index for s in segments]
    assert indices == sorted(indices) and len(segments) == 4
    assert all(s.offset % alignment == 0 for s in segments)
    assert [s.offset for s in segments] == sorted(s.offset for s in segments)
    for a, b in zip(segments, segments[1:]):
        assert a.offset + a.size <= b.offset
    assert segments[-1].offset + segments[-1].size == len(restored)
    model = schema.ModelT.InitFromPackedBuf(restored, 0)
    assert segments[0].offset >= len(_repack(model))  # the tail lies after the flatbuffer
    for s in segments:
        buffer = model.buffers[s.buffer_index]
        assert buffer.data is None and (buffer.offset, buffer.size) == (s.offset, s.size)
    # Same data as the inline buffers, deterministic, and a fixed point.
    _, inline = lay_out(mlp_tflite, mode="inline")
    by_index = {s.buffer_index: mlp_tflite[s.offset : s.offset + s.size] for s in inline}
    for s in segments:
        assert restored[s.offset : s.offset + s.size] == by_index[s.buffer_index]
    assert lay_out(mlp_tflite, alignment=alignment) == (restored, segments)
    assert lay_out(restored, alignment=alignment)[0] == restored


def test_inline_layout_points_into_the_unchanged_file(mlp_tflite):
    same, segments = lay_out(mlp_tflite, mode="inline")
    assert same == mlp_tflite
    model = schema.ModelT.InitFromPackedBuf(mlp_tflite, 0)
    for s in segments:
        assert mlp_tflite[s.offset : s.offset + s.size] == bytes(model.buffers[s.buffer_index].data)
    for a, b in zip(segments, segments[1:]):
        assert a.offset + a.size <= b.offset
    # A patcher that knows only the offsets can rewrite the weights in place.
    patched = bytearray(mlp_tflite)
    for s in segments:
        patched[s.offset : s.offset + s.size] = bytes(s.size)
    x = RNG.normal(size=(1, 8)).astype("float32")
    assert not np.any(_run(bytes(patched), x)[0])


def test_offset_layout_without_its_tail_fails_to_load(mlp_tflite):
    restored, segments = lay_out(mlp_tflite)
    with pytest.raises(ValueError, match="out of range offset"):
        Interpreter(model_content=restored[: segments[0].offset])
    # The cut is where the first buffer stored by offset begins, as the schema says.
    buffers = schema.ModelT.InitFromPackedBuf(restored, 0).buffers
    assert min(b.offset for b in buffers if b.offset > 1 and b.size > 0) == segments[0].offset


@pytest.mark.parametrize("mode", ["offset", "inline"])
def test_strip_names_blanks_inner_tensor_names_only(mlp, mlp_tflite, mode):
    laid_out, _ = lay_out(mlp_tflite, mode=mode)
    stripped = strip_names(laid_out)
    assert len(stripped) == len(laid_out) and stripped != laid_out
    before = schema.ModelT.InitFromPackedBuf(laid_out, 0).subgraphs[0]
    after = schema.ModelT.InitFromPackedBuf(stripped, 0).subgraphs[0]
    ends = set(before.inputs) | set(before.outputs)
    for i, (b, a) in enumerate(zip(before.tensors, after.tensors)):
        assert a.name == (b.name if i in ends else b"")
        assert (a.buffer, list(a.shape)) == (b.buffer, list(b.shape))
    # The inner names were there (the converter's node names) and are gone from the bytes.
    inner = [t.name for i, t in enumerate(before.tensors) if i not in ends]
    assert inner and all(n and n not in stripped for n in inner)
    # Same outputs, same input name for the user; stripping again changes nothing.
    x = RNG.normal(size=(1, 8)).astype(np.float32)
    np.testing.assert_array_equal(_run(stripped, x)[0], _run(laid_out, x)[0])
    names = [
        Interpreter(model_content=m).get_input_details()[0]["name"] for m in (stripped, laid_out)
    ]
    assert names[0] == names[1]
    assert strip_names(stripped) == stripped
    with pytest.raises(ValueError, match="TFL3"):
        strip_names(b"definitely not a model")


def test_drop_informational_keeps_what_runtimes_read(mlp, mlp_tflite):
    plain, plain_segments = lay_out(mlp_tflite, mode="offset")
    slim, slim_segments = lay_out(mlp_tflite, mode="offset", drop_informational=True)
    before, after = (schema.ModelT.InitFromPackedBuf(m, 0) for m in (plain, slim))
    # The converter wrote all of these; none is left.
    assert before.description and {m.name for m in before.metadata} >= {
        b"min_runtime_version",
        b"CONVERSION_METADATA",
    }
    assert any(t.quantization is not None for t in before.subgraphs[0].tensors)
    assert after.description is None and not after.metadata
    assert all(t.quantization is None for t in after.subgraphs[0].tensors)
    assert len(after.buffers) < len(before.buffers)
    # A smaller head, the same weights in the same order, the same outputs and names.
    assert slim_segments[0].offset < plain_segments[0].offset
    assert [plain[s.offset : s.offset + s.size] for s in plain_segments] == [
        slim[s.offset : s.offset + s.size] for s in slim_segments
    ]
    x = RNG.normal(size=(1, 8)).astype(np.float32)
    np.testing.assert_array_equal(_run(slim, x)[0], _run(plain, x)[0])
    details = [Interpreter(model_content=m).get_input_details()[0]["name"] for m in (slim, plain)]
    assert details[0] == details[1]
    # Inline layout keeps the converter's bytes; a non-bool is refused.
    assert lay_out(mlp_tflite, mode="inline", drop_informational=True)[0] == bytes(mlp_tflite)
    with pytest.raises(TypeError, match="drop_informational"):
        lay_out(mlp_tflite, drop_informational="yes")


def test_drop_informational_keeps_other_metadata(mlp_tflite):
    tree = schema.ModelT.InitFromPackedBuf(bytes(mlp_tflite), 0)
    extra = schema.MetadataT()
    extra.name, extra.buffer = b"TFLITE_METADATA", len(tree.buffers)
    kept_buffer = schema.BufferT()
    kept_buffer.data = np.frombuffer(b"user metadata", np.uint8)
    tree.buffers.append(kept_buffer)
    tree.metadata.append(extra)
    removed = drop_informational(tree)
    assert removed >= 3
    assert [m.name for m in tree.metadata] == [b"TFLITE_METADATA"]
    assert bytes(tree.buffers[tree.metadata[0].buffer].data) == b"user metadata"


def test_float16_weights(mlp, mlp_tflite):
    flatbuffer = export.to_tflite(mlp, float16=True)
    assert "DEQUANTIZE" in _ops(flatbuffer)
    restored, segments = lay_out(flatbuffer)
    floats = [s for s in segments if s.role in ("weight", "bias")]
    assert len(floats) == 4 and all(s.dtype == "float16" for s in floats)
    kernel = max(floats, key=lambda s: s.size)
    assert kernel.op == "FULLY_CONNECTED" and kernel.channels == 16  # seen through DEQUANTIZE
    x = RNG.normal(size=(1, 8)).astype("float32")
    np.testing.assert_allclose(_run(restored, x)[0], _run(mlp_tflite, x)[0], atol=1e-2)
    assert delegate.check_delegate_compatibility(restored) == []


# ---------------------------------------------------------------------------
# Delegate compatibility.


def test_delegate_check_passes_the_mlp(mlp_tflite):
    assert delegate.check_delegate_compatibility(mlp_tflite) == []
    assert delegate.check_delegate_compatibility(lay_out(mlp_tflite)[0]) == []


def test_delegate_check_flags_flex_and_dynamic_shapes(mlp):
    # Built with the converter directly: keras-dc itself refuses both.
    converter = tf.lite.TFLiteConverter.from_keras_model(
        keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Lambda(lambda x: tf.linalg.det(tf.reshape(x, (-1, 2, 2)))),
            ]
        )
    )
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS,
        tf.lite.OpsSet.SELECT_TF_OPS,
    ]
    problems = delegate.check_delegate_compatibility(converter.convert())
    assert any("FlexMatrixDeterminant" in p and "Flex" in p for p in problems), problems
    assert any("dynamic shape" in p for p in problems), problems  # batch None


def _edited(flatbuffer, edit):
    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    edit(model)
    return _repack(model)


def test_delegate_check_flags_unsupported_ops_sparse_and_int8_weights(mlp_tflite):
    def topk(model):
        model.operatorCodes[0].builtinCode = schema.BuiltinOperator.TOPK_V2
        model.operatorCodes[0].deprecatedBuiltinCode = schema.BuiltinOperator.TOPK_V2

    problems = delegate.check_delegate_compatibility(_edited(mlp_tflite, topk))
    assert any("TOPK_V2" in p for p in problems), problems

    def weights(model):
        graph = model.subgraphs[0]
        kernel = next(
            t
            for t in graph.tensors
            if len(t.shape) == 2 and t.buffer > 0 and model.buffers[t.buffer].data is not None
        )
        kernel.sparsity = schema.SparsityParametersT()
        kernel.type = schema.TensorType.INT8

    problems = delegate.check_delegate_compatibility(_edited(mlp_tflite, weights))
    assert any("sparse" in p for p in problems), problems
    assert any("INT8 constant read by FULLY_CONNECTED" in p for p in problems), problems


# ---------------------------------------------------------------------------
# Bad input.


def test_bad_models_raise_clear_errors(tmp_path):
    with pytest.raises(TypeError, match="Keras 3 model"):
        export.to_tflite(42)
    with pytest.raises(ValueError, match="No such model file"):
        export.load_model(tmp_path / "missing.keras")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match=r"\.keras"):
        export.load_model(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="directory"):
        export.load_model(tmp_path)
    sequence = keras.Sequential([keras.Input((None, 4)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="dynamic shape.*fixed input shapes"):
        export.to_tflite(sequence)
    with pytest.raises(ValueError, match="batch_size"):
        export.to_tflite(sequence, batch_size=0)


class _Determinant(keras.layers.Layer):
    def call(self, x):
        return tf.linalg.det(tf.reshape(x, (-1, 2, 2)))


def test_op_without_builtin_kernel_is_named_without_log_spam(capfd):
    model = keras.Sequential([keras.Input((4,)), _Determinant()])
    with pytest.raises(ValueError, match="MatrixDeterminant") as failure:
        export.to_tflite(model)
    assert len(str(failure.value)) < 400
    assert failure.value.__cause__ is None
    assert "loc(" not in capfd.readouterr().err


def test_layout_rejects_bad_arguments(mlp_tflite):
    with pytest.raises(ValueError, match="TFLite flatbuffer"):
        lay_out(b"definitely not a model")
    with pytest.raises(TypeError):
        lay_out("model.tflite")
    with pytest.raises(ValueError, match="mode"):
        lay_out(mlp_tflite, mode="packed")
    with pytest.raises(ValueError, match="power of two"):
        lay_out(mlp_tflite, alignment=12)
