"""remove_dead_units: zeroes the inputs of units nothing reads, and changes no output."""

import keras
import numpy as np
import pytest

import keras_dc


def _mlp(per_unit=()):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((12,)), keras.layers.Dense(16, activation="relu", name="a")]
    layers += list(per_unit)
    layers += [keras.layers.Dense(8, activation="relu", name="b"), keras.layers.Dense(3, name="c")]
    return keras.Sequential(layers)


def _kill(model, reader, units):
    """Zero `reader`'s kernel rows `units`: those units of the layer before lose every reader."""
    k = np.asarray(model.get_layer(reader).kernel.numpy()).copy()
    k[units] = 0
    model.get_layer(reader).kernel.assign(k)


@pytest.mark.parametrize(
    "per_unit",
    [(), (keras.layers.Dropout(0.5), keras.layers.BatchNormalization())],
    ids=["direct", "through-dropout-and-batchnorm"],
)
def test_dead_inputs_zeroed_outputs_unchanged(per_unit):
    model = _mlp(per_unit)
    x = np.random.default_rng(0).normal(size=(64, 12)).astype("float32")
    _kill(model, "c", [1, 5, 6])  # units 1, 5, 6 of b feed nothing
    _kill(model, "b", [0, 2])  # units 0, 2 of a feed nothing
    before = model.predict(x, verbose=0)
    a = np.asarray(model.get_layer("a").kernel.numpy())
    b = np.asarray(model.get_layer("b").kernel.numpy())
    expected = np.count_nonzero(b[:, [1, 5, 6]]) + np.count_nonzero(a[:, [0, 2]])

    assert keras_dc.remove_dead_units(model) == expected
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)  # bit for bit
    assert not np.any(model.get_layer("b").kernel.numpy()[:, [1, 5, 6]])
    assert not np.any(model.get_layer("a").kernel.numpy()[:, [0, 2]])
    # every other weight is untouched
    keep_b = np.delete(b, [1, 5, 6], axis=1)
    np.testing.assert_array_equal(
        np.delete(model.get_layer("b").kernel.numpy(), [1, 5, 6], 1), keep_b
    )
    assert keras_dc.remove_dead_units(model) == 0  # nothing left to remove


def test_units_left_without_readers_by_a_removal_are_found_too():
    model = _mlp()
    # Unit 3 of a is read only by unit 4 of b; unit 4 of b feeds nothing.
    b = np.asarray(model.get_layer("b").kernel.numpy()).copy()
    b[3] = 0
    b[3, 4] = 0.5
    model.get_layer("b").kernel.assign(b)
    _kill(model, "c", [4])
    keras_dc.remove_dead_units(model)
    assert not np.any(model.get_layer("a").kernel.numpy()[:, 3])


def test_other_layers_break_the_chain_and_functional_models_are_left_alone():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12,))
    h = keras.layers.Dense(16, activation="relu", name="a")(inputs)
    out = keras.layers.Dense(3, name="c")(h)
    functional = keras.Model(inputs, out)
    _kill(functional, "c", [0, 1])
    before = [w.copy() for w in functional.get_weights()]
    assert keras_dc.remove_dead_units(functional) == 0
    for w, v in zip(functional.get_weights(), before):
        np.testing.assert_array_equal(w, v)
    # A reshape between two Dense layers mixes units: not a chain.
    seq = keras.Sequential(
        [
            keras.Input((12,)),
            keras.layers.Dense(16, name="a"),
            keras.layers.Reshape((4, 4)),
            keras.layers.Flatten(),
            keras.layers.Dense(3, name="c"),
        ]
    )
    _kill(seq, "c", [0, 1])
    assert keras_dc.remove_dead_units(seq) == 0
