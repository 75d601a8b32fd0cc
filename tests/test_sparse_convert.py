"""``convert(sparse=True)``: block-pruned Dense kernels become TFLite sparse tensors.

LiteRT's FULLY_CONNECTED kernel runs weights sparsified in 1x4 blocks with a
truly sparse kernel; the fast-path test measures that it does, so a runtime
or converter change that silently densifies them fails here.
"""

import os

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from test_java import _run as run_java
from test_java import java_classes  # noqa: F401  (the fixture that compiles the restorer)

import converters
import keras_dc
from converters import export, files, flatbuffer, litert


def _block_pruned_mlp(width, seed=0, cluster=True):
    """784 -> width -> width -> 10, 90% pruned in LiteRT's 1x4 blocks, 4-bit clustered."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(128, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=128)
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruning = keras_dc.MagnitudePruning(
        0.9, schedule=keras_dc.schedules.OneShot(at=0), block="litert", verbose=0
    )
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[pruning])
    if cluster:
        clustering = keras_dc.WeightClustering(bits=4, verbose=0)
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[clustering])
    return model


@pytest.fixture(scope="module")
def mlp():
    return _block_pruned_mlp(256)


@pytest.fixture(scope="module")
def sparse_bundle(mlp, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("sparse"))
    result = converters.convert(
        mlp, directory, sparse=True, picture=False, keep_tflite=True, verbose=0
    )
    return directory, result


def test_sparse_bundle_restores_byte_identically(mlp, sparse_bundle):
    directory, result = sparse_bundle
    restored = converters.restore(directory)
    with open(os.path.join(directory, "model.tflite"), "rb") as f:
        assert restored == f.read()
    # The sparse tensors' value buffers are still coded as clustered weights.
    kernels = [r for r in result.report["buffers"] if r["role"] == "weight"]
    assert len(kernels) == 3
    assert all(r["encoding"].startswith("CLUSTERED") for r in kernels)
    # Each sparse tensor is named by its Keras kernel (matched on its non-zero values).
    assert [r["keras_name"] for r in kernels] == [layer.kernel.path for layer in mlp.layers]


def test_sparse_bundle_hidden_weights_are_block_sparse_tensors(sparse_bundle):
    directory, result = sparse_bundle
    found = flatbuffer.sparse_weights(flatbuffer.unpack(converters.restore(directory)))
    by_shape = {w.shape: w for w in found}
    assert by_shape[(256, 784)].block == (1, 4)
    assert by_shape[(256, 256)].block == (1, 4)
    # The result names them as converted; the restored flatbuffer's inner names are blanked.
    assert [(w.shape, w.block) for w in result.sparse_tensors] == [
        (w.shape, w.block) for w in found
    ]
    assert all(w.tensor_name for w in result.sparse_tensors)
    assert [w["block"] for w in result.report["sparse_tensors"]] == [[1, 4]] * len(found)
    # The GPU delegate densifies sparse tensors: the delegate check says so.
    assert any("sparse tensor" in p for p in result.delegate_problems)


def test_sparse_bundle_runs_like_keras(mlp, sparse_bundle):
    directory, _ = sparse_bundle
    interpreter = Interpreter(model_content=converters.restore(directory), num_threads=1)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    x = np.random.default_rng(5).normal(size=(16, 1, 784)).astype(np.float32)
    for row in x:
        interpreter.set_tensor(source, row)
        interpreter.invoke()
        lite = interpreter.get_tensor(target)
        reference = np.asarray(mlp(row, training=False))
        assert np.all(np.abs(lite - reference) <= 1e-5 * (1 + np.abs(reference)))


def test_default_conversion_stores_no_sparse_tensor(mlp):
    assert flatbuffer.sparse_weights(flatbuffer.unpack(export.to_tflite(mlp))) == []


def test_to_tflite_rejects_non_bool_sparse(mlp):
    with pytest.raises(TypeError, match="sparse"):
        export.to_tflite(mlp, sparse="yes")


def test_restored_sparse_bundle_takes_the_sparse_kernel(tmp_path):
    # Measured on this 2-core machine (784-1024-1024-10 at 90% 1x4 blocks, one
    # thread): dense ~0.20-0.22 ms, restored sparse ~0.10-0.11 ms, a ratio of
    # 1.8-2.0. A sparse tensor run densely would be as slow as dense or slower
    # (ratio <= ~1), so 1.3 separates the two with room for noise.
    model = _block_pruned_mlp(1024, cluster=False)
    converters.convert(model, str(tmp_path), sparse=True, picture=False, verbose=0)
    sparse = converters.restore(str(tmp_path))
    dense = export.to_tflite(model)
    sparse_s, dense_s = litert.median_invoke_seconds([sparse, dense], repeats=300)
    assert dense_s / sparse_s >= 1.3, (
        f"restored sparse bundle {sparse_s * 1e6:.0f} us vs dense {dense_s * 1e6:.0f} us per "
        "batch-1 invoke: LiteRT did not take its sparse FULLY_CONNECTED path"
    )


def test_cli_convert_passes_sparse(tmp_path, monkeypatch):
    from converters import cli

    seen = {}

    def fake_convert(model, out, **kwargs):
        seen.update(kwargs)
        raise ValueError("stop after the arguments")

    monkeypatch.setattr(converters, "convert", fake_convert)
    model = tmp_path / "m.keras"
    model.write_bytes(b"not read")
    argv = ["convert", f"--model={model}", f"--out={tmp_path / 'out'}"]
    cli.main([*argv, "--sparse"])
    assert seen["sparse"] is True
    cli.main(argv)
    assert seen["sparse"] is False


def test_sparse_index_vectors_are_coded_by_their_differences(sparse_bundle):
    # Format 1.3 (docs/bundle-format.md 7.9): each sparse tensor's array_segments and
    # array_indices are sidecar segments coded DELTA, smaller than their raw bytes, and
    # not counted as weights in the report.
    directory, result = sparse_bundle
    restored = converters.restore(directory)
    arrays = flatbuffer.sparse_index_arrays(restored)
    assert {(a.field, a.buffer_index) for a in arrays} == {
        (field, a.buffer_index) for a in arrays for field in ("array_segments", "array_indices")
    }
    assert len(arrays) == 2 * len(result.sparse_tensors)
    for a in arrays:
        values = np.frombuffer(restored, a.dtype, a.size // np.dtype(a.dtype).itemsize, a.offset)
        if a.field == "array_segments":
            assert values[0] == 0 and np.all(np.diff(values.astype(np.int64)) >= 0)
    info = converters.decoder.inspect(open(os.path.join(directory, "model.dcw"), "rb").read())
    # DELTA (1.3) as parts of a PACKED segment (7.10), its head ZLIB_DICT (1.5, 7.11).
    assert info["version"] == "1.5"
    coded = {s["offset"]: s for s in info["segments"]}
    assert {a.offset for a in arrays} <= set(coded)
    assert all(coded[a.offset]["encoding"] == "DELTA" for a in arrays if a.size > 64)
    part = result.report["totals"]["sparse_index_segments"]
    assert part["count"] == len(arrays)
    assert part["raw_bytes"] == sum(a.size for a in arrays) > part["payload_bytes"]
    assert all("array_" not in r["name"] for r in result.report["buffers"])


def test_report_names_the_kernel_each_layer_runs(mlp, sparse_bundle):
    directory, result = sparse_bundle
    kernels = result.report["kernels"]
    assert [k["op"] for k in kernels] == ["FULLY_CONNECTED"] * 3
    assert [k["layer"] for k in kernels] == [layer.kernel.path for layer in mlp.layers]
    # The two hidden layers run the sparse kernel; the 10-wide output layer too or not,
    # but each row says which and why.
    assert [k["kernel"] for k in kernels[:2]] == ["sparse", "sparse"]
    assert all(k["stored"] == "sparse 1x4 blocks" for k in kernels if k["kernel"] == "sparse")
    assert all(k["effect"].startswith("faster") for k in kernels if k["kernel"] == "sparse")
    with open(os.path.join(directory, "model.report.txt")) as f:
        assert "kernels (LiteRT, CPU):" in f.read()


def test_sparse_conversion_of_a_pruned_conv_restores(tmp_path):
    # The converter also stores pruned conv kernels as sparse tensors, whose buffer holds
    # only the non-zero values: a size that need not split into the output channels
    # (once 325 non-zeros of a 20-channel conv1 made the encoder reject the segment).
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            keras.layers.Conv2D(20, 5, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    conv, dense = model.layers[0], model.layers[2]
    rng = np.random.default_rng(3)
    kernel = np.asarray(conv.kernel).copy()
    kernel.reshape(-1)[rng.permutation(kernel.size)[:175]] = 0  # 325 of 500 kept
    conv.kernel.assign(kernel)
    weights = np.asarray(dense.kernel).copy()
    weights[rng.random(weights.shape) < 0.9] = 0
    dense.kernel.assign(weights)
    result = converters.convert(model, str(tmp_path), sparse=True, picture=False, verbose=0)
    restored = converters.restore(str(tmp_path))
    assert result.bundle_bytes > 0
    (conv_row,) = [k for k in result.report["kernels"] if k["op"] == "CONV_2D"]
    # The converter stores it sparse and expands it at load: the dense kernel runs it.
    assert conv_row["stored"] == "sparse, unstructured (DENSIFY at load)"
    assert conv_row["kernel"] == "dense"
    assert conv_row["effect"] == "no speed-up: LiteRT has no sparse CONV_2D kernel"
    x = rng.normal(size=(1, 12, 12, 1)).astype(np.float32)
    interpreter = Interpreter(model_content=restored)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    lite = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert np.allclose(lite, np.asarray(model(x)), atol=1e-4)


def test_java_restores_a_sparse_bundle(sparse_bundle, java_classes, tmp_path):  # noqa: F811
    # Its sparse tensors' index vectors are DELTA segments (format 1.3).
    directory, _ = sparse_bundle
    skeleton, sidecar = files.bundle_paths(directory)
    out = str(tmp_path / "java.tflite")
    main, _ = java_classes
    proc = run_java(
        ["java", "-cp", main, "dev.kerasdc.bundle.RestoreMain", skeleton, sidecar, out], 120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out, "rb") as f:
        assert f.read() == converters.restore(directory)
