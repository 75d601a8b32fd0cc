"""Static check of a TFLite flatbuffer against the GPU delegate's rules.

`check_delegate_compatibility` lists what would keep LiteRT's GPU delegate
from taking a model: ops without a GPU parser (`GPU_DELEGATE_OPS`), Flex and
custom ops, dynamic or rank > 4 shapes, sparse tensors, and tensor types the
delegate does not accept.
"""

from __future__ import annotations

from ai_edge_litert import schema_py_generated as schema

from converters import flatbuffer

__all__ = ["GPU_DELEGATE_OPS", "check_delegate_compatibility"]

# Builtin ops for which the GPU delegate has an operation parser: the switch in
# `NewOperationParser` of LiteRT `tflite/delegates/gpu/common/model_builder.cc`
# (google-ai-edge/LiteRT, read 2026). Its per-op checks (op versions, option
# values) are not repeated here.
GPU_DELEGATE_OPS = frozenset(
    {
        "ABS",
        "ADD",
        "ADD_N",
        "AVERAGE_POOL_2D",
        "BATCH_MATMUL",
        "CAST",
        "CONCATENATION",
        "CONV_2D",
        "COS",
        "CUMSUM",
        "DENSIFY",
        "DEPTHWISE_CONV_2D",
        "DEPTH_TO_SPACE",
        "DEQUANTIZE",
        "DIV",
        "EQUAL",
        "ELU",
        "EXP",
        "FLOOR",
        "FLOOR_DIV",
        "FLOOR_MOD",
        "FULLY_CONNECTED",
        "GATHER",
        "GELU",
        "GREATER",
        "GREATER_EQUAL",
        "HARD_SWISH",
        "LESS",
        "LESS_EQUAL",
        "LOGISTIC",
        "LOG",
        "LOGICAL_AND",
        "LSTM",
        "MAXIMUM",
        "MAX_POOL_2D",
        "MEAN",
        "MINIMUM",
        "MIRROR_PAD",
        "MUL",
        "NEG",
        "NOT_EQUAL",
        "ONE_HOT",
        "PACK",
        "PAD",
        "PADV2",
        "POW",
        "REDUCE_MAX",
        "REDUCE_MIN",
        "REDUCE_PROD",
        "QUANTIZE",
        "RELU",
        "RELU6",
        "RELU_0_TO_1",
        "RELU_N1_TO_1",
        "LEAKY_RELU",
        "PRELU",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "RESIZE_NEAREST_NEIGHBOR",
        "RSQRT",
        "SELECT",
        "SELECT_V2",
        "SIGN",
        "SIN",
        "SLICE",
        "SOFTMAX",
        "SPACE_TO_DEPTH",
        "SPLIT",
        "SPLIT_V",
        "SQRT",
        "SQUARE",
        "SQUARED_DIFFERENCE",
        "STRIDED_SLICE",
        "SUB",
        "SUM",
        "TANH",
        "TILE",
        "TRANSPOSE",
        "TRANSPOSE_CONV",
        "UNPACK",
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
    model = flatbuffer.unpack(flatbuffer.as_bytes(tflite_bytes))
    problems: list[str] = []
    for sg_index, subgraph in enumerate(model.subgraphs or []):
        where = f"subgraph {sg_index} " if sg_index else ""
        for problem in (
            *_tensor_problems(model, subgraph),
            *_op_problems(model, subgraph),
        ):
            if where + problem not in problems:
                problems.append(where + problem)
    return problems


def _tensor_label(subgraph, index: int) -> str:
    return f"tensor {index} {flatbuffer.decode_name(subgraph.tensors[index].name)!r}"


def _tensor_problems(model, subgraph):
    """Shapes, sparsity and constant types the GPU delegate refuses."""
    uses = flatbuffer.consumers(subgraph)
    for i, tensor in enumerate(subgraph.tensors or []):
        label = _tensor_label(subgraph, i)
        signature = tensor.shapeSignature
        dims = flatbuffer.ints(signature if signature is not None else tensor.shape)
        if any(d < 0 for d in dims):
            yield f"{label}: dynamic shape {dims}; the GPU delegate needs static shapes"
        rank = len(flatbuffer.ints(tensor.shape))
        if rank > 4:
            yield f"{label}: rank {rank} > 4 is not supported"
        if tensor.sparsity is not None:
            yield f"{label}: sparse tensor; store weights dense in the flatbuffer"
        if not flatbuffer.is_constant(model, tensor):
            continue
        readers = {
            flatbuffer.op_name(model, subgraph.operators[o].opcodeIndex) for o, _ in uses.get(i, [])
        }
        type_name = flatbuffer.TYPE_NAMES.get(tensor.type, str(tensor.type))
        if tensor.type in flatbuffer.FLOAT_TYPES and tensor.type not in (_T.FLOAT32, _T.FLOAT16):
            yield f"{label}: constant of type {type_name}; weights must be FLOAT32 or FLOAT16"
        elif tensor.type in flatbuffer.QUANT_TYPES | {_T.INT16, _T.INT4} and readers - {
            "DEQUANTIZE"
        }:
            yield (
                f"{label}: {type_name} constant read by "
                f"{', '.join(sorted(readers - {'DEQUANTIZE'}))}; integer weights are "
                "only allowed as DEQUANTIZE input"
            )


def _op_problems(model, subgraph):
    """Ops the GPU delegate has no parser for, and runtime types it refuses."""
    tensors = subgraph.tensors or []
    for op_index, op in enumerate(subgraph.operators or []):
        name = flatbuffer.op_name(model, op.opcodeIndex)
        if name == "CUSTOM":
            custom = flatbuffer.custom_name(model, op.opcodeIndex)
            kind = "Flex (TF Select) op" if custom.startswith("Flex") else "custom op"
            yield f"op {op_index} CUSTOM {custom!r}: {kind}; no delegate runs it"
            continue
        if name not in GPU_DELEGATE_OPS:
            yield f"op {op_index} {name}: not implemented by the GPU delegate"
            continue
        allowed_in, allowed_out = _allowed_runtime_types(name)
        for role, indices, allowed in (
            ("input", op.inputs, allowed_in),
            ("output", op.outputs, allowed_out),
        ):
            for t in flatbuffer.ints(indices):
                if t < 0 or flatbuffer.is_constant(model, tensors[t]) or tensors[t].isVariable:
                    continue
                if tensors[t].type not in allowed:
                    yield (
                        f"op {op_index} {name}: {role} {_tensor_label(subgraph, t)} has type "
                        f"{flatbuffer.TYPE_NAMES.get(tensors[t].type, tensors[t].type)}, which "
                        "the GPU delegate does not take here"
                    )
