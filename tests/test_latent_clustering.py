"""WeightClustering(centroid_update="latent"): members keep float weights and change cluster.

The documented step: the optimizer's update goes to each member's own float weight
(which starts at the weight before clustering), every member then joins its nearest
centroid, every centroid with members becomes their mean, and the variable holds the
centroids. The expected result of one SGD step is computed here independently (NumPy,
with the batch's gradient from a GradientTape at the clustered weights).
"""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dc
from keras_dc.kmeans import cluster_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BITS = 2
LEARNING_RATE = 0.5  # large: one step moves members across the midpoints between centroids


def _model_and_batch(sparse):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(4)]
    )
    model.compile(
        keras.optimizers.SGD(LEARNING_RATE),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 20)).astype("float32")
    y = rng.integers(0, 4, size=32)
    kernel = model.layers[0].kernel
    weights = rng.normal(scale=0.2, size=tuple(kernel.shape)).astype("float32")
    if sparse:  # 80% pruned: the constraint takes its sparse path
        weights[rng.random(weights.shape) < 0.8] = 0.0
    kernel.assign(weights)
    return model, x, y, weights


def _expected_step(model, x, y, weights):
    """Centroids and kernel after one SGD step of the documented latent update."""
    centroids, indices = cluster_weights(weights, BITS, "linear", 0)
    clustered = centroids[indices].astype("float32")
    kernel = model.layers[0].kernel
    kernel.assign(clustered)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=True))
    grad = np.asarray(tape.gradient(loss, kernel.value), dtype=np.float64)
    kernel.assign(weights)  # as the callback will find it
    members = indices != 0
    latent = weights.astype(np.float64) - LEARNING_RATE * grad
    old = np.sort(centroids[1:].astype(np.float64))
    # nearest centroid (ties to the lower one, as a search over the midpoints from the left)
    ids = np.searchsorted((old[1:] + old[:-1]) / 2, latent[members], side="left")
    new = old.copy()
    for k in range(old.size):
        if np.any(ids == k):
            new[k] = latent[members][ids == k].mean()
    expected = np.zeros_like(latent)
    expected[members] = new[ids]
    moved_members = int(np.sum(ids != np.searchsorted(old, centroids[indices[members]])))
    return np.concatenate([[0.0], new]), expected, moved_members


@pytest.mark.parametrize("sparse", [False, True], ids=["dense-layer", "sparse-layer"])
def test_one_latent_step_matches_the_documented_update(sparse):
    model, x, y, weights = _model_and_batch(sparse)
    want_centroids, want_kernel, moved_members = _expected_step(model, x, y, weights)
    assert moved_members > 0  # the step really re-assigns members: the test can tell

    clustering = keras_dc.WeightClustering(
        bits=BITS,
        centroid_update="latent",
        overrides={model.layers[1]: None},
        min_size=1,
        verbose=0,
    )
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[clustering])
    assert int(model.optimizer.iterations.numpy()) == 1
    (centroids,) = clustering.centroids().values()
    np.testing.assert_allclose(centroids, want_centroids, rtol=0, atol=1e-5)
    kernel = np.asarray(model.layers[0].kernel.numpy())
    np.testing.assert_allclose(kernel, want_kernel, rtol=0, atol=1e-5)
    assert np.all(kernel[weights == 0] == 0)  # pruned weights stay zero


def test_fixed_assignments_differ_from_latent():
    """The paper's update keeps every member in its first cluster; "latent" does not."""
    results = {}
    for update in ("auto", "latent"):
        model, x, y, weights = _model_and_batch(sparse=False)
        first = cluster_weights(weights, BITS, "linear", 0)[1]
        clustering = keras_dc.WeightClustering(
            bits=BITS, centroid_update=update, overrides={model.layers[1]: None}, verbose=0
        )
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[clustering])
        kernel = np.asarray(model.layers[0].kernel.numpy())
        values = np.unique(kernel[kernel != 0])
        assert values.size <= 2**BITS
        now = np.searchsorted(values, kernel)  # cluster ids by rank, zero excluded
        ranks = np.zeros_like(first)
        ranks[kernel != 0] = now[kernel != 0]
        same = [np.unique(ranks[first == k]).size == 1 for k in range(1, 2**BITS + 1)]
        results[update] = all(same)
    assert results == {"auto": True, "latent": False}


def test_latent_biases_and_training_under_a_two_device_mirrored_strategy():
    code = """
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras, keras_dc
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(64, activation="relu"),
                                      keras.layers.Dense(4)])
            model.compile(keras.optimizers.Adam(1e-2),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rng = np.random.default_rng(0)
        x = rng.normal(size=(256, 20)).astype("float32"); y = rng.integers(0, 4, 256)
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        pruning = keras_dc.MagnitudePruning(0.7, min_size=1, verbose=0)
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[pruning])
        mask = model.layers[0].kernel.numpy() != 0
        clustering = keras_dc.WeightClustering(bits=3, bias_bits=2, centroid_update="latent",
                                               min_size=1, verbose=0)
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[clustering])
        for layer in model.layers:
            for var, most in ((layer.kernel, 8), (layer.bias, 4)):
                copies = [np.asarray(t) for t in getattr(var, "values", [var.numpy()])]
                assert all(np.array_equal(c, copies[0]) for c in copies)  # replicas agree
                w = copies[0]
                n = np.unique(w[w != 0] if var is layer.kernel else w).size
                assert 1 < n <= most, (var.path, n)
        k = model.layers[0].kernel.numpy()
        assert np.array_equal(k != 0, mask)  # pruned weights stay zero, members stay non-zero
        print("LATENT-OK")
    """
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "LATENT-OK" in proc.stdout


def test_unknown_centroid_update_is_a_clear_error():
    with pytest.raises(ValueError, match="centroid_update"):
        keras_dc.WeightClustering(centroid_update="lattice")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="centroid_update"):
        keras_dc.compress_to_budget(
            model,
            (np.zeros((8, 4)), np.zeros(8)),
            centroid_update="lattice",
        )
