"""WeightClustering's default centroid update: the mean of the members' steps for adaptive optimizers.

`keras_dc.WeightClustering` documents ``centroid_update="auto"``: "sum" (the
paper's Eq. 3) for `keras.optimizers.SGD`, "mean" for every other optimizer,
because Adam, RMSprop, ... normalise each weight's step to about the learning
rate whatever its gradient. The expected centroids after one step are computed
here independently: the batch's gradient from a GradientTape, stepped by a
separate optimizer of the same kind on a copy of the kernel, then averaged per
cluster. (The SGD sum is pinned in test_callbacks.py.)
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dc

BITS = 2
LEARNING_RATE = 1e-2
OPTIMIZERS = {
    "adam": lambda: keras.optimizers.Adam(LEARNING_RATE),
    "rmsprop": lambda: keras.optimizers.RMSprop(LEARNING_RATE),
    "adamw": lambda: keras.optimizers.AdamW(LEARNING_RATE, weight_decay=0.0),
}


def _model_and_batch(make_optimizer, sparse):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(4),
        ]
    )
    model.compile(make_optimizer(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 20)).astype("float32")
    y = rng.integers(0, 4, size=32)
    # A clustered checkpoint (WeightClustering keeps its clusters, no k-means runs):
    # four centroids, members drawn at random, 80% zeros for the sparse layer.
    kernel = model.layers[0].kernel
    centroids = np.array([0.0, -0.2, -0.05, 0.07, 0.21])
    indices = rng.integers(1, centroids.size, size=tuple(kernel.shape)).astype(np.int32)
    if sparse:  # the constraint takes its sparse path
        indices[rng.random(indices.shape) < 0.8] = 0
    kernel.assign(centroids[indices].astype("float32"))
    centroids = centroids.astype("float32").astype(np.float64)
    return model, x, y, centroids, indices


@pytest.mark.parametrize("sparse", [False, True], ids=["dense-layer", "sparse-layer"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_auto_centroid_update_is_the_mean_of_the_members_steps(optimizer, sparse):
    make_optimizer = OPTIMIZERS[optimizer]
    model, x, y, centroids, indices = _model_and_batch(make_optimizer, sparse)
    kernel = model.layers[0].kernel
    # What the optimizer would do to each weight on its own, from a fresh state.
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=True))
    grad = tape.gradient(loss, kernel.value)
    copy = keras.Variable(np.asarray(kernel.numpy()))
    make_optimizer().apply_gradients([(grad, copy)])
    stepped = np.asarray(copy.numpy(), dtype=np.float64)
    expected = centroids.copy()
    for k in range(1, centroids.size):
        expected[k] = stepped[indices == k].mean()
    counts = np.bincount(indices.ravel(), minlength=centroids.size)[1:]
    assert counts.min() > 10  # several members per cluster: sum and mean are far apart

    clustering = keras_dc.WeightClustering(bits=BITS, overrides={model.layers[1]: None}, verbose=0)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[clustering])
    assert int(model.optimizer.iterations.numpy()) == 1
    (moved,) = clustering.centroids().values()
    np.testing.assert_allclose(moved, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(kernel.numpy()), expected[indices], rtol=0, atol=1e-6)
    assert np.all(np.asarray(kernel.numpy())[indices == 0] == 0)  # the zero cluster never moves
    # The step is real: the centroids moved by far more than the tolerance.
    assert np.max(np.abs(expected[1:] - centroids[1:])) > 100 * 1e-6


def test_explicit_sum_is_not_the_default_for_adam():
    """The same step with centroid_update="sum" lands elsewhere: the test above can tell them apart."""
    model, x, y, centroids, indices = _model_and_batch(OPTIMIZERS["adam"], sparse=False)
    kernel = model.layers[0].kernel
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=True))
    grad = tape.gradient(loss, kernel.value)
    copy = keras.Variable(np.asarray(kernel.numpy()))
    OPTIMIZERS["adam"]().apply_gradients([(grad, copy)])
    stepped = np.asarray(copy.numpy(), dtype=np.float64)
    summed = centroids.copy()
    for k in range(1, centroids.size):
        summed[k] += (stepped[indices == k] - centroids[k]).sum()
    clustering = keras_dc.WeightClustering(
        bits=BITS, centroid_update="sum", overrides={model.layers[1]: None}, verbose=0
    )
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[clustering])
    (moved,) = clustering.centroids().values()
    np.testing.assert_allclose(moved, summed, rtol=1e-5, atol=1e-5)
