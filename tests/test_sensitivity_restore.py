"""`keras_dc.sensitivity_analysis` leaves the model exactly as it found it.

It prunes each variable alone at each sparsity, evaluates, and restores the
weights; the caller's model must come back bit for bit, also when an
evaluation fails half way.
"""

import keras
import numpy as np
import pytest

import keras_dc


def _trained_mlp():
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
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 20)).astype("float32")
    y = rng.integers(0, 4, size=128)
    model.fit(x, y, epochs=1, verbose=0)
    return model, x, y


def _snapshot(model):
    return [np.array(v.numpy(), copy=True) for v in model.weights]


def _assert_same(before, model):
    assert len(before) == len(model.weights)
    for b, v in zip(before, model.weights):
        np.testing.assert_array_equal(np.asarray(v.numpy()), b, err_msg=v.path)


def test_sensitivity_analysis_restores_every_weight():
    model, x, y = _trained_mlp()
    before = _snapshot(model)  # taken BEFORE the call
    result = keras_dc.sensitivity_analysis(
        model, x, y, sparsities=(0.5, 0.9), min_size=1, verbose=0
    )
    # The analysis really pruned: the metric moved for some variable at 90%.
    assert len(result.curves) == 3
    assert any(value != result.baseline for curve in result.curves.values() for _, value in curve)
    _assert_same(before, model)
    # And the model evaluates as before.
    assert model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] == pytest.approx(
        result.baseline
    )


def test_sensitivity_analysis_restores_the_weights_when_evaluation_fails():
    model, x, y = _trained_mlp()
    before = _snapshot(model)
    evaluate, calls = model.evaluate, []

    def failing_evaluate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the baseline, one pruned evaluation, then a failure
            raise RuntimeError("evaluation failed")
        return evaluate(*args, **kwargs)

    model.evaluate = failing_evaluate
    with pytest.raises(RuntimeError, match="evaluation failed"):
        keras_dc.sensitivity_analysis(model, x, y, sparsities=(0.5, 0.9), min_size=1, verbose=0)
    del model.evaluate
    _assert_same(before, model)
