"""Matching weight buffers of a flatbuffer to the Keras variables they hold (pure NumPy)."""

import dataclasses

import numpy as np

from converters.keras_names import match_buffers


@dataclasses.dataclass
class Buf:
    offset: int
    size: int
    dtype: str
    shape: tuple
    role: str = "weight"


def _pack(arrays):
    """Lays the arrays out one after the other, as buffers of a file."""
    data, bufs = b"", []
    for array, role in arrays:
        raw = array.tobytes()
        bufs.append(Buf(len(data), len(raw), str(array.dtype), array.shape, role))
        data += raw
    return data, bufs


def test_transposed_kernels_biases_and_float16_match_by_value():
    rng = np.random.default_rng(0)
    k1, b1 = rng.normal(size=(8, 5)).astype("f4"), rng.normal(size=5).astype("f4")
    k2 = rng.normal(size=(5, 3)).astype("f4")
    variables = [("dense/kernel", k1), ("dense/bias", b1), ("dense_1/kernel", k2)]
    # Flatbuffer order differs from model order; kernels are transposed; k2 is float16.
    data, bufs = _pack(
        [(b1, "bias"), (k2.T.astype("f2").copy(), "weight"), (k1.T.copy(), "weight")]
    )
    names = match_buffers(variables, bufs, data)
    assert {o: n.paths for o, n in names.items()} == {
        bufs[0].offset: ("dense/bias",),
        bufs[1].offset: ("dense_1/kernel",),
        bufs[2].offset: ("dense/kernel",),
    }
    assert [names[b.offset].order for b in bufs] == [1, 2, 0]
    assert not any(n.folded for n in names.values())


def test_a_changed_value_is_not_an_exact_match():
    rng = np.random.default_rng(1)
    k = rng.normal(size=(4, 4)).astype("f4")
    other = k.copy()
    other[0, 0] += 1e-3
    data, bufs = _pack([(other.T.copy(), "bias")])  # role bias: never matched by shape
    assert match_buffers([("dense/kernel", k)], bufs, data) == {}


def test_merged_constants_name_every_variable():
    v = np.arange(6, dtype="f4").reshape(2, 3)
    data, bufs = _pack([(v, "weight")])
    names = match_buffers([("a/kernel", v), ("b/kernel", v.copy())], bufs, data)
    assert names[0].paths == ("a/kernel", "b/kernel") and names[0].label == "a/kernel | b/kernel"


def test_folded_kernel_matches_by_shape_then_by_zeros():
    rng = np.random.default_rng(2)
    conv = rng.normal(size=(3, 3, 2, 4)).astype("f4")
    conv[conv < 0] = 0
    twin = rng.normal(size=(3, 3, 2, 4)).astype("f4")  # same shape, no zeros
    folded = (np.transpose(conv, (3, 0, 1, 2)) * rng.uniform(0.5, 2, size=(4, 1, 1, 1))).astype(
        "f4"
    )
    data, bufs = _pack([(folded, "weight")])
    names = match_buffers(
        [("conv/kernel", conv), ("bn/gamma", np.ones(4, "f4")), ("c2/kernel", twin)], bufs, data
    )
    assert (
        names[0].paths == ("conv/kernel",)
        and names[0].folded
        and names[0].label == "conv/kernel + BN"
    )
    # Two unmatched kernels of that shape and the same zeros: no guess.
    names = match_buffers([("conv/kernel", conv), ("c2/kernel", conv * 2)], bufs, data)
    assert names == {}


def test_convert_reports_keras_names_in_model_order(tmp_path):
    import json

    import keras

    import converters
    import keras_dc

    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 1), batch_size=1)
    h = keras.layers.Conv2D(8, 3, use_bias=False, name="conv")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(64, activation="relu", name="dense")(h)
    model = keras.Model(inputs, keras.layers.Dense(10, name="dense_1")(h))
    model.compile("adam", "mse")
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 12, 12, 1), "float32"), rng.random((32, 10), "float32")
    model.fit(
        x, y, epochs=1, verbose=0, callbacks=[keras_dc.MagnitudePruning(0.8, min_size=1, verbose=0)]
    )
    model.fit(
        x,
        y,
        epochs=1,
        verbose=0,
        callbacks=[keras_dc.WeightClustering(bits=3, min_size=1, verbose=0)],
    )
    # BatchNorm statistics that fold into real per-channel scales.
    bn = model.get_layer("bn")
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, 8).astype("float32"))
    # packed=False: the sidecar stores the names too (a packed one has none: test_bundle).
    result = converters.convert(
        model, str(tmp_path), name="cnn", verbose=0, picture=False, packed=False
    )
    named = [r["keras_name"] for r in result.report["buffers"] if r["keras_name"]]
    paths = [
        keras_dc.variable_path(v)
        for v in (
            model.get_layer("conv").kernel,
            model.get_layer("dense").kernel,
            model.get_layer("dense").bias,
            model.get_layer("dense_1").kernel,
            model.get_layer("dense_1").bias,
        )
    ]
    assert named == [paths[0] + " + BN"] + paths[1:]  # model order, every Keras variable named
    for row in result.report["buffers"]:
        assert row["tflite_name"]  # the TFLite name stays beside it
    assert (
        json.loads((tmp_path / "cnn.report.json").read_text())["buffers"]
        == result.report["buffers"]
    )
    text = (tmp_path / "cnn.report.txt").read_text()
    assert text.index(paths[1]) < text.index(paths[3])  # dense before dense_1, names not cut
    from converters import decoder

    inspected = decoder.inspect(converters.load_bundle(str(tmp_path))[1])
    assert {s["name"] for s in inspected["segments"]} >= set(paths[1:])
