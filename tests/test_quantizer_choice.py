"""benchmarks.quantizer_choice: reading back a converter int8 file of a hand-compressed model,
and the ai-edge-quantizer side's failure path (that side needs its own venv, not run here)."""

import os
import stat

import numpy as np

from benchmarks import quantizer_choice as qc

# ip1: 12 inputs -> 8 units; ip2: 8 -> 4. Every kernel pruned to exactly these zeros and
# clustered to these shared values (so each output channel holds at most 4 of them).
CENTROIDS = (-0.6, -0.2, 0.3, 0.9)


def compressed_model():
    """A two-layer Dense model with hand-pruned, hand-clustered kernels (seeded)."""
    import keras

    rng = np.random.default_rng(0)
    model = keras.Sequential(
        [
            keras.Input((12,), name="x"),
            keras.layers.Dense(8, activation="relu", name="ip1"),
            keras.layers.Dense(4, name="ip2"),
        ]
    )
    for layer in model.layers:
        shape = layer.kernel.shape
        kernel = rng.choice(CENTROIDS, size=shape).astype(np.float32)
        kernel[rng.random(shape) < 0.6] = 0.0
        kernel[:, 0] = 0.0  # output channel 0 fully pruned
        kernel[0, 1] = 0.0
        layer.kernel.assign(kernel)
        layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape).astype(np.float32))
    return model


def test_read_structure_of_the_converters_int8_file():
    import converters

    model = compressed_model()
    kernels = qc.dense_kernels(model)
    assert {n: k.shape for n, k in kernels.items()} == {"ip1": (8, 12), "ip2": (4, 8)}
    x = np.random.default_rng(1).random((200, 12)).astype(np.float32)
    float_flat = converters.export.to_tflite(model)
    int8 = converters.export.to_tflite(model, int8=True, representative_data=x)

    plain = qc.read_structure(float_flat, kernels)
    assert plain["io"] == "FLOAT32 -> FLOAT32"
    assert plain["float_ops"] == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    assert [w["dtype"] for w in plain["weights"]] == ["FLOAT32", "FLOAT32"]

    found = qc.read_structure(int8, kernels)
    assert found["io"] == "FLOAT32 -> FLOAT32"
    assert found["ops"] == "QUANTIZE, FULLY_CONNECTED x2, DEQUANTIZE"
    assert found["float_ops"] == []
    assert found["activation_ranges"][0][:2] == [0.0, 1.0]  # the input: rand in [0, 1)
    by_layer = {w["layer"]: w for w in found["weights"]}
    assert sorted(by_layer) == ["ip1", "ip2"]
    for name, kernel in kernels.items():
        w = by_layer[name]
        # Expected numbers from the kernel itself, counted here independently.
        per_channel = [len(set(row[row != 0].tolist())) for row in kernel]
        assert w["keras_zeros"] == w["zeros"] == int(np.sum(kernel == 0))
        assert w["zeros_same_positions"]
        assert w["float_distinct"] == max(per_channel) <= len(CENTROIDS)
        assert w["int8_distinct"] == w["float_distinct"] and w["merged"] == 0
        assert w["empty_channels"] == sum(1 for row in kernel if not row.any()) == 1
        assert (w["dtype"], w["scales"], w["axis"]) == ("INT8", kernel.shape[0], 0)
        assert w["zero_points_zero"] and w["max_abs_int8"] == 127
        assert w["scale_vs_max_over_127"] < 1e-6
        assert w["bias_dtype"] == "INT32"


def test_logits_quantizes_int8_inputs_and_dequantizes_outputs():
    import converters

    model = compressed_model()
    x = np.random.default_rng(2).random((300, 12)).astype(np.float32)
    expected = np.asarray(model(x[:70]))
    int8_io = converters.export.to_tflite(model, int8=True, int8_io=True, representative_data=x)
    assert qc.read_structure(int8_io, qc.dense_kernels(model))["io"] == "INT8 -> INT8"
    got = qc.logits(int8_io, x[:70], batch=32)  # 70 = two full batches and a partial one
    assert got.shape == expected.shape and got.dtype == np.float32
    spread = expected.max() - expected.min()
    assert np.abs(got - expected).max() / spread < 0.05
    assert np.abs(qc.logits(converters.export.to_tflite(model), x[:70]) - expected).max() < 1e-5


def test_run_aeq_reports_why_the_worker_failed(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'No module named ai_edge_quantizer' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    images = np.zeros((4, 12), np.float32)
    files, versions, reason = qc.run_aeq(str(fake), str(tmp_path / "w"), b"tfl3", images, (2,))
    assert (files, versions) == ({}, {})
    assert "rc 3" in reason and "No module named ai_edge_quantizer" in reason
    assert (tmp_path / "w" / "job.json").read_text() == '{"samples": [2]}'
    missing = os.path.join(str(tmp_path), "no_python")
    assert qc.run_aeq(missing, str(tmp_path / "v"), b"", images, (2,))[2].endswith(
        "is not an executable file"
    )
