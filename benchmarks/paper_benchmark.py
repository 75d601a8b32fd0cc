"""The paper's two MNIST rows, keras-dc beside tfmot, with the same data, seed and epochs.

For LeNet-300-100 and LeNet-5 (the recipes of ``examples/lenet_300_100.py`` and
``examples/lenet5.py``, each with fewer dense and final retraining epochs, so the
whole run, both sides, stays under an hour on 2 CPU cores):

* keras-dc (Keras 3, this process): dense → iterative ``MagnitudePruning`` →
  ``WeightClustering`` → bundle. Test error after each stage, and the size
  after each stage: pruned and pruned + clustered counted the paper's way
  (weights + 5-bit relative indices + codebooks, biases as float32; fixed
  widths, no skeleton), the real bundle of the pruned model, and the real
  Huffman-coded bundle (skeleton + sidecar, every byte a phone receives); test
  error of the restored bundle in LiteRT; generic codecs (gzip -9, zstd -19) on
  the restored, clustered ``.tflite``.
* tfmot (tf_keras, in a subprocess with ``TF_USE_LEGACY_KERAS=1``): the same
  initial weights, the same augmented data, dense fit; ``prune_low_magnitude``
  per layer with the same targets (``PolynomialDecay`` over the same pruning
  epochs); ``strip_pruning``; ``cluster_weights`` per layer with the same
  number of clusters (LINEAR init, ``preserve_sparsity=True``);
  ``strip_clustering``; converted with the standard TFLite converter. Test
  error of the ``.tflite`` in LiteRT and its size raw / gzip -9 / zstd -19.

Ratios are against the dense float32 ``.tflite``.

    python -m benchmarks.paper_benchmark                     # not yet timed in full (see the report)
    python -m benchmarks.paper_benchmark --smoke             # a tiny subset, for CI
    python -m benchmarks.paper_benchmark --models=lenet_300_100 --json_out=out/paper.json
"""

import dataclasses
import datetime
import gzip
import json
import os
import platform
import subprocess
import tempfile
import time

import numpy as np
from absl import app, flags

from benchmarks._common import ROOT, child_env, module_command

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _define_flags():
    """The command line (defined only when run as a script: other benchmarks import this module)."""
    global _DATA, _SMOKE, _MODELS, _SEED, _OUT, _JSON_OUT, _TFMOT_WORKER
    _DATA = flags.DEFINE_string(
        "data", None, "mnist.npz (keras layout); default: the shared offline copy."
    )
    _SMOKE = flags.DEFINE_bool(
        "smoke", False, "Tiny run (2k images, 1 epoch per stage) to check the script."
    )
    _MODELS = flags.DEFINE_list("models", ["lenet_300_100", "lenet5"], "Models to run.")
    _SEED = flags.DEFINE_integer(
        "seed", 0, "Random seed (weights, shuffling, shifts) shared by both sides."
    )
    _OUT = flags.DEFINE_string(
        "out", None, "Working directory for bundles; default: a temporary one."
    )
    _JSON_OUT = flags.DEFINE_string(
        "json_out", None, "Also write the results as JSON to this file."
    )
    _TFMOT_WORKER = flags.DEFINE_string(
        "tfmot_worker", None, "Internal: run the tfmot side in this directory."
    )


GAP_BITS = 5  # the paper's relative-index width on LeNet


def _recipes():
    """Per model: the example's module and the benchmark's (shorter) recipe."""
    from examples import lenet5, lenet_300_100

    return {
        # distill=0: both sides train on the labels alone (the tfmot side has no teacher);
        # shifted images in every stage (the run recorded in BENCHMARKS.md).
        "lenet_300_100": (
            lenet_300_100,
            dataclasses.replace(
                lenet_300_100.recipe(),
                dense_epochs=12,
                prune_final_epochs=6,
                distill=0.0,
                retrain_shifts=True,
            ),
        ),
        "lenet5": (
            lenet5,
            dataclasses.replace(lenet5.recipe(), dense_epochs=4, prune_final_epochs=3, distill=0.0),
        ),
    }


def load_data(name, path, smoke):
    from examples.mnist_data import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist(path)
    if smoke:
        x_train, y_train, x_test, y_test = (
            x_train[:2000],
            y_train[:2000],
            x_test[:500],
            y_test[:500],
        )
    if name == "lenet5":
        return (x_train[..., None], y_train), (x_test[..., None], y_test)
    return (x_train, y_train), (x_test.reshape(-1, 784), y_test)


def codec_sizes(data):
    import zstandard

    return {
        "raw": len(data),
        "gzip9": len(gzip.compress(data, compresslevel=9, mtime=0)),
        "zstd19": len(zstandard.ZstdCompressor(level=19).compress(data)),
    }


def paper_count(weights, bits=None):
    """Bytes the paper's way: per kernel non-zeros × (value bits + 5-bit gap, fillers included)
    + codebook; vectors (biases) as float32."""
    total_bits = 0
    for w in weights:
        if w.ndim < 2:
            total_bits += 32 * w.size
            continue
        positions = np.flatnonzero(w.reshape(-1))
        gaps = np.diff(np.concatenate([[-1], positions]))
        entries = int(np.sum(np.maximum(1, -(-gaps // (2**GAP_BITS)))))  # fillers for long gaps
        if bits is None:
            total_bits += entries * (32 + GAP_BITS)
        else:
            distinct = np.unique(w[w != 0]).size
            b = max(1, int(np.ceil(np.log2(distinct + 1))))
            total_bits += entries * (b + GAP_BITS) + 32 * distinct
    return -(-total_bits // 8)


# --- keras-dc ------------------------------------------------------------------


def run_keras_dc(name, module, recipe, data, work, *, seed=0, stage_hook=None):
    """The keras-dc side of one model: the paper pipeline, sizes at each stage, the bundle.

    Args:
        name: ``"lenet_300_100"`` or ``"lenet5"``.
        module: The example module (``build_model``, ``PRUNE``, ``BITS``).
        recipe: Its `examples.paper_common.Recipe`.
        data: ``((x_train, y_train), (x_test, y_test))`` from `load_data`.
        work: Folder for the bundles and the picture.
        seed: Random seed (weights, shuffling, shifts). Defaults to `0`.
        stage_hook: Also called as ``stage_hook(stage, model)`` after this function's
            own measurements at the dense, pruned and clustered stages (other benchmarks
            measure more there). Defaults to `None`.

    Returns:
        ``(initial weights, results)``: the weights before training (for the tfmot side)
        and a dict of errors, sizes and times.
    """
    import keras

    import converters
    from examples import paper_common, paper_figures

    keras.utils.set_random_seed(seed)
    model = module.build_model(recipe.l2)
    initial = [w.copy() for w in model.get_weights()]
    sizes = {}

    def hook(stage, m):
        weights = m.get_weights()
        if stage == "dense":
            sizes["dense_tflite"] = len(paper_common.dense_tflite(m))
        elif stage == "pruned":
            sizes["pruned_paper_count"] = paper_count(weights)
            t = time.perf_counter()
            r = converters.convert(
                m, os.path.join(work, f"{name}_pruned"), verbose=0, picture=False
            )
            sizes["pruned_bundle"] = r.report["totals"]["bundle_bytes"]
            sizes["pruned_convert_s"] = time.perf_counter() - t
        elif stage == "clustered":
            sizes["clustered_paper_count"] = paper_count(weights, bits=True)
        if stage_hook:
            stage_hook(stage, m)

    t0 = time.perf_counter()
    res = paper_common.run_pipeline(
        model,
        data,
        recipe,
        prune_targets=module.PRUNE,
        default_target=max(module.PRUNE.values()),
        bits=module.BITS,
        default_bits=5,
        out_dir=os.path.join(work, name),
        seed=seed,
        flatten=(name == "lenet_300_100"),
        stage_hook=hook,
    )
    wall = time.perf_counter() - t0 - sizes.get("pruned_convert_s", 0.0)
    totals = res["report"]["totals"]
    return initial, {
        "dense_error": res["dense_error"],
        "pruned_error": res["pruned_error"],
        "clustered_error": res["clustered_error"],
        "bundle_error": res["bundle_error"],
        "dense_tflite_bytes": totals["dense_tflite_bytes"],
        "pruned_paper_count": sizes["pruned_paper_count"],
        "pruned_bundle": sizes["pruned_bundle"],
        "clustered_paper_count": sizes["clustered_paper_count"],
        "bundle_bytes": totals["bundle_bytes"],
        "restored_gzip9": totals["restored_gzip9_bytes"],
        "restored_zstd19": totals["restored_zstd19_bytes"],
        "wall_s": wall,
        "times": res["times"],
        "report": res["report"],
        "layer_table": res["layer_table"],
        "paper_table": paper_figures.format_paper_table(res["paper_rows"]),
        "figure": paper_figures.save_figure(
            os.path.join(work, f"{name}_paper.png"),
            f"{name}: Deep Compression with keras-dc",
            res["stages"],
            res["paper_rows"],
        ),
    }


# --- tfmot, tf_keras, in a subprocess --------------------------------------------


@dataclasses.dataclass
class TfmotRun:
    """The tfmot side of one model after pruning and clustering, for the workers that go on.

    Attributes:
        model: The stripped, pruned and clustered tf_keras model, compiled.
        results: Errors and sizes so far: ``dense_error``, ``pruned_error``,
            ``pruned_tflite`` (`codec_sizes`), ``clustered_error``.
        module: The example module (``build_model``, ``PRUNE``, ``BITS``).
        recipe: The `examples.paper_common.Recipe` (already shrunk for a smoke job).
        train: ``(x_train, y_train)`` from `load_data`.
        test: ``(x_test, y_test)`` from `load_data`.
        compile: ``compile(model, lr, epochs)``: Adam with cosine decay over `epochs`
            epochs and the labels' cross-entropy, as every stage compiles.
        dataset: ``dataset(offset)``: the training data as stage `offset` sees it
            (shuffled with ``seed + offset``; shifted in stage 0 and, with the recipe's
            ``retrain_shifts``, in every stage).
        error: ``error(model)``: test error of a compiled tf_keras model.
        started: `time.perf_counter()` when the dense training began.
    """

    model: object
    results: dict
    module: object
    recipe: object
    train: tuple
    test: tuple
    compile: object
    dataset: object
    error: object
    started: float


def read_job(directory):
    """The job a tfmot worker runs: ``job.json`` (model, data, smoke, seed) and ``initial.npz``.

    Returns:
        ``(job, initial weights)``.
    """
    with open(os.path.join(directory, "job.json")) as f:
        job = json.load(f)
    with np.load(os.path.join(directory, "initial.npz")) as f:
        initial = [f[f"w{i}"] for i in range(len(f.files))]
    return job, initial


def tfmot_prune_cluster(directory):
    """tfmot's dense → pruned → clustered path for the job in `directory` (see `run_tfmot`).

    Needs ``TF_USE_LEGACY_KERAS=1`` (tfmot works with tf_keras only).

    Returns:
        A `TfmotRun` holding the stripped, clustered model.
    """
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise RuntimeError(
            "the tfmot worker needs TF_USE_LEGACY_KERAS=1 (tfmot works only with tf_keras)."
        )
    import tensorflow_model_optimization as tfmot
    import tf_keras

    import converters
    from examples import paper_common

    job, initial = read_job(directory)
    name = job["model"]
    module, recipe = _recipes()[name]
    if job["smoke"]:
        recipe = recipe.smoke()
    (x_train, y_train), (x_test, y_test) = load_data(name, job["data"], job["smoke"])
    flatten = name == "lenet_300_100"
    steps = -(-len(x_train) // recipe.batch_size)
    seed = job["seed"]
    sp, cl = tfmot.sparsity.keras, tfmot.clustering.keras

    def compile_(m, lr, epochs):
        schedule = tf_keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, epochs * steps))
        m.compile(
            tf_keras.optimizers.Adam(schedule),
            tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )

    def data(offset):
        return paper_common.make_dataset(
            x_train,
            y_train,
            recipe.batch_size,
            seed + offset,
            augment=offset == 0 or recipe.retrain_shifts,
            flatten=flatten,
        )

    def error(m):
        return 1.0 - float(m.evaluate(x_test, y_test, batch_size=1000, verbose=0)[1])

    out = {}
    t0 = time.perf_counter()
    tf_keras.utils.set_random_seed(seed)
    model = module.build_model(recipe.l2, keras=tf_keras)
    model.set_weights(initial)
    compile_(model, recipe.dense_lr, recipe.dense_epochs)
    model.fit(data(0), epochs=recipe.dense_epochs, shuffle=False, verbose=2)
    out["dense_error"] = error(model)

    # Pruning: the same per-layer targets, a polynomial ramp over the epochs before the last event.
    ramp_epochs = (len(recipe.prune_fractions) - 1) * recipe.prune_every
    end_step = max(1, int(round(ramp_epochs * steps)))

    def prune_layer(layer):
        if layer.name not in module.PRUNE:
            return layer
        return sp.prune_low_magnitude(
            layer,
            pruning_schedule=sp.PolynomialDecay(
                initial_sparsity=0.0,
                final_sparsity=module.PRUNE[layer.name],
                begin_step=0,
                end_step=end_step,
                frequency=max(1, min(100, end_step // 10)),
            ),
        )

    pruned = tf_keras.models.clone_model(model, clone_function=prune_layer)
    for src, dst in zip(
        model.layers, pruned.layers
    ):  # wrappers add mask variables: copy layer by layer
        (dst.layer if hasattr(dst, "layer") else dst).set_weights(src.get_weights())
    compile_(pruned, recipe.prune_lr, recipe.prune_epochs)
    pruned.fit(
        data(1),
        epochs=recipe.prune_epochs,
        shuffle=False,
        verbose=2,
        callbacks=[sp.UpdatePruningStep()],
    )
    stripped = sp.strip_pruning(pruned)
    compile_(stripped, recipe.prune_lr, 1)
    out["pruned_error"] = error(stripped)
    out["pruned_tflite"] = codec_sizes(converters.export.to_tflite(stripped))

    def cluster_layer(layer):
        if layer.name not in module.BITS:
            return layer
        return cl.cluster_weights(
            layer,
            number_of_clusters=2 ** module.BITS[layer.name],
            cluster_centroids_init=cl.CentroidInitialization.LINEAR,
            preserve_sparsity=True,
        )

    clustered = tf_keras.models.clone_model(stripped, clone_function=cluster_layer)
    for src, dst in zip(stripped.layers, clustered.layers):
        if hasattr(dst, "layer"):
            continue  # cluster wrappers took their weights from the stripped layer at wrapping time
        dst.set_weights(src.get_weights())
    compile_(clustered, recipe.cluster_lr, recipe.cluster_epochs)
    clustered.fit(data(2), epochs=recipe.cluster_epochs, shuffle=False, verbose=2)
    final = cl.strip_clustering(clustered)
    compile_(final, recipe.cluster_lr, 1)
    out["clustered_error"] = error(final)
    return TfmotRun(
        model=final,
        results=out,
        module=module,
        recipe=recipe,
        train=(x_train, y_train),
        test=(x_test, y_test),
        compile=compile_,
        dataset=data,
        error=error,
        started=t0,
    )


def kernel_structure(model):
    """``(kept, max_distinct)``: the fraction of non-zero kernel weights (rank ≥ 2) and the
    most distinct non-zero values in one kernel."""
    kernels = [w for w in model.get_weights() if w.ndim >= 2]
    kept = float(sum(np.count_nonzero(k) for k in kernels) / sum(k.size for k in kernels))
    return kept, int(max(np.unique(k[k != 0]).size for k in kernels))


def write_worker_result(directory, out):
    """Writes a worker's results where `run_tfmot` reads them (``tfmot.json``)."""
    with open(os.path.join(directory, "tfmot.json"), "w") as f:
        json.dump(out, f)


def tfmot_worker(directory):
    """The tfmot side of the paper benchmark: prune, cluster, float32 ``.tflite``, LiteRT."""
    import converters
    from examples import paper_common

    run = tfmot_prune_cluster(directory)
    out = dict(run.results)
    flat = converters.export.to_tflite(run.model)
    out["wall_s"] = time.perf_counter() - run.started
    out["tflite_error"] = paper_common.litert_error(flat, *run.test)
    out["clustered_tflite"] = codec_sizes(flat)
    out["kept"], out["max_distinct"] = kernel_structure(run.model)
    write_worker_result(directory, out)


def run_tfmot(
    name,
    initial,
    work,
    *,
    data=None,
    smoke=False,
    seed=0,
    worker="benchmarks.paper_benchmark",
    folder="tfmot",
):
    """Runs a tfmot worker for one model in a tf_keras subprocess and returns its results.

    The job (``job.json``, ``initial.npz``) goes to ``<work>/<name>_<folder>``; the child
    runs ``python -m <worker> --tfmot_worker=<that folder>`` with
    ``TF_USE_LEGACY_KERAS=1`` and writes ``tfmot.json`` there (`write_worker_result`).

    Args:
        name: ``"lenet_300_100"`` or ``"lenet5"``.
        initial: The keras-dc side's initial weights (both sides start from them).
        work: The benchmark's working folder.
        data: mnist.npz path; `None` for the shared offline copy. Defaults to `None`.
        smoke: Tiny data and epochs. Defaults to `False`.
        seed: Random seed. Defaults to `0`.
        worker: Module whose ``--tfmot_worker`` flag runs the job. Defaults to
            `"benchmarks.paper_benchmark"`.
        folder: Suffix of the job's folder. Defaults to `"tfmot"`.

    Returns:
        The worker's results, with ``process_s`` (the child's wall time) added.

    Raises:
        RuntimeError: The worker failed (its output's tail in the message).
    """
    directory = os.path.join(work, f"{name}_{folder}")
    os.makedirs(directory, exist_ok=True)
    np.savez(os.path.join(directory, "initial.npz"), **{f"w{i}": w for i, w in enumerate(initial)})
    with open(os.path.join(directory, "job.json"), "w") as f:
        json.dump({"model": name, "data": data, "smoke": smoke, "seed": seed}, f)
    env = child_env(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    proc = subprocess.run(
        module_command(worker, f"--tfmot_worker={directory}"),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"tfmot worker failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    with open(os.path.join(directory, "tfmot.json")) as f:
        out = json.load(f)
    out["process_s"] = time.perf_counter() - t0
    return out


# --- report ----------------------------------------------------------------------


def format_model(name, k, t):
    dense = k["dense_tflite_bytes"]

    def row(label, err, size, note=""):
        err_s = f"{err:7.2%}" if err is not None else f"{'':7s}"
        size_s = f"{size:>11,d}  {dense / size:6.1f}x" if size else f"{'':>11s}  {'':>7s}"
        return f"  {label:<54s} {err_s}  {size_s}  {note}"

    lines = [
        f"== {name}: test error and bytes (ratio vs the dense float32 .tflite, {dense:,} B)",
        f"  {'':<54s} {'error':>7s}  {'bytes':>11s}  {'ratio':>7s}",
        "  keras-dc (Keras 3)",
        row("dense", k["dense_error"], dense, ".tflite float32"),
        row(
            "pruned (paper count: float32 + 5-bit gaps)", k["pruned_error"], k["pruned_paper_count"]
        ),
        row("pruned, real bundle", None, k["pruned_bundle"], "skeleton + sidecar"),
        row(
            "pruned + clustered (paper count: b-bit + 5-bit gaps)",
            k["clustered_error"],
            k["clustered_paper_count"],
        ),
        row(
            "pruned + clustered + Huffman: the bundle",
            k["bundle_error"],
            k["bundle_bytes"],
            "restored, in LiteRT",
        ),
        row("restored clustered .tflite, gzip -9", None, k["restored_gzip9"]),
        row("restored clustered .tflite, zstd -19", None, k["restored_zstd19"]),
        f"  wall time {k['wall_s']:.0f} s ("
        + ", ".join(f"{a} {b:.0f} s" for a, b in k["times"].items())
        + ")",
    ]
    if t:
        lines += [
            "  tfmot 0.8.1 (tf_keras)",
            row("dense", t["dense_error"], None),
            row("pruned (stripped) .tflite raw", t["pruned_error"], t["pruned_tflite"]["raw"]),
            row("pruned (stripped) .tflite gzip -9", None, t["pruned_tflite"]["gzip9"]),
            row("pruned (stripped) .tflite zstd -19", None, t["pruned_tflite"]["zstd19"]),
            row(
                "pruned + clustered .tflite raw",
                t["clustered_error"],
                t["clustered_tflite"]["raw"],
                f"LiteRT error {t['tflite_error']:.2%}",
            ),
            row("pruned + clustered .tflite gzip -9", None, t["clustered_tflite"]["gzip9"]),
            row("pruned + clustered .tflite zstd -19", None, t["clustered_tflite"]["zstd19"]),
            f"  kernels {t['kept']:.2%} kept, at most {t['max_distinct']} distinct non-zero values per kernel",
            f"  wall time {t['wall_s']:.0f} s (worker process {t['process_s']:.0f} s)",
        ]
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _TFMOT_WORKER.value:
        tfmot_worker(_TFMOT_WORKER.value)
        return
    import keras

    from converters.report import format_report

    unknown = set(_MODELS.value) - {"lenet_300_100", "lenet5"}
    if unknown:
        raise app.UsageError(
            f"--models: unknown {sorted(unknown)}; choose from lenet_300_100, lenet5."
        )
    work = _OUT.value or tempfile.mkdtemp(prefix="paper_benchmark_")
    os.makedirs(work, exist_ok=True)
    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "smoke": _SMOKE.value,
        "seed": _SEED.value,
        "versions": {"keras": keras.__version__},
        "models": {},
    }
    texts = []
    for name in _MODELS.value:
        module, recipe = _recipes()[name]
        if _SMOKE.value:
            recipe = recipe.smoke()
        print(f"#### {name}: keras-dc, recipe {recipe}", flush=True)
        data = load_data(name, _DATA.value, _SMOKE.value)
        initial, k = run_keras_dc(name, module, recipe, data, work, seed=_SEED.value)
        print(format_report(k["report"]), flush=True)
        print(k["paper_table"], flush=True)
        print(f"pictures: {k['figure']}", flush=True)
        print(f"#### {name}: tfmot (subprocess)", flush=True)
        t = run_tfmot(name, initial, work, data=_DATA.value, smoke=_SMOKE.value, seed=_SEED.value)
        text = format_model(name, k, t)
        print(text, flush=True)
        texts.append(text)
        k = {a: b for a, b in k.items() if a != "report"}
        results["models"][name] = {"recipe": dataclasses.asdict(recipe), "keras_dc": k, "tfmot": t}
    print(
        "\n\n".join(
            [
                "",
                "==== paper benchmark"
                + (" (SMOKE: tiny subset, numbers meaningless)" if _SMOKE.value else ""),
            ]
            + texts
        )
    )
    if _JSON_OUT.value:
        with open(_JSON_OUT.value, "w") as f:
            json.dump(results, f, indent=2, default=str)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
