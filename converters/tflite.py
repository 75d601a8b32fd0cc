"""Keras model -> TFLite flatbuffer -> a byte layout whose weights can be cut out.

This module is everything between a Keras model and the flatbuffer bytes whose
weight buffers the sidecar compresses:

1. `load_model` accepts an in-memory Keras 3 model, a `.keras` file, or a
   tf_keras (legacy Keras 2) model, including one pruned and clustered with
   tensorflow-model-optimization and stripped.
2. `convert` runs the real `tf.lite.TFLiteConverter` with builtin ops only
   (never Flex/TF Select or custom ops, which no delegate runs), static input
   shapes and float32 (or, optionally, float16) weights.
3. `layout` rewrites the flatbuffer so that every constant buffer's data lives
   after the flatbuffer (`Buffer.offset`/`Buffer.size`, mode "offset") or keeps
   the converter's inline layout (mode "inline"), and describes each weight
   buffer as a `WeightBuffer`: a byte range of the returned bytes plus what the
   buffer is (dtype, shape, role, number of output channels).
4. `check_delegate_compatibility` is a static allow-list check against the GPU
   delegate, and `skeleton_check` documents that the offset layout without its
   tail fails to load loudly.

Compress the bytes of the converted flatbuffer, not the Keras variables: the
converter transposes Dense kernels to `[out, in]`, drops all-zero biases, merges
identical constants and folds BatchNorm into the preceding convolution (which
keeps per-output-channel structure but not per-layer structure).

TensorFlow is imported only inside `convert`; tf_keras and
tensorflow-model-optimization are never imported here (they are recognised by
the module names of a model's classes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import sys
import tempfile
import types
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

__all__ = [
    "WeightBuffer",
    "load_model",
    "convert",
    "layout",
    "skeleton_check",
    "check_delegate_compatibility",
]

# ---------------------------------------------------------------------------
# Schema name tables.

_OP_NAMES = {
    value: name
    for name, value in vars(schema.BuiltinOperator).items()
    if not name.startswith("_")
}
_TYPE_NAMES = {
    value: name
    for name, value in vars(schema.TensorType).items()
    if not name.startswith("_")
}

# TensorType -> numpy-style dtype name (ml_dtypes names for the exotic ones).
_DTYPE_NAMES = {
    schema.TensorType.FLOAT32: "float32",
    schema.TensorType.FLOAT16: "float16",
    schema.TensorType.INT32: "int32",
    schema.TensorType.UINT8: "uint8",
    schema.TensorType.INT64: "int64",
    schema.TensorType.STRING: "string",
    schema.TensorType.BOOL: "bool",
    schema.TensorType.INT16: "int16",
    schema.TensorType.COMPLEX64: "complex64",
    schema.TensorType.INT8: "int8",
    schema.TensorType.FLOAT64: "float64",
    schema.TensorType.COMPLEX128: "complex128",
    schema.TensorType.UINT64: "uint64",
    schema.TensorType.RESOURCE: "resource",
    schema.TensorType.VARIANT: "variant",
    schema.TensorType.UINT32: "uint32",
    schema.TensorType.UINT16: "uint16",
    schema.TensorType.INT4: "int4",
    schema.TensorType.BFLOAT16: "bfloat16",
    schema.TensorType.INT2: "int2",
    schema.TensorType.UINT4: "uint4",
    schema.TensorType.FLOAT8_E4M3FN: "float8_e4m3fn",
    schema.TensorType.FLOAT8_E5M2: "float8_e5m2",
}
_FLOAT_TYPES = {
    schema.TensorType.FLOAT32,
    schema.TensorType.FLOAT16,
    schema.TensorType.BFLOAT16,
    schema.TensorType.FLOAT64,
}
_QUANT_TYPES = {schema.TensorType.INT8, schema.TensorType.UINT8}

# Which constant inputs of an op are weights/biases: {op: {input position: role}}.
_WEIGHT_INPUTS = {
    "FULLY_CONNECTED": {1: "weight", 2: "bias"},
    "CONV_2D": {1: "weight", 2: "bias"},
    "DEPTHWISE_CONV_2D": {1: "weight", 2: "bias"},
    "TRANSPOSE_CONV": {1: "weight", 3: "bias"},
    "CONV_3D": {1: "weight", 2: "bias"},
    "CONV_3D_TRANSPOSE": {1: "weight", 3: "bias"},
    "GATHER": {0: "weight"},  # an Embedding table
    "EMBEDDING_LOOKUP": {1: "weight"},
    "BATCH_MATMUL": {0: "weight", 1: "weight"},
}
# Ops whose weight tensor is laid out with the output channel as its leading
# dimension, so that `channels` contiguous slices along dim 0 are exactly the
# per-output-channel filters: FULLY_CONNECTED [out, in], CONV_2D
# [out, h, w, in], TRANSPOSE_CONV [out, h, w, in].  DEPTHWISE_CONV_2D stores
# [1, h, w, in * multiplier] (output channel LAST, strided), CONV_3D stores
# [d, h, w, in, out]: both report channels=1.
_LEADING_CHANNEL_OPS = {"FULLY_CONNECTED", "CONV_2D", "TRANSPOSE_CONV"}
# Ops that only change the representation of a constant; the role of their
# input is the role of their output.
_PASS_THROUGH_OPS = {"DEQUANTIZE", "DENSIFY"}


@dataclasses.dataclass(frozen=True)
class WeightBuffer:
    """One constant buffer of a TFLite flatbuffer, as a byte range of the file.

    Attributes:
        buffer_index: Index into `Model.buffers`.
        offset: Byte offset of the buffer's data from the start of the bytes
            returned by `layout` (the whole file, flatbuffer plus tail).
        size: Length of the data in bytes.
        dtype: Numpy-style element type of the tensor(s) using the buffer,
            e.g. "float32", "float16", "int32", "int8".
        shape: Shape of the (first) tensor using the buffer.
        tensor_names: Names of every tensor (all subgraphs) using the buffer.
        channels: Number of equal, contiguous slices of the data that are one
            output channel each: `shape[0]` for the weights of FULLY_CONNECTED
            ([out, in]), CONV_2D and TRANSPOSE_CONV ([out, h, w, in]); 1 for
            everything else, including DEPTHWISE_CONV_2D, whose output channel
            is the last dimension of [1, h, w, channels] (its slices would be
            strided, so it is reported as one slice).
        role: "weight" (a float/int8 kernel, filter or embedding table),
            "bias", or "other" (shape tensors, BatchNorm leftovers, ...).
        op: Builtin name of the op that gives the buffer its role, e.g.
            "FULLY_CONNECTED". DEQUANTIZE and DENSIFY are looked through: a
            float16 kernel feeding DEQUANTIZE -> CONV_2D reports "CONV_2D".
            "" when no op reads the tensor.
    """

    buffer_index: int
    offset: int
    size: int
    dtype: str
    shape: tuple
    tensor_names: tuple
    channels: int
    role: str
    op: str


# ---------------------------------------------------------------------------
# Loading.


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
    """Returns a Keras model that `convert` accepts.

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

        model_or_path = keras.saving.load_model(
            path, custom_objects=custom_objects, compile=False
        )
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


# ---------------------------------------------------------------------------
# Conversion.


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
                f"Input {name!r} has an unknown rank; pass a model with fixed "
                "input shapes."
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

            return types.SimpleNamespace(
                shape=shape, dtype=model.input_dtype, name="input"
            )
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


def convert(model, *, float16=False, batch_size=1, input_signature=None) -> bytes:
    """Converts a Keras model into a TFLite flatbuffer with builtin ops only.

    The model is exported as a SavedModel serving `model(x, training=False)`
    with a static input signature, then converted by the real
    `tf.lite.TFLiteConverter` with `supported_ops=[TFLITE_BUILTINS]`.

    Args:
        model: Anything `load_model` accepts (a Keras 3 model, a tf_keras model,
            a path to a `.keras` file).
        float16: Store float weights as FLOAT16 buffers feeding DEQUANTIZE ops
            (`Optimize.DEFAULT` + `supported_types=[tf.float16]`). Defaults to
            `False` (float32 weights).
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
            without a builtin kernel names them.
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
    if not isinstance(float16, bool):
        raise TypeError(f"`float16` must be a bool, got {float16!r}.")
    model = load_model(model)
    keras3 = _is_keras3_model(model)

    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    signature = _signature_from(
        _input_structure(model, keras3, input_signature), int(batch_size), tf
    )
    with tempfile.TemporaryDirectory(prefix="keras_dc_export_") as directory:
        with _quiet_conversion() as native:
            try:
                _export_saved_model(model, keras3, signature, directory, tf)
                converter = tf.lite.TFLiteConverter.from_saved_model(directory)
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
                if float16:
                    converter.optimizations = [tf.lite.Optimize.DEFAULT]
                    converter.target_spec.supported_types = [tf.float16]
                flatbuffer = converter.convert()
                failure = None
            except Exception as exc:  # pylint: disable=broad-except
                failure = exc
        if failure is not None:
            # The converter's own message runs to hundreds of lines of MLIR;
            # the summary names the ops or the first error lines instead.
            raise _conversion_error(failure, "".join(native), model) from None
    return bytes(flatbuffer)


# ---------------------------------------------------------------------------
# Reading the flatbuffer.


def _as_bytes(tflite_bytes) -> bytes:
    if not isinstance(tflite_bytes, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"Expected the flatbuffer as bytes, got {type(tflite_bytes).__name__}."
        )
    data = bytes(tflite_bytes)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(
            "Not a TFLite flatbuffer: the file identifier at bytes 4..8 is "
            f"{data[4:8]!r}, expected b'TFL3'."
        )
    return data


def _unpack(data: bytes) -> "schema.ModelT":
    try:
        return schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as exc:  # pylint: disable=broad-except
        raise ValueError(f"Malformed TFLite flatbuffer: {exc}") from exc


def _op_name(model, opcode_index: int) -> str:
    code = model.operatorCodes[opcode_index]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    return _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


def _custom_name(model, opcode_index: int) -> str:
    custom = model.operatorCodes[opcode_index].customCode
    if isinstance(custom, bytes):
        return custom.decode("utf-8", errors="replace")
    return custom or ""


def _text(name) -> str:
    if isinstance(name, bytes):
        return name.decode("utf-8", errors="replace")
    return name or ""


def _payload(buffer, data: bytes) -> bytes | None:
    """A buffer's bytes, inline or after the flatbuffer; None when empty."""
    if buffer.offset > 1:
        if buffer.size == 0:
            return None
        end = buffer.offset + buffer.size
        if end > len(data):
            raise ValueError(
                f"Buffer data at offset {buffer.offset} (size {buffer.size}) runs "
                f"past the end of the {len(data)}-byte file."
            )
        return data[buffer.offset : end]
    if buffer.data is None or len(buffer.data) == 0:
        return None
    return bytes(np.asarray(buffer.data, dtype=np.uint8))


def _is_constant(model, tensor) -> bool:
    if tensor.buffer <= 0 or tensor.buffer >= len(model.buffers):
        return False
    buffer = model.buffers[tensor.buffer]
    if buffer.offset > 1:
        return buffer.size > 0
    return buffer.data is not None and len(buffer.data) > 0


def _consumers(subgraph) -> dict[int, list[tuple[int, int]]]:
    """tensor index -> [(operator index, input position)]."""
    uses: dict[int, list[tuple[int, int]]] = {}
    for op_index, op in enumerate(subgraph.operators or []):
        for position, tensor_index in enumerate(_ints(op.inputs)):
            if tensor_index >= 0:
                uses.setdefault(tensor_index, []).append((op_index, position))
    return uses


def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _describe_buffers(model) -> dict[int, dict[str, Any]]:
    """buffer index -> dtype/shape/names/channels/role/op of its tensors."""
    out: dict[int, dict[str, Any]] = {}
    for subgraph in model.subgraphs or []:
        uses = _consumers(subgraph)
        for tensor_index, tensor in enumerate(subgraph.tensors or []):
            if not _is_constant(model, tensor):
                continue
            shape = tuple(_ints(tensor.shape))
            ok = tensor.type in _FLOAT_TYPES or tensor.type in _QUANT_TYPES
            readings = set()
            stack, seen = [tensor_index], set()
            while stack:
                current = stack.pop()
                if current in seen:
                    continue
                seen.add(current)
                for op_index, position in uses.get(current, []):
                    op = subgraph.operators[op_index]
                    name = _op_name(model, op.opcodeIndex)
                    if name in _PASS_THROUGH_OPS and position == 0:
                        stack.extend(_ints(op.outputs))
                        continue
                    role = _WEIGHT_INPUTS.get(name, {}).get(position, "other") if ok else "other"
                    readings.add((role, name))
            entry = out.setdefault(
                tensor.buffer,
                {
                    "dtype": _DTYPE_NAMES.get(tensor.type, _TYPE_NAMES.get(tensor.type, "unknown")),
                    "shape": shape,
                    "names": [],
                    "readings": set(),
                },
            )
            entry["names"].append(_text(tensor.name))
            entry["readings"] |= readings
    for entry in out.values():
        readings = sorted(entry.pop("readings"))
        roles = {role for role, _ in readings}
        if len(roles) == 1:
            role, op = readings[0][0], readings[0][1]
        else:
            role, op = "other", (readings[0][1] if readings else "")
        ops = {name for _, name in readings}
        shape = entry["shape"]
        channels = 1
        if (
            role == "weight"
            and ops <= _LEADING_CHANNEL_OPS
            and len(ops) == 1
            and len(shape) >= 2
            and shape[0] > 0
        ):
            channels = shape[0]
        entry.update(role=role, op=op, channels=channels)
    return out


def _weight_buffer(index: int, offset: int, size: int, info) -> WeightBuffer:
    channels = info["channels"]
    if channels < 1 or size % channels:
        channels = 1
    return WeightBuffer(
        buffer_index=index,
        offset=offset,
        size=size,
        dtype=info["dtype"],
        shape=info["shape"],
        tensor_names=tuple(info["names"]),
        channels=channels,
        role=info["role"],
        op=info["op"],
    )


# ---------------------------------------------------------------------------
# Layouts.


def _pack(model) -> bytes:
    import flatbuffers  # pylint: disable=g-import-not-at-top

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def _inline_ranges(data: bytes) -> dict[int, tuple[int, int]]:
    """buffer index -> (offset, size) of its data inside `data` (no copy)."""
    root = schema.Model.GetRootAs(data, 0)
    ranges = {}
    for index in range(root.BuffersLength()):
        buffer = root.Buffers(index)
        if buffer.Offset() > 1:
            if buffer.Size() > 0:
                ranges[index] = (int(buffer.Offset()), int(buffer.Size()))
            continue
        field = buffer._tab.Offset(4)  # Buffer.data, vtable slot 0
        if field:
            length = buffer._tab.VectorLen(field)
            if length:
                ranges[index] = (buffer._tab.Vector(field), length)
    return ranges


def layout(tflite_bytes, mode="offset", alignment=16):
    """Lays out the constant buffers and says where each one's bytes are.

    mode="offset" rewrites the flatbuffer (schema object API, deterministic)
    so that every non-empty buffer read by a tensor lives after the flatbuffer:
    `Buffer.offset` is the byte offset from the start of the returned bytes
    and `Buffer.size` its length. The data follow in buffer-index order, each
    at an `alignment`-aligned offset, zero-padded in between. Buffers not read
    by tensors (metadata) stay inline. The flatbuffer itself is then the
    "skeleton": `returned[:segments[0].offset]`.

    mode="inline" returns the bytes unchanged and reports where each buffer's
    data vector lies inside the flatbuffer (found through the schema's vtables;
    buffers already stored by offset are reported where they are). `alignment`
    is not applied (the converter aligns data to 4 bytes only).

    Either way the returned bytes load and run in
    `ai_edge_litert.interpreter.Interpreter(model_content=...)` exactly like the
    input.

    Args:
        tflite_bytes: A TFLite flatbuffer (bytes-like), inline or offset layout.
        mode: "offset" or "inline". Defaults to `"offset"`.
        alignment: Alignment of each buffer's offset in "offset" mode, a power
            of two. Defaults to `16`.

    Returns:
        `(bytes, segments)`: the laid-out file and one `WeightBuffer` per
        non-empty constant buffer, sorted by offset, non-overlapping.

    Raises:
        TypeError: `tflite_bytes` is not bytes-like.
        ValueError: Unknown `mode`, bad `alignment`, or malformed flatbuffer.
    """
    if mode not in ("offset", "inline"):
        raise ValueError(f"`mode` must be 'offset' or 'inline', got {mode!r}.")
    if (
        isinstance(alignment, bool)
        or not isinstance(alignment, (int, np.integer))
        or alignment < 1
        or alignment & (alignment - 1)
    ):
        raise ValueError(f"`alignment` must be a power of two >= 1, got {alignment!r}.")
    data = _as_bytes(tflite_bytes)
    model = _unpack(data)
    infos = _describe_buffers(model)

    if mode == "inline":
        try:
            ranges = _inline_ranges(data)
        except Exception as exc:  # pylint: disable=broad-except
            raise ValueError(f"Malformed TFLite flatbuffer: {exc}") from exc
        segments = sorted(
            (_weight_buffer(i, *ranges[i], infos[i]) for i in infos if i in ranges),
            key=lambda s: s.offset,
        )
        for before, after in zip(segments, segments[1:]):
            if before.offset + before.size > after.offset:
                raise ValueError(
                    f"Buffers {before.buffer_index} and {after.buffer_index} "
                    "share bytes; cannot cut them out separately."
                )
        return data, segments

    # Offset mode. Read every payload first (the input may already use offsets).
    payloads = {}
    for index, buffer in enumerate(model.buffers or []):
        payload = _payload(buffer, data)
        if index in infos and payload is not None:
            payloads[index] = payload
        buffer.data = None if payload is None else np.frombuffer(payload, np.uint8)
        buffer.offset = buffer.size = 0
    for subgraph in model.subgraphs or []:  # keep large custom options inline
        for op in subgraph.operators or []:
            if op.largeCustomOptionsOffset > 1:
                start = op.largeCustomOptionsOffset
                op.customOptions = list(data[start : start + op.largeCustomOptionsSize])
                op.largeCustomOptionsOffset = op.largeCustomOptionsSize = 0

    moved = sorted(payloads)
    # Offsets and sizes are fixed-width uint64 fields, present whenever they
    # are non-zero, so a placeholder pass gives the final flatbuffer length.
    for index in moved:
        buffer = model.buffers[index]
        buffer.data, buffer.offset, buffer.size = None, 1 << 40, len(payloads[index])
    head_length = len(_pack(model))
    position = _align(head_length, alignment)
    offsets = {}
    for index in moved:
        offsets[index] = position
        model.buffers[index].offset = position
        position = _align(position + len(payloads[index]), alignment)
    head = _pack(model)
    if len(head) != head_length:
        raise RuntimeError(
            f"Flatbuffer length changed from {head_length} to {len(head)} bytes "
            "when offsets were filled in; please report this model."
        )
    out = bytearray(head)
    segments = []
    for index in moved:
        out.extend(b"\0" * (offsets[index] - len(out)))
        out.extend(payloads[index])
        segments.append(_weight_buffer(index, offsets[index], len(payloads[index]), infos[index]))
    return bytes(out), segments


def skeleton_check(restored) -> str:
    """Confirms the offset layout without its tail fails to load, loudly.

    Cuts `restored` (an offset-layout file, e.g. from `layout(...)` or from a
    sidecar restore) at its first out-of-flatbuffer buffer and loads the
    remaining "skeleton" in the LiteRT interpreter, which must refuse it
    ("Constant buffer N specified an out of range offset") rather than run
    with missing weights.

    Args:
        restored: The complete offset-layout bytes.

    Returns:
        The interpreter's error message for the skeleton.

    Raises:
        ValueError: `restored` has no buffer stored by offset (inline layout).
        RuntimeError: The interpreter accepted the skeleton.
    """
    data = _as_bytes(restored)
    model = _unpack(data)
    offsets = [b.offset for b in model.buffers or [] if b.offset > 1 and b.size > 0]
    if not offsets:
        raise ValueError(
            "No buffer is stored by offset: this is an inline layout, whose "
            "skeleton cannot be cut off. Use layout(..., mode='offset')."
        )
    skeleton = data[: min(offsets)]
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top

    try:
        interpreter = Interpreter(model_content=skeleton)
        interpreter.allocate_tensors()
    except Exception as exc:  # pylint: disable=broad-except
        return str(exc).strip()
    raise RuntimeError(
        f"The interpreter loaded the {len(skeleton)}-byte skeleton without its "
        "weight tail; it would run with missing weights."
    )


# ---------------------------------------------------------------------------
# Delegate compatibility.

# Builtin ops for which the GPU delegate has an operation parser: the switch in
# `NewOperationParser` of LiteRT `tflite/delegates/gpu/common/model_builder.cc`
# (google-ai-edge/LiteRT, read 2026). Its per-op checks (op versions, option
# values) are not repeated here.
GPU_DELEGATE_OPS = frozenset(
    {
        "ABS", "ADD", "ADD_N", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CAST",
        "CONCATENATION", "CONV_2D", "COS", "CUMSUM", "DENSIFY",
        "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE", "DIV", "EQUAL",
        "ELU", "EXP", "FLOOR", "FLOOR_DIV", "FLOOR_MOD", "FULLY_CONNECTED",
        "GATHER", "GELU", "GREATER", "GREATER_EQUAL", "HARD_SWISH", "LESS",
        "LESS_EQUAL", "LOGISTIC", "LOG", "LOGICAL_AND", "LSTM", "MAXIMUM",
        "MAX_POOL_2D", "MEAN", "MINIMUM", "MIRROR_PAD", "MUL", "NEG",
        "NOT_EQUAL", "ONE_HOT", "PACK", "PAD", "PADV2", "POW", "REDUCE_MAX",
        "REDUCE_MIN", "REDUCE_PROD", "QUANTIZE", "RELU", "RELU6",
        "RELU_0_TO_1", "RELU_N1_TO_1", "LEAKY_RELU", "PRELU", "RESHAPE",
        "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SELECT",
        "SELECT_V2", "SIGN", "SIN", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH",
        "SPLIT", "SPLIT_V", "SQRT", "SQUARE", "SQUARED_DIFFERENCE",
        "STRIDED_SLICE", "SUB", "SUM", "TANH", "TILE", "TRANSPOSE",
        "TRANSPOSE_CONV", "UNPACK",
    }
)
_LOGICAL_OPS = {"GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL", "EQUAL", "NOT_EQUAL"}
_T = schema.TensorType


def _allowed_runtime_types(op: str) -> tuple[set[int], set[int]]:
    """Types of non-constant inputs/outputs the GPU delegate accepts for `op`.

    Mirrors `GetOpsToReplace` in model_builder.cc with quantized ops allowed
    (the default of TfLiteGpuDelegateOptionsV2).
    """
    allowed_in = {_T.FLOAT32, _T.FLOAT16, _T.INT8, _T.UINT8}
    allowed_out = {_T.FLOAT32, _T.FLOAT16, _T.INT8, _T.UINT8}
    if op in _LOGICAL_OPS:
        allowed_out.add(_T.BOOL)
    if op == "CAST":
        allowed_in |= {_T.BOOL, _T.INT32}
        allowed_out |= {_T.INT32, _T.BOOL}
    if op in ("ONE_HOT", "GATHER"):
        allowed_in.add(_T.INT32)
    if op in ("SELECT", "SELECT_V2"):
        allowed_in.add(_T.BOOL)
    if op == "LOGICAL_AND":
        allowed_in.add(_T.BOOL)
        allowed_out.add(_T.BOOL)
    return allowed_in, allowed_out


def check_delegate_compatibility(tflite_bytes) -> list[str]:
    """Statically checks a flatbuffer against the GPU delegate's rules.

    Checks, for every subgraph: each op is a builtin with a GPU delegate parser
    (`GPU_DELEGATE_OPS`; CUSTOM ops, Flex ones included, are flagged); no
    tensor has a dynamic dimension (-1 in `shape_signature`) or rank above 4;
    no tensor is sparse; non-constant op inputs/outputs have the types the
    delegate takes; constant float tensors are float32/float16, and int8/uint8
    constants feed DEQUANTIZE only. Not `tf.lite.experimental.Analyzer`, which
    reports every model compatible.

    Args:
        tflite_bytes: A TFLite flatbuffer (inline or offset layout).

    Returns:
        Human-readable problems naming the op or tensor; empty when compatible.
    """
    data = _as_bytes(tflite_bytes)
    model = _unpack(data)
    problems: list[str] = []

    def add(problem):
        if problem not in problems:
            problems.append(problem)

    for sg_index, subgraph in enumerate(model.subgraphs or []):
        where = f"subgraph {sg_index} " if sg_index else ""
        tensors = subgraph.tensors or []
        uses = _consumers(subgraph)

        def tname(i):
            return f"tensor {i} {_text(tensors[i].name)!r}"

        for i, tensor in enumerate(tensors):
            signature = tensor.shapeSignature
            dims = _ints(signature if signature is not None else tensor.shape)
            if any(d < 0 for d in dims):
                add(f"{where}{tname(i)}: dynamic shape {dims}; "
                    "the GPU delegate needs static shapes")
            rank = len(_ints(tensor.shape))
            if rank > 4:
                add(f"{where}{tname(i)}: rank {rank} > 4 is not supported")
            if tensor.sparsity is not None:
                add(f"{where}{tname(i)}: sparse tensor; store weights dense in the flatbuffer")
            if not _is_constant(model, tensor):
                continue
            readers = {
                _op_name(model, subgraph.operators[o].opcodeIndex) for o, _ in uses.get(i, [])
            }
            type_name = _TYPE_NAMES.get(tensor.type, str(tensor.type))
            if tensor.type in _FLOAT_TYPES and tensor.type not in (_T.FLOAT32, _T.FLOAT16):
                add(f"{where}{tname(i)}: constant of type {type_name}; "
                    "weights must be FLOAT32 or FLOAT16")
            elif tensor.type in _QUANT_TYPES | {_T.INT16, _T.INT4} and readers - {"DEQUANTIZE"}:
                add(f"{where}{tname(i)}: {type_name} constant read by "
                    f"{', '.join(sorted(readers - {'DEQUANTIZE'}))}; integer weights are "
                    "only allowed as DEQUANTIZE input")

        for op_index, op in enumerate(subgraph.operators or []):
            name = _op_name(model, op.opcodeIndex)
            if name == "CUSTOM":
                custom = _custom_name(model, op.opcodeIndex)
                kind = "Flex (TF Select) op" if custom.startswith("Flex") else "custom op"
                add(f"{where}op {op_index} CUSTOM {custom!r}: {kind}; no delegate runs it")
                continue
            if name not in GPU_DELEGATE_OPS:
                add(f"{where}op {op_index} {name}: not implemented by the GPU delegate")
                continue
            allowed_in, allowed_out = _allowed_runtime_types(name)
            for role, indices, allowed in (
                ("input", op.inputs, allowed_in),
                ("output", op.outputs, allowed_out),
            ):
                for t in _ints(indices):
                    if t < 0 or _is_constant(model, tensors[t]) or tensors[t].isVariable:
                        continue
                    if tensors[t].type not in allowed:
                        add(
                            f"{where}op {op_index} {name}: {role} {tname(t)} has type "
                            f"{_TYPE_NAMES.get(tensors[t].type, tensors[t].type)}, which the GPU "
                            "delegate does not take here"
                        )
    return problems
