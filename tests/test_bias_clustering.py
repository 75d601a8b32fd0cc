"""WeightClustering(bias_bits=...): the biases of clustered layers share retrained values.

With ``bias_bits`` every clustered layer's bias is clustered too (all its values,
zero not special) and its centroids train like the kernel's; without it the biases
are left alone and the run is the paper's, bit for bit. The converter then codes
the biases in a clustered encoding, so the bundle is smaller.
"""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import converters
import keras_dc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BITS, BIAS_BITS = 3, 3


def _data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20)).astype("float32")
    y = rng.integers(0, 4, size=n)
    return x, y


def _trained_weights():
    """Weights of an MLP after one plain epoch, so its biases are no longer zero."""
    model = _mlp()
    x, y = _data()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    return model.get_weights()


def _mlp(weights=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(64, activation="relu", name="hidden1"),
            keras.layers.Dense(32, activation="relu", name="hidden2"),
            keras.layers.Dense(4, name="logits"),  # 32x4 kernel < min_size: not clustered
        ],
        name="mlp",  # the same variable paths in every copy
    )
    model.compile(
        keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    if weights is not None:
        model.set_weights(weights)
    return model


@pytest.fixture(scope="module")
def start():
    return _trained_weights()


def _fit(weights, **kwargs):
    """A copy of the MLP at `weights`, clustered for two epochs; returns (model, callback, logs)."""
    model = _mlp(weights)
    x, y = _data()
    clustering = keras_dc.WeightClustering(bits=BITS, verbose=0, **kwargs)
    history = model.fit(
        x, y, batch_size=32, epochs=2, verbose=0, shuffle=False, callbacks=[clustering]
    )
    return model, clustering, history.history


def _distinct(variable):
    return np.unique(np.asarray(variable.numpy())).size


def test_biases_hold_few_values_after_every_step_and_their_centroids_train(start):
    model = _mlp(start)
    x, y = _data()
    hidden = [model.get_layer("hidden1"), model.get_layer("hidden2")]
    clustering = keras_dc.WeightClustering(bits=BITS, bias_bits=BIAS_BITS, verbose=0)

    class Watch(keras.callbacks.Callback):
        """Records the centroids once clustering started, and every step's bias values."""

        first, most = None, 0

        def on_train_begin(self, logs=None):  # after WeightClustering's (listed before)
            Watch.first = clustering.centroids()

        def on_train_batch_end(self, batch, logs=None):
            Watch.most = max([Watch.most] + [_distinct(layer.bias) for layer in hidden])

    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[clustering, Watch()])
    assert all(np.unique(s).size > 2**BIAS_BITS for s in start[1:4:2])  # 64 and 32 values
    assert 1 < Watch.most <= 2**BIAS_BITS
    last = clustering.centroids()
    for layer in hidden:
        path = keras_dc.variable_path(layer.bias)
        bias = np.asarray(layer.bias.numpy())
        assert 1 < np.unique(bias).size <= 2**BIAS_BITS
        # Every value is a current centroid, and the centroids moved: retrained, not frozen.
        assert np.all(np.isin(bias, last[path][1:].astype(np.float32)))
        assert np.max(np.abs(last[path] - Watch.first[path])) > 1e-4
    # The bias of the unclustered layer is not touched by the constraint.
    assert np.unique(model.get_layer("logits").bias.numpy()).size == 4
    assert [item["path"] for item in clustering.selected] == [
        keras_dc.variable_path(v) for layer in hidden for v in (layer.kernel, layer.bias)
    ]
    assert all(v.constraint is None for v in model.trainable_weights)


def test_biases_are_visible_in_the_table_the_logs_and_the_summary(start, capsys):
    model, clustering, logs = _fit(start, bias_bits=BIAS_BITS)
    bias = model.get_layer("hidden1").bias
    path = keras_dc.variable_path(bias)
    (row,) = [item for item in clustering.selected if item["path"] == path]
    assert row["bits"] == BIAS_BITS and row["clusters"] == 2**BIAS_BITS and row["bias"]
    # The log counts every distinct value of a bias (zero included).
    assert logs[f"clusters/{path}"][-1] == _distinct(bias)

    rows = {row["path"]: row for row in keras_dc.layer_report(model)}
    assert rows[keras_dc.variable_path(model.get_layer("hidden1").kernel)]["bias_distinct"] == (
        _distinct(bias)
    )
    header, _, first = keras_dc.format_layer_report(list(rows.values())).splitlines()[:3]
    assert header.split()[-1] == "bias" and first.split()[-1] == str(_distinct(bias))

    clustering.verbose = 1
    model.fit(*_data(), batch_size=32, epochs=1, verbose=0, callbacks=[clustering])
    out = capsys.readouterr().out
    assert f"biases in {BIAS_BITS} bits" in out
    assert [line for line in out.splitlines() if line.strip().startswith(path)]


def test_a_bias_of_zeros_is_clustered_as_a_value_not_kept_apart():
    """Zero is not special in a bias: its values are all clustered, and every cluster trains."""
    weights = _trained_weights()
    weights[1][:32] = 0.0  # half of hidden1's bias exactly zero
    model, clustering, _ = _fit(weights, bias_bits=1)
    bias = np.asarray(model.get_layer("hidden1").bias.numpy())
    assert np.unique(bias).size <= 2
    assert np.count_nonzero(bias[:32]) == 32  # the zeros' cluster trained away from zero


def test_without_bias_bits_the_run_is_bit_identical_to_the_paper(start):
    default, default_cb, default_logs = _fit(start)
    explicit, explicit_cb, explicit_logs = _fit(start, bias_bits=None)
    for a, b in zip(default.get_weights(), explicit.get_weights()):
        assert np.array_equal(a, b)
    assert default_cb.selected == explicit_cb.selected
    assert default_logs == explicit_logs
    assert not any(item["path"].endswith("bias") for item in explicit_cb.selected)
    assert _distinct(explicit.get_layer("hidden1").bias) > 2**BIAS_BITS
    # And the option does change the run (the comparison above can fail).
    clustered, _, _ = _fit(start, bias_bits=BIAS_BITS)
    assert _distinct(clustered.get_layer("hidden1").bias) <= 2**BIAS_BITS


@pytest.mark.parametrize("value", [0, 9, -1])
def test_bias_bits_out_of_range_is_refused(value):
    with pytest.raises(ValueError, match="bias_bits must be from 1 to 8.*None leaves biases"):
        keras_dc.WeightClustering(bias_bits=value)


@pytest.mark.parametrize("value", [2.5, "3", True])
def test_bias_bits_of_the_wrong_type_is_refused(value):
    with pytest.raises(TypeError, match="bias_bits must be an integer from 1 to 8"):
        keras_dc.WeightClustering(bias_bits=value)


def _bias_rows(result):
    return {
        row["keras_name"]: row
        for row in result.report["buffers"]
        if row["keras_name"].endswith("bias")
    }


def test_clustered_biases_make_a_smaller_bundle(start, tmp_path):
    plain, _, _ = _fit(start)
    shared, _, _ = _fit(start, bias_bits=BIAS_BITS)
    results = [
        converters.convert(model, str(tmp_path / name), verbose=0, picture=False)
        for name, model in (("plain", plain), ("shared", shared))
    ]
    plain_rows, shared_rows = (_bias_rows(r) for r in results)
    clustered = [name for name in shared_rows if "hidden" in name]
    assert len(clustered) == 2
    for name in clustered:
        assert not plain_rows[name]["encoding"].startswith("CLUSTERED")
        assert shared_rows[name]["encoding"].startswith("CLUSTERED")
        assert shared_rows[name]["payload_bytes"] < plain_rows[name]["payload_bytes"]
    assert results[1].bundle_bytes < results[0].bundle_bytes


def _run_subprocess(code, env_extra=None, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", **(env_extra or {}))
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


_SCRIPT = """
    import numpy as np, tensorflow as tf
    {setup}
    import keras_dc
    {keras}
    with strategy.scope():
        model = keras.Sequential([{input_layer}, keras.layers.Dense(64, activation="relu"),
                                  keras.layers.Dense(32, activation="relu"), keras.layers.Dense(4)])
        model.compile(keras.optimizers.Adam(1e-2),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 20)).astype("float32"); y = rng.integers(0, 4, 256)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    clustering = keras_dc.WeightClustering(bits=3, bias_bits=2, verbose=0)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[clustering])
    biases = [layer.bias for layer in model.layers[:2]]
    assert [row["path"] for row in clustering.selected if row.get("bias")] == [
        keras_dc.variable_path(b) for b in biases]
    for bias in biases:
        copies = [np.asarray(t) for t in getattr(bias, "values", [bias.numpy()])]
        assert all(np.array_equal(c, copies[0]) for c in copies)  # replicas agree
        assert 1 < np.unique(copies[0]).size <= 4, copies[0]
    assert all(v.constraint is None for v in model.trainable_weights)
    print("BIAS-OK")
"""


def test_tf_keras_legacy_models():
    out = _run_subprocess(
        _SCRIPT.format(
            setup="",
            keras="keras = tf.keras; strategy = tf.distribute.get_strategy()\n"
            '    assert "tf_keras" in keras.__name__ or keras.__version__.startswith("2.")',
            input_layer="keras.layers.InputLayer((20,))",
        ),
        env_extra={"TF_USE_LEGACY_KERAS": "1"},
    )
    assert "BIAS-OK" in out


def test_mirrored_strategy_on_two_cpu_devices():
    out = _run_subprocess(
        _SCRIPT.format(
            setup='cpu = tf.config.list_physical_devices("CPU")[0]\n'
            "    tf.config.set_logical_device_configuration(\n"
            "        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)",
            keras="import keras\n"
            '    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])',
            input_layer="keras.Input((20,))",
        )
    )
    assert "BIAS-OK" in out
