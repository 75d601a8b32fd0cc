"""Epoch-time overhead of the compression callbacks, beside tfmot's wrappers, in one run.

LeNet-300-100 (784-300-100-10, relu, Adam) on MNIST. For each framework the
benchmark times every epoch of a plain ``fit`` and of ``fit`` with compression,
and reports the median epoch time of each configuration and its ratio to the
plain fit of the same framework:

* keras-dc (Keras 3, in this process): plain fit; ``MagnitudePruning(0.92)``
  with a ``Gradual`` schedule spread over the timed epochs (pruning events every
  100 steps happen while the clock runs); ``WeightClustering(bits=5)`` on an
  already pruned model. Target: ratio ≤ 1.15 for each callback.
* tfmot (tf_keras, in a subprocess with ``TF_USE_LEGACY_KERAS=1``, since
  importing tfmot switches the process to tf_keras): plain fit;
  ``prune_low_magnitude`` with ``PolynomialDecay`` and the ``UpdatePruningStep``
  callback; ``cluster_weights`` (32 clusters, LINEAR init,
  ``preserve_sparsity=True``) on a pruned and stripped model. No target: it is
  the baseline.

Same model, initial weights, data and batch size on both sides. Configurations
are interleaved (keras-dc repeat, tfmot repeat, ... with the order inside a
repeat rotated) so that load on a shared machine hits all of them alike. Each
fit's first epoch includes tracing the train function and is left out of the
median.

    python -m benchmarks.callback_overhead                  # ~15 min on 2 CPU cores
    python -m benchmarks.callback_overhead --smoke          # a tiny subset, for CI
    python -m benchmarks.callback_overhead --repeats=5 --json_out=out/overhead.json
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

from benchmarks._common import child_env, machine_info, module_command

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_DATA = flags.DEFINE_string(
    "data", None, "mnist.npz (keras layout); default: the shared offline copy."
)
_EPOCHS = flags.DEFINE_integer(
    "epochs", 3, "Epochs per fit (≥ 2: the first epoch of each fit is not timed)."
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Batch size of every fit.")
_REPEATS = flags.DEFINE_integer(
    "repeats", 3, "Fits per configuration, interleaved across configurations."
)
_SMOKE = flags.DEFINE_bool(
    "smoke", False, "Tiny run (2,048 images, 2 epochs, 1 repeat) to check the script."
)
_CLOCK = flags.DEFINE_enum(
    "clock",
    "cpu",
    ["cpu", "wall"],
    "What an epoch's time is: 'cpu' = CPU seconds of this process (all its threads; robust "
    "when other jobs load the shared machine), 'wall' = wall-clock seconds.",
)
_JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the results as JSON to this file.")
_TFMOT_WORKER = flags.DEFINE_string(
    "tfmot_worker",
    None,
    "Internal: run the tfmot side for one repeat; the directory holds the "
    "initial weights and receives the results.",
)
_REPEAT_INDEX = flags.DEFINE_integer("repeat_index", 0, "Internal: the repeat a worker runs.")

SPARSITY = 0.92
BITS = 5
TARGET_RATIO = 1.15
SMOKE_IMAGES = 2048
CONFIGS = ("plain", "prune", "cluster")
LABELS = {
    ("keras-dc", "plain"): "plain fit (Keras 3)",
    ("keras-dc", "prune"): f"MagnitudePruning({SPARSITY}, Gradual)",
    ("keras-dc", "cluster"): f"WeightClustering(bits={BITS})",
    ("tfmot", "plain"): "plain fit (tf_keras)",
    ("tfmot", "prune"): "prune_low_magnitude + UpdatePruningStep",
    ("tfmot", "cluster"): f"cluster_weights({2**BITS}, LINEAR, sparse)",
}


# --- shared by both frameworks ----------------------------------------------


def build_model(keras):
    """LeNet-300-100 built with ``keras`` (the Keras 3 or the tf_keras module)."""
    return keras.Sequential(
        [
            keras.Input((784,), name="pixels"),
            keras.layers.Dense(300, activation="relu", name="ip1"),
            keras.layers.Dense(100, activation="relu", name="ip2"),
            keras.layers.Dense(10, name="ip3"),
        ],
        name="lenet_300_100",
    )


def compile_model(keras, model):
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def epoch_timer(callback_base):
    """Two callbacks and a list: put the first callback first and the second last.

    The list receives each epoch's wall time, from before every other
    callback's ``on_epoch_begin`` to after every other callback's
    ``on_epoch_end``. Neither callback has a batch hook, so the timer itself
    does not change how Keras dispatches batch callbacks.
    """
    seconds = []
    state = {}

    class StartClock(callback_base):
        async_safe = True

        def on_epoch_begin(self, epoch, logs=None):
            state["t0"] = _clock()

    class StopClock(callback_base):
        async_safe = True

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(_clock() - state["t0"])

    return StartClock(), StopClock(), seconds


def _clock():
    return time.process_time() if _CLOCK.value == "cpu" else time.perf_counter()


def timed_fit(keras, model, x, y, callbacks, epochs, batch_size):
    """Fits and returns ``(per-epoch seconds, whole fit seconds)``."""
    start, stop, seconds = epoch_timer(keras.callbacks.Callback)
    t0 = time.perf_counter()
    model.fit(
        x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[start, *callbacks, stop]
    )
    return seconds, time.perf_counter() - t0


def load_data(path, smoke):
    from examples.mnist_data import load_mnist

    (x_train, y_train), _ = load_mnist(path)
    x_train = x_train.reshape(-1, 784)
    if smoke:
        x_train, y_train = x_train[:SMOKE_IMAGES], y_train[:SMOKE_IMAGES]
    return x_train, y_train


def run_settings():
    epochs, repeats = _EPOCHS.value, _REPEATS.value
    if _SMOKE.value:
        epochs, repeats = 2, 1
    return epochs, repeats, _BATCH_SIZE.value


def pruning_span(n_images, epochs, batch_size):
    """``(end, frequency)`` of the pruning ramp, in steps: it spans the whole fit."""
    steps = -(-n_images // batch_size) * epochs
    return steps - 1, min(100, max(1, steps // 10))


def kernel_stats(kernels):
    """Sparsity over all kernels and the most distinct non-zero values in one kernel."""
    zeros = sum(int(np.count_nonzero(k == 0)) for k in kernels)
    total = sum(k.size for k in kernels)
    distinct = max(np.unique(k[k != 0]).size for k in kernels)
    return zeros / total, distinct


def progress(framework, repeat, repeats, config, seconds, fit_seconds, note):
    epochs = " ".join(f"{s:.2f}" for s in seconds)
    tag = f"[{framework} {repeat + 1}/{repeats}]"
    print(
        f"{tag:<16s} {LABELS[framework, config]:<42s} epochs {epochs} s "
        f"(fit {fit_seconds:.1f} s){note}",
        flush=True,
    )


# --- keras-dc, Keras 3, in this process ---------------------------------------


def keras_dc_setup(x, y, batch_size):
    """Starting weights (one epoch of dense training) and the same pruned to SPARSITY.

    Every fit starts from trained weights, as compression does in practice
    (pruned random weights all lie near the init's bounds, which would leave
    most clusters empty).
    """
    import keras

    import keras_dc
    from keras_dc import schedules

    keras.utils.set_random_seed(0)
    model = build_model(keras)
    compile_model(keras, model)
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    initial = [w.copy() for w in model.get_weights()]
    compile_model(keras, model)
    model.fit(
        x[:batch_size],
        y[:batch_size],
        batch_size=batch_size,
        epochs=1,
        verbose=0,
        callbacks=[keras_dc.MagnitudePruning(SPARSITY, schedule=schedules.OneShot(), verbose=0)],
    )
    return initial, model.get_weights()


def keras_dc_fit(config, x, y, weights, epochs, batch_size):
    """One timed fit of ``config``; returns ``(seconds, fit seconds, note)``."""
    import keras

    import keras_dc
    from keras_dc import schedules

    model = build_model(keras)
    model.set_weights(weights["pruned" if config == "cluster" else "initial"])
    compile_model(keras, model)
    callbacks = []
    if config == "prune":
        end, frequency = pruning_span(len(x), epochs, batch_size)
        callbacks = [
            keras_dc.MagnitudePruning(
                SPARSITY,
                schedule=schedules.Gradual(begin=0, end=end, frequency=frequency),
                verbose=0,
            )
        ]
    elif config == "cluster":
        callbacks = [keras_dc.WeightClustering(bits=BITS, verbose=0)]
    seconds, fit_seconds = timed_fit(keras, model, x, y, callbacks, epochs, batch_size)
    sparsity, distinct = kernel_stats([layer.kernel.numpy() for layer in model.layers])
    return (
        seconds,
        fit_seconds,
        f"; kernels {sparsity:.1%} zeros, ≤ {distinct} distinct non-zero values",
    )


# --- tfmot, tf_keras, in a subprocess -------------------------------------------


def tfmot_worker(directory, repeat, repeats):
    """Runs the three tfmot configurations once and writes ``tfmot_<repeat>.json``."""
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise RuntimeError(
            "the tfmot worker needs TF_USE_LEGACY_KERAS=1 (tfmot works only with tf_keras)."
        )
    import tensorflow_model_optimization as tfmot
    import tf_keras

    epochs, _, batch_size = run_settings()
    x, y = load_data(_DATA.value, _SMOKE.value)
    with np.load(os.path.join(directory, "initial.npz")) as data:
        initial = [data[f"w{i}"] for i in range(len(data.files))]
    sparsity_api, clustering_api = tfmot.sparsity.keras, tfmot.clustering.keras

    # A pruned and stripped model for clustering, tfmot's way: one step at a constant 92%.
    tf_keras.utils.set_random_seed(0)
    wrapped = sparsity_api.prune_low_magnitude(
        _tf_keras_model(tf_keras, initial),
        pruning_schedule=sparsity_api.ConstantSparsity(SPARSITY, begin_step=0, frequency=1),
    )
    compile_model(tf_keras, wrapped)
    wrapped.fit(
        x[:batch_size],
        y[:batch_size],
        batch_size=batch_size,
        epochs=1,
        verbose=0,
        callbacks=[sparsity_api.UpdatePruningStep()],
    )
    pruned = sparsity_api.strip_pruning(wrapped).get_weights()

    results = {}
    for config in _rotated(repeat):
        if config == "plain":
            model = _tf_keras_model(tf_keras, initial)
            callbacks = []
        elif config == "prune":
            end, frequency = pruning_span(len(x), epochs, batch_size)
            model = sparsity_api.prune_low_magnitude(
                _tf_keras_model(tf_keras, initial),
                pruning_schedule=sparsity_api.PolynomialDecay(
                    initial_sparsity=0.0,
                    final_sparsity=SPARSITY,
                    begin_step=0,
                    end_step=end,
                    frequency=frequency,
                ),
            )
            callbacks = [sparsity_api.UpdatePruningStep()]
        else:
            model = clustering_api.cluster_weights(
                _tf_keras_model(tf_keras, pruned),
                number_of_clusters=2**BITS,
                cluster_centroids_init=clustering_api.CentroidInitialization.LINEAR,
                preserve_sparsity=True,
            )
            callbacks = []
        compile_model(tf_keras, model)
        seconds, fit_seconds = timed_fit(tf_keras, model, x, y, callbacks, epochs, batch_size)
        if config == "prune":
            model = sparsity_api.strip_pruning(model)
        elif config == "cluster":
            model = clustering_api.strip_clustering(model)
        sparsity, distinct = kernel_stats([layer.kernel.numpy() for layer in model.layers])
        note = f"; kernels {sparsity:.1%} zeros, ≤ {distinct} distinct non-zero values"
        progress("tfmot", repeat, repeats, config, seconds, fit_seconds, note)
        results[config] = {"epoch_seconds": seconds, "fit_seconds": fit_seconds}
    info = {"tf_keras": tf_keras.__version__, "tfmot": tfmot.__version__}
    with open(os.path.join(directory, f"tfmot_{repeat}.json"), "w") as f:
        json.dump({"results": results, "versions": info}, f)


def _tf_keras_model(tf_keras, weights):
    model = build_model(tf_keras)
    model.set_weights(weights)
    return model


def _rotated(repeat):
    k = repeat % len(CONFIGS)
    return CONFIGS[k:] + CONFIGS[:k]


def run_tfmot_repeat(directory, repeat):
    args = module_command(
        "benchmarks.callback_overhead",
        f"--tfmot_worker={directory}",
        f"--repeat_index={repeat}",
        f"--epochs={_EPOCHS.value}",
        f"--repeats={_REPEATS.value}",
        f"--batch_size={_BATCH_SIZE.value}",
        f"--smoke={str(_SMOKE.value).lower()}",
        f"--clock={_CLOCK.value}",
    )
    if _DATA.value:
        args.append(f"--data={_DATA.value}")
    env = child_env(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    sys.stdout.flush()
    completed = subprocess.run(args, env=env, stderr=subprocess.PIPE, text=True)
    if completed.returncode:
        sys.stderr.write(completed.stderr)
        raise RuntimeError(
            f"the tfmot worker for repeat {repeat + 1} failed (exit {completed.returncode})."
        )
    with open(os.path.join(directory, f"tfmot_{repeat}.json")) as f:
        return json.load(f)


# --- orchestration and report ---------------------------------------------------


def summarize(framework, config, runs):
    """Median and range of the timed epochs (all but each fit's first) over all repeats."""
    timed = [s for run in runs for s in run["epoch_seconds"][1:]]
    return {
        "framework": framework,
        "config": config,
        "label": LABELS[framework, config],
        "median_epoch_seconds": statistics.median(timed),
        "min_epoch_seconds": min(timed),
        "max_epoch_seconds": max(timed),
        "timed_epochs": len(timed),
        "runs": runs,
    }


def print_report(info, settings, rows):
    print()
    print(
        f"== Callback overhead: LeNet-300-100 on MNIST ({settings['images']:,} training images), "
        f"batch {settings['batch_size']}, Adam"
    )
    print(
        f"   {info['date']}; {info['cpu']}, "
        f"{info['cores']} cores ({info['usable_cores']} usable), {info['gpus']} GPUs; "
        f"Python {info['python']}, TensorFlow {info['tensorflow']}, Keras {info['keras']}, "
        f"tf_keras {info['tf_keras']}, tfmot {info['tfmot']}"
    )
    print(
        f"   {settings['epochs']} epochs per fit, {settings['repeats']} fits per configuration, "
        f"interleaved. Epoch time ({'process CPU seconds, all threads' if _CLOCK.value == 'cpu' else 'wall seconds'}): "
        "median over all fits of each epoch's time, EXCLUDING the "
        "first epoch of every fit (it includes tracing the train function)."
    )
    print(
        f"   Pruning ramps 0 → {SPARSITY:.0%} over the whole fit (events every "
        f"{settings['pruning_frequency']} steps, so during the timed epochs); clustering "
        f"({2**BITS} clusters) starts from a {SPARSITY:.0%}-sparse model."
    )
    print()
    header = (
        f"{'framework':<10s} {'configuration':<42s} {'median s':>9s} {'range s':>13s} "
        f"{'ratio':>6s} {'target':>7s}  result"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        spread = f"{row['min_epoch_seconds']:.2f}–{row['max_epoch_seconds']:.2f}"
        target = f"≤ {row['target']:.2f}" if row["target"] else ""
        result = {True: "pass", False: "FAIL", None: ""}[row["pass"]]
        print(
            f"{row['framework']:<10s} {row['label']:<42s} {row['median_epoch_seconds']:9.3f} "
            f"{spread:>13s} {row['ratio']:5.2f}× {target:>7s}  {result}"
        )
    print()
    print(
        "ratio: median epoch time of the configuration / median epoch time of the plain fit "
        "of the same framework."
    )


def benchmark():
    epochs, repeats, batch_size = run_settings()
    if epochs < 2:
        raise app.UsageError(
            "--epochs must be at least 2: the first epoch of each fit is not timed."
        )
    if repeats < 1 or batch_size < 1:
        raise app.UsageError("--repeats and --batch_size must be at least 1.")
    info = machine_info()
    x, y = load_data(_DATA.value, _SMOKE.value)
    end, frequency = pruning_span(len(x), epochs, batch_size)
    print(
        f"LeNet-300-100, {len(x):,} images, batch {batch_size}, {epochs} epochs per fit, "
        f"{repeats} repeats; pruning ramp to step {end}, events every {frequency} steps",
        flush=True,
    )
    initial, pruned = keras_dc_setup(x, y, batch_size)
    weights = {"initial": initial, "pruned": pruned}
    runs = {(fw, c): [] for fw in ("keras-dc", "tfmot") for c in CONFIGS}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="keras_dc_overhead_") as directory:
        np.savez(
            os.path.join(directory, "initial.npz"), **{f"w{i}": w for i, w in enumerate(initial)}
        )
        for repeat in range(repeats):
            for config in _rotated(repeat):
                seconds, fit_seconds, note = keras_dc_fit(config, x, y, weights, epochs, batch_size)
                progress("keras-dc", repeat, repeats, config, seconds, fit_seconds, note)
                runs["keras-dc", config].append(
                    {"epoch_seconds": seconds, "fit_seconds": fit_seconds}
                )
            worker = run_tfmot_repeat(directory, repeat)
            for config, run in worker["results"].items():
                runs["tfmot", config].append(run)
    rows = []
    for framework in ("keras-dc", "tfmot"):
        plain = summarize(framework, "plain", runs[framework, "plain"])
        for config in CONFIGS:
            row = summarize(framework, config, runs[framework, config])
            row["ratio"] = row["median_epoch_seconds"] / plain["median_epoch_seconds"]
            compressed = framework == "keras-dc" and config != "plain"
            row["target"] = TARGET_RATIO if compressed else None
            row["pass"] = bool(row["ratio"] <= TARGET_RATIO) if compressed else None
            rows.append(row)
    settings = {
        "images": len(x),
        "batch_size": batch_size,
        "epochs": epochs,
        "repeats": repeats,
        "sparsity": SPARSITY,
        "bits": BITS,
        "pruning_end_step": end,
        "pruning_frequency": frequency,
        "smoke": _SMOKE.value,
        "wall_seconds": time.perf_counter() - t0,
        "timing": f"median of per-epoch {_CLOCK.value} times, first epoch of every fit excluded (tracing)",
    }
    print_report(info, settings, rows)
    print(f"wall time {settings['wall_seconds']:.0f} s")
    if _JSON_OUT.value:
        os.makedirs(os.path.dirname(os.path.abspath(_JSON_OUT.value)), exist_ok=True)
        with open(_JSON_OUT.value, "w") as f:
            json.dump({"machine": info, "settings": settings, "results": rows}, f, indent=2)
        print(f"results written to {_JSON_OUT.value}")
    return rows


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _TFMOT_WORKER.value:
        tfmot_worker(_TFMOT_WORKER.value, _REPEAT_INDEX.value, run_settings()[1])
    else:
        benchmark()


if __name__ == "__main__":
    app.run(main)
