"""Batch-1 latency of a block-pruned MLP in LiteRT: dense flatbuffer vs restored sparse bundle.

A LeNet-300-100-shaped MLP (784-300-100-10) is trained briefly on random data,
pruned with ``keras_dc.MagnitudePruning(block="litert")`` (LiteRT's 1x4
blocks) to 93% / 90% / 70% per layer, clustered with
``keras_dc.WeightClustering(bits=5)``, then converted twice: densely
(``converters.export.to_tflite``) and as a bundle with ``sparse=True``
(``Optimize.EXPERIMENTAL_SPARSITY``), which is restored. Both run in the
``ai_edge_litert`` interpreter with 1 and 2 threads, invoked in turn
(interleaved) after a warm-up, and the table prints the median of
``--repeats`` invokes each, with the sizes of the files.

    python -m benchmarks.sparse_speed                  # ~1 min on 2 CPU cores
    python -m benchmarks.sparse_speed --repeats=1000
"""

import os
import tempfile

import numpy as np
from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_REPEATS = flags.DEFINE_integer("repeats", 500, "Timed invokes per model and thread count.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the weights and the random training data.")

_SPARSITIES = (0.93, 0.90, 0.70)


def _compressed_mlp(seed):
    """The block-pruned, clustered 784-300-100-10 MLP."""
    import keras

    import keras_dc

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1024, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=1024)
    layers = [
        keras.layers.Dense(300, activation="relu"),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(10),
    ]
    model = keras.Sequential([keras.Input((784,)), *layers])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruning = keras_dc.MagnitudePruning(
        overrides=dict(zip(layers, _SPARSITIES)), block="litert", verbose=0
    )
    model.fit(x, y, batch_size=64, epochs=3, verbose=0, callbacks=[pruning])
    clustering = keras_dc.WeightClustering(bits=5, verbose=0)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[clustering])
    return model


def _median_invoke_us(contents, threads, repeats):
    """Median batch-1 invoke time (µs) of each flatbuffer, invoked in turn."""
    from converters import litert

    return [1e6 * t for t in litert.median_invoke_seconds(contents, repeats, threads, warmup=50)]


def benchmark():
    import converters
    from converters import export

    model = _compressed_mlp(_SEED.value)
    dense = export.to_tflite(model)
    with tempfile.TemporaryDirectory(prefix="keras_dc_sparse_speed_") as directory:
        result = converters.convert(model, directory, sparse=True, picture=False, verbose=0)
        sparse = converters.restore(directory)
    blocks = sum(1 for w in result.sparse_tensors if w.block == (1, 4))
    print(
        f"LeNet-300-100 MLP, 1x4 blocks pruned to {'/'.join(f'{s:.0%}' for s in _SPARSITIES)}, "
        f"5-bit clustered; {blocks} of 3 FC weights are 1x4 block-sparse tensors"
    )
    print(
        f"bytes: dense .tflite {len(dense):,}; restored sparse .tflite {len(sparse):,}; "
        f"sparse bundle (skeleton + sidecar) {result.bundle_bytes:,}"
    )
    print(f"batch-1 latency, median of {_REPEATS.value} interleaved invokes:")
    print(f"{'threads':>7s} {'dense us':>10s} {'sparse us':>10s} {'speed-up':>9s}")
    for threads in (1, 2):
        dense_us, sparse_us = _median_invoke_us([dense, sparse], threads, _REPEATS.value)
        print(f"{threads:>7d} {dense_us:>10.1f} {sparse_us:>10.1f} {dense_us / sparse_us:>8.2f}x")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    benchmark()


if __name__ == "__main__":
    app.run(main)
