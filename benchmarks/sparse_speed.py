"""Issue #12's benchmark: batch-1 LiteRT latency of the dense .tflite vs the restored sparse bundle.

Real models on MNIST (``--model=lenet_300_100,lenet5,mobilenet``):

* LeNet-300-100 and LeNet-5 take `benchmarks.paper_benchmark`'s recipes, data and
  seed and train with `examples.paper_common.run_pipeline` (imported, not
  copied): dense → iterative ``MagnitudePruning`` to the example's ``PRUNE`` →
  ``WeightClustering`` to its ``BITS`` → bundle. Two variants from one dense
  model (trained once; the second variant starts from its weights): pruning as
  the paper does (``unstructured``, single weights) and in LiteRT's 1x4 blocks
  (``block``, ``MagnitudePruning(block="litert")``: Dense kernels only; the
  convolutions of LeNet-5 are still pruned weight by weight).
* ``mobilenet``: `examples.budget_search.build_mobilenet` (the MobileNetV2-style
  CNN of issue #11) with this module's `mobilenet_recipe`, the ``block`` variant
  only. Only its Dense classifier can be block-pruned (the 1x1 convolutions are
  CONV_2D in LiteRT, which has no sparse kernel): little speed-up is expected.

Per variant: test error of the restored bundle in LiteRT (10,000 test images),
bundle bytes of the plain (dense-layout) bundle and of the ``sparse=True``
bundle, each against the dense float32 ``.tflite``; then batch-1 latency of the
dense float32 ``.tflite`` and of each variant's restored sparse ``.tflite``,
invoked in turn (interleaved) after a warm-up, median of ``--repeats`` invokes,
at each ``--threads``, in ``--rounds`` fresh processes (`benchmarks.invoke_round`;
the speed-up quoted is the median of the rounds' speed-ups, with their range:
on this shared machine the sparse kernel's speed jumps between two levels from
one process to the next); and per layer of the restored sparse ``.tflite`` its
op, how its weight is stored and which kernel runs it (`layer_kernels`).

``--block_prune=ip1=0.9,ip2=0.85`` gives the block variant targets of its own
(the unstructured variant keeps the example's ``PRUNE``): e.g. to compare the
two at the same bundle size, or to trade speed for accuracy. ``--retime`` trains
nothing and times again the flatbuffers a finished run left in ``--work``
(``{model}_dense.tflite``, ``{model}_{variant}_sparse/``), rewriting the latency
in its ``--json_out``: train beside other jobs, time alone.

``--model=synthetic`` (the default, ~1 min on 2 CPU cores): a
LeNet-300-100-shaped MLP trained briefly on random data, block-pruned to
93/90/70%, clustered to 5 bits, with the same latency measurement.

Timed on the 2-core build machine (2026-11-30): LeNet-300-100 ~6 min (40 MLP
epochs, both variants), LeNet-5 ~20 min (18 conv epochs), mobilenet ~11 min (6
epochs, one variant); 7 latency rounds ~1-2 min per model; the smoke run ~1 min.

``--validation=10000`` trains on all but the last 10,000 training images and
reports errors on those instead of the test set: how the block targets of the
recorded LeNet-300-100 run were chosen without looking at the test set.

Recipe options (real models): ``--recipe=example`` trains the LeNets with the
examples' own recipes (``examples/lenet_300_100.py``: 20 dense epochs, a better
dense reference) instead of the benchmark's shorter ones; ``--prune_events``,
``--retrain_epochs`` and ``--distill`` override the schedule's number of cubic
pruning cuts, the retraining epochs after the last one and the distillation
weight; ``--variants=block`` trains one variant only (a faster sweep).

    python -m benchmarks.sparse_speed                                   # synthetic, ~1 min
    python -m benchmarks.sparse_speed --model=lenet_300_100 --work=out/sparse \\
        --json_out=out/sparse_lenet_300_100.json
    python -m benchmarks.sparse_speed --model=lenet5 --work=out/sparse \\
        --json_out=out/sparse_lenet5.json
    python -m benchmarks.sparse_speed --model=mobilenet --work=out/sparse \\
        --json_out=out/sparse_mobilenet.json
    python -m benchmarks.sparse_speed --model=lenet_300_100 --block_prune=ip1=0.9,ip2=0.85 \\
        --work=out/sparse_b90 --json_out=out/sparse_b90.json
    python -m benchmarks.sparse_speed --retime --work=out/sparse_b90 \\
        --json_out=out/sparse_b90.json                                 # time again, alone
    python -m benchmarks.sparse_speed --model=lenet_300_100 --recipe=example \\
        --variants=block --prune_events=24 --retrain_epochs=12 --distill=0.5 \\
        --block_prune=ip1=0.97,ip2=0.9,ip3=0.6 --validation=10000 --rounds=3 \\
        --work=out/val97 --json_out=out/val97.json                      # a block-target trial
    python -m benchmarks.sparse_speed --model=lenet_300_100 --smoke     # a tiny check (tests)

A ``convert(sparse=True)`` that fails (a ValueError) is recorded in the results
(``sparse_convert_error``) and the run goes on without that variant's latency.
"""

import dataclasses
import datetime
import os
import tempfile
import time

import numpy as np
from absl import app, flags

from benchmarks._common import machine_info, write_json

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = ("lenet_300_100", "lenet5", "mobilenet", "synthetic")
VARIANTS = ("unstructured", "block")
SYNTHETIC_SPARSITIES = (0.93, 0.90, 0.70)
DEFAULT_REPEATS = {"synthetic": 500, "real": 400, "smoke": 50}
DEFAULT_ROUNDS = {"synthetic": 5, "real": 7, "smoke": 2}

# Issue #12's targets on LeNet-300-100: the paper's test error, the size ratio, the speed-up.
TARGET_ERROR = 0.0164
TARGET_RATIO = 40.0
TARGET_SPEEDUP = 3.0


# The ops whose input 1 is a weight that could be stored sparse.
def _define_flags():
    """The command line (defined only when run as a script: tests import this module)."""
    global _MODEL, _SMOKE, _THREADS, _REPEATS, _ROUNDS, _SEED, _JSON_OUT, _WORK, _DATA
    global _BLOCK_PRUNE, _RETIME, _FIGURE, _PLOT_FROM, _VALIDATION
    global _VARIANTS, _RECIPE, _PRUNE_EVENTS, _RETRAIN_EPOCHS, _DISTILL
    _MODEL = flags.DEFINE_list(
        "model", ["synthetic"], f"Models to run, from {list(MODELS)} (a comma-separated list)."
    )
    _SMOKE = flags.DEFINE_bool(
        "smoke", False, "Tiny run (2k images, 1 epoch per stage) to check the script."
    )
    _THREADS = flags.DEFINE_list("threads", ["1", "2"], "LiteRT thread counts to time.")
    _REPEATS = flags.DEFINE_integer(
        "repeats",
        None,
        "Timed invokes per flatbuffer and thread count; default "
        f"{DEFAULT_REPEATS['real']} for real models, {DEFAULT_REPEATS['synthetic']} for "
        f"synthetic, {DEFAULT_REPEATS['smoke']} with --smoke.",
        lower_bound=1,
    )
    _ROUNDS = flags.DEFINE_integer(
        "rounds",
        None,
        "Latency rounds, each in a fresh process (benchmarks.invoke_round); the speed-up "
        "quoted is the median of the rounds' speed-ups. Default "
        f"{DEFAULT_ROUNDS['real']} for real models, {DEFAULT_ROUNDS['synthetic']} for "
        f"synthetic, {DEFAULT_ROUNDS['smoke']} with --smoke.",
        lower_bound=1,
    )
    _BLOCK_PRUNE = flags.DEFINE_list(
        "block_prune",
        [],
        "Targets of the block variant instead of the model's PRUNE, as LAYER=SPARSITY or "
        "MODEL:LAYER=SPARSITY (e.g. ip1=0.9,ip2=0.85,ip3=0.7); layers not named keep theirs.",
    )
    _VARIANTS = flags.DEFINE_list(
        "variants",
        [],
        f"Train only these of {list(VARIANTS)} (e.g. block, to choose --block_prune "
        "faster); default: every variant of the model.",
    )
    _RECIPE = flags.DEFINE_enum(
        "recipe",
        "benchmark",
        ["benchmark", "example"],
        "LeNets' recipe: benchmark = benchmarks.paper_benchmark's shorter one (side by side "
        "with tfmot); example = the examples' own (examples/lenet_300_100.py, lenet5.py: "
        "more dense epochs, the better dense reference).",
    )
    _PRUNE_EVENTS = flags.DEFINE_integer(
        "prune_events",
        None,
        "Recipe override, real models: this many cubic pruning events "
        "(examples.paper_common.cubic_fractions) instead of the recipe's schedule.",
        lower_bound=1,
    )
    _RETRAIN_EPOCHS = flags.DEFINE_integer(
        "retrain_epochs",
        None,
        "Recipe override, real models: retraining epochs after the last pruning event.",
        lower_bound=0,
    )
    _DISTILL = flags.DEFINE_float(
        "distill",
        None,
        "Recipe override, real models: weight of the dense model's soft targets while "
        "pruning and clustering (0: labels only).",
        lower_bound=0.0,
        upper_bound=1.0,
    )
    _RETIME = flags.DEFINE_bool(
        "retime",
        False,
        "Train nothing: time again the flatbuffers a finished run left in --work and "
        "rewrite the latency of its --json_out (e.g. alone, after a run that shared the "
        "machine).",
    )
    _FIGURE = flags.DEFINE_string(
        "figure", None, "Also draw the speed-ups as a PNG here (real models only)."
    )
    _PLOT_FROM = flags.DEFINE_list(
        "plot_from",
        [],
        "Train nothing: draw --figure from these finished runs' --json_out files.",
    )
    _SEED = flags.DEFINE_integer("seed", 0, "Random seed (weights, shuffling, shifts).")
    _JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the results as JSON here.")
    _WORK = flags.DEFINE_string(
        "work", None, "Working folder for the bundles; default: a temporary one."
    )
    _DATA = flags.DEFINE_string(
        "data", None, "mnist.npz (keras layout); default: the shared offline copy."
    )
    _VALIDATION = flags.DEFINE_integer(
        "validation",
        0,
        "Train on all but the last N training images and report errors on those N instead "
        "of the test set: to choose --block_prune without looking at the test set.",
        lower_bound=0,
    )


@dataclasses.dataclass(frozen=True)
class Network:
    """One real model of the benchmark.

    Attributes:
        name: ``"lenet_300_100"``, ``"lenet5"`` or ``"mobilenet"``.
        build: ``build(l2)`` → an uncompiled Keras model.
        recipe: Its `examples.paper_common.Recipe`.
        prune: ``{layer name: sparsity}``.
        bits: ``{layer name: bits}`` (others: 5 bits).
        variants: Which of `VARIANTS` it trains.
        block_prune: ``{layer name: sparsity}`` of the ``block`` variant, when it
            differs from `prune` (`--block_prune`). Defaults to `None` (`prune`).
    """

    name: str
    build: object
    recipe: object
    prune: dict
    bits: dict
    variants: tuple
    block_prune: dict = None

    def targets(self, variant):
        """``{layer name: sparsity}`` of `variant`."""
        if variant == "block" and self.block_prune:
            return dict(self.block_prune)
        return dict(self.prune)


def mobilenet_recipe():
    """The MobileNetV2-style CNN's recipe, short (its latency is the point, not its error):
    3 dense epochs, 4 cubic pruning cuts a quarter epoch apart, 1 epoch of retraining,
    1 of centroid retraining: 6 epochs (the smoke run's 1-1.5 s per step of 128 images on
    the busy 2-core machine makes an epoch ~8-12 min)."""
    from examples.paper_common import Recipe, cubic_fractions

    return Recipe(
        dense_epochs=3,
        dense_lr=1e-3,
        prune_fractions=cubic_fractions(4),
        prune_every=0.25,
        prune_final_epochs=1,
        prune_lr=1e-3,
        cluster_epochs=1,
        cluster_lr=3e-5,
    )


def mobilenet_prune(model):
    """Per layer of the MobileNetV2-style CNN: the stem and the depthwise 3x3 kernels
    (few weights each) to 50%, the 1x1 convolutions and the classifier to 75%."""
    found = {}
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in ("Conv2D", "DepthwiseConv2D", "Dense"):
            continue
        if layer.name == "stem" or kind == "DepthwiseConv2D":
            found[layer.name] = 0.5
        else:
            found[layer.name] = 0.75
    return found


def networks(recipe="benchmark"):
    """`Network` per real model name.

    Args:
        recipe: The LeNets' recipes: ``"benchmark"`` (`benchmarks.paper_benchmark`'s) or
            ``"example"`` (each example module's own ``recipe()``).
    """
    from benchmarks import paper_benchmark as paper
    from examples import budget_search

    found = {}
    for name, (module, shorter) in paper._recipes().items():  # pylint: disable=protected-access
        chosen = module.recipe() if recipe == "example" else shorter
        found[name] = Network(
            name, module.build_model, chosen, dict(module.PRUNE), dict(module.BITS), VARIANTS
        )
    found["mobilenet"] = Network(
        "mobilenet",
        budget_search.build_mobilenet,
        mobilenet_recipe(),
        mobilenet_prune(budget_search.build_mobilenet()),
        {},
        ("block",),
    )
    return found


# --- what the restored flatbuffer runs -----------------------------------------------


def layer_kernels(flat, keras_model=None):
    """Per weight-reading op of a flatbuffer: how its weight is stored and which kernel runs it.

    A FULLY_CONNECTED weight stored as a sparse tensor in 1x4 blocks
    (`converters.flatbuffer.sparse_weights`) runs LiteRT's sparse FC kernel. Any
    other sparse weight reaches its op through a DENSIFY op (the converter puts
    one there), which expands it once; the op then runs its dense kernel, so it
    gains no speed (LiteRT has no sparse CONV_2D or DEPTHWISE_CONV_2D kernel).

    Args:
        flat: The ``.tflite`` bytes.
        keras_model: The Keras model it came from, to name each op's layer (its
            kernel with the same dimensions in any order, first unused one in
            layer order). Defaults to `None` (no names).

    Returns:
        A list of dicts, in op order: ``op``, ``layer`` (Keras name or ``None``),
        ``shape`` (the weight's dense shape in the flatbuffer), ``stored``
        (``"dense"``, ``"sparse 1x4 blocks"`` or ``"sparse, unstructured"``),
        ``kernel`` (``"sparse"`` or ``"dense"``).
    """
    from converters import flatbuffer

    kernels = []
    if keras_model is not None:
        kernels = [
            (layer.name, sorted(v.shape))
            for layer in keras_model.layers
            for v in layer.weights
            if len(v.shape) >= 2 and v.path.rsplit("/", 1)[-1] in ("kernel", "depthwise_kernel")
        ]
    used = set()
    rows = []
    for found in flatbuffer.weight_kernels(flatbuffer.unpack(flatbuffer.as_bytes(flat))):
        layer = None
        for i, (keras_name, dims) in enumerate(kernels):
            if i not in used and dims == sorted(found.shape):
                used.add(i)
                layer = keras_name
                break
        rows.append(
            {
                "op": found.op,
                "layer": layer,
                "shape": list(found.shape),
                "stored": found.stored,
                "kernel": found.kernel,
            }
        )
    return rows


def latency(flats, threads, repeats, rounds=1, log=print):
    """Batch-1 invoke times of `flats`, in rounds: ``{threads: [[µs per flat] per round]}``.

    Each round and thread count runs in a fresh process (`benchmarks.invoke_round`)
    that invokes the flatbuffers in turn (interleaved) after a warm-up and prints
    the median of `repeats` invokes of each. Rounds cycle through the thread
    counts, so that they are spread alike over time.
    """
    import json
    import subprocess

    from benchmarks._common import child_env, module_command

    found = {t: [] for t in threads}
    with tempfile.TemporaryDirectory(prefix="keras_dc_latency_") as folder:
        paths = []
        for i, flat in enumerate(flats):
            paths.append(os.path.join(folder, f"{i}.tflite"))
            with open(paths[-1], "wb") as f:
                f.write(flat)
        for r in range(rounds):
            for t in threads:
                cmd = module_command(
                    "benchmarks.invoke_round", f"--threads={t}", f"--repeats={repeats}", *paths
                )
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, env=child_env(), check=False
                )
                if proc.returncode != 0:
                    raise RuntimeError(
                        f"latency round failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}"
                    )
                found[t].append([1e6 * s for s in json.loads(proc.stdout.strip().splitlines()[-1])])
            log(
                f"   latency round {r + 1}/{rounds}: "
                + "; ".join(
                    f"{t} thread(s) " + " / ".join(f"{us:.1f}" for us in found[t][-1]) + " µs"
                    for t in threads
                )
            )
    return found


def speedup(rounds, i):
    """Dense (flat 0) against flat `i` over the `latency` rounds of one thread count.

    Returns:
        ``{"dense_us", "sparse_us"}`` (medians over the rounds), ``"speedup"`` (the
        median of the rounds' dense/sparse ratios), ``"speedup_min"``,
        ``"speedup_max"`` and ``"speedups"`` (per round).
    """
    ratios = [r[0] / r[i] for r in rounds]
    return {
        "dense_us": float(np.median([r[0] for r in rounds])),
        "sparse_us": float(np.median([r[i] for r in rounds])),
        "speedup": float(np.median(ratios)),
        "speedup_min": min(ratios),
        "speedup_max": max(ratios),
        "speedups": ratios,
    }


# --- real models ---------------------------------------------------------------------


def _kernel(layer):
    """A Dense or convolution layer's kernel (``depthwise_kernel`` where it is so named)."""
    kernel = getattr(layer, "kernel", None)
    return layer.depthwise_kernel if kernel is None else kernel


def train_variant(net, variant, data, work, seed, dense_weights=None, log=print):
    """One variant of `net`: pipeline, sparse bundle, restored sparse `.tflite`.

    Args:
        net: A `Network`.
        variant: ``"unstructured"`` or ``"block"``.
        data: ``((x_train, y_train), (x_test, y_test))`` from
            `benchmarks.paper_benchmark.load_data`.
        work: Folder for the bundles.
        seed: Random seed.
        dense_weights: The trained dense model's weights: the dense stage is skipped
            and the variant starts from them. Defaults to `None` (train it).

    Returns:
        ``(results, dense float32 .tflite, restored sparse .tflite or None, dense weights)``.
    """
    import keras

    import converters
    from examples import paper_common

    (_, _), (x_test, y_test) = data
    recipe = net.recipe
    keras.utils.set_random_seed(seed)
    model = net.build(recipe.l2)
    if dense_weights is not None:
        model.set_weights(dense_weights)
        recipe = dataclasses.replace(recipe, dense_epochs=0)
    found = {}

    def hook(stage, m):
        if stage == "dense":
            found["dense_tflite"] = paper_common.dense_tflite(m)
            found["dense_weights"] = [w.copy() for w in m.get_weights()]
        elif stage == "clustered":
            found["sparsity"] = {
                layer.name: float(np.mean(np.asarray(_kernel(layer)) == 0))
                for layer in m.layers
                if layer.name in net.targets(variant)
            }
            folder = os.path.join(work, f"{net.name}_{variant}_sparse")
            try:
                result = converters.convert(m, folder, sparse=True, picture=False, verbose=0)
            except ValueError as e:  # recorded: the rest of the run still measures
                found["sparse_convert_error"] = str(e)
                log(f"   convert(sparse=True) failed: {e}")
                return
            found["sparse_bundle_bytes"] = result.bundle_bytes
            found["sparse_tensors"] = result.report["sparse_tensors"]
            found["sparse_flat"] = converters.restore(folder)
            found["layers"] = layer_kernels(found["sparse_flat"], m)

    log(f"#### {net.name}, {variant} pruning")
    res = paper_common.run_pipeline(
        model,
        data,
        recipe,
        prune_targets=net.targets(variant),
        default_target=max(net.targets(variant).values()),
        bits=net.bits,
        default_bits=5,
        out_dir=os.path.join(work, f"{net.name}_{variant}"),
        seed=seed,
        flatten=net.name == "lenet_300_100",
        stage_hook=hook,
        block="litert" if variant == "block" else None,
        log=log,
    )
    totals = res["report"]["totals"]
    dense_bytes = totals["dense_tflite_bytes"]
    out = {
        "dense_error": res["dense_error"],
        "pruned_error": res["pruned_error"],
        "clustered_error": res["clustered_error"],
        "bundle_error": res["bundle_error"],
        "bundle_bytes": totals["bundle_bytes"],
        "ratio": dense_bytes / totals["bundle_bytes"],
        "dense_tflite_bytes": dense_bytes,
        "sparsity": found.get("sparsity"),
    }
    sparse = found.get("sparse_flat")
    if sparse is None:
        out["sparse_convert_error"] = found.get("sparse_convert_error")
    else:
        out.update(
            sparse_bundle_bytes=found["sparse_bundle_bytes"],
            sparse_ratio=dense_bytes / found["sparse_bundle_bytes"],
            sparse_bundle_error=paper_common.litert_error(sparse, x_test, y_test),
            restored_sparse_tflite_bytes=len(sparse),
            sparse_tensors=found["sparse_tensors"],
            layers=found["layers"],
        )
    out["wall_s"] = res["times"]["total"]
    return out, found.get("dense_tflite"), sparse, found.get("dense_weights", dense_weights)


def run_network(net, data, work, seed, threads, repeats, rounds=1, log=print):
    """Both variants of `net` from one dense model, then their latencies, interleaved.

    The dense float32 ``.tflite`` is kept as ``{work}/{name}_dense.tflite`` and each
    variant's sparse bundle in ``{work}/{name}_{variant}_sparse``, for `retime`.

    Returns:
        ``{"dense_tflite_bytes", "variants": {variant: results}, "latency_repeats",
        "latency_rounds"}``; each variant with a sparse ``.tflite`` gains ``latency``:
        ``{threads: speedup(...)}``.
    """
    variants, sparse, dense_flat, dense_weights = {}, {}, None, None
    for variant in net.variants:
        res, flat, sparse_flat, dense_weights = train_variant(
            net, variant, data, work, seed, dense_weights, log
        )
        dense_flat = dense_flat or flat
        variants[variant] = res
        if sparse_flat is not None:
            sparse[variant] = sparse_flat
    with open(os.path.join(work, f"{net.name}_dense.tflite"), "wb") as f:
        f.write(dense_flat)
    result = {
        "dense_tflite_bytes": len(dense_flat),
        "latency_repeats": repeats,
        "latency_rounds": rounds,
        "variants": variants,
    }
    add_latency(result, net.name, dense_flat, sparse, threads, repeats, rounds, log)
    return result


def add_latency(result, name, dense_flat, sparse, threads, repeats, rounds, log=print):
    """Times `dense_flat` against ``sparse`` (``{variant: flat}``) and stores each
    variant's ``latency`` in ``result["variants"]``."""
    names = list(sparse)
    if not names:  # no sparse .tflite (convert failed): nothing to compare the dense one with
        return
    log(
        f"#### {name}: latency, {rounds} round(s) of {repeats} interleaved invokes, "
        f"threads {threads}"
    )
    found = latency([dense_flat] + [sparse[v] for v in names], threads, repeats, rounds, log)
    for t, per_round in found.items():
        for i, variant in enumerate(names, start=1):
            result["variants"][variant].setdefault("latency", {})[str(t)] = speedup(per_round, i)


def retime(results, work, threads, repeats, rounds, log=print):
    """Times again the flatbuffers a finished run left in `work` (`run_network`) and
    replaces the latency of its `results` (the run's JSON) in place."""
    import converters

    for name, r in results["models"].items():
        if name == "synthetic":
            log(f"#### {name}: not kept on disk, skipped (run it again instead)")
            continue
        path = os.path.join(work, f"{name}_dense.tflite")
        if not os.path.exists(path):
            raise app.UsageError(f"--retime: {path} is missing (not this run's --work?)")
        with open(path, "rb") as f:
            dense_flat = f.read()
        sparse = {}
        for variant, v in r["variants"].items():
            v.pop("latency", None)
            if "sparse_bundle_bytes" in v:
                sparse[variant] = converters.restore(os.path.join(work, f"{name}_{variant}_sparse"))
        add_latency(r, name, dense_flat, sparse, threads, repeats, rounds, log)
        r["latency_repeats"], r["latency_rounds"] = repeats, rounds
        if name == "lenet_300_100" and results.get("errors_on", "test set") == "test set":
            r["targets"] = targets(r)
    results["threads"] = threads
    results["retimed"] = datetime.datetime.now().isoformat(timespec="seconds")
    return results


def comparison(result):
    """Block against unstructured pruning: error difference (pp) and bundle sizes."""
    v = result["variants"]
    if not set(VARIANTS) <= set(v):
        return None
    u, b = v["unstructured"], v["block"]
    return {
        "block_minus_unstructured_error_pp": 100.0 * (b["bundle_error"] - u["bundle_error"]),
        "unstructured_bundle_bytes": u["bundle_bytes"],
        "block_bundle_bytes": b["bundle_bytes"],
        "block_sparse_bundle_bytes": b.get("sparse_bundle_bytes"),
        "bundle_bytes_block_over_unstructured": b["bundle_bytes"] / u["bundle_bytes"],
    }


def targets(result):
    """Issue #12's LeNet-300-100 targets for the block variant (error, ratio, 1-thread speed-up)."""
    b = result["variants"].get("block", {})
    if "sparse_bundle_error" not in b:
        return None
    speedup = b.get("latency", {}).get("1", {}).get("speedup")
    return {
        "error": b["sparse_bundle_error"] <= TARGET_ERROR,
        "ratio": b["sparse_ratio"] >= TARGET_RATIO,
        "speedup_1_thread": speedup is not None and speedup >= TARGET_SPEEDUP,
    }


def format_network(name, result):
    """The tables of one real model: sizes and errors, latency, layers."""
    lines = [
        f"{name}: dense float32 .tflite {result['dense_tflite_bytes']:,} B; latency: median of "
        f"{result['latency_repeats']} interleaved batch-1 invokes per round, "
        f"{result.get('latency_rounds', 1)} round(s) in fresh processes; speed-up: median of "
        "the rounds' (min–max)",
        "",
        "| variant | bundle | LiteRT error | bytes | × dense .tflite |",
        "|---|---|---:|---:|---:|",
    ]
    for variant, v in result["variants"].items():
        lines.append(
            f"| {variant} | dense layout | {v['bundle_error']:.2%} | {v['bundle_bytes']:,} "
            f"| {v['ratio']:.1f}× |"
        )
        if "sparse_bundle_bytes" in v:
            lines.append(
                f"| {variant} | sparse=True | {v['sparse_bundle_error']:.2%} "
                f"| {v['sparse_bundle_bytes']:,} | {v['sparse_ratio']:.1f}× |"
            )
        else:
            lines.append(f"| {variant} | sparse=True | failed: {v['sparse_convert_error']} | | |")
    if not any("latency" in v for v in result["variants"].values()):
        lines += ["", "latency: not measured (no restored sparse .tflite)"]
    else:
        lines += ["", "| variant | threads | dense µs | sparse µs | speed-up (min–max) |"]
        lines.append("|---|---:|---:|---:|---:|")
    for variant, v in result["variants"].items():
        for t, m in v.get("latency", {}).items():
            lines.append(
                f"| {variant} | {t} | {m['dense_us']:.1f} | {m['sparse_us']:.1f} "
                f"| {format_speedup(m)} |"
            )
    for variant, v in result["variants"].items():
        if "layers" not in v:
            continue
        lines += ["", f"{variant}: per layer of the restored sparse .tflite"]
        lines += ["| layer | op | weight [out, ...] | stored | kernel |", "|---|---|---|---|---|"]
        for r in v["layers"]:
            lines.append(
                f"| {r['layer'] or '?'} | {r['op']} | {'×'.join(map(str, r['shape']))} "
                f"| {r['stored']} | {r['kernel']} |"
            )
    c = result.get("comparison")
    if c:
        lines.append(
            f"\nblock − unstructured: {c['block_minus_unstructured_error_pp']:+.2f} pp test error; "
            f"dense-layout bundles {c['block_bundle_bytes']:,} B vs "
            f"{c['unstructured_bundle_bytes']:,} B "
            f"({c['bundle_bytes_block_over_unstructured']:.2f}×)"
        )
    t = result.get("targets")
    if t:
        mark = {True: "met", False: "MISSED"}
        lines.append(
            f"targets (block, sparse bundle): error ≤ {TARGET_ERROR:.2%} {mark[t['error']]}, "
            f"≥ {TARGET_RATIO:.0f}× smaller {mark[t['ratio']]}, ≥ {TARGET_SPEEDUP:.0f}× at 1 thread "
            f"{mark[t['speedup_1_thread']]}"
        )
    return "\n".join(lines)


def format_speedup(m):
    """``"2.21× (2.07–3.44×)"``; the range only when there was more than one round."""
    text = f"{m['speedup']:.2f}×"
    if len(m.get("speedups", ())) > 1:
        text += f" ({m['speedup_min']:.2f}–{m['speedup_max']:.2f}×)"
    return text


def _targets_text(r, variant):
    """`` 90/85/70%``: a variant's per-layer targets, when there are at most four."""
    found = r.get("block_prune") if variant == "block" else None
    found = found or r.get("prune") or {}
    if not found or len(found) > 4:
        return ""
    return " " + "/".join(f"{100 * s:.0f}" for s in found.values()) + "%"


LABELS = {"lenet_300_100": "LeNet-300-100", "lenet5": "LeNet-5", "mobilenet": "MobileNetV2-style"}


def figure_from(json_paths, path):
    """`figure` of the real models in finished runs' JSON files, in the order given (a
    model in several runs is labelled with each run's seed)."""
    import json

    found = []  # (model name, seed, result)
    for p in json_paths:
        try:
            with open(p) as f:
                run = json.load(f)
        except (OSError, ValueError) as e:
            raise app.UsageError(f"--plot_from: cannot read {p}: {e}") from None
        for name, r in run.get("models", {}).items():
            if name != "synthetic":
                found.append((name, run.get("seed"), r))
    if not found:
        raise app.UsageError(f"--plot_from: no real model in {json_paths}")
    names = [name for name, _, _ in found]
    results = [
        (LABELS.get(name, name) + (f", seed {seed}" if names.count(name) > 1 else ""), r)
        for name, seed, r in found
    ]
    return figure(results, path)


def figure(results, path):
    """Writes a PNG: per model and variant, the median speed-up of the restored sparse
    bundle over the dense float32 ``.tflite`` at each thread count (whiskers: the
    rounds' min–max), labelled with its LiteRT test error and bundle ratio.

    Args:
        results: ``[(label, model result)]``, e.g. ``("LeNet-300-100", r)`` with ``r``
            one entry of a run's ``models``.
        path: Where the PNG goes (its folder is created).

    Returns:
        The number of bars drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []  # (label, {threads: latency}, error, ratio)
    for label, r in results:
        for variant, v in r["variants"].items():
            if v.get("latency"):
                rows.append(
                    (
                        f"{label}\n{variant}{_targets_text(r, variant)}",
                        v["latency"],
                        v["sparse_bundle_error"],
                        v["sparse_ratio"],
                    )
                )
    threads = sorted({t for _, lat, _, _ in rows for t in lat}, key=int)
    height = 0.8 / max(1, len(threads))
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.75 * len(rows)))
    for k, t in enumerate(threads):
        ys, xs, lo, hi = [], [], [], []
        for i, (_, lat, _, _) in enumerate(rows):
            if t in lat:
                m = lat[t]
                ys.append(i + (k - (len(threads) - 1) / 2) * height)
                xs.append(m["speedup"])
                lo.append(m["speedup"] - m.get("speedup_min", m["speedup"]))
                hi.append(m.get("speedup_max", m["speedup"]) - m["speedup"])
        ax.barh(ys, xs, height=height, xerr=[lo, hi], capsize=3, label=f"{t} thread(s)")
    top = max(m.get("speedup_max", m["speedup"]) for _, lat, _, _ in rows for m in lat.values())
    top = max(top, TARGET_SPEEDUP)
    for i, (_, _, error, ratio) in enumerate(rows):
        ax.text(top * 1.04, i, f"{error:.2%} error\n{ratio:.0f}× smaller", va="center", fontsize=8)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.axvline(TARGET_SPEEDUP, color="gray", linestyle="--", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [label for label, _, _, _ in rows], fontsize=8)
    ax.set_ylim(len(rows) + 0.4, -0.5)  # top to bottom, room for the legend below the last row
    ax.set_xlim(0, top * 1.3)
    ax.set_xlabel("speed-up: median over rounds, whiskers min–max; dashed: issue #12's 3×")
    ax.set_title("Restored sparse bundle vs dense float32 .tflite, LiteRT, batch 1")
    ax.legend(loc="lower right", fontsize=8, framealpha=1.0)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return sum(len(lat) for _, lat, _, _ in rows)


# --- synthetic ----------------------------------------------------------------------


def _compressed_mlp(seed):
    """The block-pruned, clustered 784-300-100-10 MLP trained on random data."""
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
        overrides=dict(zip(layers, SYNTHETIC_SPARSITIES)), block="litert", verbose=0
    )
    model.fit(x, y, batch_size=64, epochs=3, verbose=0, callbacks=[pruning])
    clustering = keras_dc.WeightClustering(bits=5, verbose=0)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[clustering])
    return model


def run_synthetic(seed, threads, repeats, rounds=1):
    """The synthetic MLP: sizes, its layers and the latency of dense vs restored sparse."""
    import converters
    from converters import export

    model = _compressed_mlp(seed)
    dense = export.to_tflite(model)
    with tempfile.TemporaryDirectory(prefix="keras_dc_sparse_speed_") as directory:
        result = converters.convert(model, directory, sparse=True, picture=False, verbose=0)
        sparse = converters.restore(directory)
    found = latency([dense, sparse], threads, repeats, rounds)
    return {
        "dense_tflite_bytes": len(dense),
        "restored_sparse_tflite_bytes": len(sparse),
        "sparse_bundle_bytes": result.bundle_bytes,
        "sparse_tensors": result.report["sparse_tensors"],
        "layers": layer_kernels(sparse, model),
        "latency_repeats": repeats,
        "latency_rounds": rounds,
        "latency": {str(t): speedup(per_round, 1) for t, per_round in found.items()},
    }


def format_synthetic(r):
    blocks = sum(1 for w in r["sparse_tensors"] if w["block"] == [1, 4])
    lines = [
        f"synthetic LeNet-300-100 MLP (random data), 1x4 blocks pruned to "
        f"{'/'.join(f'{s:.0%}' for s in SYNTHETIC_SPARSITIES)}, 5-bit clustered; {blocks} of 3 "
        "FC weights are 1x4 block-sparse tensors",
        f"bytes: dense .tflite {r['dense_tflite_bytes']:,}; restored sparse .tflite "
        f"{r['restored_sparse_tflite_bytes']:,}; sparse bundle (skeleton + sidecar) "
        f"{r['sparse_bundle_bytes']:,}",
        f"batch-1 latency, median of {r['latency_repeats']} interleaved invokes per round, "
        f"{r['latency_rounds']} round(s) in fresh processes:",
        f"{'threads':>7s} {'dense us':>10s} {'sparse us':>10s}  speed-up (min–max)",
    ]
    for t, m in r["latency"].items():
        lines.append(f"{t:>7s} {m['dense_us']:>10.1f} {m['sparse_us']:>10.1f}  {format_speedup(m)}")
    return "\n".join(lines)


# --- command line --------------------------------------------------------------------


def parse_threads(values):
    """`--threads` as positive ints."""
    try:
        threads = [int(v) for v in values]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        raise app.UsageError(f"--threads: positive integers, e.g. 1,2; received {values}.")
    return threads


def hold_out(data, n):
    """``((x_train, y_train), (x_test, y_test))`` → the same with the last `n` training
    images as the evaluation set (shaped like the test set) and the test set dropped."""
    (x, y), (x_test, _) = data
    if not 0 < n < len(x):
        raise app.UsageError(f"--validation: 0 < N < {len(x)} training images; received {n}.")
    return (x[:-n], y[:-n]), (x[-n:].reshape((n,) + x_test.shape[1:]), y[-n:])


def parse_block_prune(values, models, layers_of):
    """`--block_prune` entries as ``{model: {layer: sparsity}}``.

    Args:
        values: ``LAYER=SPARSITY`` (for every model in `models` that has the layer) or
            ``MODEL:LAYER=SPARSITY`` entries.
        models: The model names of this run.
        layers_of: ``{model: layer names its pruning may target}``.

    Raises:
        app.UsageError: a malformed entry, a sparsity outside [0, 1), an unknown
            model or a layer no model of the run has.
    """
    found = {m: {} for m in models}
    for entry in values:
        target, _, value = entry.partition("=")
        model, _, layer = target.rpartition(":")
        try:
            sparsity = float(value)
        except ValueError:
            sparsity = None
        if not layer or sparsity is None or not 0.0 <= sparsity < 1.0:
            raise app.UsageError(
                f"--block_prune: LAYER=SPARSITY or MODEL:LAYER=SPARSITY with 0 <= SPARSITY < 1, "
                f"e.g. ip1=0.9; received {entry!r}."
            )
        if model and model not in found:
            raise app.UsageError(f"--block_prune: {entry!r} names {model!r}, not run ({models}).")
        named = [m for m in ([model] if model else models) if layer in layers_of.get(m, ())]
        if not named:
            raise app.UsageError(
                f"--block_prune: no model of this run has a prunable layer {layer!r} "
                f"({ {m: sorted(layers_of.get(m, ())) for m in models} })."
            )
        for m in named:
            found[m][layer] = sparsity
    return {m: layers for m, layers in found.items() if layers}


def parse_variants(values):
    """`--variants` as a tuple in `VARIANTS` order (empty: every variant)."""
    unknown = sorted(set(values) - set(VARIANTS))
    if unknown:
        raise app.UsageError(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}.")
    return tuple(v for v in VARIANTS if v in values)


def override_recipe(recipe, prune_events=None, retrain_epochs=None, distill=None):
    """`recipe` with the command line's overrides (`--prune_events`, `--retrain_epochs`,
    `--distill`); `None` keeps the recipe's own."""
    from examples.paper_common import cubic_fractions

    changes = {}
    if prune_events is not None:
        changes["prune_fractions"] = cubic_fractions(prune_events)
    if retrain_epochs is not None:
        changes["prune_final_epochs"] = retrain_epochs
    if distill is not None:
        changes["distill"] = distill
    return dataclasses.replace(recipe, **changes)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    unknown = sorted(set(_MODEL.value) - set(MODELS))
    if unknown or not _MODEL.value:
        raise app.UsageError(f"--model: unknown {unknown}; choose from {list(MODELS)}.")
    threads = parse_threads(_THREADS.value)
    smoke = _SMOKE.value
    if _PLOT_FROM.value:
        if not _FIGURE.value:
            raise app.UsageError("--plot_from needs --figure=PNG.")
        print(f"{figure_from(_PLOT_FROM.value, _FIGURE.value)} bars in {_FIGURE.value}")
        return
    if _RETIME.value:
        main_retime(threads)
        return
    nets = networks(_RECIPE.value)
    block_prune = parse_block_prune(
        _BLOCK_PRUNE.value,
        [m for m in _MODEL.value if m != "synthetic"],
        {m: set(n.prune) for m, n in nets.items()},
    )
    variants = parse_variants(_VARIANTS.value)
    for name in _MODEL.value:
        if variants and name != "synthetic" and not set(variants) & set(nets[name].variants):
            raise app.UsageError(
                f"--variants={','.join(variants)}: {name} trains only {list(nets[name].variants)}."
            )
    work = _WORK.value or tempfile.mkdtemp(prefix="sparse_speed_")
    os.makedirs(work, exist_ok=True)
    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "smoke": smoke,
        "seed": _SEED.value,
        "threads": threads,
        "errors_on": f"last {_VALIDATION.value:,} training images"
        if _VALIDATION.value
        else "test set",
        "models": {},
    }
    for name in _MODEL.value:
        kind = "smoke" if smoke else "synthetic" if name == "synthetic" else "real"
        repeats = _REPEATS.value or DEFAULT_REPEATS[kind]
        rounds = _ROUNDS.value or DEFAULT_ROUNDS[kind]
        t0 = time.perf_counter()
        if name == "synthetic":
            r = run_synthetic(_SEED.value, threads, repeats, rounds)
            text = format_synthetic(r)
        else:
            from benchmarks import paper_benchmark as paper

            net = nets[name]
            if name in block_prune:
                net = dataclasses.replace(net, block_prune={**net.prune, **block_prune[name]})
            net = dataclasses.replace(
                net,
                recipe=override_recipe(
                    net.recipe, _PRUNE_EVENTS.value, _RETRAIN_EPOCHS.value, _DISTILL.value
                ),
            )
            if variants:
                net = dataclasses.replace(
                    net, variants=tuple(v for v in net.variants if v in variants)
                )
            if smoke:
                net = dataclasses.replace(net, recipe=net.recipe.smoke())
            data = paper.load_data("lenet5" if name == "mobilenet" else name, _DATA.value, smoke)
            if _VALIDATION.value:
                data = hold_out(data, _VALIDATION.value)
            r = run_network(net, data, work, _SEED.value, threads, repeats, rounds)
            r["recipe"] = dataclasses.asdict(net.recipe)
            r["recipe_name"] = _RECIPE.value
            r["prune"], r["bits"] = net.prune, net.bits
            r["block_prune"] = net.targets("block")
            r["comparison"] = comparison(r)
            # The targets are test-set figures: not judged on held-out training images.
            r["targets"] = targets(r) if name == "lenet_300_100" and not _VALIDATION.value else None
            text = format_network(name, r)
        r["wall_s"] = time.perf_counter() - t0
        results["models"][name] = r
        print(f"\n{title(smoke, results['errors_on'])}\n{text}\n", flush=True)
        if _JSON_OUT.value:  # after each model, so that a long run keeps what it has
            write_json(_JSON_OUT.value, results)
    real = [(LABELS[n], r) for n, r in results["models"].items() if n != "synthetic"]
    if _FIGURE.value and real:
        figure(real, _FIGURE.value)


def title(smoke, errors_on="test set"):
    text = "==== sparse speed (issue #12)"
    if errors_on != "test set":
        text += f" (errors on the {errors_on}, not the test set)"
    return text + (" (SMOKE: tiny subset, numbers meaningless)" if smoke else "")


def main_retime(threads):
    """`--retime`: the latency of a finished run again, from its --work and --json_out."""
    import json

    if not (_WORK.value and _JSON_OUT.value):
        raise app.UsageError("--retime needs the finished run's --work and --json_out.")
    try:
        with open(_JSON_OUT.value) as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        raise app.UsageError(f"--retime: cannot read {_JSON_OUT.value}: {e}") from None
    kind = "smoke" if results.get("smoke") else "real"
    repeats = _REPEATS.value or DEFAULT_REPEATS[kind]
    rounds = _ROUNDS.value or DEFAULT_ROUNDS[kind]
    retime(results, _WORK.value, threads, repeats, rounds)
    for name, r in results["models"].items():
        if name != "synthetic":
            errors_on = results.get("errors_on", "test set")
            print(
                f"\n{title(results.get('smoke'), errors_on)} (retimed)\n{format_network(name, r)}\n"
            )
    write_json(_JSON_OUT.value, results)
    real = [(LABELS[n], r) for n, r in results["models"].items() if n != "synthetic"]
    if _FIGURE.value and real:
        figure(real, _FIGURE.value)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
