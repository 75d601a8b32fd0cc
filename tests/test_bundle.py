"""End to end: fit with the callbacks → convert → restore → LiteRT matches Keras."""

import json
import os
import stat
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import converters
import keras_dc
from converters import decoder, export, files, flatbuffer, litert
from converters import report as report_lib
from converters.layout import lay_out
from keras_dc import schedules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _compressed_mlp(sparsity=0.9, bits=4, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((196,), name="pixels"),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(256, 196)).astype("float32")
    y = rng.integers(0, 10, 256)
    model.fit(
        x,
        y,
        epochs=2,
        verbose=0,
        callbacks=[
            keras_dc.MagnitudePruning(sparsity, schedule=schedules.OneShot(), min_size=1, verbose=0)
        ],
    )
    model.fit(
        x,
        y,
        epochs=1,
        verbose=0,
        callbacks=[keras_dc.WeightClustering(bits=bits, min_size=1, verbose=0)],
    )
    return model


@pytest.fixture(scope="module")
def mlp():
    return _compressed_mlp()


@pytest.fixture(scope="module")
def mlp_bundle(mlp, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("bundle"))
    return mlp, converters.convert(mlp, directory, verbose=0)


def test_bundle_restores_and_runs_like_keras(mlp_bundle):
    model, result = mlp_bundle
    written = sorted(os.listdir(result.directory))
    assert written == [
        "model.dcw",
        "model.report.json",
        "model.report.png",
        "model.report.txt",
        "model.skeleton.tflite",
    ]
    sizes = os.path.getsize(result.skeleton_path) + os.path.getsize(result.sidecar_path)
    assert result.bundle_bytes == sizes
    restored = converters.restore(result.directory)
    assert result.max_abs_diff <= 1e-5
    # Independent check: run the restored bytes on fresh inputs.
    x = np.random.default_rng(7).normal(size=(1, 196)).astype("float32")
    lite = litert.run(restored, [[x]])[0][0]
    np.testing.assert_allclose(lite, np.asarray(model(x)), atol=1e-5)
    # The restored flatbuffer is the converter's output in the offset layout, byte for
    # byte, without what no runtime reads (strip_metadata) and with the inner tensors'
    # names blanked (strip_names): both on by default.
    expected, _ = lay_out(export.to_tflite(model), drop_informational=True)
    assert restored == flatbuffer.strip_names(expected)
    assert len(restored) == len(expected) and restored != expected
    assert len(restored) < len(lay_out(export.to_tflite(model))[0])
    assert result.delegate_problems == []


def test_report_matches_the_model(mlp_bundle):
    model, result = mlp_bundle
    with open(os.path.join(result.directory, "model.report.json")) as f:
        report = json.load(f)
    assert report == json.loads(json.dumps(result.report))
    kernels = [r for r in report["buffers"] if r["role"] == "weight"]
    assert len(kernels) == 3 and all(r["encoding"].startswith("CLUSTERED") for r in kernels)
    for r, v in zip(
        sorted(kernels, key=lambda r: -r["weights"]),
        sorted(keras_dc.compressible_variables(model, 1), key=lambda v: -np.prod(v.shape)),
    ):
        w = np.asarray(v.numpy())
        assert r["weights"] == w.size
        assert r["nonzeros"] == np.count_nonzero(w)
        assert r["codebook_entries"] <= 16
    t = report["totals"]
    assert t["bundle_bytes"] == t["skeleton_bytes"] + t["sidecar_bytes"]
    assert t["dense_tflite_bytes"] > 100_000 and t["ratio_vs_dense"] > 15
    # Huffman lands close to the zero-order entropy of the streams.
    assert 0 <= t["huffman_over_entropy"] < 0.05
    text = open(os.path.join(result.directory, "model.report.txt")).read()
    assert "smaller" in text and "MatMul" in text
    # One timing per step of convert, in the order they ran.
    assert list(report["timings"]) == ["convert_s", "layout_s", "encode_s", "restore_s", "verify_s"]
    assert report["timings"]["convert_s"] > 0


def test_conversion_is_deterministic(mlp, mlp_bundle, tmp_path):
    _, first = mlp_bundle
    second = converters.convert(mlp, str(tmp_path), verbose=0, picture=False)
    for a, b in (
        (first.skeleton_path, second.skeleton_path),
        (first.sidecar_path, second.sidecar_path),
    ):
        assert open(a, "rb").read() == open(b, "rb").read()


def test_inline_layout_and_float16(mlp, tmp_path):
    inline = converters.convert(
        mlp, str(tmp_path / "inline"), layout="inline", verbose=0, picture=False
    )
    restored = converters.restore(inline.directory)
    # inline: the converter's own bytes, but for the inner tensors' names (strip_names)
    assert restored == flatbuffer.strip_names(export.to_tflite(mlp))
    assert inline.max_abs_diff <= 1e-5
    half = converters.convert(mlp, str(tmp_path / "half"), float16=True, verbose=0, picture=False)
    assert {r["dtype"] for r in half.report["buffers"] if r["role"] == "weight"} == {"float16"}
    # Clustered weights cost the same bits in either type (only the codebook
    # entries halve), so float16 mainly matters for unclustered buffers.
    # Independent check: the restored float16 bundle in LiteRT on fresh inputs, within
    # the documented 1e-2 × (1 + |Keras output|).
    x = np.random.default_rng(8).normal(size=(4, 1, 196)).astype("float32")
    lite = np.stack(
        [o[0] for o in litert.run(converters.restore(half.directory), [[b] for b in x])]
    )
    keras_out = np.stack([np.asarray(mlp(b)) for b in x])
    assert np.max(np.abs(lite - keras_out) / (1 + np.abs(keras_out))) <= 1e-2
    assert np.max(np.abs(lite - keras_out)) > 0  # the weights really are float16


def test_batchnorm_folding_gets_per_channel_codebooks(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 16)),
            keras.layers.Conv2D(64, 3, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4),
        ]
    )
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(64, 8, 8, 16)).astype("float32")
    y = np.random.default_rng(1).normal(size=(64, 4)).astype("float32")
    model.fit(x, y, epochs=2, verbose=0)  # moves the BatchNorm statistics
    model.fit(x, y, epochs=1, verbose=0, callbacks=[keras_dc.WeightClustering(bits=3, verbose=0)])
    result = converters.convert(model, str(tmp_path), verbose=0, picture=False)
    (conv,) = [
        r for r in result.report["buffers"] if r["op"] == "CONV_2D" and r["role"] == "weight"
    ]
    assert conv["encoding"].startswith("CLUSTERED")
    assert conv["codebooks"] == 64  # one per output channel: folding scaled each channel
    assert result.max_abs_diff <= 1e-5


def test_keras_file_and_cli(mlp, tmp_path):
    path = str(tmp_path / "model.keras")
    mlp.save(path)
    out = str(tmp_path / "cli-bundle")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "converters.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=300,
        )

    proc = cli("convert", f"--model={path}", f"--out={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ship these 2 files" in proc.stdout and os.path.exists(os.path.join(out, "model.dcw"))
    proc = cli("inspect", f"--bundle={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CLUSTERED" in proc.stdout
    proc = cli("verify", f"--bundle={out}", f"--model={path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "verify: OK" in proc.stdout
    # A flipped byte in the sidecar: a clean error, exit code 2, no traceback.
    sidecar = os.path.join(out, "model.dcw")
    data = bytearray(open(sidecar, "rb").read())
    data[len(data) // 2] ^= 0x10
    open(sidecar, "wb").write(bytes(data))
    proc = cli("verify", f"--bundle={out}")
    assert proc.returncode == 2
    assert "bad bundle" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("frobnicate")
    assert proc.returncode != 0 and "expected one command" in proc.stderr


def test_bad_bundles_raise_format_errors(mlp_bundle, tmp_path):
    _, result = mlp_bundle
    skeleton, sidecar = files.load_bundle(result.directory)
    from converters.decoder import restore_bytes
    from converters.format import FormatError

    with pytest.raises(FormatError):
        restore_bytes(skeleton, sidecar[:-1])
    with pytest.raises(FormatError):  # the packed skeleton may be empty: one byte more
        restore_bytes(skeleton[:-1] if skeleton else b"\x00", sidecar)
    # A skeleton from another conversion. With the compacted (or packed) skeleton and the
    # blanked tensor names (the defaults) two models of one architecture have the same
    # skeleton, so the mismatch is shown on uncompacted skeletons that keep the names.
    plain = {
        "verbose": 0,
        "picture": False,
        "compact_skeleton": False,
        "packed": False,
        "strip_names": False,
    }
    mine = converters.convert(_compressed_mlp(seed=1), str(tmp_path / "mine"), **plain)
    other = converters.convert(_compressed_mlp(seed=3), str(tmp_path / "other"), **plain)
    my_skeleton, my_sidecar = files.load_bundle(mine.directory)
    other_skeleton, _ = files.load_bundle(other.directory)
    assert other_skeleton != my_skeleton
    with pytest.raises(FormatError, match="skeleton"):
        restore_bytes(other_skeleton, my_sidecar)


def test_failed_conversion_leaves_nothing(tmp_path):
    model = _compressed_mlp(seed=1)
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="arrays"):
        converters.convert(
            model, str(out), sample_inputs=[[np.zeros((1, 196), "float32")] * 2], verbose=0
        )
    assert not out.exists() or os.listdir(out) == []
    with pytest.raises(ValueError, match="layout"):
        converters.convert(model, str(out), layout="sideways", verbose=0)


def test_write_atomic_is_all_or_nothing_with_the_usual_file_mode(tmp_path):
    old_umask = os.umask(0o022)
    try:
        plain = tmp_path / "plain.bin"
        plain.write_bytes(b"x")
        target = tmp_path / "out" / "a.bin"
        files.write_atomic({str(target): b"abc"})
        assert target.read_bytes() == b"abc"
        # The mode a plain open() gives (0o644 here), not a temp file's 0o600.
        assert (
            stat.S_IMODE(os.stat(target).st_mode) == stat.S_IMODE(os.stat(plain).st_mode) == 0o644
        )
        # The second file cannot be written (its parent is a file): nothing changes, no temp file is left.
        blocker = tmp_path / "blocker"
        blocker.write_bytes(b"")
        with pytest.raises(OSError):
            files.write_atomic({str(target): b"new", str(blocker / "b.bin"): b"y"})
        assert target.read_bytes() == b"abc"
        assert os.listdir(target.parent) == ["a.bin"]
    finally:
        os.umask(old_umask)


def test_tfmot_pruned_clustered_stripped_model_becomes_a_small_bundle(tmp_path):
    """How tfmot users adopt keras-dc: their stripped model, a real small file."""
    code = textwrap.dedent(f"""
        import os, numpy as np
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import tensorflow_model_optimization as tfmot
        import tf_keras
        import converters
        tf_keras.utils.set_random_seed(0)
        model = tf_keras.Sequential([tf_keras.layers.InputLayer((196,)),
                                     tf_keras.layers.Dense(128, activation="relu"), tf_keras.layers.Dense(10)])
        pruned = tfmot.sparsity.keras.prune_low_magnitude(
            model, pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.9, 0, frequency=1))
        pruned.compile("adam", tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rng = np.random.default_rng(0)
        x = rng.normal(size=(256, 196)).astype("float32"); y = rng.integers(0, 10, 256)
        pruned.fit(x, y, epochs=1, verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
        stripped = tfmot.sparsity.keras.strip_pruning(pruned)
        clustered = tfmot.clustering.keras.cluster_weights(
            stripped, number_of_clusters=16,
            cluster_centroids_init=tfmot.clustering.keras.CentroidInitialization.LINEAR,
            preserve_sparsity=True)
        clustered.compile("adam", tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        clustered.fit(x, y, epochs=1, verbose=0)
        final = tfmot.clustering.keras.strip_clustering(clustered)
        result = converters.convert(final, {str(tmp_path)!r}, verbose=0, picture=False)
        t = result.report["totals"]
        print("RESULT", t["bundle_bytes"], t["dense_tflite_bytes"], t["restored_gzip9_bytes"], result.max_abs_diff)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT")][0]
    bundle_bytes, dense, gzipped, diff = line.split()[1:]
    assert float(diff) <= 1e-5
    assert int(bundle_bytes) * 10 < int(dense)  # a real small file ...
    assert int(bundle_bytes) < int(gzipped)  # ... smaller than "zip it yourself"


@pytest.fixture(scope="module")
def unpacked_bundle(mlp, tmp_path_factory):
    """The bundle of the format 1.0–1.3 encoder (packed=False), skeleton compacted."""
    directory = str(tmp_path_factory.mktemp("unpacked"))
    return converters.convert(mlp, directory, verbose=0, picture=False, packed=False)


def test_compact_skeleton_shrinks_the_bundle_and_reports_truthfully(mlp, unpacked_bundle, tmp_path):
    compact = unpacked_bundle  # compact_skeleton=True is the default
    plain = converters.convert(
        mlp, str(tmp_path), verbose=0, picture=False, compact_skeleton=False, packed=False
    )
    assert converters.restore(compact.directory) == converters.restore(str(tmp_path))
    c, p = compact.report["totals"], plain.report["totals"]
    for t, result in ((c, compact), (p, plain)):
        assert t["skeleton_bytes"] == os.path.getsize(result.skeleton_path)
        assert t["sidecar_bytes"] == os.path.getsize(result.sidecar_path)
    assert c["bundle_bytes"] < p["bundle_bytes"] and c["skeleton_bytes"] < p["skeleton_bytes"]
    packed = c["skeleton_segments"]
    assert packed["count"] >= 1 and packed["payload_bytes"] < packed["raw_bytes"]
    assert c["skeleton_bytes"] + packed["raw_bytes"] == p["skeleton_bytes"]
    assert p["skeleton_segments"] == {
        "count": 0,
        "raw_bytes": 0,
        "payload_bytes": 0,
        "encodings": [],
    }
    # The skeleton is no weight: rows and weight totals are those of the plain bundle.
    assert [r["name"] for r in compact.report["buffers"]] == [
        r["name"] for r in plain.report["buffers"]
    ]
    for key in ("weights", "nonzeros", "payload_bytes", "raw_bytes"):
        assert c[key] == p[key], key
    text = report_lib.format_report(compact.report)
    assert "(skeleton)" in text and "(skeleton)" not in report_lib.format_report(plain.report)


def test_packed_is_the_default_smaller_and_reports_the_same_buffers(mlp_bundle, unpacked_bundle):
    # Format 1.4 (docs/bundle-format.md 7.10): one PACKED segment whose parts are the
    # buffers and the flatbuffer ranges between them; the names stay in the report.
    _, packed = mlp_bundle
    unpacked = unpacked_bundle
    assert converters.restore(packed.directory) == converters.restore(unpacked.directory)
    assert packed.bundle_bytes < unpacked.bundle_bytes
    skeleton, sidecar = files.load_bundle(packed.directory)
    info = decoder.inspect(sidecar)
    # Format 1.5 (7.11): the flatbuffer head is a ZLIB_DICT part.
    assert info["version"] == "1.5" and info["segment_count"] == 1
    assert "ZLIB_DICT" in packed.report["totals"]["skeleton_segments"]["encodings"]
    assert (
        len(info["segments"])
        == len(packed.report["buffers"]) + (packed.report["totals"]["skeleton_segments"]["count"])
    )
    p, u = packed.report["totals"], unpacked.report["totals"]
    assert p["skeleton_bytes"] == len(skeleton) <= u["skeleton_bytes"]
    assert p["skeleton_bytes"] + p["skeleton_segments"]["raw_bytes"] == (
        u["skeleton_bytes"] + u["skeleton_segments"]["raw_bytes"]
    )
    rows = {r["name"]: r for r in unpacked.report["buffers"]}
    assert [r["name"] for r in packed.report["buffers"]] == list(rows)
    for row in packed.report["buffers"]:
        assert row["keras_name"] == rows[row["name"]]["keras_name"]
        assert row["payload_bytes"] <= rows[row["name"]]["payload_bytes"]  # compact streams
    assert p["payload_bytes"] < u["payload_bytes"]
    assert "(skeleton)" in report_lib.format_report(packed.report)


def test_skeleton_dict_is_the_default_and_false_writes_the_1_4_file(mlp, mlp_bundle, tmp_path):
    # Format 1.5 (docs/bundle-format.md 7.11): the same restored file, a smaller bundle.
    _, with_dict = mlp_bundle
    plain = converters.convert(mlp, str(tmp_path), verbose=0, picture=False, skeleton_dict=False)
    assert converters.restore(str(tmp_path)) == converters.restore(with_dict.directory)
    _, sidecar = files.load_bundle(str(tmp_path))
    info = decoder.inspect(sidecar)
    assert info["version"] == "1.4"
    assert "ZLIB_DICT" not in [s["encoding"] for s in info["segments"]]
    assert with_dict.bundle_bytes < plain.bundle_bytes
    assert plain.report["totals"]["payload_bytes"] == with_dict.report["totals"]["payload_bytes"]
    with pytest.raises(TypeError, match="skeleton_dict"):
        converters.convert(mlp, str(tmp_path / "bad"), verbose=0, skeleton_dict="no")


def test_dead_units_are_masked_and_masked_false_writes_the_1_5_file(tmp_path):
    # Format 1.6 (docs/bundle-format.md 7.12): a pruned MLP whose hidden layer lost 24 of
    # its 64 units and whose input lost 300 of 784 pixels: ip1's rows of the dead units and
    # columns of the dead pixels, ip2's columns of the dead units, hold only zeros.
    rng = np.random.default_rng(0)
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(64, activation="relu", name="ip1"),
            keras.layers.Dense(10, name="ip2"),
        ]
    )
    levels = np.linspace(-0.5, 0.5, 8).astype(np.float32)
    k1 = levels[rng.integers(0, 8, (784, 64))] * (rng.random((784, 64)) < 0.1)
    dead_units, dead_pixels = rng.choice(64, 24, False), rng.choice(784, 300, False)
    k1[:, dead_units] = 0
    k1[dead_pixels, :] = 0
    k2 = levels[rng.integers(0, 8, (64, 10))]
    k2[dead_units, :] = 0
    model.get_layer("ip1").set_weights([k1, np.zeros(64, np.float32)])
    model.get_layer("ip2").set_weights([k2, rng.standard_normal(10).astype(np.float32) * 0.1])
    masked = converters.convert(model, str(tmp_path / "new"), verbose=0, picture=False)
    plain = converters.convert(model, str(tmp_path / "old"), verbose=0, picture=False, masked=False)
    assert masked.report["max_abs_diff"] <= 1e-4  # LiteRT runs the restored file as Keras
    assert converters.restore(str(tmp_path / "new")) == converters.restore(str(tmp_path / "old"))
    kernels = {
        r["keras_name"].split("/")[-2]: r["encoding"]
        for r in masked.report["buffers"]
        if r["keras_name"].endswith("/kernel")
    }
    assert kernels["ip1"] == "MASKED", kernels
    row = next(r for r in masked.report["buffers"] if r["encoding"] == "MASKED")
    assert report_lib.coded_encoding(row) == row["inner_encoding"] != ""
    assert row["codebook_entries"] > 0  # the figures are the kept submatrix's
    assert " m-" in report_lib.format_report(masked.report)
    info = decoder.inspect(files.load_bundle(str(tmp_path / "new"))[1])
    assert info["version"] == "1.6"
    assert f"MASKED({row['inner_encoding']})" in report_lib.format_inspect(info)
    assert decoder.inspect(files.load_bundle(str(tmp_path / "old"))[1])["version"] == "1.5"
    assert masked.bundle_bytes < plain.bundle_bytes
    with pytest.raises(TypeError, match="masked"):
        converters.convert(model, str(tmp_path / "bad"), verbose=0, masked="no")


def test_strip_names_shrinks_the_bundle_and_false_keeps_the_converters_bytes(
    mlp, mlp_bundle, tmp_path
):
    _, stripped = mlp_bundle  # strip_names=True is the default
    named = converters.convert(mlp, str(tmp_path), verbose=0, picture=False, strip_names=False)
    expected, _ = lay_out(export.to_tflite(mlp), drop_informational=True)
    assert converters.restore(str(tmp_path)) == expected
    assert named.bundle_bytes > stripped.bundle_bytes
    # Without either strip the restored file is the converter's, laid out.
    whole = converters.convert(
        mlp,
        str(tmp_path / "whole"),
        verbose=0,
        picture=False,
        strip_names=False,
        strip_metadata=False,
    )
    assert converters.restore(whole.directory) == lay_out(export.to_tflite(mlp))[0]
    assert whole.bundle_bytes > named.bundle_bytes
    with pytest.raises(TypeError, match="strip_metadata"):
        converters.convert(mlp, str(tmp_path / "bad"), verbose=0, strip_metadata="no")
    # The report names each buffer's tensor as converted, with or without stripping.
    assert [r["tflite_name"] for r in stripped.report["buffers"]] == [
        r["tflite_name"] for r in named.report["buffers"]
    ]
