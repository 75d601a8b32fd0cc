"""Reads a TFLite flatbuffer: its op names and what each constant buffer holds.

`describe_buffers` tells, for every constant buffer of a `schema.ModelT`, the
dtype and shape of the tensors using it, their names, and the role it plays
for the op that reads it (weight, bias or other); `weight_buffer` turns such a
description plus a byte range into a `WeightBuffer`, the unit the sidecar
compresses. The smaller readers (`op_name`, `is_constant`, `consumers`, ...)
serve the layout rewriter and the delegate check alike.

Only the flatbuffer schema of `ai_edge_litert` is used; TensorFlow is never
imported here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from ai_edge_litert import schema_py_generated as schema

__all__ = [
    "TYPE_NAMES",
    "FLOAT_TYPES",
    "QUANT_TYPES",
    "WeightBuffer",
    "BufferDescription",
    "as_bytes",
    "unpack",
    "op_name",
    "custom_name",
    "decode_name",
    "buffer_payload",
    "is_constant",
    "consumers",
    "ints",
    "describe_buffers",
    "weight_buffer",
    "SparseIndexArray",
    "SparseWeight",
    "sparse_index_arrays",
    "sparse_weights",
    "WeightKernel",
    "weight_kernels",
    "strip_names",
    "INFORMATIONAL_METADATA",
    "drop_informational",
]

_OP_NAMES = {
    value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")
}
TYPE_NAMES = {
    value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")
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
FLOAT_TYPES = {
    schema.TensorType.FLOAT32,
    schema.TensorType.FLOAT16,
    schema.TensorType.BFLOAT16,
    schema.TensorType.FLOAT64,
}
QUANT_TYPES = {schema.TensorType.INT8, schema.TensorType.UINT8}

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
            returned by `layout.lay_out` (the whole file, flatbuffer plus
            tail).
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


@dataclasses.dataclass(frozen=True)
class BufferDescription:
    """What a constant buffer is, before its bytes are placed anywhere.

    The fields mean what the same fields of `WeightBuffer` mean; `channels`
    may still be larger than the byte size allows (`weight_buffer` checks).
    """

    dtype: str
    shape: tuple
    tensor_names: tuple
    channels: int
    role: str
    op: str


def as_bytes(tflite_bytes) -> bytes:
    """Returns `tflite_bytes` as `bytes` after checking the TFLite file identifier.

    Raises:
        TypeError: `tflite_bytes` is not bytes-like.
        ValueError: Bytes 4..8 are not the identifier `TFL3`.
    """
    if not isinstance(tflite_bytes, (bytes, bytearray, memoryview)):
        raise TypeError(f"Expected the flatbuffer as bytes, got {type(tflite_bytes).__name__}.")
    data = bytes(tflite_bytes)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(
            "Not a TFLite flatbuffer: the file identifier at bytes 4..8 is "
            f"{data[4:8]!r}, expected b'TFL3'."
        )
    return data


def unpack(data: bytes) -> schema.ModelT:
    """The flatbuffer as a schema object tree; `ValueError` when malformed."""
    try:
        return schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as exc:  # pylint: disable=broad-except
        raise ValueError(f"Malformed TFLite flatbuffer: {exc}") from exc


def op_name(model, opcode_index: int) -> str:
    """The builtin name of an operator code of `model`, e.g. "CONV_2D".

    Args:
        model: A `schema.ModelT`.
        opcode_index: An `Operator.opcodeIndex`.

    Returns:
        The `BuiltinOperator` name ("CUSTOM" for custom and Flex ops), or
        "BUILTIN_<n>" for a code this schema does not know.
    """
    code = model.operatorCodes[opcode_index]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    return _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


def custom_name(model, opcode_index: int) -> str:
    """The custom code of an operator code ("" for builtins), e.g. "FlexTopKV2"."""
    custom = model.operatorCodes[opcode_index].customCode
    if isinstance(custom, bytes):
        return custom.decode("utf-8", errors="replace")
    return custom or ""


def decode_name(name) -> str:
    """A schema string field (bytes or None) as `str`."""
    if isinstance(name, bytes):
        return name.decode("utf-8", errors="replace")
    return name or ""


def buffer_payload(buffer, data: bytes) -> bytes | None:
    """A buffer's bytes, inline or after the flatbuffer; None when empty.

    Args:
        buffer: A `schema.BufferT` of the model unpacked from `data`.
        data: The whole file.

    Raises:
        ValueError: The buffer's offset and size run past the end of `data`.
    """
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


def is_constant(model, tensor) -> bool:
    """True when `tensor` reads a non-empty buffer (inline or by offset)."""
    if tensor.buffer <= 0 or tensor.buffer >= len(model.buffers):
        return False
    buffer = model.buffers[tensor.buffer]
    if buffer.offset > 1:
        return buffer.size > 0
    return buffer.data is not None and len(buffer.data) > 0


def consumers(subgraph) -> dict[int, list[tuple[int, int]]]:
    """tensor index -> [(operator index, input position)] within `subgraph`."""
    uses: dict[int, list[tuple[int, int]]] = {}
    for op_index, op in enumerate(subgraph.operators or []):
        for position, tensor_index in enumerate(ints(op.inputs)):
            if tensor_index >= 0:
                uses.setdefault(tensor_index, []).append((op_index, position))
    return uses


def ints(values) -> list[int]:
    """A schema int vector (None, list or numpy array) as a list of ints."""
    return [] if values is None else [int(v) for v in values]


def _readings(model, subgraph, uses, tensor_index: int) -> set[tuple[str, str]]:
    """(role, op name) for every op that reads the tensor, through pass-throughs."""
    ok = subgraph.tensors[tensor_index].type in FLOAT_TYPES | QUANT_TYPES
    readings = set()
    stack, seen = [tensor_index], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        for op_index, position in uses.get(current, []):
            op = subgraph.operators[op_index]
            name = op_name(model, op.opcodeIndex)
            if name in _PASS_THROUGH_OPS and position == 0:
                stack.extend(ints(op.outputs))
                continue
            role = _WEIGHT_INPUTS.get(name, {}).get(position, "other") if ok else "other"
            readings.add((role, name))
    return readings


def _description(dtype: str, shape: tuple, names: list, readings: set) -> BufferDescription:
    """Settles the role, op and channels of a buffer from all its readings."""
    readings = sorted(readings)
    roles = {role for role, _ in readings}
    if len(roles) == 1:
        role, op = readings[0][0], readings[0][1]
    else:
        role, op = "other", (readings[0][1] if readings else "")
    ops = {name for _, name in readings}
    channels = 1
    if (
        role == "weight"
        and ops <= _LEADING_CHANNEL_OPS
        and len(ops) == 1
        and len(shape) >= 2
        and shape[0] > 0
    ):
        channels = shape[0]
    return BufferDescription(
        dtype=dtype,
        shape=shape,
        tensor_names=tuple(names),
        channels=channels,
        role=role,
        op=op,
    )


def describe_buffers(model) -> dict[int, BufferDescription]:
    """Describes every constant buffer that a tensor of `model` reads.

    A buffer shared by several tensors (all subgraphs) takes the dtype and
    shape of the first one and the names of all; it is a "weight" or "bias"
    only when every op reading it agrees (DEQUANTIZE and DENSIFY looked
    through), "other" otherwise.

    Args:
        model: A `schema.ModelT`.

    Returns:
        buffer index -> `BufferDescription`, in the order tensors first use them.
    """
    found: dict[int, tuple[str, tuple, list, set]] = {}
    for subgraph in model.subgraphs or []:
        uses = consumers(subgraph)
        for tensor_index, tensor in enumerate(subgraph.tensors or []):
            if not is_constant(model, tensor):
                continue
            dtype = _DTYPE_NAMES.get(tensor.type, TYPE_NAMES.get(tensor.type, "unknown"))
            _, _, names, readings = found.setdefault(
                tensor.buffer, (dtype, tuple(ints(tensor.shape)), [], set())
            )
            names.append(decode_name(tensor.name))
            readings |= _readings(model, subgraph, uses, tensor_index)
    return {index: _description(*entry) for index, entry in found.items()}


def weight_buffer(
    index: int, offset: int, size: int, description: BufferDescription
) -> WeightBuffer:
    """A `WeightBuffer` for buffer `index` whose data lie at `offset` (`size` bytes).

    `channels` falls back to 1 when the size is not a multiple of `channels` elements
    (e.g. the non-zero values of a sparse tensor).
    """
    channels = description.channels
    try:
        element = np.dtype(description.dtype).itemsize
    except TypeError:  # a type NumPy does not name (int4, string, ...): check bytes only
        element = 1
    if channels < 1 or size % (channels * element):
        channels = 1
    return WeightBuffer(
        buffer_index=index,
        offset=offset,
        size=size,
        dtype=description.dtype,
        shape=description.shape,
        tensor_names=description.tensor_names,
        channels=channels,
        role=description.role,
        op=description.op,
    )


@dataclasses.dataclass(frozen=True)
class SparseWeight:
    """A FULLY_CONNECTED weight stored as a TFLite sparse tensor (``Tensor.sparsity`` set).

    Attributes:
        tensor_name: The TFLite tensor's name.
        shape: Its dense shape, ``[out, in]``.
        block: The block shape in ``[out, in]`` order (``(1, 4)`` for the 1x4
            blocks LiteRT's sparse FC kernel runs), or ``None`` for an
            unstructured sparse tensor (densified or slow in LiteRT).
    """

    tensor_name: str
    shape: tuple
    block: tuple | None


def sparse_weights(model) -> list[SparseWeight]:
    """The FULLY_CONNECTED weights of `model` that are TFLite sparse tensors.

    A block-sparse tensor lists its block dimensions after the dense ones in
    ``sparsity.dimMetadata``; ``sparsity.blockMap`` names the dense axis each
    block dimension splits (schema ``SparsityParameters``).

    Args:
        model: A `schema.ModelT`.

    Returns:
        One `SparseWeight` per sparse weight tensor, in subgraph and tensor order.
    """
    found = []
    for subgraph in model.subgraphs or []:
        uses = consumers(subgraph)
        for index, tensor in enumerate(subgraph.tensors or []):
            sparsity = tensor.sparsity
            if sparsity is None:
                continue
            if not any(
                op_name(model, subgraph.operators[op].opcodeIndex) == "FULLY_CONNECTED"
                and position == 1
                for op, position in uses.get(index, [])
            ):
                continue
            shape = tuple(ints(tensor.shape))
            block_map = ints(sparsity.blockMap)
            block = None
            if block_map:
                sizes = [int(d.denseSize) for d in sparsity.dimMetadata[len(shape) :]]
                block = [1] * len(shape)
                for axis, size in zip(block_map, sizes):
                    block[axis] = size
                block = tuple(block)
            found.append(SparseWeight(decode_name(tensor.name), shape, block))
    return found


@dataclasses.dataclass(frozen=True)
class SparseIndexArray:
    """Where one index vector of a TFLite sparse tensor lies in the flatbuffer.

    Attributes:
        offset: Byte offset of the vector's first element in the flatbuffer.
        size: Its length in bytes.
        dtype: ``"int32"``, ``"uint16"`` or ``"uint8"`` (the union member the
            converter chose: ``Int32Vector``, ``Uint16Vector``, ``Uint8Vector``).
        buffer_index: The buffer of the sparse tensor it indexes.
        dimension: The ``DimensionMetadata`` it belongs to.
        field: ``"array_segments"`` or ``"array_indices"``.
    """

    offset: int
    size: int
    dtype: str
    buffer_index: int
    dimension: int
    field: str


_INDEX_VECTORS = {  # SparseIndexVector union member -> (its table class, element dtype)
    schema.SparseIndexVector.Int32Vector: (schema.Int32Vector, "int32"),
    schema.SparseIndexVector.Uint16Vector: (schema.Uint16Vector, "uint16"),
    schema.SparseIndexVector.Uint8Vector: (schema.Uint8Vector, "uint8"),
}


def sparse_index_arrays(data: bytes) -> list[SparseIndexArray]:
    """The index vectors of every sparse tensor (``DimensionMetadata.array_segments``
    and ``array_indices`` of its SPARSE_CSR dimensions), by byte range.

    They hold sorted block positions (row starts, then each row's column indices),
    which the sidecar codes by their differences (docs/bundle-format.md 7.9).

    Returns:
        One `SparseIndexArray` per non-empty vector, sorted by offset.
    """
    data = as_bytes(data)
    model = schema.Model.GetRootAs(data, 0)
    found = []
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            sparsity = tensor.Sparsity()
            if sparsity is None:
                continue
            for d in range(sparsity.DimMetadataLength()):
                metadata = sparsity.DimMetadata(d)
                for field, kind, table in (
                    ("array_segments", metadata.ArraySegmentsType(), metadata.ArraySegments()),
                    ("array_indices", metadata.ArrayIndicesType(), metadata.ArrayIndices()),
                ):
                    if table is None or kind not in _INDEX_VECTORS:
                        continue
                    cls, dtype = _INDEX_VECTORS[kind]
                    vector = cls()
                    vector.Init(table.Bytes, table.Pos)
                    o = vector._tab.Offset(4)  # field 0: values  # pylint: disable=protected-access
                    if not o:
                        continue
                    start = vector._tab.Vector(o)  # pylint: disable=protected-access
                    size = vector._tab.VectorLen(o) * np.dtype(dtype).itemsize  # pylint: disable=protected-access
                    if size and start + size <= len(data):
                        found.append(
                            SparseIndexArray(start, size, dtype, int(tensor.Buffer()), d, field)
                        )
    return sorted(found, key=lambda a: a.offset)


@dataclasses.dataclass(frozen=True)
class WeightKernel:
    """How one weight-reading op of a flatbuffer gets its weight, and which kernel runs it.

    Attributes:
        op: ``FULLY_CONNECTED``, ``CONV_2D`` or ``DEPTHWISE_CONV_2D``.
        tensor_name: The weight tensor's name (empty once names are stripped).
        shape: The weight's dense shape in the flatbuffer.
        stored: ``"dense"``, ``"sparse 1x4 blocks"``, ``"sparse, unstructured"`` or
            ``"sparse, unstructured (DENSIFY at load)"``.
        kernel: ``"sparse"`` (LiteRT's sparse FULLY_CONNECTED kernel) or ``"dense"``.
        effect: What that means for speed, in words.
        buffer_index: The buffer holding the weight (for a DENSIFY, its input's).
    """

    op: str
    tensor_name: str
    shape: tuple
    stored: str
    kernel: str
    effect: str
    buffer_index: int


_WEIGHT_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")


def weight_kernels(model) -> list[WeightKernel]:
    """Per weight-reading op of `model` (a `schema.ModelT`), in op order: how its weight
    is stored and which LiteRT kernel runs it.

    A FULLY_CONNECTED weight stored as a sparse tensor in 1x4 blocks runs LiteRT's
    sparse FC kernel. Any other sparse weight reaches its op through a DENSIFY op
    (the converter puts one there), which expands it once at load; the op then runs
    its dense kernel: LiteRT has no sparse CONV_2D or DEPTHWISE_CONV_2D kernel, and
    its FC kernel takes no other block shape.
    """
    blocks = {(w.tensor_name, tuple(w.shape)): w.block for w in sparse_weights(model)}
    rows = []
    for subgraph in model.subgraphs or []:
        producer = {out: op for op in subgraph.operators or [] for out in ints(op.outputs)}
        for op in subgraph.operators or []:
            name = op_name(model, op.opcodeIndex)
            inputs = ints(op.inputs)
            if name not in _WEIGHT_OPS or len(inputs) < 2 or inputs[1] < 0:
                continue
            tensor = subgraph.tensors[inputs[1]]
            shape = tuple(ints(tensor.shape))
            source = producer.get(inputs[1])
            if tensor.sparsity is not None:
                block = blocks.get((decode_name(tensor.name), shape))
                stored = "sparse 1x4 blocks" if block == (1, 4) else "sparse, unstructured"
                kernel = "sparse" if name == "FULLY_CONNECTED" and block == (1, 4) else "dense"
            elif source is not None and op_name(model, source.opcodeIndex) == "DENSIFY":
                stored, kernel = "sparse, unstructured (DENSIFY at load)", "dense"
                tensor = subgraph.tensors[ints(source.inputs)[0]]
            else:
                stored, kernel = "dense", "dense"
            if kernel == "sparse":
                effect = "faster: work in proportion to the kept blocks"
            elif stored == "dense":
                effect = "dense kernel (weight stored dense)"
            elif name == "FULLY_CONNECTED":
                effect = "no speed-up: LiteRT's sparse FC kernel takes 1x4 blocks only"
            else:
                effect = f"no speed-up: LiteRT has no sparse {name} kernel"
            rows.append(
                WeightKernel(
                    name, decode_name(tensor.name), shape, stored, kernel, effect, tensor.buffer
                )
            )
    return rows


def _name_span(table, field_offset: int):
    """(start, length) in the buffer of a table's string field, or None when absent."""
    o = table.Offset(field_offset)
    if o == 0:
        return None
    at = o + table.Pos
    start = at + int.from_bytes(table.Bytes[at : at + 4], "little")
    return start, int.from_bytes(table.Bytes[start : start + 4], "little")


def strip_names(data: bytes) -> bytes:
    """The flatbuffer with the names of its inner tensors blanked, in place.

    The converter names every tensor after the graph nodes it came from
    (``"mlp/ip1/MatMul;mlp/ip1/Relu;mlp/ip1/BiasAdd"``): about a fifth of a small
    model's flatbuffer, and nothing a runtime reads. Each such name becomes the
    empty string: its 4-byte length is set to 0 and its bytes to zero, so no offset
    moves, the file stays the same size and valid, and the zeros cost nearly
    nothing once the skeleton is zlib-coded. The names of subgraph inputs and
    outputs and of the tensors that signatures refer to are kept (LiteRT's
    ``get_input_details`` shows them).

    Example:
        >>> small = flatbuffer.strip_names(tflite_bytes)
        >>> len(small) == len(tflite_bytes)
        True
    """
    data = as_bytes(data)
    out = bytearray(data)
    model = schema.Model.GetRootAs(out, 0)
    keep = set()
    for i in range(model.SignatureDefsLength()):
        signature = model.SignatureDefs(i)
        for j in range(signature.InputsLength()):
            keep.add((signature.SubgraphIndex(), signature.Inputs(j).TensorIndex()))
        for j in range(signature.OutputsLength()):
            keep.add((signature.SubgraphIndex(), signature.Outputs(j).TensorIndex()))
    spans = []
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        ends = {int(t) for t in subgraph.InputsAsNumpy()} if subgraph.InputsLength() else set()
        if subgraph.OutputsLength():
            ends |= {int(t) for t in subgraph.OutputsAsNumpy()}
        for t in range(subgraph.TensorsLength()):
            if t in ends or (g, t) in keep:
                continue
            span = _name_span(subgraph.Tensors(t)._tab, 10)  # Tensor.name is field 3
            if span is not None:
                spans.append(span)
    for start, length in spans:
        if start + 4 + length > len(out):
            raise ValueError("Malformed TFLite flatbuffer: a tensor name runs past the end.")
        out[start : start + 4 + length] = bytes(4 + length)
    return bytes(out)


# Metadata the TensorFlow converter writes for people and tools, never read by a runtime.
INFORMATIONAL_METADATA = (b"min_runtime_version", b"CONVERSION_METADATA")


def _is_empty_quantization(q) -> bool:
    return (
        q is not None
        and all(
            getattr(q, field) is None or len(getattr(q, field)) == 0
            for field in ("min", "max", "scale", "zeroPoint")
        )
        and q.details is None
        and not q.detailsType
        and not q.quantizedDimension
    )


def drop_informational(model) -> int:
    """Removes what no runtime reads from a `schema.ModelT`, in place.

    The TensorFlow converter stores a description (``"MLIR Converted."``), two
    metadata entries (`INFORMATIONAL_METADATA`: the minimum runtime version and
    the converter's own record of its options) and an empty quantization table
    for every float tensor. A runtime reads none of them (an absent quantization
    table means "not quantized", like an empty one), yet on a compressed
    LeNet-300-100 they are ~110 of the ~700 bytes the zlib-coded skeleton
    takes. Other metadata (e.g. TFLite Support's ``TFLITE_METADATA``) stays.
    The buffers that only dropped metadata used are emptied (and removed when
    they are the last ones, so no buffer index moves).

    Args:
        model: A `schema.ModelT` (from `unpack`), changed in place.

    Returns:
        The number of things removed (metadata entries, description,
        quantization tables).

    Example:
        >>> tree = flatbuffer.unpack(tflite_bytes)
        >>> flatbuffer.drop_informational(tree)
        12
    """
    removed = 0
    if model.description is not None:
        model.description = None
        removed += 1
    dropped = [m for m in model.metadata or [] if m.name in INFORMATIONAL_METADATA]
    if dropped:
        kept = [m for m in model.metadata if m.name not in INFORMATIONAL_METADATA]
        model.metadata = kept or None
        removed += len(dropped)
        still_used = {int(m.buffer) for m in kept}
        for subgraph in model.subgraphs or []:
            still_used |= {int(t.buffer) for t in subgraph.tensors or []}
        if model.metadataBuffer is not None:
            still_used |= {int(b) for b in model.metadataBuffer}
        for m in dropped:
            index = int(m.buffer)
            if index not in still_used and 0 < index < len(model.buffers or []):
                model.buffers[index].data = None
                model.buffers[index].offset = model.buffers[index].size = 0
        while (
            model.buffers
            and len(model.buffers) - 1 not in still_used
            and len(model.buffers) > 1
            and model.buffers[-1].data is None
            and not model.buffers[-1].offset
        ):
            model.buffers.pop()
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            if _is_empty_quantization(tensor.quantization):
                tensor.quantization = None
                removed += 1
    return removed
