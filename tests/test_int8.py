"""Full-integer int8 bundles: ``convert(int8=True)`` and ``keras-dc convert --int8``.

A pruned + clustered Keras model becomes an int8 bundle that restores byte for byte
(Python and Java), runs in LiteRT with int8 weights that are zero exactly where the
Keras kernel is zero and hold at most 2^bits non-zero values per output channel, gives
outputs close to Keras, and is smaller than the dense int8 ``.tflite``. The structure
is checked here from the flatbuffer's bytes and the Keras kernels directly, not from
the report that `convert` writes.
"""

import json
import os
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
from test_java import _run as run_java
from test_java import java_classes  # noqa: F401  (the fixture that compiles the restorer)

import converters
import keras_dc
from converters import export, files, keras_names, layout
from keras_dc import schedules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BITS = 3


def _data(shape, seed, n=96):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)).astype("float32"), rng.integers(0, 4, n)


def _compress(model, x, y):
    """Prunes to 70% zeros, then clusters to 2^BITS shared values per kernel."""
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    prune = keras_dc.MagnitudePruning(0.7, schedule=schedules.OneShot(), min_size=1, verbose=0)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[prune])
    cluster = keras_dc.WeightClustering(bits=BITS, min_size=1, verbose=0)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[cluster])
    return model


def _mlp():
    keras.utils.set_random_seed(5)
    x, y = _data((24,), 5)
    model = keras.Sequential(
        [keras.Input((24,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(4)]
    )
    return _compress(model, x, y), x


def _conv():
    keras.utils.set_random_seed(6)
    x, y = _data((8, 8, 2), 6)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(4),
        ]
    )
    return _compress(model, x, y), x


@pytest.fixture(scope="module", params=["mlp", "conv"])
def int8_bundle(request, tmp_path_factory):
    model, x = {"mlp": _mlp, "conv": _conv}[request.param]()
    directory = str(tmp_path_factory.mktemp(f"int8-{request.param}"))
    result = converters.convert(
        model, directory, int8=True, representative_data=x, keep_tflite=True, verbose=0
    )
    return model, x, result


def _int8_weights(restored):
    """``[(WeightBuffer, int8 array in its TFLite shape)]`` of the weight buffers."""
    _, buffers = layout.lay_out(restored, mode="inline")  # where the offsets point
    found = []
    for b in buffers:
        if b.role == "weight":
            assert b.dtype == "int8", b
            found.append((b, np.frombuffer(restored, np.int8, b.size, b.offset).reshape(b.shape)))
    return found


def _tflite_layout(kernel):
    """A Keras Dense/Conv2D kernel in the converter's layout (output channel first)."""
    return np.moveaxis(np.asarray(kernel), -1, 0)


def test_int8_bundle_restores_byte_identically_and_matches_the_keras_kernels(int8_bundle):
    model, _, result = int8_bundle
    restored = converters.restore(result.directory)
    with open(os.path.join(result.directory, "model.tflite"), "rb") as f:
        assert restored == f.read()  # the flatbuffer that convert verified
    kernels = [np.asarray(v) for v in model.weights if v.path.endswith("kernel")]
    weights = _int8_weights(restored)
    assert len(weights) == len(kernels)
    for kernel in kernels:
        expected = _tflite_layout(kernel)
        (quantized,) = [w for b, w in weights if w.shape == expected.shape]
        assert np.array_equal(quantized == 0, expected == 0)  # zeros exactly where Keras has them
        per_channel = [
            np.unique(row[row != 0]).size for row in quantized.reshape(len(quantized), -1)
        ]
        assert 1 < max(per_channel) <= 2**BITS, per_channel


def test_int8_bundle_runs_in_litert_close_to_keras(int8_bundle):
    from ai_edge_litert.interpreter import Interpreter

    model, _, result = int8_bundle
    interpreter = Interpreter(model_content=converters.restore(result.directory))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == np.float32 and out["dtype"] == np.float32  # float I/O by default
    x, _ = _data(tuple(inp["shape"][1:]), 99, n=16)  # held-out inputs
    lite = []
    for sample in x:
        interpreter.set_tensor(inp["index"], sample[None])
        interpreter.invoke()
        lite.append(interpreter.get_tensor(out["index"])[0])
    reference = np.asarray(model(x, training=False))
    span = reference.max() - reference.min()
    assert np.max(np.abs(np.array(lite) - reference)) <= 0.05 * span
    assert result.max_scaled_diff <= 0.05


def test_int8_bundle_is_smaller_than_the_dense_int8_tflite_and_reports_it(int8_bundle):
    model, x, result = int8_bundle
    report = result.report
    dense_int8 = len(export.to_tflite(model, int8=True, representative_data=x))
    assert report["int8"]["int8_tflite_bytes"] == dense_int8
    assert result.bundle_bytes < dense_int8
    rows = {r["keras_name"]: r for r in report["buffers"] if r["dtype"] == "int8"}
    paths = {v.path for v in model.weights if v.path.endswith("kernel")}
    assert set(rows) == paths  # every int8 kernel named after its Keras variable
    encodings = {name: r["encoding"] for name, r in rows.items()}
    assert all(e.startswith(("CLUSTERED", "GROUPED")) for e in encodings.values()), encodings
    checks = {w.keras_name: w for w in result.int8_weights}
    assert set(checks) == paths
    for v in model.weights:
        if v.path in checks:
            assert checks[v.path].keras_zeros == int(np.count_nonzero(np.asarray(v) == 0))
            assert checks[v.path].zeros_preserved
            assert checks[v.path].max_distinct_per_channel <= 2**BITS
    with open(os.path.join(result.directory, "model.report.txt")) as f:
        assert "int8 (full-integer" in f.read()


def test_int8_io_bundle_takes_and_gives_int8(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    model, x = _mlp()
    result = converters.convert(
        model, str(tmp_path), int8=True, int8_io=True, representative_data=x, verbose=0
    )
    interpreter = Interpreter(model_content=converters.restore(str(tmp_path)))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert result.report["int8"]["int8_io"] and result.max_scaled_diff <= 0.05


def test_int8_errors_write_nothing(tmp_path):
    model, x = _mlp()
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="representative_data"):
        converters.convert(model, str(out), int8=True, verbose=0)
    with pytest.raises(ValueError, match="float16"):
        converters.convert(model, str(out), int8=True, float16=True, representative_data=x)
    with pytest.raises(ValueError, match="input"):
        converters.convert(model, str(out), int8=True, representative_data=x[:, :10], verbose=0)
    assert not out.exists() or os.listdir(out) == []


def test_an_op_without_int8_kernel_is_named_and_nothing_written(tmp_path):
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(8),
            keras.layers.Lambda(keras.ops.sin, name="wave"),
            keras.layers.Dense(2),
        ]
    )
    x, _ = _data((8,), 1, n=16)
    out = tmp_path / "never"
    with pytest.raises(ValueError, match=r"int8 conversion failed: op\(s\) SIN .*wave"):
        converters.convert(model, str(out), int8=True, representative_data=x, verbose=0)
    assert not out.exists() or os.listdir(out) == []


def test_keras_names_match_int8_kernels_by_per_channel_quantization():
    rng = np.random.default_rng(0)
    first, second = (rng.normal(size=(6, 4)).astype("float32") for _ in range(2))
    second[second < 0] = 0.0
    # TFLite's layout [out, in] and symmetric per-channel quantization, computed here.
    scale = np.abs(second.T).max(axis=1, keepdims=True) / 127
    data = np.round(second.T / scale).astype(np.int8).tobytes()
    buffer = types.SimpleNamespace(offset=0, size=24, dtype="int8", shape=(4, 6), role="weight")
    names = keras_names.match_buffers([("d/kernel", first), ("d_1/kernel", second)], [buffer], data)
    assert names[0].paths == ("d_1/kernel",) and not names[0].folded


def test_cli_converts_an_int8_bundle(tmp_path):
    model, x = _mlp()
    path, samples = str(tmp_path / "model.keras"), str(tmp_path / "samples.npy")
    model.save(path)
    np.save(samples, x)
    out = str(tmp_path / "bundle")

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "converters.cli", "convert", f"--model={path}", *args],
            capture_output=True,
            text=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
            cwd=ROOT,
            timeout=300,
        )

    proc = cli(f"--out={out}", "--int8")
    assert proc.returncode == 2 and "--representative" in proc.stderr, proc.stderr[-2000:]
    proc = cli(f"--out={out}", "--int8", f"--representative={samples}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(out, "model.report.json")) as f:
        report = json.load(f)
    assert report["int8"]["weights"] and not report["int8"]["int8_io"]
    assert all(w["zeros_preserved"] for w in report["int8"]["weights"])


def test_java_restores_an_int8_bundle(int8_bundle, java_classes, tmp_path):  # noqa: F811
    _, _, result = int8_bundle
    skeleton, sidecar = files.bundle_paths(result.directory)
    out = str(tmp_path / "java.tflite")
    main, _ = java_classes
    proc = run_java(
        ["java", "-cp", main, "dev.kerasdc.bundle.RestoreMain", skeleton, sidecar, out], 120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out, "rb") as f:
        assert f.read() == converters.restore(result.directory)


def test_int8_kernel_of_shared_centroids_is_coded_by_channel_groups(
    java_classes,  # noqa: F811
    tmp_path,
):
    # A Dense kernel of 8 shared values with rare large ones, 85% zeros: each output
    # channel's int8 scale comes from the largest value it uses, so the channels fall
    # into groups with identical int8 values (format 1.2, GROUPED_SPARSE), which the
    # Python and the Java restorer both restore to the converter's exact bytes.
    rng = np.random.default_rng(8)
    centroids = np.array([-0.8, -0.3, -0.12, -0.05, 0.04, 0.1, 0.25, 0.6], np.float32)
    use = np.exp(-np.abs(centroids) / 0.15)
    kernel = rng.choice(centroids, (96, 64), p=use / use.sum())
    kernel[rng.random(kernel.shape) < 0.85] = 0
    model = keras.Sequential([keras.Input((96,)), keras.layers.Dense(64)])
    model.layers[0].set_weights([kernel, np.zeros(64, np.float32)])
    x = rng.standard_normal((64, 96)).astype(np.float32)
    result = converters.convert(
        model, str(tmp_path / "b"), int8=True, representative_data=x, verbose=0, picture=False
    )
    (row,) = [r for r in result.report["buffers"] if r["dtype"] == "int8"]
    assert row["encoding"] == "GROUPED_SPARSE" and 1 < row["codebooks"] < 64, row
    restored = converters.restore(result.directory)
    (weights,) = [w for _, w in _int8_weights(restored)]
    assert np.array_equal(weights == 0, kernel.T == 0)
    skeleton, sidecar = files.bundle_paths(result.directory)
    main, _ = java_classes
    out = str(tmp_path / "java.tflite")
    proc = run_java(
        ["java", "-cp", main, "dev.kerasdc.bundle.RestoreMain", skeleton, sidecar, out], 120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out, "rb") as f:
        assert f.read() == restored
