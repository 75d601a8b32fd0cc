"""Centroid retraining: the paper's fixed assignments against latent weights, same pruned models.

For each budget-search run folder (`examples.budget_search --out=DIR`: its `dense.keras` and
`search/pruned.weights.h5`, the network at the end of the search's pruning stage), the pruned
network is clustered with `keras_dc.WeightClustering` at the given bits per kernel and
retrained, once per centroid update and learning rate, from the same weights and the same
batches; each row is the error on the search's validation images (the last `--validation`
training images; the test set is not used). Kernels are listed in the model's order.

    python -m benchmarks.centroid_update --runs=DIR[,DIR...]           # ~15 s per row (LeNet-300-100)
    python -m benchmarks.centroid_update --runs=DIR --bits=3,2,3 --updates=auto,latent --lrs=1e-4,3e-4
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

_RUNS = flags.DEFINE_list("runs", None, "examples.budget_search output folders.", required=True)
_BITS = flags.DEFINE_multi_string(
    "bits", ["3,2,3", "2,2,3"], "Bits per kernel, comma-separated, in the model's order."
)
_UPDATES = flags.DEFINE_list("updates", ["auto", "latent"], "centroid_update values.")
_LRS = flags.DEFINE_list("lrs", ["1e-4", "3e-4"], "Adam learning rates (cosine decay to 0).")
_EPOCHS = flags.DEFINE_float("epochs", 2.0, "Retraining epochs.")
_VALIDATION = flags.DEFINE_integer("validation", 10000, "Validation images (as the search).")
_DATA = flags.DEFINE_string("data", None, "mnist.npz (default: the shared offline copy).")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the rows as JSON here.")


def cluster_row(run, x, y, x_val, y_val, bits, update, lr, epochs):
    """Validation error after clustering `run`'s pruned network with `bits` and retraining."""
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_dc
    from examples.paper_common import compile_model, keras_error
    from keras_dc.selection import compressible_variables

    keras_dc.make_reproducible(0)
    model = keras.models.load_model(os.path.join(run, "dense.keras"))
    model.load_weights(os.path.join(run, "search", "pruned.weights.h5"))
    kernels = compressible_variables(model, min_size=1)
    if len(bits) != len(kernels):
        raise app.UsageError(
            f"--bits lists {len(bits)} values; {run} has {len(kernels)} kernels "
            f"({', '.join(v.path for v in kernels)})"
        )
    pruned_error = keras_error(model, x_val, y_val)
    steps = -(-len(x) // 128)
    clustering = keras_dc.WeightClustering(
        overrides=list(zip(kernels, bits)),
        init="linear_gap",
        centroid_update=update,
        min_size=1,
        verbose=0,
    )
    compile_model(model, lr, epochs, steps)
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=1).batch(128).repeat()
    started = time.perf_counter()
    model.fit(
        data,
        epochs=1,
        steps_per_epoch=int(epochs * steps),
        verbose=0,
        callbacks=[clustering],
    )
    values = [int(np.unique(v.numpy()[v.numpy() != 0]).size) for v in kernels]
    return {
        "run": run,
        "bits": list(bits),
        "update": update,
        "lr": lr,
        "epochs": epochs,
        "pruned_error": pruned_error,
        "error": keras_error(model, x_val, y_val),
        "values": values,
        "nonzeros": [int(np.count_nonzero(v.numpy())) for v in kernels],
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from benchmarks._common import machine_info
    from examples.mnist_data import load_mnist

    for run in _RUNS.value:
        for name in ("dense.keras", os.path.join("search", "pruned.weights.h5")):
            if not os.path.exists(os.path.join(run, name)):
                raise app.UsageError(f"{run} has no {name}: not an examples.budget_search folder")
    bits_list = [[int(b) for b in item.split(",")] for item in _BITS.value]
    (x, y), _ = load_mnist(_DATA.value)
    n = _VALIDATION.value
    rows = []
    print(f"machine: {json.dumps(machine_info())}")
    print(
        f"{'run':<40s} {'bits':<8s} {'update':<7s} {'lr':>7s} {'pruned':>7s} {'error':>7s}  values"
    )
    for run in _RUNS.value:
        model_shape = None
        for bits in bits_list:
            for update in _UPDATES.value:
                for lr in map(float, _LRS.value):
                    if model_shape is None:
                        import keras

                        model_shape = keras.models.load_model(
                            os.path.join(run, "dense.keras")
                        ).input_shape[1:]
                    xs = x.reshape((-1, *model_shape))
                    row = cluster_row(
                        run, xs[:-n], y[:-n], xs[-n:], y[-n:], bits, update, lr, _EPOCHS.value
                    )
                    rows.append(row)
                    print(
                        f"{run[-40:]:<40s} {','.join(map(str, bits)):<8s} {update:<7s} {lr:7.0e} "
                        f"{row['pruned_error']:7.2%} {row['error']:7.2%}  {row['values']}",
                        flush=True,
                    )
    if _JSON_OUT.value:
        with open(_JSON_OUT.value, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    app.run(main)
