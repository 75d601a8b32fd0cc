"""Exports a Keras model as a TFLite flatbuffer with the real TFLite converter.

`load_model` accepts an in-memory Keras 3 model, a `.keras` file, or a
tf_keras (legacy Keras 2) model, including one pruned and clustered with
tensorflow-model-optimization and stripped. `to_tflite` exports it as a
SavedModel with a static input signature and runs `tf.lite.TFLiteConverter`
with builtin ops only (never Flex/TF Select or custom ops, which no delegate
runs) and float32 (or, optionally, float16) weights, or as a full-integer int8
model (post-training quantization calibrated on representative inputs). The converter's native
log is captured, and a failure is summarised from it (the ops without a
builtin kernel and the layers they come from) instead of pages of MLIR.

Compress the bytes of the converted flatbuffer, not the Keras variables: the
converter transposes Dense kernels to `[out, in]`, drops all-zero biases, merges
identical constants and folds BatchNorm into the preceding convolution (which
keeps per-output-channel structure but not per-layer structure).

This is the only module of keras-dc that imports TensorFlow, and only inside
`to_tflite`; tf_keras and tensorflow-model-optimization are never imported
(they are recognised by the module names of a model's classes).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import types

import numpy as np

__all__ = ["check_weight_options", "load_model", "to_tflite"]


def _class_modules(obj) -> list[str]:
    return [cls.__module__ or "" for cls in type(obj).__mro__]


def _is_tf_keras_model(obj) -> bool:
    """True for a tf_keras (legacy Keras 2) model, without importing tf_keras."""
    tf_keras = sys.modules.get("tf_keras")
    if tf_keras is not None and isinstance(obj, tf_keras.Model):
        return True
    return any(
        m.startswith("tf_keras.") and cls.__name__ == "Model"
        for m, cls in zip(_class_modules(obj), type(obj).__mro__)
    )


def _is_keras3_model(obj) -> bool:
    # Keras 3 is a hard dependency of the project; only import it when needed.
    if not any(m == "keras" or m.startswith("keras.") for m in _class_modules(obj)):
        return False
    import keras  # pylint: disable=g-import-not-at-top

    return isinstance(obj, keras.Model)


def _check_no_tfmot_wrappers(model) -> None:
    """Refuse tf_keras models that still carry tfmot training wrappers."""
    for layer in getattr(model, "submodules", ()):
        module = type(layer).__module__ or ""
        if not module.startswith("tensorflow_model_optimization"):
            continue
        name = type(layer).__name__
        if "sparsity" in module or "prun" in name.lower():
            fix = "tfmot.sparsity.keras.strip_pruning(model)"
        elif "cluster" in module:
            fix = "tfmot.clustering.keras.strip_clustering(model)"
        else:
            fix = "the matching tfmot strip function (keras-dc exports float models)"
        raise ValueError(
            f"Layer {getattr(layer, 'name', '?')!r} is a "
            f"tensorflow-model-optimization wrapper ({name}); keras-dc converts "
            f"plain layers only. Call {fix} before converting."
        )


def load_model(model_or_path, *, custom_objects=None):
    """Returns a Keras model that `to_tflite` accepts.

    Args:
        model_or_path: An in-memory Keras 3 model, a path (str or
            `os.PathLike`) to a `.keras` (or legacy `.h5`) file, or an
            in-memory tf_keras (Keras 2) model, including one pruned and/or
            clustered with tensorflow-model-optimization and stripped with
            `strip_pruning` / `strip_clustering`.
        custom_objects: Passed to `keras.saving.load_model` when loading a
            file. Defaults to `None`.

    Returns:
        The model (Keras 3 or tf_keras), loaded without its optimizer state.

    Raises:
        TypeError: `model_or_path` is neither a Keras model nor a path.
        ValueError: The path does not exist or is not a Keras file, the Keras
            backend is not TensorFlow, or a tf_keras model still holds tfmot
            wrapper layers.
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        path = os.fspath(model_or_path)
        if os.path.isdir(path):
            raise ValueError(
                f"{path!r} is a directory (a SavedModel?); keras-dc converts Keras "
                "models: pass a `.keras` file or an in-memory model."
            )
        if not os.path.isfile(path):
            raise ValueError(f"No such model file: {path!r}.")
        if not path.endswith((".keras", ".h5", ".hdf5")):
            raise ValueError(
                f"Expected a `.keras` file, got {path!r}; save the model with "
                "`model.save('model.keras')`."
            )
        import keras  # pylint: disable=g-import-not-at-top

        model_or_path = keras.saving.load_model(path, custom_objects=custom_objects, compile=False)
    if _is_keras3_model(model_or_path):
        import keras  # pylint: disable=g-import-not-at-top

        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                "TFLite conversion needs the TensorFlow backend, but Keras runs "
                f"on {keras.backend.backend()!r}: set KERAS_BACKEND=tensorflow "
                "before importing keras."
            )
        return model_or_path
    if _is_tf_keras_model(model_or_path):
        _check_no_tfmot_wrappers(model_or_path)
        return model_or_path
    raise TypeError(
        "Expected a Keras 3 model, a tf_keras model or a path to a `.keras` "
        f"file, got {type(model_or_path).__module__}.{type(model_or_path).__name__}."
    )


def _fix_shape(shape, batch_size: int, name: str) -> list[int]:
    shape = list(shape)
    if shape and shape[0] is None:
        shape[0] = batch_size
    if any(d is None or d < 0 for d in shape):
        raise ValueError(
            f"Input {name!r} has a dynamic shape {tuple(shape)}: only the batch "
            "dimension may be None (it is fixed to `batch_size`); pass a model "
            "with fixed input shapes, e.g. keras.Input(shape=(28, 28, 1))."
        )
    return [int(d) for d in shape]


def _signature_from(structure, batch_size: int, tf):
    """Maps a nest of KerasTensors / TensorSpecs to fixed-shape TensorSpecs."""

    def to_spec(x):
        name = getattr(x, "name", None) or "input"
        name = re.sub(r"[^A-Za-z0-9_.\-/]", "_", str(name))
        shape = x.shape
        if hasattr(shape, "as_list"):  # tf.TensorShape
            shape = shape.as_list() if shape.rank is not None else None
        if shape is None:
            raise ValueError(
                f"Input {name!r} has an unknown rank; pass a model with fixed input shapes."
            )
        return tf.TensorSpec(
            _fix_shape(shape, batch_size, name), dtype=tf.as_dtype(x.dtype), name=name
        )

    return tf.nest.map_structure(to_spec, structure)


def _input_structure(model, keras3: bool, input_signature):
    """The model's inputs as a nest of objects with `.shape` and `.dtype`."""
    if input_signature is not None:
        return input_signature
    try:
        inputs = model.inputs
    except AttributeError:
        inputs = None
    if inputs:
        try:
            return model.input  # the nest the model's call expects
        except AttributeError:  # a Keras 3 Sequential keeps it inside
            return inputs[0] if len(inputs) == 1 else list(inputs)
    if keras3:
        # A subclassed Keras 3 model records the shape of its first call;
        # keras's own `model.export` infers the signature from it as well.
        shapes = getattr(model, "_build_shapes_dict", None) or {}
        if len(shapes) == 1:
            (shape,) = shapes.values()
            shape = (None,) + tuple(shape)[1:]  # dim 0 is the batch

            return types.SimpleNamespace(shape=shape, dtype=model.input_dtype, name="input")
    else:
        save_spec = getattr(model, "save_spec", None)
        spec = save_spec() if callable(save_spec) else None
        if spec is not None:
            args, kwargs = spec
            if len(args) == 1 and not kwargs:
                return args[0]
    raise ValueError(
        f"Cannot tell the input shapes of model {getattr(model, 'name', '')!r} "
        "(a subclassed model that was never called, or one with several call "
        "arguments): call it once on a batch of data, or pass "
        "`input_signature=tf.TensorSpec((1, ...), tf.float32)`."
    )


def _export_saved_model(model, keras3: bool, signature, directory: str, tf) -> None:
    def serve(x):
        return model(x, training=False)

    if keras3:
        import keras  # pylint: disable=g-import-not-at-top

        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", serve, input_signature=[signature])
        archive.write_out(directory, verbose=False)
    else:
        function = tf.function(serve, input_signature=[signature])
        tf.saved_model.save(
            model,
            directory,
            signatures={"serving_default": function.get_concrete_function()},
        )


@contextlib.contextmanager
def _quiet_conversion():
    """Silences TF's Python logs and captures native stderr (fd 2).

    Yields a list that receives the captured native text when the block ends,
    so a failure can be explained from it. Another thread writing to fd 2 in
    the meantime is captured as well.
    """
    captured: list[str] = []
    loggers = [logging.getLogger(n) for n in ("absl", "tensorflow")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        saved = None
    try:
        if saved is None:
            yield captured
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield captured
            finally:
                try:
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                captured.append(sink.read().decode("utf-8", errors="replace"))
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _model_layers(model) -> list:
    """`model` and every layer nested in it (Keras 3 and tf_keras)."""
    flatten = getattr(model, "_flatten_layers", None)
    if callable(flatten):
        try:
            return list(flatten(include_self=True, recursive=True))
        except TypeError:
            pass
    return [model, *getattr(model, "layers", [])]


def _refuse_rolled_recurrent_layers(model):
    """Raises for int8 on a recurrent layer without ``unroll=True``: TF 2.21's int8
    converter kills the whole process (SIGSEGV) on the WHILE loop such a layer becomes,
    so it has to be refused before the converter runs."""
    for layer in _model_layers(model):
        if hasattr(layer, "cell") and hasattr(layer, "unroll") and not layer.unroll:
            raise ValueError(
                f"int8=True: layer {layer.name!r} ({type(layer).__name__}) runs its time steps "
                "in a WHILE loop, on which TF 2.21's int8 converter crashes the process; build "
                "it with unroll=True (a fixed sequence length) or convert without int8."
            )


def _layers_of_ops(text: str, ops: set, model) -> list[str]:
    """The layers whose TensorFlow ops, among `ops`, the converter rejected.

    The converter locates each op by its TensorFlow name scope, e.g.
    ``fused["MatrixDeterminant:", "sequential_1/det_1/MatrixDeterminant@..."]``;
    tracing may add ``_<n>`` to the model's and layers' names. The innermost
    scope that is a layer's name wins.
    """
    if model is None:
        return []
    layers = _model_layers(model)
    names = {layer.name: layer for layer in layers}
    found = []
    for op, scope in re.findall(r'fused\["(\w+):", "([^"@]+)', text):
        if op not in ops:
            continue
        best = None
        for part in scope.split("/")[:-1]:
            layer = names.get(part) or names.get(re.sub(r"_\d+$", "", part))
            if layer is not None and layer is not model:
                best = layer
        if best is not None:
            label = f"{best.name!r} ({type(best).__name__}: {op})"
            if label not in found:
                found.append(label)
    return found


def _conversion_error(exc: Exception, native: str, model=None) -> ValueError:
    text = f"{exc}\n{native}"
    ops = set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text))
    for pattern in (
        r"TF Select ops: ([^\n]+)",
        r"Ops that need custom implementation[^:]*:\s*([^\n]+)",
    ):
        for match in re.findall(pattern, text):
            ops.update(o.strip() for o in match.split(",") if o.strip())
    ops = {re.sub(r"^tf\.", "", o) for o in ops}
    if ops:
        layers = _layers_of_ops(text, ops, model)
        where = f" They come from layer(s) {', '.join(layers)}." if layers else ""
        return ValueError(
            "TFLite conversion failed: TensorFlow op(s) "
            f"{', '.join(sorted(ops))} have no TFLite builtin kernel.{where} keras-dc "
            "emits builtin ops only (Flex/TF Select and custom ops run on no "
            "delegate): replace the layer(s) that use them."
        )
    errors = [ln.strip() for ln in text.splitlines() if "error" in ln.lower()]
    detail = "\n".join(errors[:5]) if errors else text.strip()[:800]
    if "not a valid root scope name" in text:
        detail += (
            "\nTensorFlow name scopes cannot start with '_': give the model or "
            "layer a name such as `name='model'` (Keras derives it from the "
            "class name)."
        )
    return ValueError(f"TFLite conversion failed:\n{detail}")


# How many representative samples (each one batch of `batch_size`) calibrate int8.
REPRESENTATIVE_SAMPLES = 100


def representative_batches(representative_data, signature_shapes, limit=REPRESENTATIVE_SAMPLES):
    """Splits representative inputs into calibration batches of the converted shapes.

    Args:
        representative_data: An array of real inputs (first axis: samples) for a
            single-input model, or a list of such arrays, one per input in the
            model's input order, all with the same number of samples.
        signature_shapes: The converted input shapes (batch first), in input order.
        limit: Most batches returned. Defaults to `REPRESENTATIVE_SAMPLES`.

    Returns:
        A list of batches, each a list of float32 arrays (one per input) with the
        converted shapes: the first ``limit × batch_size`` samples.

    Raises:
        ValueError: The data are missing, empty, fewer than one batch, or do not
            fit the inputs' shapes.
    """
    if representative_data is None:
        raise ValueError(
            "int8=True needs representative_data: an array of real inputs (e.g. 100-500 "
            "training samples) to calibrate the activation ranges."
        )
    arrays = (
        list(representative_data)
        if isinstance(representative_data, (list, tuple))
        else [representative_data]
    )
    if len(arrays) != len(signature_shapes):
        raise ValueError(
            f"representative_data holds {len(arrays)} array(s), the model has "
            f"{len(signature_shapes)} input(s): pass one array per input, in input order."
        )
    arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
    counts = {a.shape[0] if a.ndim else 0 for a in arrays}
    batch = signature_shapes[0][0] if signature_shapes[0] else 1
    for i, (a, shape) in enumerate(zip(arrays, signature_shapes)):
        if a.ndim != len(shape) or tuple(a.shape[1:]) != tuple(shape[1:]):
            raise ValueError(
                f"representative_data[{i}] has shape {a.shape}; input {i} takes samples of "
                f"shape {tuple(shape[1:])}: pass an array of shape (samples, *{tuple(shape[1:])})."
            )
    if len(counts) != 1 or min(counts) < batch:
        raise ValueError(
            f"representative_data needs the same number of samples (at least the batch size "
            f"{batch}) in every array; received {sorted(counts)}."
        )
    n = min(counts.pop() // batch, limit)
    return [[a[k * batch : (k + 1) * batch] for a in arrays] for k in range(n)]


def _float_ops(flatbuffer: bytes, int8_io: bool) -> list[str]:
    """Builtin ops of a full-integer model that still compute in float.

    QUANTIZE at the inputs and DEQUANTIZE at the outputs are the float I/O (unless
    `int8_io`); any other op reading or writing a float32 tensor has no int8 kernel.
    """
    from ai_edge_litert import schema_py_generated as schema  # pylint: disable=g-import-not-at-top

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(flatbuffer, 0))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    found = []
    for graph in model.subgraphs or []:
        for op in graph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
            if name in ("QUANTIZE", "DEQUANTIZE") and not int8_io:
                continue
            tensors = [t for t in list(op.inputs) + list(op.outputs) if t >= 0]
            if any(graph.tensors[t].type == schema.TensorType.FLOAT32 for t in tensors):
                label = name
                tensor = graph.tensors[op.outputs[0]].name if len(op.outputs) else None
                if tensor:
                    label += f" ({tensor.decode() if isinstance(tensor, bytes) else tensor})"
                if label not in found:
                    found.append(label)
    return found


def check_weight_options(*, float16, sparse, int8, int8_io, representative_data):
    """Raises for the weight-type options `to_tflite` refuses, before any model is loaded
    (`converters.convert` calls it first, so a bad call writes nothing)."""
    for flag, value in (
        ("float16", float16),
        ("sparse", sparse),
        ("int8", int8),
        ("int8_io", int8_io),
    ):
        if not isinstance(value, bool):
            raise TypeError(f"`{flag}` must be a bool, got {value!r}.")
    if int8 and (float16 or sparse):
        raise ValueError(
            "int8=True cannot be combined with float16=True or sparse=True: an int8 model "
            "has int8 weights; pick one."
        )
    if int8_io and not int8:
        raise ValueError("int8_io=True needs int8=True.")
    if int8 and representative_data is None:
        representative_batches(None, [])  # raises the message


def to_tflite(
    model,
    *,
    float16=False,
    sparse=False,
    int8=False,
    representative_data=None,
    int8_io=False,
    batch_size=1,
    input_signature=None,
) -> bytes:
    """Converts a Keras model into a TFLite flatbuffer with builtin ops only.

    The model is exported as a SavedModel serving `model(x, training=False)`
    with a static input signature, then converted by the real
    `tf.lite.TFLiteConverter` with `supported_ops=[TFLITE_BUILTINS]`, or for
    `int8` full-integer post-training quantization: `Optimize.DEFAULT`, the
    representative dataset and `supported_ops=[TFLITE_BUILTINS_INT8]` (weights
    int8 per output channel with zero point 0, so pruned zeros stay exactly 0;
    biases int32; activations int8).

    Args:
        model: Anything `load_model` accepts (a Keras 3 model, a tf_keras model,
            a path to a `.keras` file).
        float16: Store float weights as FLOAT16 buffers feeding DEQUANTIZE ops
            (`Optimize.DEFAULT` + `supported_types=[tf.float16]`). Defaults to
            `False` (float32 weights).
        sparse: Also pass `Optimize.EXPERIMENTAL_SPARSITY`: the converter stores
            weights with at least ~30% zeros as TFLite sparse tensors (values +
            index arrays). Only FULLY_CONNECTED weights pruned in 1x4 blocks
            (`keras_dc.MagnitudePruning(block="litert")`) then run LiteRT's
            sparse kernel; other sparse tensors are densified at load and
            unstructured ones run slower than dense. Defaults to `False`.
        int8: Full-integer int8 model (for NPU/DSP/Edge-TPU-class delegates).
            Defaults to `False`.
        representative_data: Real inputs calibrating the int8 activation ranges:
            an array (samples first) or, for several inputs, a list of arrays in
            input order. The first `REPRESENTATIVE_SAMPLES` (100) batches of
            `batch_size` samples are used. Required with `int8`.
        int8_io: With `int8`, int8 inputs and outputs too (the caller quantizes
            with the input tensor's scale and zero point). Defaults to `False`:
            float32 inputs/outputs with QUANTIZE/DEQUANTIZE ops at the edges.
        batch_size: Batch dimension given to every input whose batch dimension
            is None. A batch fixed by the model (`keras.Input(batch_size=...)`)
            is kept. Defaults to `1`.
        input_signature: A `tf.TensorSpec` (or the nest of them the model's
            call takes) for models whose inputs cannot be inferred, such as a
            subclassed model that was never called. A None batch dimension is
            fixed to `batch_size`. Defaults to `None` (inferred).

    Returns:
        The flatbuffer bytes (inline layout, as the converter writes it).

    Raises:
        TypeError: `model` is not a Keras model (see `load_model`).
        ValueError: An input has a dynamic non-batch dimension, `batch_size` is
            not a positive int, or the converter fails; a failure caused by ops
            without a builtin kernel names them, and so does an `int8` model with
            ops left in float (no int8 kernel). `int8` without
            `representative_data`, or with `float16` or `sparse`.
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
    check_weight_options(
        float16=float16,
        sparse=sparse,
        int8=int8,
        int8_io=int8_io,
        representative_data=representative_data,
    )
    model = load_model(model)
    if int8:
        _refuse_rolled_recurrent_layers(model)
    keras3 = _is_keras3_model(model)

    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    signature = _signature_from(
        _input_structure(model, keras3, input_signature), int(batch_size), tf
    )
    calibration = None
    if int8:
        shapes = [spec.shape.as_list() for spec in tf.nest.flatten(signature)]
        calibration = representative_batches(representative_data, shapes)
    with tempfile.TemporaryDirectory(prefix="keras_dc_export_") as directory:
        with _quiet_conversion() as native:
            try:
                _export_saved_model(model, keras3, signature, directory, tf)
                converter = tf.lite.TFLiteConverter.from_saved_model(directory)
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
                optimizations = []
                if int8:
                    optimizations.append(tf.lite.Optimize.DEFAULT)
                    converter.representative_dataset = lambda: iter(calibration)
                    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                    if int8_io:
                        converter.inference_input_type = tf.int8
                        converter.inference_output_type = tf.int8
                if float16:
                    optimizations.append(tf.lite.Optimize.DEFAULT)
                    converter.target_spec.supported_types = [tf.float16]
                if sparse:
                    optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
                if optimizations:
                    converter.optimizations = optimizations
                flatbuffer = converter.convert()
                failure = None
            except Exception as exc:  # pylint: disable=broad-except
                failure = exc
        if failure is not None:
            # The converter's own message runs to hundreds of lines of MLIR;
            # the summary names the ops or the first error lines instead.
            raise _conversion_error(failure, "".join(native), model) from None
    if int8:
        left = _float_ops(bytes(flatbuffer), int8_io)
        if left:
            raise ValueError(
                "int8 conversion failed: op(s) "
                f"{', '.join(left)} still compute in float (no int8 kernel); replace the "
                "layer(s) that use them or convert without int8."
            )
    return bytes(flatbuffer)
