"""What format 1.6's MASKED costs the encoder: `build_bundle` with and without it, side by side.

For each model the flatbuffer is laid out once (`converters.layout.lay_out`), then
`converters.encoder.build_bundle(restored, segments, masked=...)` runs `--repeats` times per
setting, interleaved; the script prints the median seconds of each, their ratio, and the
bundle bytes of each. Models: a `keras.applications.ResNet50` (`weights=None`, 32×32×3, 10
classes, 23.6M parameters) whose kernels are magnitude-pruned to 20% and rounded to 32 levels
per kernel (no dead units: MASKED is tried and loses, the cost of trying), and optionally
`--runs`, `examples.budget_search` output folders (their compressed network, where MASKED
wins on the dead units).

    python -m benchmarks.masked_cost                      # ~3 minutes on 2 cores
    python -m benchmarks.masked_cost --runs=DIR[,DIR...] --repeats=5
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS


def define_flags():
    """The script's flags (defined only when it runs, so that tests can import it)."""
    flags.DEFINE_list("runs", [], "examples.budget_search output folders to time too.")
    flags.DEFINE_integer("repeats", 3, "Timed encodings per setting.", lower_bound=1)
    flags.DEFINE_bool("smoke", False, "A small MLP instead of ResNet50, 1 repeat (tests).")


def _pruned_resnet(smoke):
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    if smoke:
        model = keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(64), keras.layers.Dense(10)]
        )
    else:
        model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)
    for v in model.weights:
        if len(v.shape) < 2:
            continue
        w = v.numpy()
        threshold = np.quantile(np.abs(w), 0.8)
        w[np.abs(w) < threshold] = 0
        nonzero = w != 0
        levels = np.linspace(w.min(), w.max(), 32)
        w[nonzero] = levels[np.abs(w[nonzero][:, None] - levels).argmin(axis=1)]
        v.assign(w)
    return model


def _run_model(run):
    import keras

    model = keras.models.load_model(os.path.join(run, "dense.keras"))
    model.load_weights(os.path.join(run, "search", "budget.weights.h5"))
    return model


def measure(name, model, repeats):
    """One row: median encode seconds and bundle bytes with and without MASKED."""
    from converters import encoder, export, layout

    restored, buffers = layout.lay_out(export.to_tflite(model), mode="offset")
    segments = [
        encoder.Segment(b.offset, b.size, b.dtype, b.channels, "") for b in buffers if b.size
    ]
    times = {False: [], True: []}
    sizes = {}
    for _ in range(repeats):
        for masked in (False, True):  # interleaved: the machine's load hits both alike
            started = time.perf_counter()
            skeleton, sidecar, stats = encoder.build_bundle(restored, segments, masked=masked)
            times[masked].append(time.perf_counter() - started)
            sizes[masked] = (
                len(skeleton) + len(sidecar),
                sum(s.encoding == "MASKED" for s in stats),
            )
    off, on = statistics.median(times[False]), statistics.median(times[True])
    return {
        "model": name,
        "encode_s_without": off,
        "encode_s_with": on,
        "ratio": on / off,
        "bytes_without": sizes[False][0],
        "bytes_with": sizes[True][0],
        "masked_segments": sizes[True][1],
    }


def main(argv):
    del argv
    from benchmarks._common import machine_info

    print(f"machine: {machine_info()}")
    models = [("mlp (smoke)" if FLAGS.smoke else "resnet50, 20% kept", _pruned_resnet(FLAGS.smoke))]
    models += [(os.path.basename(os.path.normpath(r)), _run_model(r)) for r in FLAGS.runs]
    repeats = 1 if FLAGS.smoke else FLAGS.repeats
    print(
        f"{'model':<22s} {'encode s, 1.5':>14s} {'1.6':>8s} {'ratio':>6s} "
        f"{'bytes 1.5':>11s} {'1.6':>11s} {'MASKED':>6s}   (medians of {repeats})"
    )
    for name, model in models:
        row = measure(name, model, repeats)
        print(
            f"{row['model']:<22s} {row['encode_s_without']:>14.2f} {row['encode_s_with']:>8.2f} "
            f"{row['ratio']:>5.2f}x {row['bytes_without']:>11,d} {row['bytes_with']:>11,d} "
            f"{row['masked_segments']:>6d}",
            flush=True,
        )


if __name__ == "__main__":
    define_flags()
    app.run(main)
