"""keras_dc.variational_sparsify and compress_to_budget(variational_epochs=...): the
variational twin computes what the layers it replaces compute, training finds zeros the
model then holds, the search keeps a threshold within the budget, bad input is refused."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from script_testing import run_script  # noqa: E402

import keras_dc  # noqa: E402
from keras_dc import variational  # noqa: E402


def blobs(n=1200, d=20, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, d)) * 2
    y = rng.integers(0, classes, n)
    x = (centers[y] + rng.normal(size=(n, d))).astype("float32")
    return x, y


def trained_mlp(x, y, seed=0, epochs=5):
    keras_dc.make_reproducible(seed)
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(64, activation="relu", name="hidden"),
            keras.layers.Dense(int(y.max()) + 1, name="out"),
        ],
        name="mlp",
    )
    model.compile(
        keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    return model


def error(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) != y))


@pytest.mark.parametrize(
    "layer, shape",
    [
        (keras.layers.Dense(7, activation="tanh"), (3, 5)),
        (keras.layers.Dense(6), (2, 4, 5)),  # a Dense on the last axis of a 3-D input
        (keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"), (2, 9, 9, 3)),
        (keras.layers.Conv2D(4, 3, dilation_rate=2, use_bias=False), (2, 9, 9, 3)),
        (keras.layers.Conv1D(5, 3, padding="valid"), (2, 11, 2)),
    ],
)
def test_the_variational_layer_computes_what_the_layer_it_replaces_computes(layer, shape):
    """At inference (every log alpha far below 3) the twin's layer is the original layer."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype("float32")
    layer.build(shape)
    weights = layer.get_weights()
    # Every weight at least 0.05 in size: log alpha = -10 - log(w^2) < 3.
    weights[0] = (
        np.sign(rng.normal(size=weights[0].shape)) * rng.uniform(0.05, 0.5, weights[0].shape)
    ).astype("float32")
    layer.set_weights(weights)
    kind, rank = variational._supported(layer)
    cls = variational._variational_layer_class(keras)
    twin = cls(
        kind,
        rank,
        layer.get_config(),
        weights[0],
        weights[1] if len(weights) > 1 else None,
        1.0,
        tf.Variable(1.0),
    )
    np.testing.assert_allclose(twin(x, training=False), layer(x), rtol=1e-5, atol=1e-5)
    # In training there is noise, small at log sigma^2 = -10 (sigma 0.0067 per weight).
    diff = np.asarray(twin(x, training=True)) - np.asarray(layer(x))
    assert 0 < np.std(diff) < 0.1


def test_unsupported_layers_stay_plain():
    assert variational._supported(keras.layers.Conv2D(4, 3, groups=1)) == ("conv", 2)
    assert variational._supported(keras.layers.Conv2D(4, 3, groups=2)) is None
    assert variational._supported(keras.layers.Conv1D(4, 3, padding="causal")) is None
    assert variational._supported(keras.layers.DepthwiseConv2D(3)) is None


def test_training_finds_zeros_and_the_model_holds_them():
    x, y = blobs()
    model = trained_mlp(x[:1000], y[:1000])
    dense_error = error(model, x[1000:], y[1000:])
    bias_before = model.get_layer("hidden").bias.numpy().copy()
    result = keras_dc.variational_sparsify(
        model, (x[:1000], y[:1000]), epochs=15, learning_rate=1e-2, min_size=64, verbose=0
    )
    kernel = model.get_layer("hidden").kernel.numpy()
    key = keras_dc.variable_path(model.get_layer("hidden").kernel)
    assert set(result.log_alpha) == {key, keras_dc.variable_path(model.get_layer("out").kernel)}
    # Zeros exactly where log alpha >= 3, theta elsewhere.
    mask = result.log_alpha[key] < 3.0
    np.testing.assert_array_equal(kernel == 0, ~mask | (result.theta[key] == 0))
    np.testing.assert_array_equal(kernel[mask], result.theta[key][mask])
    # Most of this easy problem's weights are not needed; the error stays close.
    assert result.density() < 0.5
    assert np.mean(kernel == 0) > 0.5
    assert error(model, x[1000:], y[1000:]) <= dense_error + 0.03
    # Biases were trained too, and copied back.
    assert not np.array_equal(model.get_layer("hidden").bias.numpy(), bias_before)
    # Another threshold: fewer zeros at a higher one.
    result.apply(6.0)
    assert np.mean(model.get_layer("hidden").kernel.numpy() == 0) <= np.mean(kernel == 0)
    assert result.density(6.0) >= result.density(3.0) >= result.density(0.0)


def test_bad_input_is_refused_with_a_clear_message():
    x, y = blobs(200)
    model = trained_mlp(x, y, epochs=1)
    with pytest.raises(ValueError, match="epochs must be > 0"):
        keras_dc.variational_sparsify(model, (x, y), epochs=0)
    with pytest.raises(ValueError, match="no Dense or Conv kernel"):
        keras_dc.variational_sparsify(model, (x, y), epochs=1, min_size=10**6)
    with pytest.raises(ValueError, match="train must be"):
        keras_dc.variational_sparsify(model, (x,), epochs=1)

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(4)

        def call(self, x):
            return self.d(x)

    sub = Sub()
    sub(x[:2])
    sub.compile("adam", "mse")
    with pytest.raises(ValueError, match="subclassed"):
        keras_dc.variational_sparsify(sub, (x, y), epochs=1)
    with pytest.raises(ValueError, match="compress_to_budget.*subclassed"):
        keras_dc.compress_to_budget(sub, (x, y), (x, y), variational_epochs=1, size_fn=None)
    bare = keras.Sequential([keras.Input((20,)), keras.layers.Dense(4)])
    with pytest.raises(ValueError, match="not compiled"):
        keras_dc.variational_sparsify(bare, (x, y), epochs=1)


def test_search_keeps_the_deepest_variational_threshold_within_the_budget(tmp_path):
    x, y = blobs(1400)
    model = trained_mlp(x[:1000], y[:1000])
    data = ((x[:1000], y[:1000]), (x[1000:], y[1000:]))
    search = dict(
        max_increase=0.02,
        size_fn=None,
        variational_epochs=10,
        learning_rate=1e-2,
        prune_epochs=1,
        cluster_epochs=1,
        bit_moves=False,
        min_size=64,
        directory=str(tmp_path),
        verbose=0,
    )
    result = keras_dc.compress_to_budget(model, *data, **search)
    steps = result.steps
    looks = [s for s in steps if s["move"].startswith("variational: log alpha")]
    assert [float(s["move"].split("< ")[1].split(",")[0]) for s in looks] == [0, 1, 2, 3, 4, 5]
    assert not any(s["accepted"] for s in looks)  # candidates only
    kept = [float(s["move"].split("keep ")[1].split("%")[0]) for s in looks]
    assert kept == sorted(kept)  # deeper first
    retrains = [s for s in steps if s["move"].startswith("variational: keep")]
    candidates = [k for s, k in zip(looks, kept) if s["metric"] <= result.limit + 1e-12]
    assert (
        retrains
        and [float(s["move"].split("keep ")[1].split("%")[0]) for s in retrains]
        == candidates[: len(retrains)]
    )
    assert retrains[-1]["accepted"]  # this easy problem keeps one
    dense = result.dense_metric
    assert retrains[-1]["metric"] <= dense + 0.75 * (result.limit - dense) + 1e-12
    assert kept[0] < 50.0
    assert result.final_metric <= result.limit + 1e-9
    assert error(model, x[1000:], y[1000:]) == pytest.approx(result.final_metric)
    # The moves went on from the variational state, and a finished search resumes as done.
    assert steps.index(retrains[-1]) < len(steps) - 1
    again = keras_dc.compress_to_budget(trained_mlp(x[:1000], y[:1000], seed=1), *data, **search)
    assert again.steps == result.steps


def test_a_variational_search_state_is_not_resumed_by_a_search_without_it(tmp_path):
    x, y = blobs(600)
    model = trained_mlp(x[:500], y[:500], epochs=2)
    args = dict(
        max_increase=0.05,
        size_fn=None,
        prune_epochs=0.5,
        cluster_epochs=0.5,
        bit_moves=False,
        min_size=64,
        directory=str(tmp_path),
        verbose=0,
    )
    keras_dc.compress_to_budget(
        model, (x[:500], y[:500]), (x[500:], y[500:]), variational_epochs=1, **args
    )
    with pytest.raises(ValueError, match="other settings"):
        keras_dc.compress_to_budget(model, (x[:500], y[:500]), (x[500:], y[500:]), **args)


_SCRIPT = """
import numpy as np, tensorflow as tf
{setup}
import keras_dc
{keras}
with strategy.scope():
    model = keras.Sequential([{input_layer}, keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(4)])
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
rng = np.random.default_rng(0)
centers = rng.normal(size=(4, 20)) * 2
y = rng.integers(0, 4, 1200); x = (centers[y] + rng.normal(size=(1200, 20))).astype("float32")
model.fit(x, y, batch_size=32, epochs=3, verbose=0)
result = keras_dc.compress_to_budget(
    model, (x[:1000], y[:1000]), (x[1000:], y[1000:]), max_increase=0.02, size_fn=None,
    prune_epochs=1, cluster_epochs=1, min_size=64, verbose=0, learning_rate=1e-2,
    variational_epochs=8, bit_moves=False)
kept = [s for s in result.steps if s["move"].startswith("variational: keep") and s["accepted"]]
assert kept, [s["move"] for s in result.steps]
kernel = model.layers[0].kernel
copies = [np.asarray(t) for t in getattr(kernel, "values", [kernel.numpy()])]
assert all(np.array_equal(c, copies[0]) for c in copies)  # replicas agree
assert result.final_metric <= result.limit + 1e-9
assert np.mean(copies[0] == 0) == result.layers[0]["sparsity"] > 0.5
print("VARIATIONAL-OK", kept[0]["move"], result.layers[0]["sparsity"])
"""


def test_variational_search_under_a_mirrored_strategy_on_two_cpu_devices():
    out = run_script(
        _SCRIPT.format(
            setup='cpu = tf.config.list_physical_devices("CPU")[0]\n'
            "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)",
            keras='import keras\nstrategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])',
            input_layer="keras.Input((20,))",
        )
    )
    assert "VARIATIONAL-OK" in out


def test_variational_search_on_a_tf_keras_model():
    out = run_script(
        _SCRIPT.format(
            setup="",
            keras="keras = tf.keras; strategy = tf.distribute.get_strategy()\n"
            'assert "tf_keras" in keras.__name__',
            input_layer="keras.layers.InputLayer((20,))",
        ),
        TF_USE_LEGACY_KERAS="1",
    )
    assert "VARIATIONAL-OK" in out


def test_a_functional_cnn_with_batchnorm_is_sparsified_and_keeps_its_other_layers():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 8, 8, 2)).astype("float32")
    y = (x[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int64")
    keras_dc.make_reproducible(0)
    inputs = keras.Input((8, 8, 2))
    h = keras.layers.Conv2D(16, 3, padding="same", name="conv")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.DepthwiseConv2D(3, name="depthwise")(h)  # stays plain
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(2, name="head")(h)
    model = keras.Model(inputs, outputs)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, verbose=0)
    depthwise = model.get_layer("depthwise").get_weights()[0].copy()
    moving_mean = model.get_layer("bn").moving_mean.numpy().copy()
    result = keras_dc.variational_sparsify(
        model, (x, y), epochs=3, learning_rate=1e-2, min_size=32, verbose=0
    )
    conv = keras_dc.variable_path(model.get_layer("conv").kernel)
    assert (
        conv in result.log_alpha
        and keras_dc.variable_path(model.get_layer("head").kernel) in result.log_alpha
    )
    np.testing.assert_array_equal(
        model.get_layer("conv").kernel.numpy() == 0,
        (result.log_alpha[conv] >= 3.0) | (result.theta[conv] == 0),
    )
    # The depthwise kernel was not variational but trained as a plain weight; BatchNorm's
    # statistics came back from the twin.
    assert not np.array_equal(model.get_layer("depthwise").get_weights()[0], depthwise)
    assert not np.array_equal(model.get_layer("bn").moving_mean.numpy(), moving_mean)
    assert np.isfinite(model.predict(x[:4], verbose=0)).all()


def test_variational_cost_benchmark_smoke(tmp_path):
    import json
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "cost.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.variational_cost", "--smoke", f"--json_out={out}"],
        capture_output=True,
        text=True,
        cwd=root,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    figures = json.loads(out.read_text())
    assert len(figures["seconds"]["plain"]) == len(figures["seconds"]["variational"]) == 1
    assert figures["ratio"] == figures["median"]["variational"] / figures["median"]["plain"] > 0
    assert "ratio" in proc.stdout


def test_a_finite_dataset_is_repeated_for_fractional_and_many_epochs():
    x, y = blobs(600)
    model = trained_mlp(x, y, epochs=1)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(100)  # 6 batches, not repeated
    result = keras_dc.variational_sparsify(model, ds, epochs=2.5, min_size=64, verbose=0)
    assert result.density() <= 1.0
    with pytest.raises(ValueError, match="unknown or infinite"):
        keras_dc.variational_sparsify(model, ds.repeat(), epochs=1, min_size=64)
    result = keras_dc.variational_sparsify(
        model, ds.repeat(), epochs=1, steps_per_epoch=6, min_size=64, verbose=0
    )
    assert set(result.log_alpha) and all(np.isfinite(a).all() for a in result.log_alpha.values())
