"""For tfmot users: turn a pruned + clustered + stripped tf_keras model into a small bundle.

tensorflow-model-optimization measures size as "zip the .tflite yourself"; the
.tflite itself never shrinks. keras-dc's converter takes the stripped model as it
is and writes the real small file.

    python -m examples.tfmot_interop [--data=mnist.npz] [--smoke]
"""

import gzip
import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tfmot works only with tf_keras

_DATA = flags.DEFINE_string("data", None, "mnist.npz; default: the shared offline copy.")
_OUT = flags.DEFINE_string("out", "out/tfmot", "Bundle directory.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny run for tests.")


def main(argv):
    del argv
    import tensorflow_model_optimization as tfmot
    import tf_keras

    import converters
    from examples.mnist_data import load_mnist

    (x, y), (x_test, y_test) = load_mnist(_DATA.value)
    x, x_test = x.reshape(-1, 784), x_test.reshape(-1, 784)
    epochs = 2
    if _SMOKE.value:
        x, y, x_test, y_test, epochs = x[:2000], y[:2000], x_test[:500], y_test[:500], 1
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [
            tf_keras.layers.InputLayer((784,)),
            tf_keras.layers.Dense(300, activation="relu"),
            tf_keras.layers.Dense(100, activation="relu"),
            tf_keras.layers.Dense(10),
        ]
    )
    loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    steps = len(x) // 128 * epochs
    pruned = tfmot.sparsity.keras.prune_low_magnitude(
        model,
        pruning_schedule=tfmot.sparsity.keras.PolynomialDecay(0.0, 0.9, 0, steps, frequency=10),
    )
    pruned.compile("adam", loss, metrics=["accuracy"])
    pruned.fit(
        x,
        y,
        batch_size=128,
        epochs=epochs,
        verbose=2,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    clustered = tfmot.clustering.keras.cluster_weights(
        tfmot.sparsity.keras.strip_pruning(pruned),
        number_of_clusters=32,
        cluster_centroids_init=tfmot.clustering.keras.CentroidInitialization.LINEAR,
        preserve_sparsity=True,
    )
    clustered.compile(tf_keras.optimizers.Adam(1e-4), loss, metrics=["accuracy"])
    clustered.fit(x, y, batch_size=128, epochs=1, verbose=2)
    final = tfmot.clustering.keras.strip_clustering(clustered)

    result = converters.convert(final, _OUT.value)
    restored = converters.restore(_OUT.value)
    t = result.report["totals"]
    print(
        f"tfmot's way: .tflite {len(restored):,} B, gzip -9 {len(gzip.compress(restored, 9)):,} B"
    )
    print(
        f"keras-dc bundle: {t['bundle_bytes']:,} B ({t['ratio_vs_dense']:.1f}x smaller than dense)"
    )


if __name__ == "__main__":
    app.run(main)
