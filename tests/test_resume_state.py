"""A resumed fit keeps the compression state: pruned weights stay zero, clusters stay clusters.

`MagnitudePruning` re-derives its masks from the zeros at the start of every fit
("once pruned, a weight stays pruned, also across later fit calls and after
saving and loading"); `WeightClustering` resumes a clustered model with the same
assignments and reinstalls its constraint. Here the learning rate is not zero
and no pruning event falls in the resumed fit, so the weights really move and
only the reinstalled constraints can hold the zeros and the clusters.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dc
from keras_dc import schedules

SPARSITY = 0.8
BITS = 3


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 20)).astype("float32")
    y = rng.integers(0, 4, size=256)
    return x, y


def _mlp():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(4),
        ]
    )
    model.compile(
        keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


def _kernels(model):
    return [np.array(v.numpy(), copy=True) for v in keras_dc.compressible_variables(model)]


def _resume(model, how, tmp_path):
    """The same model object, or a fresh one loaded from a .keras checkpoint (optimizer state included)."""
    if how == "in-memory":
        return model
    path = str(tmp_path / "checkpoint.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert int(restored.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy())
    return restored


def _pruned(x, y):
    model = _mlp()
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=1,
        verbose=0,
        callbacks=[
            keras_dc.MagnitudePruning(SPARSITY, schedule=schedules.OneShot(at=0), verbose=0)
        ],
    )
    for w in _kernels(model):
        assert np.mean(w == 0) == pytest.approx(SPARSITY, abs=0.01)
    return model


def _gradients(model, x, y):
    variables = keras_dc.compressible_variables(model)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=True))
    return [np.asarray(g) for g in tape.gradient(loss, [v.value for v in variables])]


@pytest.mark.parametrize("how", ["in-memory", "checkpoint"])
def test_pruned_weights_stay_zero_after_resume(how, tmp_path):
    x, y = _data()
    model = _resume(_pruned(x, y), how, tmp_path)
    before = _kernels(model)
    zeros = [w == 0 for w in before]
    # Left alone, the pruned weights would regrow: their gradients are not zero.
    for z, g in zip(zeros, _gradients(model, x, y), strict=True):
        assert np.count_nonzero(g[z]) > 0.5 * np.count_nonzero(z)
    # The schedule's only event lies in the past: this fit prunes nothing new, so
    # only the mask rebuilt from the zeros holds them.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*lies before the optimizer's current step")
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=2,
            verbose=0,
            callbacks=[
                keras_dc.MagnitudePruning(SPARSITY, schedule=schedules.OneShot(at=0), verbose=0)
            ],
        )
    after = _kernels(model)
    for z, b, a in zip(zeros, before, after, strict=True):
        assert np.all(a[z] == 0), f"{np.count_nonzero(a[z])} pruned weights regrew"
        assert np.count_nonzero(a[~z] != b[~z]) > 0.5 * np.count_nonzero(
            ~z
        )  # the survivors trained
        assert np.count_nonzero(a[~z]) == np.count_nonzero(~z)


@pytest.mark.parametrize("how", ["in-memory", "checkpoint"])
def test_clusters_hold_after_resume(how, tmp_path):
    x, y = _data()
    model = _pruned(x, y)
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=1,
        verbose=0,
        callbacks=[keras_dc.WeightClustering(bits=BITS, verbose=0)],
    )
    model = _resume(model, how, tmp_path)
    before = _kernels(model)
    for w in before:
        assert 2 <= np.unique(w[w != 0]).size <= 2**BITS
    clustering = keras_dc.WeightClustering(bits=BITS, verbose=0)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[clustering])
    assert len(clustering.selected) == len(before)
    for b, a in zip(before, _kernels(model), strict=True):
        # Same assignments: the weights that shared a value still share one ...
        values, groups = np.unique(b, return_inverse=True)
        groups = groups.reshape(b.shape)
        for k, value in enumerate(values):
            members = a[groups == k]
            if value == 0:
                assert np.all(members == 0)  # ... the zeros stayed zero ...
            else:
                split = np.unique(members).size
                assert split == 1, f"the weights at {value:g} split into {split} values"
        assert np.unique(a[a != 0]).size <= 2**BITS
        # ... and the centroids really trained.
        assert not np.array_equal(a, b)
