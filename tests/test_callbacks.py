"""Real model.fit tests of MagnitudePruning and WeightClustering (Keras 3, TF backend)."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dc
from keras_dc import schedules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data(n=256, shape=(20,), classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + shape).astype("float32")
    y = rng.integers(0, classes, size=n)
    return x, y


def _mlp(seed=0, optimizer="adam"):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(4),
        ]
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _sparsity(variable):
    w = np.asarray(variable.numpy())
    return float(np.mean(w == 0))


def _distinct_nonzero(variable):
    w = np.asarray(variable.numpy())
    return np.unique(w[w != 0]).size


def test_selection_finds_kernels_not_biases():
    model = _mlp()
    paths = [keras_dc.variable_path(v) for v in keras_dc.compressible_variables(model)]
    # 20x64 and 64x32 kernels; 32x4 = 128 < 256 entries; biases never.
    assert len(paths) == 2 and all(p.endswith("kernel") for p in paths)
    assert len(keras_dc.compressible_variables(model, min_size=1)) == 3


def test_pruning_reaches_target_and_logs_it():
    model = _mlp()
    x, y = _data()
    pruning = keras_dc.MagnitudePruning(
        0.8, schedule=schedules.Gradual(begin=0, end=12, frequency=4), verbose=0
    )
    history = model.fit(x, y, batch_size=32, epochs=3, callbacks=[pruning], verbose=0)
    kernels = keras_dc.compressible_variables(model)
    for v in kernels:
        assert _sparsity(v) == pytest.approx(0.8, abs=1.0 / v.numpy().size)
    # Per-layer and overall sparsity reached History.
    assert history.history["sparsity"][-1] == pytest.approx(0.8, abs=0.01)
    for v in kernels:
        assert f"sparsity/{keras_dc.variable_path(v)}" in history.history
    assert [s["path"] for s in pruning.selected] == [keras_dc.variable_path(v) for v in kernels]


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_pruned_weights_stay_zero_whatever_the_optimizer(optimizer):
    opt = {
        "sgd": keras.optimizers.SGD(0.05),
        "momentum": keras.optimizers.SGD(0.05, momentum=0.9),
        "adam": keras.optimizers.Adam(0.01),
    }[optimizer]
    model = _mlp(optimizer=opt)
    x, y = _data()
    # Prune at step 0, then keep training for many steps with large momentum.
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=3,
        verbose=0,
        callbacks=[keras_dc.MagnitudePruning(0.7, schedule=schedules.OneShot(at=0), verbose=0)],
    )
    zeros = [np.asarray(v.numpy()) == 0 for v in keras_dc.compressible_variables(model)]
    # A second fit: the callback re-derives the masks from the zeros.
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=2,
        verbose=0,
        callbacks=[keras_dc.MagnitudePruning(0.7, schedule=schedules.OneShot(at=0), verbose=0)],
    )
    for z, v in zip(zeros, keras_dc.compressible_variables(model)):
        w = np.asarray(v.numpy())
        assert np.all(w[z] == 0)
        assert np.mean(w == 0) == pytest.approx(0.7, abs=0.01)
    # The model is unchanged afterwards: no constraint left behind.
    assert all(v.constraint is None for v in model.trainable_weights)


def test_global_and_std_targets_and_overrides():
    model = _mlp()
    x, y = _data()
    first, second = keras_dc.compressible_variables(model)
    model.fit(
        x,
        y,
        epochs=1,
        verbose=0,
        callbacks=[
            keras_dc.MagnitudePruning(
                keras_dc.GlobalSparsity(0.9), schedule=schedules.OneShot(), verbose=0
            )
        ],
    )
    total = sum(v.numpy().size for v in (first, second))
    zeros = sum(np.sum(v.numpy() == 0) for v in (first, second))
    assert zeros / total == pytest.approx(0.9, abs=0.01)

    model = _mlp(seed=1)
    w0 = np.asarray(keras_dc.compressible_variables(model)[0].numpy()).copy()
    model.fit(
        x,
        y,
        epochs=1,
        verbose=0,
        callbacks=[
            keras_dc.MagnitudePruning(
                keras_dc.StdThreshold(1.75),
                schedule=schedules.OneShot(),
                verbose=0,
                overrides={model.layers[1]: 0.5},
            )
        ],
    )
    first, second = keras_dc.compressible_variables(model)
    # The override wins for layer 1; layer 0 follows the rule: exactly the
    # entries below 1.75 x its std (computed independently here) are zero.
    assert _sparsity(second) == pytest.approx(0.5, abs=1.0 / second.numpy().size)
    expected_zeros = np.abs(w0) <= 1.75 * w0.std()
    np.testing.assert_array_equal(np.asarray(first.numpy()) == 0, expected_zeros)


def test_iterative_schedule_in_epochs_ramps_up():
    model = _mlp()
    x, y = _data()
    pruning = keras_dc.MagnitudePruning(
        0.8, schedule=schedules.Iterative(fractions=(0.5, 1.0), every=2, unit="epoch"), verbose=0
    )
    history = model.fit(x, y, batch_size=32, epochs=4, callbacks=[pruning], verbose=0)
    s = history.history["sparsity"]
    assert s[0] == pytest.approx(0.4, abs=0.01) and s[1] == pytest.approx(0.4, abs=0.01)
    assert s[2] == pytest.approx(0.8, abs=0.01) and s[3] == pytest.approx(0.8, abs=0.01)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_clustering_invariants_after_every_step(optimizer):
    opt = {
        "sgd": keras.optimizers.SGD(0.05),
        "momentum": keras.optimizers.SGD(0.05, momentum=0.9),
        "adam": keras.optimizers.Adam(1e-3),
    }[optimizer]
    model = _mlp(optimizer=opt)
    x, y = _data()
    model.fit(
        x,
        y,
        epochs=1,
        verbose=0,
        callbacks=[keras_dc.MagnitudePruning(0.6, schedule=schedules.OneShot(), verbose=0)],
    )
    kernels = keras_dc.compressible_variables(model)
    zeros = [np.asarray(v.numpy()) == 0 for v in kernels]

    class Check(keras.callbacks.Callback):
        bad = []

        def on_train_batch_end(self, batch, logs=None):
            for z, v in zip(zeros, kernels):
                w = np.asarray(v.numpy())
                if _distinct_nonzero(v) > 8 or not np.all(w[z] == 0):
                    Check.bad.append(batch)

    clustering = keras_dc.WeightClustering(bits=3, verbose=0)
    before = model.evaluate(x, y, verbose=0)[0]
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[clustering, Check()])
    assert Check.bad == []
    for z, v in zip(zeros, kernels):
        assert 1 <= _distinct_nonzero(v) <= 8
        assert np.all(np.asarray(v.numpy())[z] == 0)
    after = model.evaluate(x, y, verbose=0)[0]
    assert np.isfinite(after) and after < before + 1.0
    assert all(v.constraint is None for v in model.trainable_weights)


@pytest.mark.parametrize("callback", ["pruning", "clustering"])
def test_callbacks_take_effect_after_a_plain_fit(callback):
    """The train function traced by an earlier fit must not bypass the callbacks."""
    model = _mlp()
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)  # traces a train function without constraints
    step = int(model.optimizer.iterations.numpy())
    if callback == "pruning":
        cb = keras_dc.MagnitudePruning(0.6, schedule=schedules.OneShot(at=step), verbose=0)
    else:
        cb = keras_dc.WeightClustering(bits=3, verbose=0)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[cb])
    for v in keras_dc.compressible_variables(model):
        if callback == "pruning":
            assert _sparsity(v) == pytest.approx(0.6, abs=0.01)
        else:
            assert _distinct_nonzero(v) <= 8
    # And a later plain fit runs without them again.
    before = [np.asarray(v.numpy()).copy() for v in keras_dc.compressible_variables(model)]
    model.fit(x, y, epochs=1, verbose=0)
    after = [np.asarray(v.numpy()) for v in keras_dc.compressible_variables(model)]
    assert any(np.unique(a).size > np.unique(b).size for a, b in zip(after, before))


@pytest.mark.parametrize("pruned", [False, True], ids=["dense-layer", "sparse-layer"])
def test_centroid_update_is_summed_gradient_with_sgd(pruned):
    """Eq. 3: with SGD one step moves centroid k by -lr * sum of its members' gradients."""
    lr = 0.1
    model = _mlp(optimizer=keras.optimizers.SGD(lr))
    x, y = _data(n=32)
    if pruned:  # 80% zeros: the constraint takes its sparse path
        model.optimizer.learning_rate.assign(0.0)
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=1,
            verbose=0,
            callbacks=[keras_dc.MagnitudePruning(0.8, schedule=schedules.OneShot(), verbose=0)],
        )
        assert _sparsity(model.layers[0].kernel) == pytest.approx(0.8, abs=0.01)
    clustering = keras_dc.WeightClustering(bits=2, overrides={model.layers[1]: None}, verbose=0)
    # Cluster without training: fit on zero steps is not possible, so run the
    # callback's clustering via one fit of one step with lr=0 first.
    model.optimizer.learning_rate.assign(0.0)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False, callbacks=[clustering])
    kernel = model.layers[0].kernel
    w0 = np.asarray(kernel.numpy())
    centroids, indices = keras_dc.cluster_weights(w0, 2)
    assert np.array_equal(centroids[indices], w0)
    # Gradient of the loss w.r.t. the clustered kernel on the same batch.
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=True))
    grad = np.asarray(tape.gradient(loss, kernel.value))
    expected = centroids.copy()
    for k in range(1, centroids.size):
        expected[k] -= lr * grad[indices == k].sum()
    model.optimizer.learning_rate.assign(lr)
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=[keras_dc.WeightClustering(bits=2, overrides={model.layers[1]: None}, verbose=0)],
    )
    w1 = np.asarray(kernel.numpy())
    np.testing.assert_allclose(w1, expected[indices].astype(np.float32), rtol=1e-4, atol=1e-6)


def test_pruning_then_clustering_in_one_fit():
    model = _mlp()
    x, y = _data()
    callbacks = [
        keras_dc.MagnitudePruning(
            0.75, schedule=schedules.Gradual(0, 2, frequency=1, unit="epoch"), verbose=0
        ),
        keras_dc.WeightClustering(bits=4, begin=3, unit="epoch", verbose=0),
    ]
    model.fit(x, y, batch_size=32, epochs=5, verbose=0, callbacks=callbacks)
    for v in keras_dc.compressible_variables(model):
        assert _sparsity(v) == pytest.approx(0.75, abs=0.01)
        assert _distinct_nonzero(v) <= 16
    assert all(v.constraint is None for v in model.trainable_weights)


def _conv_models():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3))
    h = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    h = keras.layers.DepthwiseConv2D(3, depth_multiplier=2)(h)
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(4)(h)
    functional = keras.Model(inputs, outputs)

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.embed = keras.layers.Embedding(100, 16)
            self.conv = keras.layers.Conv1D(16, 3)
            self.pool = keras.layers.GlobalAveragePooling1D()
            self.out = keras.layers.Dense(4)

        def call(self, x):
            return self.out(self.pool(self.conv(self.embed(x))))

    sub = Sub()
    sub(np.zeros((1, 10), "int32"))
    rng = np.random.default_rng(0)
    return [
        (functional, rng.normal(size=(64, 12, 12, 3)).astype("float32")),
        (sub, rng.integers(0, 100, size=(64, 10)).astype("int32")),
    ]


@pytest.mark.parametrize(
    "index", [0, 1], ids=["functional-conv2d-depthwise", "subclassed-embedding-conv1d"]
)
def test_conv_depthwise_embedding_models(index):
    model, x = _conv_models()[index]
    y = np.random.default_rng(1).integers(0, 4, size=len(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    kernels = keras_dc.compressible_variables(model)
    assert len(kernels) >= 2
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        verbose=0,
        callbacks=[keras_dc.MagnitudePruning(0.5, schedule=schedules.OneShot(), verbose=0)],
    )
    zeros = [np.asarray(v.numpy()) == 0 for v in kernels]
    clustering = keras_dc.WeightClustering(verbose=0)  # default bits: 8 conv, 5 dense/embedding
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[clustering])
    assert [item["path"] for item in clustering.selected] == [
        keras_dc.variable_path(v) for v in kernels
    ]
    for z, v, item in zip(zeros, kernels, clustering.selected, strict=True):
        assert item["bits"] == (8 if len(v.shape) >= 3 else 5)
        assert _distinct_nonzero(v) <= 2 ** item["bits"]
        assert np.all(np.asarray(v.numpy())[z] == 0)
        assert _sparsity(v) == pytest.approx(0.5, abs=0.01)


def test_resume_from_checkpoint_continues_schedule(tmp_path):
    x, y = _data()
    schedule = schedules.Iterative(fractions=(0.25, 0.5, 0.75, 1.0), every=1, unit="epoch")
    model = _mlp()
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=2,
        verbose=0,
        callbacks=[keras_dc.MagnitudePruning(0.8, schedule=schedule, verbose=0)],
    )
    path = str(tmp_path / "mid.keras")
    model.save(path)
    masks = [np.asarray(v.numpy()) != 0 for v in keras_dc.compressible_variables(model)]
    restored = keras.models.load_model(path)
    assert int(restored.optimizer.iterations.numpy()) == 16
    for m, v in zip(masks, keras_dc.compressible_variables(restored)):
        np.testing.assert_array_equal(np.asarray(v.numpy()) != 0, m)
    history = restored.fit(
        x,
        y,
        batch_size=32,
        epochs=4,
        initial_epoch=2,
        verbose=0,
        callbacks=[keras_dc.MagnitudePruning(0.8, schedule=schedule, verbose=0)],
    )
    # Epoch 3 prunes to 0.6, epoch 4 to 0.8: the schedule continued from step 16.
    assert history.history["sparsity"] == pytest.approx([0.6, 0.8], abs=0.01)
    for m, v in zip(masks, keras_dc.compressible_variables(restored)):
        assert np.all(np.asarray(v.numpy())[~m] == 0)  # earlier pruned stay pruned


def test_clustered_checkpoint_resumes_with_same_clusters(tmp_path):
    model = _mlp()
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[keras_dc.WeightClustering(bits=4, verbose=0)])
    path = str(tmp_path / "clustered.keras")
    model.save(path)
    before = [np.unique(v.numpy()) for v in keras_dc.compressible_variables(model)]
    restored = keras.models.load_model(path)
    restored.optimizer.learning_rate.assign(0.0)
    restored.fit(
        x, y, epochs=1, verbose=0, callbacks=[keras_dc.WeightClustering(bits=4, verbose=0)]
    )
    after = [np.unique(v.numpy()) for v in keras_dc.compressible_variables(restored)]
    assert len(after) == len(before) == 2
    for a, b in zip(after, before):
        assert b.size <= 17  # 16 centroids + the zero (none here: nothing was pruned)
        np.testing.assert_array_equal(a, b)


def test_jit_compile():
    model = _mlp()
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True
    )
    x, y = _data()
    model.fit(
        x,
        y,
        epochs=2,
        verbose=0,
        callbacks=[keras_dc.MagnitudePruning(0.7, schedule=schedules.OneShot(), verbose=0)],
    )
    model.fit(x, y, epochs=1, verbose=0, callbacks=[keras_dc.WeightClustering(bits=3, verbose=0)])
    for v in keras_dc.compressible_variables(model):
        assert _sparsity(v) == pytest.approx(0.7, abs=0.01)
        assert _distinct_nonzero(v) <= 8


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: keras_dc.MagnitudePruning(1.0), "in \\[0, 1\\)"),
        (lambda: keras_dc.MagnitudePruning(-0.1), "in \\[0, 1\\)"),
        (lambda: keras_dc.MagnitudePruning(0.5, overrides={"x": 1.5}), "in \\[0, 1\\)"),
        (lambda: keras_dc.WeightClustering(bits=0), "from 1 to 8"),
        (lambda: keras_dc.WeightClustering(bits=9), "from 1 to 8"),
        (lambda: keras_dc.WeightClustering(init="best"), "init must be one of"),
        (lambda: keras_dc.MagnitudePruning(0.5, schedule="gradual"), "schedule must be"),
    ],
)
def test_bad_arguments_fail_early(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_bad_models_fail_with_clear_errors():
    x, y = _data()
    tiny = keras.Sequential([keras.Input((20,)), keras.layers.Dense(4)])
    tiny.compile("adam", "mse")
    with pytest.raises(ValueError, match="no compressible variable"):
        tiny.fit(
            x,
            np.zeros((len(x), 4)),
            epochs=1,
            verbose=0,
            callbacks=[keras_dc.MagnitudePruning(0.5)],
        )

    model = _mlp()
    other = keras.layers.Dense(3, name="not_in_model")
    with pytest.raises(ValueError, match="does not exist"):
        model.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            callbacks=[keras_dc.MagnitudePruning(0.5, overrides={"no_such_layer": 0.2})],
        )
    other.build((None, 300))
    with pytest.raises(ValueError, match="not part of model"):
        model.fit(
            x, y, epochs=1, verbose=0, callbacks=[keras_dc.WeightClustering(overrides={other: 4})]
        )

    unbuilt = keras.Sequential([keras.layers.Dense(300), keras.layers.Dense(4)])
    unbuilt.compile("adam", "mse")
    pruning = keras_dc.MagnitudePruning(0.5)
    pruning.set_model(unbuilt)
    with pytest.raises(ValueError, match="not built"):
        pruning.on_train_begin()


def test_sensitivity_analysis_proposes_overrides():
    model = _mlp()
    x, y = _data()
    model.fit(x, y, epochs=3, verbose=0)
    before = [np.asarray(v.numpy()).copy() for v in model.weights]
    result = keras_dc.sensitivity_analysis(model, x, y, sparsities=(0.2, 0.5, 0.9), verbose=0)
    assert result.metric == "accuracy"
    assert set(result.curves) == {
        keras_dc.variable_path(v) for v in keras_dc.compressible_variables(model)
    }
    for b, v in zip(before, model.weights, strict=True):  # the model is left untouched
        np.testing.assert_array_equal(b, v.numpy())
    proposal = result.propose(max_drop=1.0)  # anything goes: the largest tested sparsity
    assert [s for _, s in proposal] == [0.9, 0.9]
    step = int(model.optimizer.iterations.numpy())
    model.fit(
        x,
        y,
        epochs=1,
        verbose=0,
        callbacks=[
            keras_dc.MagnitudePruning(
                0.5, schedule=schedules.OneShot(at=step), overrides=proposal, verbose=0
            )
        ],
    )
    for v in keras_dc.compressible_variables(model):
        assert _sparsity(v) == pytest.approx(0.9, abs=0.01)
    assert "baseline" in result.format()


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


def test_mirrored_strategy_on_two_cpu_devices():
    out = _run_subprocess("""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras, keras_dc
        from keras_dc import schedules
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
        with strategy.scope():
            model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(64, activation="relu"),
                                      keras.layers.Dense(32, activation="relu"), keras.layers.Dense(4)])
            model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rng = np.random.default_rng(0)
        x = rng.normal(size=(256, 20)).astype("float32"); y = rng.integers(0, 4, 256)
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[
            keras_dc.MagnitudePruning(0.8, schedule=schedules.Gradual(0, 10, frequency=2), verbose=0)])
        zeros = [v.numpy() == 0 for v in keras_dc.compressible_variables(model)]
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[keras_dc.WeightClustering(bits=3, verbose=0)])
        for z, v in zip(zeros, keras_dc.compressible_variables(model)):
            # every replica's copy is identical and holds the invariants
            copies = [np.asarray(t) for t in v.value.values]
            assert len(copies) == 2 and np.array_equal(copies[0], copies[1])
            w = copies[0]
            assert abs((w == 0).mean() - 0.8) < 0.01, (w == 0).mean()
            assert np.all(w[z] == 0)
            assert np.unique(w[w != 0]).size <= 8
        print("MIRRORED-OK")
    """)
    assert "MIRRORED-OK" in out


def test_tf_keras_legacy_models():
    out = _run_subprocess(
        """
        import numpy as np, tensorflow as tf
        import keras_dc
        from keras_dc import schedules
        tfk = tf.keras
        assert "tf_keras" in tfk.__name__ or tfk.__version__.startswith("2."), tfk.__version__
        model = tfk.Sequential([tfk.layers.InputLayer((20,)), tfk.layers.Dense(64, activation="relu"),
                                tfk.layers.Dense(32, activation="relu"), tfk.layers.Dense(4)])
        model.compile(tfk.optimizers.Adam(1e-3), tfk.losses.SparseCategoricalCrossentropy(from_logits=True))
        rng = np.random.default_rng(0)
        x = rng.normal(size=(256, 20)).astype("float32"); y = rng.integers(0, 4, 256)
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[
            keras_dc.MagnitudePruning(0.75, schedule=schedules.OneShot(), verbose=0)])
        kernels = keras_dc.compressible_variables(model)
        assert len(kernels) == 2
        zeros = [v.numpy() == 0 for v in kernels]
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[keras_dc.WeightClustering(bits=3, verbose=0)])
        for z, v in zip(zeros, kernels):
            w = v.numpy()
            assert abs((w == 0).mean() - 0.75) < 0.01
            assert np.all(w[z] == 0) and np.unique(w[w != 0]).size <= 8
        assert all(v.constraint is None for v in model.trainable_weights)
        print("TFKERAS-OK")
    """,
        env_extra={"TF_USE_LEGACY_KERAS": "1"},
    )
    assert "TFKERAS-OK" in out
