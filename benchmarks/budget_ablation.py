"""Ablation of the methods past the paper, one at a time, on a finished budget search.

Starts from a folder that ``python -m examples.budget_search`` wrote (``dense.keras``,
``search/pruned.weights.h5``, ``search/budget_state.json`` with the chosen bits) and
re-runs only the clustering stage from the same pruned weights, with the same seed and
epochs, once per variant; each variant's model is converted, restored and measured in
LiteRT on the MNIST test set (validation error on the search's validation images too):

* ``searched``: the search's choices (per-layer bits, ``linear_gap`` init, shared biases);
* ``linear init``: the paper's linear init (centroids also in the pruned gap);
* ``rate_weight 0.001``: entropy-constrained clustering on top of ``searched``;
* ``biases float32``: biases left alone (``bias_bits=None``);
* ``paper bits (5)``: 5 bits for every layer instead of the searched bits;
* bundle options on the ``searched`` model: ``--nocompact_skeleton`` (v1.0 skeleton) and,
  for the pruned-only model, without the v1.1 SPARSE_RAW encoding.

From the search's step log: the bundle bytes after the global pruning moves only,
against after the layer moves too (deeper sparsity).

    python -m benchmarks.budget_ablation --run_dir=out/budget_lenet_300_100_seed0
    python -m benchmarks.budget_ablation --run_dir=... --json_out=out/ablation.json
"""

import json
import os
import tempfile
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_RUN_DIR = flags.DEFINE_string("run_dir", None, "A folder written by examples.budget_search.")
_DATA = flags.DEFINE_string("data", None, "mnist.npz; default: the shared offline copy.")
_EPOCHS = flags.DEFINE_float(
    "cluster_epochs", None, "Centroid retraining epochs (default: as the example)."
)
_JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the rows as JSON here.")


def _data(model_name, path):
    from examples.mnist_data import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist(path)
    flatten = model_name == "lenet_300_100"
    shape = (-1, 784) if flatten else (-1, 28, 28, 1)
    x_val, y_val = x_train[-5000:].reshape(shape), y_train[-5000:]
    x_train, y_train = x_train[:-5000].reshape(shape), y_train[:-5000]
    return (x_train, y_train), (x_val, y_val), (x_test.reshape(shape), y_test)


def _bundle_bytes(model, **options):
    import converters

    with tempfile.TemporaryDirectory() as d:
        result = converters.convert(model, d, verbose=0, picture=False, **options)
        return result.bundle_bytes, converters.restore(d)


def _without_sparse_raw(model):
    """Bundle bytes of `model` when the encoder may not use SPARSE_RAW (format v1.0 encodings)."""
    import converters
    from converters import decoder, encoder, files
    from converters.stats import SKELETON_NAME

    with tempfile.TemporaryDirectory() as d:
        # packed=False: a segment per buffer, named (a packed sidecar's parts have no names).
        converters.convert(model, d, verbose=0, picture=False, packed=False)
        skeleton, sidecar = files.load_bundle(d)
        restored = decoder.restore_bytes(skeleton, sidecar)
        segments = [
            encoder.Segment(
                offset=s["offset"],
                size=s["raw_bytes"],
                dtype=s["dtype"],
                channels=s["channels"],
                name=s["name"],
            )
            for s in decoder.inspect(sidecar)["segments"]
            if s["name"] != SKELETON_NAME
        ]
    names = ["RAW", "ZLIB", "CLUSTERED_SPARSE", "CLUSTERED_DENSE"]
    skeleton, sidecar, _ = encoder.build_bundle(restored, segments, encodings=names)
    return len(skeleton) + len(sidecar)


def main(argv):
    del argv
    import keras
    import numpy as np

    import keras_dc
    from examples import budget_search
    from examples.paper_common import litert_error

    run_dir = _RUN_DIR.value
    if not run_dir or not os.path.exists(os.path.join(run_dir, "search", "pruned.weights.h5")):
        raise app.UsageError("--run_dir must be a folder of a finished examples.budget_search run")
    with open(os.path.join(run_dir, "results.json")) as f:
        results = json.load(f)
    with open(os.path.join(run_dir, "search", "budget_state.json")) as f:
        state = json.load(f)
    name, seed = results["model"], results["seed"]
    settings = budget_search.SETTINGS[name]
    epochs = _EPOCHS.value or max(0.5, settings["prune_epochs"])
    train, (x_val, y_val), (x_test, y_test) = _data(name, _DATA.value)
    model = keras.models.load_model(os.path.join(run_dir, "dense.keras"))
    pruned_path = os.path.join(run_dir, "search", "pruned.weights.h5")
    dense_bytes = results["dense_tflite_bytes"]

    searched_bias_bits = state.get("bias_bits")

    def cluster(bits, init="linear_gap", rate_weight=0.0, bias_bits=searched_bias_bits):
        keras_dc.make_reproducible(seed)
        model.load_weights(pruned_path)
        by_path = {
            "/".join(v.path.split("/")[-2:]): v
            for v in keras_dc.compressible_variables(model, min_size=1)
        }
        clustering = keras_dc.WeightClustering(
            overrides=[(by_path[p], b) for p, b in bits.items()],
            init=init,
            rate_weight=rate_weight,
            bias_bits=bias_bits,
            min_size=1,
            seed=seed,
            verbose=0,
        )
        steps = int(round(epochs * -(-len(train[0]) // 128)))
        model.compile(
            keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-4, steps)),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(
            *train,
            batch_size=128,
            epochs=1,
            steps_per_epoch=steps,
            verbose=0,
            callbacks=[clustering],
        )

    def error(m, x, y):
        return float(np.mean(np.argmax(m.predict(x, batch_size=1000, verbose=0), axis=1) != y))

    rows = []

    def measure(label, **convert_options):
        started = time.perf_counter()
        size, restored = _bundle_bytes(model, **convert_options)
        row = {
            "variant": label,
            "validation_error": error(model, x_val, y_val),
            "test_error": litert_error(restored, x_test, y_test),
            "bundle_bytes": size,
            "ratio": dense_bytes / size,
        }
        rows.append(row)
        print(
            f"{label:<34s} val {row['validation_error']:.2%}  test {row['test_error']:.2%}  "
            f"{size:>8,d} B  {row['ratio']:6.1f}x  ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )

    bits = state["bits"]
    print(f"== {name} seed {seed}: clustering variants from {pruned_path} ({epochs:g} epochs each)")
    model.load_weights(pruned_path)
    measure("pruned only (v1.1: SPARSE_RAW)")
    rows[-1]["bundle_bytes_v10_encodings"] = _without_sparse_raw(model)
    print(f"{'pruned only, v1.0 encodings':<34s} {rows[-1]['bundle_bytes_v10_encodings']:>38,d} B")
    cluster(bits)
    measure("searched")
    measure("searched, v1.0 skeleton", compact_skeleton=False)
    cluster(bits, init="linear")
    measure("linear init")
    cluster(bits, rate_weight=0.001)
    measure("rate_weight 0.001")
    cluster(bits, bias_bits=None)
    measure("biases float32")
    cluster({p: 5 for p in bits})
    measure("paper bits (5 every layer)")

    steps = state["steps"]
    global_sizes = [s["bytes"] for s in steps if s["accepted"] and s["move"].startswith("global")]
    layer_sizes = [
        s["bytes"] for s in steps if s["accepted"] and s["stage"] == "prune" and s["bytes"]
    ]
    if global_sizes and layer_sizes:
        print(
            f"pruned bundle after global moves {global_sizes[-1]:,d} B, after layer moves and "
            f"retraining {layer_sizes[-1]:,d} B ({global_sizes[-1] / layer_sizes[-1]:.2f}x)"
        )
    if _JSON_OUT.value:
        with open(_JSON_OUT.value, "w") as f:
            json.dump({"run_dir": run_dir, "model": name, "seed": seed, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
