"""Issue #15: which full-integer quantizer keeps Deep Compression's zeros and clusters.

One LeNet-300-100 is trained briefly on MNIST and compressed the keras-dc way
(`keras_dc.MagnitudePruning` to ``examples.lenet_300_100.PRUNE``, ~93% zeros,
then `keras_dc.WeightClustering` to ``examples.lenet_300_100.BITS``, 4-6 bits per
layer), and its float32 ``.tflite`` is written (``converters.export.to_tflite``).
The same model is then quantized to full-integer int8 by

* TensorFlow's converter, as keras-dc does
  (``to_tflite(int8=True, representative_data=<first 500 training images>)``; it
  calibrates on the first ``converters.export.REPRESENTATIVE_SAMPLES`` of them),
  with float inputs and outputs (the default) and with ``int8_io=True``;
* Google's ai-edge-quantizer, its ``recipe.static_wi8_ai8()`` (int8 activations,
  int8 weights per channel) applied to the float32 ``.tflite``, calibrated on the
  same first images the converter used, and on all 500. It runs in a subprocess of
  the Python given by ``--aeq_python`` (a separate virtual environment: the
  project never imports it); without that flag this side is skipped.

Every file is read back the same way in this process: its bytes; its MNIST test
error in the LiteRT interpreter; the largest logit difference from the float32
``.tflite`` over the range of the float logits; its input and output types; the
ops that still compute in float; the int8 accelerator profile of
``converters.delegate``; and per weight tensor, against the Keras kernel it
came from: are the pruned zeros exactly the int8 zeros, the most distinct
non-zero int8 values in one output channel against the float kernel's (at most
``2^bits``), and how the weights are quantized (per channel? zero points 0?
``scale = max |w| / 127``?).

    python -m venv ~/venv-aeq
    ~/venv-aeq/bin/pip install ai-edge-quantizer tensorflow==2.21.0 ai-edge-litert==2.3.0
    python -m benchmarks.quantizer_choice --aeq_python=$HOME/venv-aeq/bin/python \\
        --json_out=out/quantizer_choice.json       # ~1-2 min on a busy 2-core machine
"""

import dataclasses
import datetime
import hashlib
import json
import os
import tempfile
import time

import numpy as np
from absl import app, flags

from benchmarks._common import machine_info, module_command, run_child, write_json

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPRESENTATIVE_IMAGES = 500  # training images given to both quantizers
AEQ_RECIPE = "static_wi8_ai8"  # ai_edge_quantizer.recipe: int8 activations, int8 weights
AEQ_TIMEOUT_S = 600
AEQ_PACKAGES = ("ai-edge-quantizer", "tensorflow", "ai-edge-litert", "numpy")
EDGE_OPS = ("QUANTIZE", "DEQUANTIZE")  # float in / float out by design at the model's edges


def _define_flags():
    """The command line (defined only when run as a script: tests import this module)."""
    global _DATA, _SEED, _EPOCHS, _WORK, _JSON_OUT, _AEQ_PYTHON, _AEQ_WORKER
    _DATA = flags.DEFINE_string(
        "data", None, "mnist.npz (keras layout); default: the shared offline copy."
    )
    _SEED = flags.DEFINE_integer("seed", 0, "Random seed of the weights and the shuffles.")
    _EPOCHS = flags.DEFINE_list(
        "epochs", ["2", "3", "1"], "Epochs of dense training, pruning and clustering."
    )
    _WORK = flags.DEFINE_string(
        "work", None, "Folder for the .tflite files and the worker; default: a temporary one."
    )
    _JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the results as JSON here.")
    _AEQ_PYTHON = flags.DEFINE_string(
        "aeq_python",
        None,
        "A Python with ai-edge-quantizer installed (its own venv); default: skip that side.",
    )
    _AEQ_WORKER = flags.DEFINE_string(
        "aeq_worker", None, "Internal: quantize with ai-edge-quantizer in this folder."
    )


# --- the compressed model --------------------------------------------------------


def train(data, seed, epochs):
    """LeNet-300-100 trained dense, pruned and clustered as ``examples.lenet_300_100`` sets.

    Args:
        data: ``((x_train, y_train), (x_test, y_test))``, images flattened.
        seed: Seed of the weights and the shuffles.
        epochs: ``(dense, prune, cluster)`` epochs; pruning ramps over the first
            two thirds of its fit (the callback's default schedule).

    Returns:
        ``(model, {"sparsity": {layer: fraction}, "distinct": {layer: count}})``:
        the Keras model and, per kernel, its zeros and distinct non-zero values.
    """
    import keras

    import keras_dc
    from examples import lenet_300_100
    from examples.mnist_data import compile_model

    (x_train, y_train), _ = data
    keras_dc.make_reproducible(seed)
    model = lenet_300_100.build_model(l2=1e-5)
    dense, prune, cluster = epochs
    stages = (
        (dense, 1e-3, []),
        (prune, 1e-3, [keras_dc.MagnitudePruning(overrides=lenet_300_100.PRUNE, verbose=0)]),
        (cluster, 3e-5, [keras_dc.WeightClustering(overrides=lenet_300_100.BITS, verbose=0)]),
    )
    for count, lr, callbacks in stages:
        compile_model(model, lr)
        model.fit(x_train, y_train, batch_size=128, epochs=count, callbacks=callbacks, verbose=2)
    kernels = dense_kernels(model)
    summary = {
        "sparsity": {n: float(np.mean(k == 0)) for n, k in kernels.items()},
        "distinct": {n: int(np.unique(k[k != 0]).size) for n, k in kernels.items()},
        "keras": keras.__version__,
    }
    return model, summary


def dense_kernels(model):
    """``{layer name: kernel}`` of the Dense layers, transposed to TFLite's [out, in]."""
    return {
        layer.name: np.asarray(layer.kernel).T
        for layer in model.layers
        if layer.__class__.__name__ == "Dense"
    }


# --- reading a .tflite back ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WeightCheck:
    """One weight tensor of a quantized file against the Keras kernel it came from.

    Attributes:
        layer: The Keras layer (matched by the kernel's shape).
        dtype: The tensor type in the file (``INT8`` when quantized).
        channels: Output channels.
        keras_zeros: Zeros of the Keras kernel.
        zeros: Zeros of the tensor in the file.
        zeros_same_positions: The file's zeros are exactly the kernel's zeros.
        float_distinct: Most distinct non-zero values in one channel of the kernel.
        int8_distinct: The same for the file's values.
        merged: Over all channels, distinct kernel values that rounded onto another
            one's int8 value (``float_distinct - int8_distinct`` summed per channel).
        scales: How many scales the tensor has (``channels`` = per channel).
        axis: Its ``quantized_dimension``.
        zero_points_zero: Every weight zero point is 0.
        max_abs_int8: Largest ``|q|`` (127: the symmetric ±127 range is used).
        scale_vs_max_over_127: Largest ``|scale / (max |w| / 127) - 1|`` over the
            non-empty channels (0: scale is exactly ``max |w| / 127``).
        bias_dtype: Type of the op's bias tensor (``INT32`` for int8 ops).
        empty_channels: Channels of the kernel with every weight pruned.
        digest: First 12 hex digits of the SHA-256 of its values and the scales of
            its non-empty channels (equal digests: the same weights in two files).
    """

    layer: str
    dtype: str
    channels: int
    keras_zeros: int
    zeros: int
    zeros_same_positions: bool
    float_distinct: int
    int8_distinct: int
    merged: int
    scales: int
    axis: int
    zero_points_zero: bool
    max_abs_int8: int
    scale_vs_max_over_127: float
    bias_dtype: str
    empty_channels: int
    digest: str


@dataclasses.dataclass(frozen=True)
class FileReport:
    """One quantized (or float) `.tflite`, read back.

    Attributes:
        label: What made it.
        bytes: Its size.
        error: MNIST test error in LiteRT, in [0, 1].
        pp_vs_float: ``error`` minus the float32 file's, in percentage points.
        max_diff_over_range: ``max |logits - float logits| / (max - min of the float
            logits)`` over the test set (``convert(int8=True)`` accepts ≤ 0.05 on its
            verification inputs).
        mean_diff_over_range: The same with the mean instead of the max.
        top1_agreement: Fraction of test images whose predicted class is the float
            file's.
        io: Input and output tensor types, e.g. ``"FLOAT32 -> FLOAT32"``.
        ops: The ops in file order, repeats counted (``"FULLY_CONNECTED x3"``).
        float_ops: Ops other than QUANTIZE / DEQUANTIZE with a float32 tensor.
        activation_ranges: ``[low, high, zero point]`` of each int8 activation in op
            order (the real range its 256 levels cover), the input first.
        int8_profile_problems: ``converters.delegate`` int8 accelerator profile.
        weights: One `WeightCheck` per weight tensor.
    """

    label: str
    bytes: int
    error: float
    pp_vs_float: float
    max_diff_over_range: float
    mean_diff_over_range: float
    top1_agreement: float
    io: str
    ops: str
    float_ops: list
    activation_ranges: list
    int8_profile_problems: list
    weights: list

    def as_dict(self):
        """The fields, JSON-serialisable."""
        return dataclasses.asdict(self)


def _tensor_values(model, tensor, data):
    """The constant values of `tensor` as a numpy array of its shape."""
    from converters import flatbuffer

    payload = flatbuffer.buffer_payload(model.buffers[tensor.buffer], data)
    dtype = {"INT8": np.int8, "INT32": np.int32, "FLOAT32": np.float32}[
        flatbuffer.TYPE_NAMES[tensor.type]
    ]
    return np.frombuffer(payload, dtype).reshape(list(tensor.shape))


def _per_channel_distinct(values, axis):
    """Distinct non-zero values of each slice along `axis`."""
    slices = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
    return np.array([np.unique(s[s != 0]).size for s in slices])


def check_weight(layer, kernel, model, subgraph, op, data):
    """The `WeightCheck` of the weight (input 1) of `op` against `kernel` ([out, in])."""
    from converters import flatbuffer

    tensor = subgraph.tensors[op.inputs[1]]
    values = _tensor_values(model, tensor, data)
    q = tensor.quantization
    scales = np.asarray(q.scale if q is not None and q.scale is not None else [], np.float64)
    zero_points = q.zeroPoint if q is not None and q.zeroPoint is not None else []
    axis = int(q.quantizedDimension) if q is not None and len(scales) > 1 else 0
    float_distinct = _per_channel_distinct(kernel, axis)
    file_distinct = _per_channel_distinct(values, axis)
    top = np.abs(np.moveaxis(kernel, axis, 0).reshape(kernel.shape[axis], -1)).max(axis=1)
    used = top > 0  # channels with a weight left (an all-zero channel's scale is arbitrary)
    deviation = 0.0
    if len(scales):
        scale = np.broadcast_to(scales, top.shape)
        deviation = float(np.max(np.abs(scale[used] / (top[used] / 127.0) - 1.0), initial=0.0))
    kept_scales = scales[used] if len(scales) == len(top) else scales
    bias = op.inputs[2] if len(op.inputs) > 2 else -1
    return WeightCheck(
        layer=layer,
        dtype=flatbuffer.TYPE_NAMES[tensor.type],
        channels=int(values.shape[axis]),
        keras_zeros=int(np.count_nonzero(kernel == 0)),
        zeros=int(np.count_nonzero(values == 0)),
        zeros_same_positions=bool(np.array_equal(values == 0, kernel == 0)),
        float_distinct=int(float_distinct.max()),
        int8_distinct=int(file_distinct.max()),
        merged=int(np.sum(float_distinct - file_distinct)),
        scales=len(scales),
        axis=axis,
        zero_points_zero=bool(all(int(z) == 0 for z in zero_points)),
        max_abs_int8=int(np.abs(values.astype(np.int64)).max()) if values.dtype == np.int8 else 0,
        scale_vs_max_over_127=deviation,
        bias_dtype=(flatbuffer.TYPE_NAMES[subgraph.tensors[bias].type] if bias >= 0 else "none"),
        empty_channels=int(np.count_nonzero(~used)),
        digest=hashlib.sha256(values.tobytes() + kept_scales.tobytes()).hexdigest()[:12],
    )


def counted(names):
    """``"A x2, B"`` for ``["A", "A", "B"]``: each name once, in first-seen order."""
    return ", ".join(
        n if names.count(n) == 1 else f"{n} x{names.count(n)}" for n in dict.fromkeys(names)
    )


def read_structure(flat, kernels):
    """What a `.tflite` computes in, and one `WeightCheck` per Keras kernel found in it.

    Args:
        flat: The `.tflite` bytes.
        kernels: `dense_kernels` of the Keras model; each file weight (input 1 of an op,
            constant, rank ≥ 2) is matched to the kernel of the same shape.

    Returns:
        A dict of `FileReport`'s ``io``, ``ops``, ``float_ops``,
        ``activation_ranges`` and ``weights`` (`WeightCheck` dicts).
    """
    from converters import flatbuffer

    data = flatbuffer.as_bytes(flat)
    model = flatbuffer.unpack(data)
    subgraph = model.subgraphs[0]
    by_shape = {k.shape: (name, k) for name, k in kernels.items()}

    def type_of(index):
        return flatbuffer.TYPE_NAMES[subgraph.tensors[index].type]

    names, float_ops, weights, ranges = [], [], [], {}
    for op in subgraph.operators:
        name = flatbuffer.op_name(model, op.opcodeIndex)
        names.append(name)
        variable = [
            i
            for i in [*op.inputs, *op.outputs]
            if i >= 0 and not flatbuffer.is_constant(model, subgraph.tensors[i])
        ]
        if name not in EDGE_OPS and any(type_of(i) == "FLOAT32" for i in variable):
            float_ops.append(name)
        for i in variable:
            q = subgraph.tensors[i].quantization
            if type_of(i) == "INT8" and q is not None and q.scale is not None and i not in ranges:
                scale, zero_point = float(q.scale[0]), int(q.zeroPoint[0])
                low, high = (-128 - zero_point) * scale, (127 - zero_point) * scale
                ranges[i] = [round(low, 3), round(high, 3), zero_point]
        if len(op.inputs) > 1 and op.inputs[1] >= 0:
            tensor = subgraph.tensors[op.inputs[1]]
            shape = tuple(int(d) for d in tensor.shape)
            if flatbuffer.is_constant(model, tensor) and shape in by_shape:
                layer, kernel = by_shape[shape]
                weights.append(check_weight(layer, kernel, model, subgraph, op, data))
    io = " -> ".join(
        ", ".join(type_of(i) for i in ends) for ends in (subgraph.inputs, subgraph.outputs)
    )
    return {
        "io": io,
        "ops": counted(names),
        "float_ops": float_ops,
        "activation_ranges": list(ranges.values()),
        "weights": [dataclasses.asdict(w) for w in weights],
    }


def logits(flat, x, batch=500):
    """The model's float logits on `x` in LiteRT, `batch` images per call.

    An int8 input gets ``clip(round(x / scale) + zero_point, -128, 127)``; an int8
    output is returned as ``(q - zero_point) × scale``.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=bytes(flat))
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], [batch, *inp["shape"][1:]])
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    parts = []
    for start in range(0, len(x), batch):
        images = np.zeros([batch, *inp["shape"][1:]], np.float32)
        chunk = x[start : start + batch]
        images[: len(chunk)] = chunk.reshape(len(chunk), *inp["shape"][1:])
        if np.dtype(inp["dtype"]) == np.int8:
            scale, zero_point = inp["quantization"]
            images = np.clip(np.round(images / scale) + zero_point, -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], images)
        interpreter.invoke()
        result = interpreter.get_tensor(out["index"])[: len(chunk)]
        if np.dtype(out["dtype"]) == np.int8:
            scale, zero_point = out["quantization"]
            result = (result.astype(np.float32) - zero_point) * scale
        parts.append(result.reshape(len(chunk), -1))
    return np.concatenate(parts)


def read_file(label, flat, kernels, test, reference):
    """The `FileReport` of `flat`.

    Args:
        label: What made it.
        flat: The `.tflite` bytes.
        kernels: `dense_kernels` of the Keras model it came from.
        test: ``(x_test, y_test)``.
        reference: ``(error, logits)`` of the float32 `.tflite` (`None`: this is it).
    """
    from converters import delegate

    x, y = test
    out = logits(flat, x)
    error = float(np.mean(np.argmax(out, axis=1) != y))
    ref_error, ref_logits = reference if reference is not None else (error, out)
    spread = float(ref_logits.max() - ref_logits.min())
    diff = np.abs(out - ref_logits)
    return FileReport(
        label=label,
        bytes=len(flat),
        error=error,
        pp_vs_float=100.0 * (error - ref_error),
        max_diff_over_range=float(diff.max()) / spread,
        mean_diff_over_range=float(diff.mean()) / spread,
        top1_agreement=float(np.mean(np.argmax(out, axis=1) == np.argmax(ref_logits, axis=1))),
        int8_profile_problems=delegate.check_delegate_compatibility(bytes(flat), profile="int8"),
        **read_structure(flat, kernels),
    )


# --- ai-edge-quantizer, in its own Python ---------------------------------------------


def aeq_worker(folder):
    """Quantizes ``float.tflite`` of `folder` with ai-edge-quantizer's `AEQ_RECIPE`.

    Reads ``job.json`` (``{"samples": [n, ...]}``) and ``calibration.npy`` (images,
    samples first); for each ``n`` calibrates on the first ``n`` images, one per
    batch as the converter does, and writes ``aeq_<n>.tflite`` and
    ``aeq_<n>_recipe.json``; then ``versions.json``. Imports neither keras-dc nor
    its converters: it runs in ai-edge-quantizer's own virtual environment.
    """
    import importlib.metadata

    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    with open(os.path.join(folder, "job.json")) as f:
        job = json.load(f)
    with open(os.path.join(folder, "float.tflite"), "rb") as f:
        flat = f.read()
    images = np.load(os.path.join(folder, "calibration.npy"))
    interpreter = Interpreter(model_content=flat)
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        raise ValueError(f"expected one signature, found {sorted(signatures)}")
    key = next(iter(signatures))
    (name,) = signatures[key]["inputs"]
    shape = [1, *interpreter.get_input_details()[0]["shape"][1:]]
    for n in job["samples"]:
        q = quantizer.Quantizer(flat, getattr(recipe, AEQ_RECIPE)())
        batches = [{name: images[i].reshape(shape).astype(np.float32)} for i in range(n)]
        t = time.perf_counter()
        ranges = q.calibrate({key: batches}, num_threads=1)
        result = q.quantize(ranges)
        print(f"ai-edge-quantizer: {n} calibration images, {time.perf_counter() - t:.1f} s")
        with open(os.path.join(folder, f"aeq_{n}.tflite"), "wb") as f:
            f.write(bytes(result.quantized_model))
        with open(os.path.join(folder, f"aeq_{n}_recipe.json"), "w") as f:
            json.dump(result.recipe, f, indent=2)
    versions = {}
    for package in AEQ_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    with open(os.path.join(folder, "versions.json"), "w") as f:
        json.dump(versions, f, indent=2)


def run_aeq(python, folder, float_flat, images, samples):
    """Runs `aeq_worker` under `python` on `float_flat`.

    Returns:
        ``(files, versions, None)`` with ``{n: bytes}`` per calibration count, or
        ``({}, {}, reason)`` when `python` is not an executable or the worker
        failed (the reason quotes its log).
    """
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        return {}, {}, f"--aeq_python={python!r} is not an executable file"
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "float.tflite"), "wb") as f:
        f.write(float_flat)
    np.save(os.path.join(folder, "calibration.npy"), images)
    with open(os.path.join(folder, "job.json"), "w") as f:
        json.dump({"samples": list(samples)}, f)
    log = os.path.join(folder, "worker.log")
    cmd = [python, *module_command("benchmarks.quantizer_choice", f"--aeq_worker={folder}")[1:]]
    rc, timed_out, wall = run_child(cmd, log, AEQ_TIMEOUT_S)
    with open(log) as f:
        text = f.read()
    print(text, flush=True)
    if rc != 0 or timed_out:
        tail = "\n".join(text.splitlines()[-15:])
        return {}, {}, f"the worker failed (rc {rc}, timed out {timed_out}):\n{tail}"
    files = {}
    for n in samples:
        with open(os.path.join(folder, f"aeq_{n}.tflite"), "rb") as f:
            files[n] = f.read()
    with open(os.path.join(folder, "versions.json")) as f:
        versions = json.load(f)
    versions["worker_wall_s"] = round(wall, 1)
    return files, versions, None


# --- table -----------------------------------------------------------------------


def format_table(reports, bits):
    """Two markdown tables: one line per file, then one per file and weight tensor."""
    lines = [
        "| file | bytes | test error | vs float32 | top-1 = float32 | max (mean) diff / range "
        "| I/O | float ops | int8 profile problems |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for r in reports:
        lines.append(
            f"| {r.label} | {r.bytes:,} | {r.error:.2%} | {r.pp_vs_float:+.2f} pp "
            f"| {r.top1_agreement:.2%} | {r.max_diff_over_range:.3f} "
            f"({r.mean_diff_over_range:.4f}) | {r.io} | {counted(r.float_ops) or 'none'} "
            f"| {len(r.int8_profile_problems)} |"
        )
    lines += [
        "",
        "| file | layer (bits) | type | zeros (Keras) | same positions | empty channels "
        "| distinct/channel int8 (float) | merged | scales (axis) | weight zero points 0 "
        "| max \\|q\\| | scale vs max \\|w\\| / 127 | bias | digest |",
        "|---|---|---|---:|---|---:|---:|---:|---|---|---:|---:|---|---|",
    ]
    for r in reports:
        for w in r.weights:
            lines.append(
                f"| {r.label} | {w['layer']} ({bits.get(w['layer'], '-')}) | {w['dtype']} "
                f"| {w['zeros']:,} ({w['keras_zeros']:,}) "
                f"| {'yes' if w['zeros_same_positions'] else 'NO'} | {w['empty_channels']} "
                f"| {w['int8_distinct']} ({w['float_distinct']}) | {w['merged']} "
                f"| {w['scales']} ({w['axis']}) | {'yes' if w['zero_points_zero'] else 'NO'} "
                f"| {w['max_abs_int8']} | {w['scale_vs_max_over_127']:.1e} | {w['bias_dtype']} "
                f"| {w['digest']} |"
            )
    lines.append("")
    for r in reports:
        lines.append(
            f"{r.label}: ops {r.ops}; int8 activation ranges [low, high, zero point]: "
            f"{r.activation_ranges or '-'}"
        )
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _AEQ_WORKER.value:
        aeq_worker(_AEQ_WORKER.value)
        return
    epochs = [int(e) for e in _EPOCHS.value]
    if len(epochs) != 3 or min(epochs) < 1:
        raise app.UsageError(f"--epochs takes 3 positive ints (dense, prune, cluster): {epochs}")
    import converters
    from examples import lenet_300_100
    from examples.mnist_data import load_mnist

    work = _WORK.value or tempfile.mkdtemp(prefix="quantizer_choice_")
    os.makedirs(work, exist_ok=True)
    (x_train, y_train), (x_test, y_test) = load_mnist(_DATA.value)
    x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "seed": _SEED.value,
        "epochs": epochs,
        "prune": lenet_300_100.PRUNE,
        "bits": lenet_300_100.BITS,
        "representative_images": REPRESENTATIVE_IMAGES,
        "converter_calibration_images": converters.export.REPRESENTATIVE_SAMPLES,
        "aeq_recipe": AEQ_RECIPE,
    }
    t = time.perf_counter()
    model, results["training"] = train(((x_train, y_train), (x_test, y_test)), _SEED.value, epochs)
    results["training"]["wall_s"] = round(time.perf_counter() - t, 1)
    representative = x_train[:REPRESENTATIVE_IMAGES]
    converted = converters.export.REPRESENTATIVE_SAMPLES
    float_flat = converters.export.to_tflite(model)
    files = [
        (
            f"converter int8 ({converted} images)",
            converters.export.to_tflite(model, int8=True, representative_data=representative),
        ),
        (
            f"converter int8, int8_io ({converted} images)",
            converters.export.to_tflite(
                model, int8=True, int8_io=True, representative_data=representative
            ),
        ),
    ]
    if _AEQ_PYTHON.value:
        samples = (converted, REPRESENTATIVE_IMAGES)
        aeq, versions, reason = run_aeq(
            _AEQ_PYTHON.value, os.path.join(work, "aeq"), float_flat, representative, samples
        )
        results["aeq_versions"] = versions
        files += [(f"ai-edge-quantizer {AEQ_RECIPE} ({n} images)", aeq[n]) for n in aeq]
    else:
        reason = "no --aeq_python given (a Python with ai-edge-quantizer installed)"
    if reason:
        print(f"ai-edge-quantizer side SKIPPED: {reason}", flush=True)
    results["aeq_skipped"] = reason
    for label, flat in [("float32", float_flat), *files]:
        name = "".join(c if c.isalnum() else "_" for c in label).strip("_")
        with open(os.path.join(work, f"{name}.tflite"), "wb") as f:
            f.write(flat)
    kernels = dense_kernels(model)
    test = (x_test, y_test)
    reference = read_file("float32", float_flat, kernels, test, None)
    float_logits = logits(float_flat, x_test)
    reports = [reference] + [
        read_file(label, flat, kernels, test, (reference.error, float_logits))
        for label, flat in files
    ]
    results["files"] = [r.as_dict() for r in reports]
    print(
        "\n==== quantizer choice (issue #15): LeNet-300-100, sparsity "
        f"{results['training']['sparsity']}, distinct non-zero values "
        f"{results['training']['distinct']}\n\n{format_table(reports, lenet_300_100.BITS)}",
        flush=True,
    )
    if _JSON_OUT.value:
        write_json(_JSON_OUT.value, results)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
