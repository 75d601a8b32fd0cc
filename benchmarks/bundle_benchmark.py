"""Bundle size, accuracy, restore speed and conversion cost, side by side in one run.

Three sections, each printed as a table (and, with ``--json_out``, as JSON):

1. **LeNet-300-100 on MNIST**, trained for real but briefly: dense epochs, then
   ``MagnitudePruning`` with a ``Gradual`` schedule (hidden layers to 92%, the
   last layer to 75%) plus retraining epochs, then ``WeightClustering`` (5 bits).
   The bundle from ``converters.convert`` is restored and its test error
   measured in LiteRT on the 10,000 test images. Sizes: bundle (skeleton +
   sidecar) beside the dense float32 ``.tflite`` and beside gzip -9 / zstd -19
   of the clustered ``.tflite`` (how peers ship a compressed model). Huffman
   bits beside the zero-order entropy of all streams (target: within 3%).
2. **Restore speed** of that bundle, in this process, interleaved: Python
   ``converters.decoder.restore_bytes(skeleton, sidecar)`` beside
   ``zlib.decompress(..., wbits=31)`` of (a) the gzip -9 of the DENSE float32
   ``.tflite`` (the model before pruning: what ships without keras-dc) and
   (b) the gzip -9 of the clustered (restored) ``.tflite``. Median of
   ``--repeats`` runs each, after one untimed warm-up run; output MB/s and
   restore time / zlib time (target ≤ 2).
3. **A 25M-parameter model** (``keras.applications.ResNet50(weights=None,
   input_shape=(32, 32, 3), classes=10)``): a few steps on random data with
   ``MagnitudePruning(0.8, OneShot)``, a few with ``WeightClustering()``
   (default bits: 8 for conv, 5 for dense), then ``converters.convert(...,
   picture=False)`` in a child process, so that its peak memory (RSS
   high-water mark) can be read. Conversion wall time split into the report's
   timings, bundle size, and restore speed as in section 2.

gzip -9 is ``gzip.compress(data, compresslevel=9, mtime=0)`` (what the report
uses), decompressed with ``zlib.decompress(data, wbits=31)``. MB = 10^6 bytes.

    python -m benchmarks.bundle_benchmark                    # ~15 min on 2 idle CPU cores (33 min at load 10)
    python -m benchmarks.bundle_benchmark --smoke            # a tiny run (~5 min), to check the script
    python -m benchmarks.bundle_benchmark --skip_large --json_out=out/bundle.json   # sections 1-2, ~2 min
    python -m benchmarks.bundle_benchmark --notime_codecs    # section 3 without re-timing gzip/zstd

Section 3's conversion runs in a child process (this script with --worker), so
the library is imported again there: the run prints a warning when the library
sources changed on disk while it ran.
"""

import gc
import gzip
import json
import os
import resource
import shlex
import statistics
import sys
import tempfile
import time
import traceback
import zlib

import numpy as np
from absl import app, flags

from benchmarks._common import (
    ROOT,
    machine_info,
    memory_kib,
    module_command,
    reset_peak_rss,
    run_child,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_DATA = flags.DEFINE_string(
    "data", None, "mnist.npz (keras layout); default: the shared offline copy."
)
_SMOKE = flags.DEFINE_bool(
    "smoke",
    False,
    "Tiny run to check the script: 2,000 training / 500 test images, one epoch per "
    "stage, 5 restore repeats, and MobileNetV2(alpha=0.35) instead of ResNet50 in section 3.",
)
_SKIP_LARGE = flags.DEFINE_bool("skip_large", False, "Skip section 3 (the 25M-parameter model).")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the results as JSON to this file.")
_WORK_DIR = flags.DEFINE_string(
    "work_dir",
    None,
    "Where bundles and models are written; default: a temporary directory, removed at the end.",
)
_REPEATS = flags.DEFINE_integer(
    "repeats", 31, "Timed runs of each restore method (interleaved), after one warm-up."
)
# Section 1.
_DENSE_EPOCHS = flags.DEFINE_integer("dense_epochs", 4, "LeNet: dense training epochs.")
_PRUNE_EPOCHS = flags.DEFINE_integer(
    "prune_epochs", 3, "LeNet: epochs over which pruning ramps up (Gradual)."
)
_RETRAIN_EPOCHS = flags.DEFINE_integer(
    "retrain_epochs", 1, "LeNet: epochs of retraining after the ramp."
)
_CLUSTER_EPOCHS = flags.DEFINE_integer("cluster_epochs", 1, "LeNet: epochs of centroid retraining.")
_SPARSITY = flags.DEFINE_float("sparsity", 0.92, "LeNet: final sparsity of the hidden layers.")
_LAST_SPARSITY = flags.DEFINE_float(
    "last_sparsity", 0.75, "LeNet: final sparsity of the output layer."
)
_BITS = flags.DEFINE_integer("bits", 5, "LeNet: cluster index bits.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "LeNet: batch size.")
# Section 3.
_LARGE_STEPS = flags.DEFINE_integer(
    "large_steps", 3, "Large model: optimizer steps per stage (pruning, clustering)."
)
_LARGE_BATCH = flags.DEFINE_integer(
    "large_batch", 16, "Large model: batch size of the random data."
)
_LARGE_SPARSITY = flags.DEFINE_float("large_sparsity", 0.8, "Large model: one-shot pruning target.")
_TIME_CODECS = flags.DEFINE_bool(
    "time_codecs",
    True,
    "Large model: after converting, time gzip -9 and zstd -19 of the restored file alone in the "
    "child (the report computes both inside convert; this says how much of its wall time they take).",
)
_LARGE_TIMEOUT = flags.DEFINE_integer(
    "large_timeout", 1500, "Large model: seconds before a child process is killed."
)
# Internal: the child processes of section 3.
_WORKER = flags.DEFINE_enum(
    "worker",
    None,
    ["bundle", "dense_tflite"],
    "Internal: run one conversion of section 3 in this (child) process.",
)
_WORKER_DIR = flags.DEFINE_string(
    "worker_dir", None, "Internal: the child's model and output directory."
)

RESTORE_TARGET = 2.0
HUFFMAN_TARGET = 0.03
MB = 1e6


# --- machine and timing --------------------------------------------------------


def source_fingerprint():
    """SHA-256 (12 hex digits) of the library sources on disk: other engineers edit them while
    benchmarks run, and the child processes of section 3 import them again later."""
    import hashlib

    digest = hashlib.sha256()
    for package in ("converters", "keras_dc"):
        folder = os.path.join(ROOT, package)
        for name in sorted(os.listdir(folder)):
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "rb") as f:
                    digest.update(name.encode() + f.read())
    return digest.hexdigest()[:12]


def gzip9(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def zstd19(data):
    import zstandard

    return zstandard.ZstdCompressor(level=19).compress(data)


def time_interleaved(funcs, repeats):
    """Times each of ``funcs`` (name → callable) ``repeats`` times, interleaved.

    One untimed warm-up call of each first; then in every round each function runs
    once, the order rotated from round to round, so that load on a shared machine
    falls on all of them alike. The garbage collector is off while the clock runs.

    Returns:
        name → list of seconds.
    """
    names = list(funcs)
    for name in names:
        funcs[name]()
    times = {name: [] for name in names}
    gc.collect()
    gc.disable()
    try:
        for r in range(repeats):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                t0 = time.perf_counter()
                funcs[name]()
                times[name].append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return times


def restore_vs_zlib(skeleton, sidecar, dense_tflite, repeats, restored_gz=None):
    """Python restore vs zlib.decompress of gzip -9 (dense and clustered .tflite), one process."""
    from converters import decoder as decoder_lib

    restored = decoder_lib.restore_bytes(skeleton, sidecar)
    dense_gz = gzip9(dense_tflite)
    restored_gz = restored_gz or gzip9(restored)
    if (
        zlib.decompress(dense_gz, wbits=31) != dense_tflite
        or zlib.decompress(restored_gz, wbits=31) != restored
    ):
        raise RuntimeError("gzip round trip failed")
    funcs = {
        "restore": lambda: decoder_lib.restore_bytes(skeleton, sidecar),
        "zlib_dense": lambda: zlib.decompress(dense_gz, wbits=31),
        "zlib_clustered": lambda: zlib.decompress(restored_gz, wbits=31),
    }
    times = time_interleaved(funcs, repeats)
    inputs = {
        "restore": len(skeleton) + len(sidecar),
        "zlib_dense": len(dense_gz),
        "zlib_clustered": len(restored_gz),
    }
    outputs = {
        "restore": len(restored),
        "zlib_dense": len(dense_tflite),
        "zlib_clustered": len(restored),
    }
    rows = {}
    for name, seconds in times.items():
        median = statistics.median(seconds)
        rows[name] = {
            "input_bytes": inputs[name],
            "output_bytes": outputs[name],
            "median_s": median,
            "min_s": min(seconds),
            "max_s": max(seconds),
            "output_mb_per_s": outputs[name] / median / MB,
            "runs": len(seconds),
            "seconds": seconds,
        }
    ratios = {
        "restore_over_zlib_dense": rows["restore"]["median_s"] / rows["zlib_dense"]["median_s"],
        "restore_over_zlib_clustered": rows["restore"]["median_s"]
        / rows["zlib_clustered"]["median_s"],
    }
    # Per-round ratios too: each round holds one run of each, close in time.
    per_round = [a / b for a, b in zip(times["restore"], times["zlib_clustered"])]
    ratios["median_per_round_over_zlib_clustered"] = statistics.median(per_round)
    return {
        "rows": rows,
        "ratios": ratios,
        "target": RESTORE_TARGET,
        "pass_dense": ratios["restore_over_zlib_dense"] <= RESTORE_TARGET,
        "pass_clustered": ratios["restore_over_zlib_clustered"] <= RESTORE_TARGET,
    }


# --- section 1: LeNet-300-100 on MNIST --------------------------------------------------


def lenet_settings():
    epochs = (
        _DENSE_EPOCHS.value,
        _PRUNE_EPOCHS.value,
        _RETRAIN_EPOCHS.value,
        _CLUSTER_EPOCHS.value,
    )
    if _SMOKE.value:
        epochs = (1, 1, 0, 1)
    if min(epochs) < 0 or epochs[0] < 1 or epochs[1] < 1 or epochs[3] < 1:
        raise app.UsageError(
            "--dense_epochs, --prune_epochs and --cluster_epochs must be ≥ 1, --retrain_epochs ≥ 0."
        )
    return dict(
        zip(("dense_epochs", "prune_epochs", "retrain_epochs", "cluster_epochs"), epochs),
        sparsity=_SPARSITY.value,
        last_sparsity=min(_LAST_SPARSITY.value, _SPARSITY.value),
        bits=_BITS.value,
        batch_size=_BATCH_SIZE.value,
    )


def lenet_section(work):
    import keras

    import converters
    import keras_dc
    from converters import export
    from examples.mnist_data import build_model as build_lenet
    from examples.mnist_data import compile_model as compile_lenet
    from examples.mnist_data import litert_error, load_mnist
    from keras_dc import schedules

    s = lenet_settings()
    (x_train, y_train), (x_test, y_test) = load_mnist(_DATA.value)
    x_train, x_test = x_train.reshape(-1, 784), x_test.reshape(-1, 784)
    if _SMOKE.value:
        x_train, y_train, x_test, y_test = (
            x_train[:2000],
            y_train[:2000],
            x_test[:500],
            y_test[:500],
        )
    s.update(train_images=len(x_train), test_images=len(x_test))
    keras.utils.set_random_seed(0)
    model = build_lenet()
    compile_lenet(model, 1e-3)
    stage_s = {}
    errors = {}

    print(f"-- LeNet: dense training, {s['dense_epochs']} epochs", flush=True)
    t0 = time.perf_counter()
    model.fit(x_train, y_train, batch_size=s["batch_size"], epochs=s["dense_epochs"], verbose=2)
    stage_s["dense_fit"] = time.perf_counter() - t0
    errors["dense_keras"] = 1 - model.evaluate(x_test, y_test, verbose=0)[1]
    t0 = time.perf_counter()
    dense_tflite = export.to_tflite(model)  # the baseline of section 2 (a): no keras-dc
    stage_s["dense_tflite_convert"] = time.perf_counter() - t0
    errors["dense_tflite_litert"] = litert_error(dense_tflite, x_test, y_test)

    prune_epochs = s["prune_epochs"]
    print(
        f"-- LeNet: pruning to {s['sparsity']:.0%} (ip3 {s['last_sparsity']:.0%}), Gradual over "
        f"{prune_epochs} epochs + {s['retrain_epochs']} retraining",
        flush=True,
    )
    compile_lenet(model, 3e-4)
    schedule = (
        schedules.Gradual(begin=0, end=prune_epochs - 1, frequency=1, unit="epoch")
        if prune_epochs > 1
        else schedules.OneShot()
    )
    pruning = keras_dc.MagnitudePruning(
        s["sparsity"],
        schedule=schedule,
        overrides={model.get_layer("ip3"): s["last_sparsity"]},
        min_size=1,
        verbose=0,
    )
    t0 = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        batch_size=s["batch_size"],
        epochs=prune_epochs + s["retrain_epochs"],
        verbose=2,
        callbacks=[pruning],
    )
    stage_s["prune_fit"] = time.perf_counter() - t0
    errors["pruned_keras"] = 1 - model.evaluate(x_test, y_test, verbose=0)[1]

    print(
        f"-- LeNet: clustering, {2 ** s['bits']} centroids per layer, {s['cluster_epochs']} epochs",
        flush=True,
    )
    compile_lenet(model, 1e-4)
    t0 = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        batch_size=s["batch_size"],
        epochs=s["cluster_epochs"],
        verbose=2,
        callbacks=[keras_dc.WeightClustering(bits=s["bits"], min_size=1, verbose=0)],
    )
    stage_s["cluster_fit"] = time.perf_counter() - t0
    errors["clustered_keras"] = 1 - model.evaluate(x_test, y_test, verbose=0)[1]
    layer_table = keras_dc.format_layer_report(keras_dc.layer_report(model, min_size=1))

    directory = os.path.join(work, "lenet_bundle")
    print(f"-- LeNet: converting to {directory}", flush=True)
    t0 = time.perf_counter()
    result = converters.convert(model, directory, picture=False, verbose=0)
    stage_s["convert_total"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    restored = converters.restore(directory)
    stage_s["restore_from_files"] = time.perf_counter() - t0
    errors["bundle_litert"] = litert_error(restored, x_test, y_test)
    skeleton, sidecar = converters.load_bundle(directory)
    with open(os.path.join(directory, "model.report.txt")) as f:
        report_table = f.read()

    print(f"-- LeNet: restore speed, {_repeats()} interleaved runs each", flush=True)
    speed = restore_vs_zlib(skeleton, sidecar, dense_tflite, _repeats())
    return {
        "settings": s,
        "errors": errors,
        "stage_seconds": stage_s,
        "report": result.report,
        "dense_tflite_gzip9_bytes": len(gzip9(dense_tflite)),
        "dense_tflite_zstd19_bytes": len(zstd19(dense_tflite)),
        "max_abs_diff": result.max_abs_diff,
        "layer_table": layer_table,
        "report_table": report_table,
        "speed": speed,
    }


def _repeats():
    return 5 if _SMOKE.value else _REPEATS.value


# --- section 3: a 25M-parameter model, conversion in a child process -------------------------


def build_large(keras):
    if _SMOKE.value:
        return keras.applications.MobileNetV2(
            alpha=0.35, weights=None, input_shape=(32, 32, 3), classes=10
        )
    return keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)


def worker(kind, directory):
    """Runs in a child: one conversion of the large model; writes worker_<kind>.json."""
    out = {"kind": kind, "step": "import", "ok": False, "source": source_fingerprint()}
    path = os.path.join(directory, f"worker_{kind}.json")

    def save():
        with open(path, "w") as f:
            json.dump(out, f, indent=2)

    try:
        import keras

        import converters
        from converters import export

        out["step"] = "load_model"
        t0 = time.perf_counter()
        model = keras.saving.load_model(
            os.path.join(directory, f"{'dense' if kind == 'dense_tflite' else 'compressed'}.keras"),
            compile=False,
        )
        out["load_s"] = time.perf_counter() - t0
        out["param_count"] = int(model.count_params())
        out["param_bytes"] = int(
            sum(np.prod(w.shape) * np.dtype(w.dtype).itemsize for w in model.weights)
        )
        gc.collect()
        rss, hwm = memory_kib()
        out.update(rss_before_kib=rss, hwm_before_kib=hwm, peak_reset=reset_peak_rss())
        save()
        if kind == "dense_tflite":
            out["step"] = "converters.export.to_tflite"
            t0 = time.perf_counter()
            flat = export.to_tflite(model)
            out["convert_s"] = time.perf_counter() - t0
            with open(os.path.join(directory, "dense.tflite"), "wb") as f:
                f.write(flat)
        else:
            out["step"] = "converters.convert"
            save()
            t0 = time.perf_counter()
            result = converters.convert(
                model, os.path.join(directory, "bundle"), picture=False, verbose=1
            )
            out["convert_wall_s"] = time.perf_counter() - t0
            out["report"] = result.report
            out["max_abs_diff"] = result.max_abs_diff
        rss, hwm = memory_kib()
        out.update(
            rss_after_kib=rss,
            hwm_after_kib=hwm,
            ru_maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        )
        if kind == "bundle":
            # The report measures gzip -9 and zstd -19 of the restored file inside convert;
            # time them alone so the "other" part of the wall time can be explained.
            out["step"] = "codec timing"
            restored = converters.restore(os.path.join(directory, "bundle"))
            # How informative convert's max |LiteRT - Keras| is: a random-init ResNet's softmax
            # outputs can be one-hot for every random input, and then both sides agree exactly.
            from converters import litert

            outputs = litert.run(restored, litert.sample_inputs_for(restored, 8, 0))
            first = np.concatenate([np.ravel(batch[0]) for batch in outputs])
            out["verification_outputs"] = {
                "min": float(first.min()),
                "max": float(first.max()),
                "distinct": int(np.unique(first).size),
                "count": int(first.size),
            }
            for name, fn in (("gzip9", gzip9), ("zstd19", zstd19)) if _TIME_CODECS.value else ():
                t0 = time.perf_counter()
                packed = fn(restored)
                out[f"{name}_of_restored_s"] = time.perf_counter() - t0
                if name == "gzip9":  # the parent times its decompression (saves compressing twice)
                    with open(os.path.join(directory, "restored.tflite.gz"), "wb") as f:
                        f.write(packed)
        out["step"] = "done"
        out["ok"] = True
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which says where it failed
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()
        save()
        raise
    save()


def run_worker(kind, directory):
    cmd = module_command(
        "benchmarks.bundle_benchmark", f"--worker={kind}", f"--worker_dir={directory}"
    )
    if _SMOKE.value:
        cmd.append("--smoke")
    if not _TIME_CODECS.value:
        cmd.append("--notime_codecs")
    print(f"-- large: child `{shlex.join(cmd)}`", flush=True)
    log_path = os.path.join(directory, f"worker_{kind}.log")
    rc, timed_out, wall = run_child(cmd, log_path, _LARGE_TIMEOUT.value)
    children_maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    path = os.path.join(directory, f"worker_{kind}.json")
    result = {"kind": kind, "ok": False, "step": "start"}
    if os.path.exists(path):
        with open(path) as f:
            result = json.load(f)
    with open(log_path, errors="replace") as f:
        log_tail = f.read()[-3000:]
    result.update(
        command=shlex.join(cmd),
        returncode=rc,
        timed_out=timed_out,
        child_wall_s=wall,
        rusage_children_maxrss_kib=children_maxrss,
        log_path=log_path,
    )
    if not result.get("ok"):
        result["log_tail"] = log_tail
    return result


def large_section(work):
    """Section 3. On a failure, returns what was measured so far with the step that failed."""
    out = {"failed_step": None}
    try:
        _large_steps(work, out)
    except Exception as exc:  # noqa: BLE001 - a failure of section 3 is a result to report
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()
        print(f"   FAILED at step {out['step']!r}: {out['error']}", flush=True)
        out["failed_step"] = out["step"]
    return out


def _large_steps(work, out):
    import keras

    import keras_dc
    from keras_dc import schedules

    out["step"] = "build the model"
    directory = os.path.join(work, "large")
    os.makedirs(directory, exist_ok=True)
    steps, batch = (1, 4) if _SMOKE.value else (_LARGE_STEPS.value, _LARGE_BATCH.value)
    keras.utils.set_random_seed(0)
    out["stage_seconds"] = stage_s = {}
    t0 = time.perf_counter()
    model = build_large(keras)
    stage_s["build"] = time.perf_counter() - t0
    out.update(
        model=model.name,
        params=int(model.count_params()),
        steps=steps,
        batch=batch,
        sparsity=_LARGE_SPARSITY.value,
        param_bytes=int(sum(np.prod(w.shape) * np.dtype(w.dtype).itemsize for w in model.weights)),
    )
    print(
        f"-- large: {model.name}, {out['params']:,} parameters ({out['param_bytes'] / MB:.1f} MB), {steps} steps "
        f"of batch {batch} per stage, random data",
        flush=True,
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps * batch, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, size=(steps * batch,))
    model.compile(
        keras.optimizers.SGD(1e-3, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=False),
    )
    out["step"] = "save the dense model"
    t0 = time.perf_counter()
    model.save(os.path.join(directory, "dense.keras"))  # the baseline of (a): before keras-dc
    stage_s["save_dense"] = time.perf_counter() - t0

    out["step"] = "fit with MagnitudePruning"
    pruning = keras_dc.MagnitudePruning(
        _LARGE_SPARSITY.value, schedule=schedules.OneShot(), verbose=0
    )
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, callbacks=[pruning])
    stage_s["prune_fit"] = time.perf_counter() - t0
    out["selected_pruning"] = len(pruning.selected)
    print(
        f"   pruning fit: {stage_s['prune_fit']:.1f} s ({len(pruning.selected)} variables)",
        flush=True,
    )
    out["step"] = "fit with WeightClustering"
    clustering = keras_dc.WeightClustering(verbose=0)
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, callbacks=[clustering])
    stage_s["cluster_fit"] = time.perf_counter() - t0
    out["selected_clustering"] = len(clustering.selected)
    print(
        f"   clustering fit: {stage_s['cluster_fit']:.1f} s ({len(clustering.selected)} variables)",
        flush=True,
    )
    out["step"] = "save the compressed model"
    t0 = time.perf_counter()
    model.save(os.path.join(directory, "compressed.keras"))
    stage_s["save_compressed"] = time.perf_counter() - t0
    del model
    gc.collect()

    # The bundle child first: RUSAGE_CHILDREN's high-water mark then covers it alone.
    out["step"] = "conversion child (converters.convert)"
    out["bundle_worker"] = bundle = run_worker("bundle", directory)
    if not bundle.get("ok"):
        raise RuntimeError(
            f"the child failed at its step {bundle.get('step')!r}: {bundle.get('error', 'see its log')}"
        )
    print(
        f"   conversion child: {bundle['child_wall_s']:.1f} s wall, convert {bundle['convert_wall_s']:.1f} s",
        flush=True,
    )
    out["step"] = "dense .tflite child (converters.export.to_tflite of the model before pruning)"
    out["dense_worker"] = dense = run_worker("dense_tflite", directory)
    if not dense.get("ok"):
        raise RuntimeError(
            f"the child failed at its step {dense.get('step')!r}: {dense.get('error', 'see its log')}"
        )
    import converters

    out["step"] = "restore speed"
    skeleton, sidecar = converters.load_bundle(os.path.join(directory, "bundle"))
    with open(os.path.join(directory, "dense.tflite"), "rb") as f:
        dense_tflite = f.read()
    gz_path = os.path.join(directory, "restored.tflite.gz")
    restored_gz = None
    if os.path.exists(gz_path):
        with open(gz_path, "rb") as f:
            restored_gz = f.read()
    out["dense_tflite_bytes"] = len(dense_tflite)
    print(f"-- large: restore speed, {_repeats()} interleaved runs each", flush=True)
    out["speed"] = restore_vs_zlib(skeleton, sidecar, dense_tflite, _repeats(), restored_gz)
    out["dense_tflite_gzip9_bytes"] = out["speed"]["rows"]["zlib_dense"]["input_bytes"]
    out["step"] = "done"


# --- printing --------------------------------------------------------------------------------


def _pct(x):
    return f"{100 * x:.2f}%"


def _b(n):
    return f"{n:,d} B" if n is not None else "n/a"


def print_table(rows, head=("", "")):
    width = max(len(r[0]) for r in rows + [head])
    lines = [f"  {head[0]:<{width}s}  {head[1]}"] if head[0] else []
    lines += [f"  {label:<{width}s}  {value}" for label, value in rows]
    print("\n".join(lines))


def print_speed(speed, what):
    rows = speed["rows"]
    labels = {
        "restore": "converters.decoder.restore_bytes(skeleton, sidecar)",
        "zlib_dense": "zlib.decompress(gzip -9 of DENSE float32 .tflite)",
        "zlib_clustered": "zlib.decompress(gzip -9 of clustered .tflite)",
    }
    head = f"  {'method':<52s} {'input B':>12s} {'output B':>12s} {'median ms':>10s} {'range ms':>17s} {'out MB/s':>9s}"
    print(
        f"Restore speed ({what}): median of {rows['restore']['runs']} interleaved runs each, one process"
    )
    print(head)
    print("  " + "-" * (len(head) - 2))
    for name, r in rows.items():
        spread = f"{1e3 * r['min_s']:.2f}–{1e3 * r['max_s']:.2f}"
        print(
            f"  {labels[name]:<52s} {r['input_bytes']:>12,d} {r['output_bytes']:>12,d} "
            f"{1e3 * r['median_s']:>10.2f} {spread:>17s} {r['output_mb_per_s']:>9.1f}"
        )
    ratios = speed["ratios"]
    for key, label, ok in (
        ("restore_over_zlib_dense", "(a) restore / zlib of dense", speed["pass_dense"]),
        ("restore_over_zlib_clustered", "(b) restore / zlib of clustered", speed["pass_clustered"]),
    ):
        print(
            f"  {label:<34s} {ratios[key]:5.2f}×   target ≤ {speed['target']:.0f}  "
            f"{'pass' if ok else 'FAIL'}"
        )
    print(
        f"  {'(b) per-round median of the ratio':<34s} {ratios['median_per_round_over_zlib_clustered']:5.2f}×"
    )


def print_lenet(res):
    s, e, t = res["settings"], res["errors"], res["report"]["totals"]
    print()
    print(
        f"== 1. LeNet-300-100 on MNIST ({s['train_images']:,} training images, batch {s['batch_size']}, Adam)"
    )
    print(
        f"   dense {s['dense_epochs']} epochs; MagnitudePruning to {s['sparsity']:.0%} (ip3 {s['last_sparsity']:.0%}), "
        f"Gradual over {s['prune_epochs']} epochs + {s['retrain_epochs']} retraining; "
        f"WeightClustering({s['bits']} bits) {s['cluster_epochs']} epoch(s)"
    )
    print()
    print(res["layer_table"])
    print()
    print(res["report_table"])
    print()
    print_table(
        [
            ("dense Keras model", _pct(e["dense_keras"])),
            ("dense float32 .tflite in LiteRT", _pct(e["dense_tflite_litert"])),
            ("pruned (Keras)", _pct(e["pruned_keras"])),
            ("pruned + clustered (Keras)", _pct(e["clustered_keras"])),
            ("restored bundle in LiteRT", _pct(e["bundle_litert"])),
            ("max |LiteRT - Keras| (verification)", f"{res['max_abs_diff']:.2e}"),
        ],
        head=(f"test error ({s['test_images']:,} test images)", ""),
    )
    print()
    bundle = t["bundle_bytes"]
    rows = [
        ("dense float32 .tflite", t["dense_tflite_bytes"]),
        ("  its gzip -9", res["dense_tflite_gzip9_bytes"]),
        ("  its zstd -19", res["dense_tflite_zstd19_bytes"]),
        ("clustered .tflite (restored)", t["restored_bytes"]),
        ("  its gzip -9 (peers' way)", t["restored_gzip9_bytes"]),
        ("  its zstd -19 (peers' way)", t["restored_zstd19_bytes"]),
        ("bundle = skeleton + sidecar", bundle),
        ("  skeleton", t["skeleton_bytes"]),
        ("  sidecar", t["sidecar_bytes"]),
    ]
    head = f"  {'file':<32s} {'bytes':>12s} {'÷ bundle':>9s}"
    print(head)
    print("  " + "-" * (len(head) - 2))
    for label, n in rows:
        ratio = f"{n / bundle:8.2f}×" if n and not label.startswith("  s") else ""
        print(
            f"  {label:<32s} {n:>12,d} {ratio:>9s}"
            if n is not None
            else f"  {label:<32s} {'n/a':>12s}"
        )
    over = t["huffman_over_entropy"]
    print(
        f"  Huffman {t['huffman_bits']:,} bits vs zero-order entropy {t['entropy_bits']:,.0f} bits over all "
        f"streams: +{100 * over:.2f}%   target ≤ +{100 * HUFFMAN_TARGET:.0f}%  "
        f"{'pass' if over <= HUFFMAN_TARGET else 'FAIL'}"
    )
    tm = res["report"]["timings"]
    print(
        f"  timings: fit dense {res['stage_seconds']['dense_fit']:.1f} s, prune {res['stage_seconds']['prune_fit']:.1f} s, "
        f"cluster {res['stage_seconds']['cluster_fit']:.1f} s; convert total {res['stage_seconds']['convert_total']:.1f} s "
        f"(report: convert_s {tm['convert_s']:.2f}, encode_s {tm['encode_s']:.2f}, restore_s {tm['restore_s']:.3f})"
    )
    print()
    print("== 2. Restore speed of the LeNet bundle")
    print_speed(res["speed"], "LeNet-300-100")


def print_large(res):
    print()
    if "model" not in res:
        print(f"== 3. Large model: FAILED at step {res['failed_step']!r}")
        print(res.get("traceback", ""))
        return
    print(
        f"== 3. Large model: {res['model']}, {res['params']:,} parameters "
        f"({res['param_bytes'] / MB:.1f} MB of float32), input 32×32×3, 10 classes"
    )
    st = res["stage_seconds"]
    if "cluster_fit" in st:
        print(
            f"   {res['steps']} SGD steps of batch {res['batch']} (random data) with MagnitudePruning("
            f"{res['sparsity']}, OneShot) on {res['selected_pruning']} variables: {st['prune_fit']:.1f} s; "
            f"{res['steps']} with WeightClustering() (8 bits conv, 5 bits dense) on {res['selected_clustering']} "
            f"variables: {st['cluster_fit']:.1f} s (each fit includes tracing the train function)"
        )
    b = res.get("bundle_worker")
    if b is not None:
        print(f"   conversion child: `{b['command']}`")
    if b is not None and b.get("ok"):
        _print_conversion(res, b)
    if "speed" in res:
        print()
        print_speed(res["speed"], res["model"])
    if res.get("failed_step"):
        print()
        print(f"   SECTION 3 FAILED at step {res['failed_step']!r}: {res.get('error')}")
        for worker_result in (res.get("bundle_worker"), res.get("dense_worker")):
            if worker_result and not worker_result.get("ok"):
                print(
                    f"   child {worker_result['kind']!r}: returncode {worker_result.get('returncode')}, "
                    f"timed out: {worker_result.get('timed_out')}, {worker_result.get('child_wall_s', 0):.0f} s, "
                    f"its last step {worker_result.get('step')!r}, log {worker_result.get('log_path')}"
                )
                print((worker_result.get("traceback") or worker_result.get("log_tail", ""))[-3000:])
        print(res.get("traceback", "")[-3000:])


def _print_conversion(res, b):
    t, tm = b["report"]["totals"], b["report"]["timings"]
    wall = b["convert_wall_s"]
    other = wall - tm["convert_s"] - tm["encode_s"] - tm["restore_s"]
    codecs = b.get("gzip9_of_restored_s", 0) + b.get("zstd19_of_restored_s", 0)
    print()
    print("Conversion wall time (converters.convert, picture=False), split by the report's timings")
    print_table(
        [
            (
                "convert_s (TFLite converter)",
                f"{tm['convert_s']:8.1f} s  {tm['convert_s'] / wall:6.1%}",
            ),
            (
                "encode_s (encoder.build_bundle)",
                f"{tm['encode_s']:8.1f} s  {tm['encode_s'] / wall:6.1%}",
            ),
            (
                "restore_s (decoder.restore_bytes check)",
                f"{tm['restore_s']:8.1f} s  {tm['restore_s'] / wall:6.1%}",
            ),
            ("other (LiteRT verify, report, write)", f"{other:8.1f} s  {other / wall:6.1%}"),
            (
                "  of which gzip -9 + zstd -19 of restored*",
                f"{codecs:8.1f} s  {codecs / wall:6.1%}  "
                f"(gzip {b.get('gzip9_of_restored_s', 0):.1f} s, zstd {b.get('zstd19_of_restored_s', 0):.1f} s)"
                if "gzip9_of_restored_s" in b
                else "not timed (--notime_codecs)",
            ),
            ("total", f"{wall:8.1f} s"),
            (
                "child process wall (TF import, load, convert, codec timing)",
                f"{b['child_wall_s']:8.1f} s",
            ),
        ]
    )
    print(
        "  * the report computes both sizes inside convert; timed again alone in the child afterwards"
    )
    print()
    kib = 1024
    growth = (b["hwm_after_kib"] - b["rss_before_kib"]) * kib
    print("Peak memory of the conversion (RSS high-water mark)")
    print_table(
        [
            ("model parameter bytes", f"{res['param_bytes'] / MB:9.1f} MB"),
            (
                "child RSS before convert (TF + model loaded)",
                f"{b['rss_before_kib'] * kib / MB:9.1f} MB",
            ),
            (
                "child peak RSS during convert (VmHWM"
                + (", reset before)" if b["peak_reset"] else ", NOT reset)"),
                f"{b['hwm_after_kib'] * kib / MB:9.1f} MB",
            ),
            (
                "  growth over RSS before convert",
                f"{growth / MB:9.1f} MB = {growth / res['param_bytes']:.1f}× parameter bytes",
            ),
            (
                "child ru_maxrss (whole life, incl. codec timing)",
                f"{b['ru_maxrss_kib'] * kib / MB:9.1f} MB",
            ),
            (
                "parent RUSAGE_CHILDREN ru_maxrss",
                f"{b['rusage_children_maxrss_kib'] * kib / MB:9.1f} MB",
            ),
        ]
    )
    print()
    bundle = t["bundle_bytes"]
    head = f"  {'file':<50s} {'bytes':>16s} {'÷ bundle':>9s}"
    print(head)
    print("  " + "-" * (len(head) - 2))
    rows = [
        ("dense float32 .tflite (report, compressed model)", t["dense_tflite_bytes"]),
        ("dense float32 .tflite before pruning", res.get("dense_tflite_bytes")),
        ("  its gzip -9", res.get("dense_tflite_gzip9_bytes")),
        ("clustered .tflite (restored)", t["restored_bytes"]),
        ("  its gzip -9 (peers' way)", t["restored_gzip9_bytes"]),
        ("  its zstd -19 (peers' way)", t["restored_zstd19_bytes"]),
        ("bundle = skeleton + sidecar", bundle),
        ("  skeleton", t["skeleton_bytes"]),
        ("  sidecar", t["sidecar_bytes"]),
    ]
    for label, n in rows:
        ratio = f"{n / bundle:8.2f}×" if n and not label.startswith("  s") else ""
        print(f"  {label:<50s} {_b(n):>16s} {ratio:>9s}")
    print(
        f"  kept {t['kept']:.2%} of {t['weights']:,} weights; Huffman {t['huffman_bits']:,} bits vs entropy "
        f"{t['entropy_bits']:,.0f} bits (+{100 * t['huffman_over_entropy']:.2f}%); "
        f"max |LiteRT - Keras| {b['max_abs_diff']:.2e}; per-buffer table: {b['log_path']}"
    )
    v = b.get("verification_outputs")
    if v:
        print(
            f"  LiteRT outputs on convert's 8 random verification inputs: {v['distinct']} distinct values of "
            f"{v['count']}, range [{v['min']:.3g}, {v['max']:.3g}]"
            + (
                "  <- near-constant: the max |LiteRT - Keras| check says little here"
                if v["distinct"] <= 3 or v["max"] - v["min"] < 1e-3
                else ""
            )
        )
    if res.get("dense_worker", {}).get("ok"):
        print(
            f"  dense .tflite child: {res['dense_worker']['convert_s']:.1f} s convert, "
            f"`{res['dense_worker']['command']}`"
        )


# --- main ------------------------------------------------------------------------------------


def benchmark():
    if _REPEATS.value < 1:
        raise app.UsageError("--repeats must be at least 1.")
    info = machine_info()
    t_start = time.perf_counter()
    results = {
        "info": info,
        "command": shlex.join([sys.executable] + sys.argv),
        "smoke": _SMOKE.value,
        "source_at_start": source_fingerprint(),
    }
    with tempfile.TemporaryDirectory(prefix="keras_dc_bundle_bench_") as tmp:
        work = _WORK_DIR.value or tmp
        os.makedirs(work, exist_ok=True)
        results["lenet"] = lenet_section(work)
        results["lenet"]["section_s"] = time.perf_counter() - t_start
        if not _SKIP_LARGE.value:
            t0 = time.perf_counter()
            results["large"] = large_section(work)
            results["large_section_s"] = time.perf_counter() - t0
    results["wall_s"] = time.perf_counter() - t_start
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["source_at_end"] = source_fingerprint()
    seen = {results["source_at_start"], results["source_at_end"]}
    seen |= {
        results.get("large", {}).get(k, {}).get("source") for k in ("bundle_worker", "dense_worker")
    } - {None}

    if _JSON_OUT.value:
        os.makedirs(os.path.dirname(os.path.abspath(_JSON_OUT.value)), exist_ok=True)
        with open(_JSON_OUT.value, "w") as f:
            json.dump(results, f, indent=2, default=float)
        print(f"JSON written to {_JSON_OUT.value}", flush=True)
    print()
    print("=" * 100)
    print(
        "keras-dc bundle benchmark"
        + (" (SMOKE: tiny, figures meaningless)" if _SMOKE.value else "")
    )
    print(
        f"   {info['date']}; {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"{info['memory_gib']} GiB; load average {info['load_average_at_start']} at start, "
        f"{results['load_average_at_end']} at end (shared machine)"
    )
    print(
        f"   Python {info['python']}, NumPy {info['numpy']}, TensorFlow {info['tensorflow']}, Keras {info['keras']}, "
        f"ai-edge-litert {info['ai_edge_litert']}, zstandard {info['zstandard']}, zlib {info['zlib']}"
    )
    print(f"   command: {results['command']}")
    if len(seen) > 1:
        print(
            f"   WARNING: the library sources (converters/, keras_dc/) changed during the run "
            f"(fingerprints {sorted(seen)}): the sections, or the parent and its children, ran different code"
        )
    else:
        print(
            f"   library sources unchanged during the run (fingerprint {results['source_at_start']})"
        )
    print(
        "   gzip -9 = gzip.compress(data, 9, mtime=0), decompressed by zlib.decompress(data, wbits=31); MB = 10^6 B"
    )
    print_lenet(results["lenet"])
    if "large" in results:
        print_large(results["large"])
    print()
    print(f"total wall time {results['wall_s']:.0f} s")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _WORKER.value:
        if not _WORKER_DIR.value:
            raise app.UsageError("--worker needs --worker_dir.")
        worker(_WORKER.value, _WORKER_DIR.value)
    else:
        benchmark()


if __name__ == "__main__":
    app.run(main)
