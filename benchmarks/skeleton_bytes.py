"""Bundle bytes of finished budget searches, converted again with today's converter options.

For each budget-search run folder (`examples.budget_search --out=DIR`: its `dense.keras` and
`search/budget.weights.h5`, the compressed network the search ended with), the network is
converted once per option set (`--variants`), restored, and run in LiteRT on the 10,000
MNIST test images. The weights are the same in every row, so the rows differ only in what the
converter writes around them: the bundle's bytes, its skeleton bytes (the zlib-coded
flatbuffer head, `totals.skeleton_segments` plus the skeleton file), and the ratio against
the dense float32 `.tflite`. The variant `packed` writes format 1.4: one PACKED segment
with compact stream headers instead of an entry, a name and 18-byte stream headers per
segment. `zdict` writes format 1.5: the same, with the flatbuffer's bytes zlib-coded with
the format's preset dictionary (ZLIB_DICT) where that is smaller; `head_bytes` is what the
sidecar spends on the flatbuffer's ranges. The last, `masked` (today's default), writes
format 1.6: the same, with weight buffers whose dead units empty whole rows or columns
coded MASKED (a row and a column mask, then the kept submatrix) where that is smaller.

    python -m benchmarks.skeleton_bytes --runs=DIR[,DIR...]      # ~10 s per row
"""

import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from benchmarks._common import write_json  # noqa: E402

VARIANTS = {  # the first three: format 1.3 layouts (one entry and name per segment)
    "converter": {
        "strip_names": False,
        "strip_metadata": False,
        "packed": False,
        "skeleton_dict": False,
    },
    "names": {
        "strip_names": True,
        "strip_metadata": False,
        "packed": False,
        "skeleton_dict": False,
    },
    "names+metadata": {
        "strip_names": True,
        "strip_metadata": True,
        "packed": False,
        "skeleton_dict": False,
    },
    "packed": {"strip_names": True, "strip_metadata": True, "packed": True, "skeleton_dict": False},
    "zdict": {"strip_names": True, "strip_metadata": True, "packed": True, "masked": False},  # 1.5
    "masked": {"strip_names": True, "strip_metadata": True, "packed": True},  # 1.6, the default
}

_RUNS = flags.DEFINE_list("runs", None, "examples.budget_search output folders.", required=True)
_VARIANTS = flags.DEFINE_list(
    "variants", list(VARIANTS), f"Converter option sets, of {', '.join(VARIANTS)}."
)
_DATA = flags.DEFINE_string("data", None, "mnist.npz (default: the shared offline copy).")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the rows as JSON here.")


def measure(run, variant, x_test, y_test):
    """One row: `run`'s compressed network converted with the options of `variant`."""
    import keras

    import converters
    from examples.paper_common import dense_tflite, litert_error

    model = keras.models.load_model(os.path.join(run, "dense.keras"))
    dense_bytes = len(dense_tflite(model))
    model.load_weights(os.path.join(run, "search", "budget.weights.h5"))
    with tempfile.TemporaryDirectory() as directory:
        result = converters.convert(model, directory, verbose=0, picture=False, **VARIANTS[variant])
        error = litert_error(converters.restore(directory), x_test, y_test)
    totals = result.report["totals"]
    return {
        "run": os.path.basename(os.path.normpath(run)),
        "variant": variant,
        "bundle_bytes": result.bundle_bytes,
        "skeleton_bytes": totals["skeleton_bytes"] + totals["skeleton_segments"]["payload_bytes"],
        "head_bytes": totals["skeleton_segments"]["payload_bytes"],
        "payload_bytes": totals["payload_bytes"],
        "ratio": dense_bytes / result.bundle_bytes,
        "test_error": error,
    }


def check_runs(runs):
    """`app.UsageError` unless every folder holds a finished search's model and weights."""
    for run in runs:
        for name in ("dense.keras", os.path.join("search", "budget.weights.h5")):
            if not os.path.exists(os.path.join(run, name)):
                raise app.UsageError(f"{run} has no {name}: not a finished budget search")


def main(argv):
    del argv
    unknown = sorted(set(_VARIANTS.value) - set(VARIANTS))
    if unknown:
        raise app.UsageError(f"unknown --variants {unknown}; choose from {sorted(VARIANTS)}")
    check_runs(_RUNS.value)
    from benchmarks._common import machine_info
    from examples.mnist_data import load_mnist

    print(f"machine: {json.dumps(machine_info())}")
    _, (x_test, y_test) = load_mnist(_DATA.value)
    rows = []
    print(
        f"{'run':<16s} {'variant':<16s} {'bundle B':>9s} {'skeleton B':>10s} {'head B':>7s} "
        f"{'ratio':>7s} {'test err':>8s}"
    )
    for run in _RUNS.value:
        for variant in _VARIANTS.value:
            row = measure(run, variant, x_test, y_test)
            rows.append(row)
            print(
                f"{row['run']:<16s} {variant:<16s} {row['bundle_bytes']:>9,d} "
                f"{row['skeleton_bytes']:>10,d} {row['head_bytes']:>7,d} "
                f"{row['ratio']:>6.1f}x {row['test_error']:>8.2%}",
                flush=True,
            )
    if _JSON_OUT.value:
        write_json(_JSON_OUT.value, rows)


if __name__ == "__main__":
    app.run(main)
