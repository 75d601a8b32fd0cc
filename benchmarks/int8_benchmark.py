"""Issue #15's benchmark: int8 bundles beside the float bundle of the same run and tfmot's PCQAT.

For LeNet-300-100 and LeNet-5, with `benchmarks.paper_benchmark`'s recipes, data,
seed and both of its sides (imported, not copied):

* keras-dc (Keras 3, this process): the paper pipeline exactly as
  ``paper_benchmark`` runs it (dense → iterative pruning → clustering → float
  bundle, restored and run in LiteRT). From the dense model: its float32 and
  its full-integer int8 ``.tflite`` (``converters.export.to_tflite(int8=True)``),
  the baselines. From the one compressed Keras model: the int8 bundle
  (``converters.convert(int8=True, representative_data=<the first 500 training
  images>)``), restored and run in LiteRT on the test set, and the report's
  per-kernel check that its zeros and per-channel distinct values survived.
* tfmot (tf_keras, in a subprocess with ``TF_USE_LEGACY_KERAS=1``): the same
  prune + cluster path as ``paper_benchmark``'s tfmot worker, from the same
  initial weights; then PCQAT (``quantize_annotate_model`` + ``quantize_apply``
  with ``Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)``),
  fine-tuned for as many epochs as the clustering stage, at its learning rate;
  full-integer int8 ``.tflite`` calibrated on the same 500 images; LiteRT test
  error; bytes raw, gzip -9 and zstd -19; zeros and per-channel distinct values
  of its int8 kernels against the clustered float model they came from.

Per model and side: test error, bytes, ratio against the dense float32 and the
dense int8 ``.tflite`` (both of the keras-dc side's dense model: same
architecture), and the int8 error minus the float compressed model's error of
the same run in percentage points (issue #15 asks for at most +0.10 pp).

    python -m benchmarks.int8_benchmark --work=out/int8 --json_out=out/int8.json
    python -m benchmarks.int8_benchmark --smoke --models=lenet_300_100   # a tiny check

Each run keeps the compressed Keras model as ``WORK/<model>_clustered.keras``;
``--reencode=WORK`` writes the int8 bundle of that model again with this checkout's
encoder (no training: for a format change) and prints its bytes and LiteRT test error.
"""

import dataclasses
import datetime
import os
import tempfile
import time

import numpy as np
from absl import app, flags

from benchmarks import paper_benchmark as paper
from benchmarks._common import machine_info, write_json

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = ("lenet_300_100", "lenet5")
REPRESENTATIVE_IMAGES = 500  # training images given as representative_data, both sides
DEFAULT_BITS = 5  # paper_benchmark.run_keras_dc clusters layers not in module.BITS to 5 bits
PCQAT_DATA_OFFSET = (
    3  # the PCQAT stage's shuffle seed is seed + 3 (stages 0-2: dense, prune, cluster)
)


def _define_flags():
    """The command line (defined only when run as a script: tests import this module)."""
    global _DATA, _SMOKE, _MODELS, _SEED, _WORK, _JSON_OUT, _TFMOT_WORKER, _REENCODE
    _DATA = flags.DEFINE_string(
        "data", None, "mnist.npz (keras layout); default: the shared offline copy."
    )
    _SMOKE = flags.DEFINE_bool(
        "smoke", False, "Tiny run (2k images, 1 epoch per stage) to check the script."
    )
    _MODELS = flags.DEFINE_list("models", list(MODELS), f"Models to run, from {list(MODELS)}.")
    _SEED = flags.DEFINE_integer(
        "seed", 0, "Random seed (weights, shuffling, shifts) shared by both sides."
    )
    _WORK = flags.DEFINE_string(
        "work", None, "Working folder for bundles and worker jobs; default: a temporary one."
    )
    _JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the results as JSON here.")
    _REENCODE = flags.DEFINE_string(
        "reencode",
        None,
        "A finished run's --work folder: write each model's int8 bundle again from its "
        "saved compressed model with this checkout's encoder; no training.",
    )
    _TFMOT_WORKER = flags.DEFINE_string(
        "tfmot_worker", None, "Internal: run the tfmot PCQAT side in this folder."
    )


def representative_images(name, x_train):
    """The first `REPRESENTATIVE_IMAGES` training images, shaped as the model's input."""
    x = np.asarray(x_train[:REPRESENTATIVE_IMAGES], np.float32)
    return x.reshape(len(x), -1) if name == "lenet_300_100" else x


def layer_bits(path, bits, default):
    """The clustering bits of the layer a variable ``path`` (``.../layer/kernel``) belongs to."""
    parts = path.split("/")
    layer = parts[-2] if len(parts) > 1 else parts[0]
    return bits.get(layer, default)


def float_tensors(flat):
    """Float32 tensors of a `.tflite` other than its inputs and outputs: 0 for a
    full-integer model with float inputs and outputs (QUANTIZE and DEQUANTIZE at the
    edges, int8 activations, int8 weights and int32 biases inside)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flat)
    edges = {d["index"] for d in interpreter.get_input_details()}
    edges |= {d["index"] for d in interpreter.get_output_details()}
    return sum(
        1
        for d in interpreter.get_tensor_details()
        if np.dtype(d["dtype"]) == np.float32 and d["index"] not in edges
    )


def check_weights(weights, bits, default):
    """Adds each int8 kernel's distinct-value limit and sums up the structure checks.

    Args:
        weights: ``Int8Weight.as_dict()`` per int8 kernel (the convert report's
            ``int8.weights``).
        bits: ``{layer name: bits}`` the kernels were clustered to.
        default: Bits of a layer not in `bits` (`None`: not clustered, no limit).

    Returns:
        ``{"weights": [...], "zeros_preserved": bool, "distinct_within_bits": bool}``:
        each weight gains ``bits`` and ``distinct_within_bits`` (its most distinct
        non-zero int8 values in one output channel ≤ 2^bits); the two flags are
        true when every kernel passes (false when there is none to check).
    """
    out = []
    for w in weights:
        b = layer_bits(w["keras_name"], bits, default)
        within = b is None or w["max_distinct_per_channel"] <= 2**b
        out.append(dict(w, bits=b, distinct_within_bits=bool(within)))
    return {
        "weights": out,
        "zeros_preserved": bool(out) and all(w["zeros_preserved"] for w in out),
        "distinct_within_bits": bool(out) and all(w["distinct_within_bits"] for w in out),
    }


# --- keras-dc ------------------------------------------------------------------


def run_keras_dc(name, module, recipe, data, work, seed):
    """paper_benchmark's keras-dc side, plus the dense int8 `.tflite` and the int8 bundle.

    Returns:
        ``(initial weights, results)``.
    """
    import converters
    from examples import paper_common

    (x_train, _), (x_test, y_test) = data
    representative = representative_images(name, x_train)
    found = {}

    def hook(stage, model):
        if stage == "dense":
            dense_int8 = converters.export.to_tflite(
                model, int8=True, representative_data=representative
            )
            found["dense_int8_tflite_bytes"] = len(dense_int8)
        elif stage == "clustered":
            t = time.perf_counter()
            folder = os.path.join(work, f"{name}_int8")
            # kept so that the bundle can be written again (a later encoder) from this model
            model.save(os.path.join(work, f"{name}_clustered.keras"))
            result = converters.convert(
                model,
                folder,
                int8=True,
                representative_data=representative,
                verbose=0,
                picture=False,
            )
            restored = converters.restore(folder)
            found["int8_bundle_error"] = paper_common.litert_error(restored, x_test, y_test)
            found["int8_float_tensors"] = float_tensors(restored)
            found["int8_bundle_bytes"] = result.bundle_bytes
            found["int8_tflite_bytes"] = result.report["int8"]["int8_tflite_bytes"]
            found["int8_max_diff_over_output_range"] = result.report["int8"][
                "max_diff_over_output_range"
            ]
            found.update(check_weights(result.report["int8"]["weights"], module.BITS, DEFAULT_BITS))
            found["int8_s"] = time.perf_counter() - t

    initial, k = paper.run_keras_dc(name, module, recipe, data, work, seed=seed, stage_hook=hook)
    return initial, {
        "dense_error": k["dense_error"],
        "pruned_error": k["pruned_error"],
        "clustered_error": k["clustered_error"],
        "float_bundle_error": k["bundle_error"],
        "float_bundle_bytes": k["bundle_bytes"],
        "dense_float32_tflite_bytes": k["dense_tflite_bytes"],
        **found,
        "int8_pp_vs_float": 100.0 * (found["int8_bundle_error"] - k["bundle_error"]),
        "wall_s": k["wall_s"],
    }


# --- tfmot PCQAT, tf_keras, in a subprocess ------------------------------------------


def pcqat_int8_tflite(model, representative):
    """The full-integer int8 `.tflite` of a tf_keras QAT model.

    `converters.export.to_tflite` refuses tfmot wrapper layers (keras-dc converts
    plain layers), and a QAT model is converted with its ``QuantizeWrapper``s in
    place (their fake-quant ranges are what the converter reads; tfmot has no
    strip for them). So this calls TensorFlow's converter as tfmot's guide does,
    with ``to_tflite(int8=True)``'s settings (``Optimize.DEFAULT``, builtin int8
    kernels only, float inputs and outputs) and the same calibration batches
    (`converters.export.representative_batches`).
    """
    import tensorflow as tf

    import converters

    shape = [1, *model.input_shape[1:]]
    batches = converters.export.representative_batches(representative, [shape])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: iter(batches)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return bytes(converter.convert())


def layer_variables(model):
    """``[(layer/variable, array), ...]`` of a model's weights, layer by layer.

    tf_keras names a variable by its own name only (``kernel``), so the layer's name
    is put in front: ``ip1/kernel``.
    """
    return [
        (f"{layer.name}/{v.name.split(':')[0].split('/')[-1]}", np.asarray(v))
        for layer in model.layers
        for v in layer.weights
    ]


def int8_structure(flat, variables):
    """`converters.quantized.Int8Weight` dicts of an int8 `.tflite`'s weights.

    Each int8 weight buffer is matched to the one kernel (rank ≥ 2) of `variables`
    with the same dimensions in any order (the converter transposes them); the
    zeros and distinct values are then compared with that kernel. (Matching by
    value, as ``convert`` does, cannot work here: PCQAT fine-tunes the values.)

    Args:
        flat: The int8 `.tflite`.
        variables: ``[(path, array), ...]`` of the float model the kernels came from
            (`layer_variables`), paths unique.
    """
    from converters import keras_names, layout, quantized

    data, buffers = layout.lay_out(flat, mode="inline")
    names = {}
    for b in buffers:
        if b.dtype != "int8" or b.role != "weight":
            continue
        same = [
            (i, path)
            for i, (path, array) in enumerate(variables)
            if array.ndim >= 2 and sorted(array.shape) == sorted(b.shape)
        ]
        if len(same) == 1:
            names[b.offset] = keras_names.KerasName(paths=(same[0][1],), order=same[0][0])
    return [w.as_dict() for w in quantized.weight_structure(buffers, names, variables, data)]


def tfmot_pcqat_worker(directory):
    """The tfmot side: `paper_benchmark.tfmot_prune_cluster`, then PCQAT and int8."""
    import tensorflow_model_optimization as tfmot

    import converters
    from examples import paper_common

    run = paper.tfmot_prune_cluster(directory)
    job, _ = paper.read_job(directory)
    name = job["model"]
    x_test, y_test = run.test
    out = dict(run.results)
    flat = converters.export.to_tflite(run.model)
    out["float_tflite_error"] = paper_common.litert_error(flat, x_test, y_test)
    out["float_tflite"] = paper.codec_sizes(flat)
    out["kept"], out["max_distinct"] = paper.kernel_structure(run.model)

    t = time.perf_counter()
    q = tfmot.quantization.keras
    annotated = q.quantize_annotate_model(run.model)
    pcqat = q.quantize_apply(
        annotated,
        scheme=tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(
            preserve_sparsity=True
        ),
    )
    epochs = run.recipe.cluster_epochs
    run.compile(pcqat, run.recipe.cluster_lr, epochs)
    pcqat.fit(run.dataset(PCQAT_DATA_OFFSET), epochs=epochs, shuffle=False, verbose=2)
    out["pcqat_keras_error"] = run.error(pcqat)
    out["pcqat_s"] = time.perf_counter() - t
    int8 = pcqat_int8_tflite(pcqat, representative_images(name, run.train[0]))
    out["int8_tflite_error"] = paper_common.litert_error(int8, x_test, y_test)
    out["int8_tflite"] = paper.codec_sizes(int8)
    out["int8_float_tensors"] = float_tensors(int8)
    with open(os.path.join(directory, "pcqat_int8.tflite"), "wb") as f:
        f.write(int8)
    out["int8_pp_vs_float"] = 100.0 * (out["int8_tflite_error"] - out["float_tflite_error"])
    weights = int8_structure(int8, layer_variables(run.model))
    out.update(check_weights(weights, run.module.BITS, None))
    out["wall_s"] = time.perf_counter() - run.started
    paper.write_worker_result(directory, out)


# --- table -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table.

    Attributes:
        model: ``"lenet_300_100"`` or ``"lenet5"``.
        side: ``"keras-dc"`` or ``"tfmot"``.
        what: What was measured (e.g. ``"int8 bundle"``).
        error: Test error in LiteRT, in [0, 1] (`None`: same file as the row above).
        bytes: Its size.
        ratio_vs_dense_float32: Dense float32 `.tflite` bytes / `bytes`.
        ratio_vs_dense_int8: Dense int8 `.tflite` bytes / `bytes`.
        pp_vs_float: int8 error − the float compressed model's error of the same run,
            in percentage points (`None` for the float rows and the codec rows).
    """

    model: str
    side: str
    what: str
    error: float | None
    bytes: int
    ratio_vs_dense_float32: float
    ratio_vs_dense_int8: float
    pp_vs_float: float | None


def table_rows(name, k, t):
    """The table's rows of one model: keras-dc's results `k`, tfmot's `t`."""
    f32, i8 = k["dense_float32_tflite_bytes"], k["dense_int8_tflite_bytes"]

    def row(side, what, error, size, pp=None):
        return Row(name, side, what, error, size, f32 / size, i8 / size, pp)

    return [
        row("keras-dc", "float bundle", k["float_bundle_error"], k["float_bundle_bytes"]),
        row(
            "keras-dc",
            "int8 bundle",
            k["int8_bundle_error"],
            k["int8_bundle_bytes"],
            k["int8_pp_vs_float"],
        ),
        row("tfmot", "float .tflite", t["float_tflite_error"], t["float_tflite"]["raw"]),
        row(
            "tfmot",
            "PCQAT int8 .tflite",
            t["int8_tflite_error"],
            t["int8_tflite"]["raw"],
            t["int8_pp_vs_float"],
        ),
        row("tfmot", "PCQAT int8 .tflite, gzip -9", None, t["int8_tflite"]["gzip9"]),
        row("tfmot", "PCQAT int8 .tflite, zstd -19", None, t["int8_tflite"]["zstd19"]),
    ]


def format_table(rows, models):
    """The markdown table of `rows`, then one line per model and side on the int8 kernels."""

    def cell(value, fmt):
        return "" if value is None else format(value, fmt)

    lines = [
        "| model | side | file | error | bytes | × dense float32 | × dense int8 | int8 vs float |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.side} | {r.what} | {cell(r.error, '.2%')} | {r.bytes:,} "
            f"| {r.ratio_vs_dense_float32:.1f}× | {r.ratio_vs_dense_int8:.1f}× "
            f"| {cell(r.pp_vs_float, '+.2f')}{' pp' if r.pp_vs_float is not None else ''} |"
        )
    lines.append("")
    for name, sides in models.items():
        k = sides["keras_dc"]
        lines.append(
            f"{name}: dense float32 .tflite {k['dense_float32_tflite_bytes']:,} B, "
            f"dense int8 .tflite {k['dense_int8_tflite_bytes']:,} B"
        )
        for label, s in (("keras-dc int8 bundle", k), ("tfmot PCQAT int8", sides["tfmot"])):
            most = max((w["max_distinct_per_channel"] for w in s["weights"]), default=0)
            lines.append(
                f"  {label}: full-integer (no float32 tensor inside): "
                f"{'yes' if s['int8_float_tensors'] == 0 else 'NO'}, "
                f"{len(s['weights'])} int8 kernels checked, zeros preserved: "
                f"{'yes' if s['zeros_preserved'] else 'NO'}, at most {most} distinct non-zero "
                f"values per channel, within 2^bits: {'yes' if s['distinct_within_bits'] else 'NO'}"
            )
    return "\n".join(lines)


def reencode(work, models, data_path, out=None):
    """The int8 bundles of a finished run's compressed models, written by this encoder.

    Returns:
        ``{model: {"int8_bundle_bytes", "int8_bundle_error", "encodings"}}``.
    """
    import keras

    import converters
    from examples import paper_common

    found = {}
    for name in models:
        path = os.path.join(work, f"{name}_clustered.keras")
        if not os.path.exists(path):
            raise app.UsageError(f"--reencode: {path} does not exist (run the benchmark first).")
        model = keras.models.load_model(path, compile=False)
        (x_train, _), (x_test, y_test) = paper.load_data(name, data_path, False)
        folder = os.path.join(out or tempfile.mkdtemp(prefix="int8_reencode_"), name)
        result = converters.convert(
            model,
            folder,
            int8=True,
            representative_data=representative_images(name, x_train),
            verbose=0,
            picture=False,
        )
        error = paper_common.litert_error(converters.restore(folder), x_test, y_test)
        found[name] = {
            "int8_bundle_bytes": result.bundle_bytes,
            "int8_bundle_error": error,
            "encodings": {
                r["keras_name"] or r["name"]: r["encoding"] for r in result.report["buffers"]
            },
        }
        print(
            f"{name}: int8 bundle {result.bundle_bytes:,} B, LiteRT test error {100 * error:.2f}%"
            f"  {found[name]['encodings']}",
            flush=True,
        )
    return found


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _TFMOT_WORKER.value:
        tfmot_pcqat_worker(_TFMOT_WORKER.value)
        return
    if _REENCODE.value:
        found = reencode(_REENCODE.value, _MODELS.value, _DATA.value, _WORK.value)
        if _JSON_OUT.value:
            write_json(_JSON_OUT.value, {"reencoded_from": _REENCODE.value, "models": found})
        return
    unknown = sorted(set(_MODELS.value) - set(MODELS))
    if unknown:
        raise app.UsageError(f"--models: unknown {unknown}; choose from {list(MODELS)}.")
    work = _WORK.value or tempfile.mkdtemp(prefix="int8_benchmark_")
    os.makedirs(work, exist_ok=True)
    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "smoke": _SMOKE.value,
        "seed": _SEED.value,
        "representative_images": REPRESENTATIVE_IMAGES,
        "models": {},
        "rows": [],
    }
    rows = []
    for name in _MODELS.value:
        module, recipe = paper._recipes()[name]  # pylint: disable=protected-access
        if _SMOKE.value:
            recipe = recipe.smoke()
        print(f"#### {name}: keras-dc, recipe {recipe}", flush=True)
        data = paper.load_data(name, _DATA.value, _SMOKE.value)
        initial, k = run_keras_dc(name, module, recipe, data, work, _SEED.value)
        print(f"#### {name}: tfmot PCQAT (subprocess)", flush=True)
        t = paper.run_tfmot(
            name,
            initial,
            work,
            data=_DATA.value,
            smoke=_SMOKE.value,
            seed=_SEED.value,
            worker="benchmarks.int8_benchmark",
            folder="pcqat",
        )
        rows += table_rows(name, k, t)
        results["models"][name] = {
            "recipe": dataclasses.asdict(recipe),
            "keras_dc": k,
            "tfmot": t,
        }
    results["rows"] = [dataclasses.asdict(r) for r in rows]
    title = "==== int8 benchmark (issue #15)" + (
        " (SMOKE: tiny subset, numbers meaningless)" if _SMOKE.value else ""
    )
    print(f"\n{title}\n\n{format_table(rows, results['models'])}", flush=True)
    if _JSON_OUT.value:
        write_json(_JSON_OUT.value, results)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
