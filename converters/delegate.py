"""Static check of a TFLite flatbuffer against the rules of accelerator delegates.

Two profiles, each a set of rules read from the delegate's own source or docs:

- ``"gpu"``: LiteRT's GPU delegate (float models): ops without a GPU parser
  (`GPU_DELEGATE_OPS`), Flex and custom ops, dynamic or rank > 4 shapes, sparse
  tensors, and tensor types the delegate does not accept.
- ``"int8"``: full-integer accelerators, NNAPI-class drivers and Edge-TPU-class
  compilers (`INT8_ACCELERATOR_OPS`): an op must be mapped by both, at an op
  version NNAPI maps, with int8 activations; the same shape rules.

`check_delegate_compatibility` lists one profile's problems; `check_ops` says
per op which profiles accept it.
"""

from __future__ import annotations

import dataclasses

from ai_edge_litert import schema_py_generated as schema

from converters import flatbuffer

__all__ = [
    "GPU_DELEGATE_OPS",
    "INT8_ACCELERATOR_OPS",
    "PROFILES",
    "Int8Op",
    "OpCheck",
    "check_delegate_compatibility",
    "check_ops",
]

PROFILES = ("gpu", "int8")

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


@dataclasses.dataclass(frozen=True)
class Int8Op:
    """Which full-integer accelerator classes map one builtin op with int8 activations.

    Attributes:
        nnapi_max_version: The newest op version NNAPI-class drivers map for int8
            (NNAPI 1.3, Android 11+); None when NNAPI maps the op for float only.
        edgetpu: True when the Edge TPU compiler's supported-operations list has it.
    """

    nnapi_max_version: int | None
    edgetpu: bool


# Full-integer accelerators. Two sources, read 2026-11-30:
# - NNAPI: `NNAPIDelegateKernel::Validate` in TFLite/LiteRT
#   `delegates/nnapi/nnapi_delegate.cc` (tensorflow/tensorflow): the op's
#   ExpectMaxOpVersion / ExpectOpVersion bound, and whether the op accepts int8
#   inputs (ExpectIsFloatOrQuant8Operator, EXPECT_INPUT_TYPE_IN) at NNAPI 1.3,
#   the first with signed int8 tensors. Ops that NNAPI maps for float only (DIV,
#   SUM, RSQRT, EXP, ...) have None.
# - Edge TPU: the "Supported operations" table of Coral's "TensorFlow models on
#   the Edge TPU" (coral.ai/docs/edgetpu/models-intro). Its per-op limits (no
#   fused activation on pools, x/y-only MEAN and PAD, ...) and its rule that only
#   the 3 innermost dimensions may exceed 1 are not checked here.
# The int8 profile accepts an op that both map: a model that passes runs on
# either class of accelerator without falling back to the CPU.
INT8_ACCELERATOR_OPS = {
    "ADD": Int8Op(2, True),
    "ARG_MAX": Int8Op(2, False),
    "ARG_MIN": Int8Op(2, False),
    "AVERAGE_POOL_2D": Int8Op(2, True),
    "BATCH_TO_SPACE_ND": Int8Op(2, False),
    "CONCATENATION": Int8Op(2, True),
    "CONV_2D": Int8Op(5, True),
    "DEPTHWISE_CONV_2D": Int8Op(3, True),
    "DEPTH_TO_SPACE": Int8Op(2, False),
    "DEQUANTIZE": Int8Op(2, False),
    "EQUAL": Int8Op(2, False),
    "EXPAND_DIMS": Int8Op(1, True),
    "FULLY_CONNECTED": Int8Op(5, True),
    "GATHER": Int8Op(2, False),
    "GREATER": Int8Op(2, False),
    "GREATER_EQUAL": Int8Op(2, False),
    "HARD_SWISH": Int8Op(1, False),
    "L2_NORMALIZATION": Int8Op(2, True),
    "LEAKY_RELU": Int8Op(1, False),
    "LESS": Int8Op(2, False),
    "LESS_EQUAL": Int8Op(2, False),
    "LOGISTIC": Int8Op(2, True),
    "MAXIMUM": Int8Op(3, True),
    "MAX_POOL_2D": Int8Op(2, True),
    "MEAN": Int8Op(2, True),
    "MINIMUM": Int8Op(3, True),
    "MUL": Int8Op(2, True),
    "NOT_EQUAL": Int8Op(2, False),
    "PACK": Int8Op(2, True),
    "PAD": Int8Op(2, True),
    "PADV2": Int8Op(2, False),
    "PRELU": Int8Op(1, True),
    "QUANTIZE": Int8Op(2, True),
    "REDUCE_MAX": Int8Op(2, True),
    "REDUCE_MIN": Int8Op(2, True),
    "RELU": Int8Op(2, True),
    "RELU6": Int8Op(2, True),
    "RELU_N1_TO_1": Int8Op(2, True),
    "RESHAPE": Int8Op(1, True),
    "RESIZE_BILINEAR": Int8Op(3, True),
    "RESIZE_NEAREST_NEIGHBOR": Int8Op(3, True),
    "RSQRT": Int8Op(None, True),
    "SELECT": Int8Op(2, False),
    "SLICE": Int8Op(2, True),
    "SOFTMAX": Int8Op(2, True),
    "SPACE_TO_BATCH_ND": Int8Op(2, False),
    "SPACE_TO_DEPTH": Int8Op(2, True),
    "SPLIT": Int8Op(3, True),
    "SPLIT_V": Int8Op(2, False),
    "SQUARED_DIFFERENCE": Int8Op(2, True),
    "SQUEEZE": Int8Op(1, True),
    "STRIDED_SLICE": Int8Op(2, True),
    "SUB": Int8Op(3, True),
    "SUM": Int8Op(None, True),
    "TANH": Int8Op(2, True),
    "TILE": Int8Op(1, False),
    "TOPK_V2": Int8Op(2, False),
    "TRANSPOSE": Int8Op(2, True),
    "TRANSPOSE_CONV": Int8Op(3, True),
}

_LOGICAL_OPS = {"GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL", "EQUAL", "NOT_EQUAL"}
_T = schema.TensorType
_INTEGER_ACTIVATIONS = {_T.INT8, _T.UINT8}


@dataclasses.dataclass(frozen=True)
class OpCheck:
    """One op of the model against every profile.

    Attributes:
        subgraph: The subgraph index.
        index: The op's index in its subgraph.
        op: The builtin op name (CUSTOM for custom and Flex ops).
        version: The op version in the flatbuffer's operator code.
        problems: ``{profile: [problem, ...]}`` for every name in `PROFILES`;
            an empty list means the profile accepts the op.
    """

    subgraph: int
    index: int
    op: str
    version: int
    problems: dict

    @property
    def accepted_by(self) -> tuple:
        """The profiles that accept the op, in `PROFILES` order."""
        return tuple(p for p in PROFILES if not self.problems[p])


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


def _allowed_int8_types(op: str) -> tuple[set[int], set[int]]:
    """Types of non-constant inputs/outputs a full-integer accelerator takes for `op`.

    int8/uint8 activations; int32 where the op reads indices or shapes (GATHER's
    positions, RESHAPE's shape, ...); float32 only into QUANTIZE and out of
    DEQUANTIZE, the edges of a model with float inputs and outputs.
    """
    allowed_in = _INTEGER_ACTIVATIONS | {_T.INT32}
    allowed_out = set(_INTEGER_ACTIVATIONS)
    if op == "QUANTIZE":
        allowed_in.add(_T.FLOAT32)
    if op == "DEQUANTIZE":
        allowed_out.add(_T.FLOAT32)
    if op in _LOGICAL_OPS:
        allowed_out.add(_T.BOOL)
    if op in ("ARG_MAX", "ARG_MIN", "TOPK_V2"):
        allowed_out.add(_T.INT32)
    return allowed_in, allowed_out


def check_delegate_compatibility(tflite_bytes, profile="gpu") -> list[str]:
    """Statically checks a flatbuffer against one delegate profile's rules.

    Checks, for every subgraph: each op is a builtin the profile maps (``"gpu"``:
    `GPU_DELEGATE_OPS`; ``"int8"``: `INT8_ACCELERATOR_OPS` mapped by NNAPI-class
    and Edge-TPU-class accelerators alike, at an op version NNAPI maps; CUSTOM
    ops, Flex ones included, are flagged); no tensor has a dynamic dimension (-1
    in `shape_signature`) or rank above 4; no tensor is sparse; non-constant op
    inputs/outputs have the types the profile takes (``"int8"``: int8/uint8
    activations, float only into QUANTIZE and out of DEQUANTIZE); for ``"gpu"``,
    constant float tensors are float32/float16 and int8/uint8 constants feed
    DEQUANTIZE only; for ``"int8"``, no float constant feeds an op other than
    DEQUANTIZE. Not `tf.lite.experimental.Analyzer`, which reports every model
    compatible.

    Args:
        tflite_bytes: A TFLite flatbuffer (inline or offset layout).
        profile: ``"gpu"`` (LiteRT's GPU delegate, float models) or ``"int8"``
            (full-integer accelerators, for ``convert(int8=True)`` bundles).
            Defaults to `"gpu"`.

    Returns:
        Human-readable problems naming the op or tensor; empty when compatible.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, received {profile!r}.")
    model = flatbuffer.unpack(flatbuffer.as_bytes(tflite_bytes))
    problems: list[str] = []
    for sg_index, subgraph in enumerate(model.subgraphs or []):
        where = f"subgraph {sg_index} " if sg_index else ""
        found = list(_tensor_problems(model, subgraph, profile))
        for op_index, op in enumerate(subgraph.operators or []):
            found.extend(_one_op_problems(model, subgraph, op_index, op, profile))
        for problem in found:
            if where + problem not in problems:
                problems.append(where + problem)
    return problems


def check_ops(tflite_bytes) -> list[OpCheck]:
    """Per op of every subgraph, the problems each profile in `PROFILES` has with it.

    The op-level rules of `check_delegate_compatibility` (op, op version, runtime
    tensor types) and the weight types the op reads (``"gpu"``: integer weights
    only through DEQUANTIZE; ``"int8"``: no float weights); shapes and sparsity
    are tensor rules, reported by `check_delegate_compatibility` alone.

    Args:
        tflite_bytes: A TFLite flatbuffer (inline or offset layout).

    Returns:
        One `OpCheck` per op, in subgraph and execution order.
    """
    model = flatbuffer.unpack(flatbuffer.as_bytes(tflite_bytes))
    checks = []
    for sg_index, subgraph in enumerate(model.subgraphs or []):
        for op_index, op in enumerate(subgraph.operators or []):
            checks.append(
                OpCheck(
                    subgraph=sg_index,
                    index=op_index,
                    op=flatbuffer.op_name(model, op.opcodeIndex),
                    version=_op_version(model, op.opcodeIndex),
                    problems={
                        p: [
                            *_one_op_problems(model, subgraph, op_index, op, p),
                            *_weight_problems(model, subgraph, op_index, op, p),
                        ]
                        for p in PROFILES
                    },
                )
            )
    return checks


def _op_version(model, opcode_index: int) -> int:
    return int(model.operatorCodes[opcode_index].version or 1)


def _tensor_label(subgraph, index: int) -> str:
    return f"tensor {index} {flatbuffer.decode_name(subgraph.tensors[index].name)!r}"


def _tensor_problems(model, subgraph, profile):
    """Shapes, sparsity and constant types the profile refuses."""
    uses = flatbuffer.consumers(subgraph)
    who = "the GPU delegate needs" if profile == "gpu" else "int8 accelerators need"
    for i, tensor in enumerate(subgraph.tensors or []):
        label = _tensor_label(subgraph, i)
        signature = tensor.shapeSignature
        dims = flatbuffer.ints(signature if signature is not None else tensor.shape)
        if any(d < 0 for d in dims):
            yield f"{label}: dynamic shape {dims}; {who} static shapes"
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
        if profile == "int8":
            if tensor.type in flatbuffer.FLOAT_TYPES and readers - {"DEQUANTIZE"}:
                yield (
                    f"{label}: {type_name} constant read by "
                    f"{', '.join(sorted(readers - {'DEQUANTIZE'}))}; int8 accelerators "
                    "take integer weights"
                )
            continue
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


def _one_op_problems(model, subgraph, op_index, op, profile):
    """What keeps the profile's delegate from taking one op: the op, its version, its types."""
    name = flatbuffer.op_name(model, op.opcodeIndex)
    if name == "CUSTOM":
        custom = flatbuffer.custom_name(model, op.opcodeIndex)
        kind = "Flex (TF Select) op" if custom.startswith("Flex") else "custom op"
        yield f"op {op_index} CUSTOM {custom!r}: {kind}; no delegate runs it"
        return
    if profile == "gpu":
        if name not in GPU_DELEGATE_OPS:
            yield f"op {op_index} {name}: not implemented by the GPU delegate"
            return
        allowed_in, allowed_out = _allowed_runtime_types(name)
        who = "the GPU delegate"
    else:
        refusal = _int8_refusal(name, _op_version(model, op.opcodeIndex))
        if refusal:
            yield f"op {op_index} {name}: {refusal}"
            return
        allowed_in, allowed_out = _allowed_int8_types(name)
        who = "int8 accelerators"
    tensors = subgraph.tensors or []
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
                    f"{who} do{'es' if profile == 'gpu' else ''} not take here"
                )


def _weight_problems(model, subgraph, op_index, op, profile):
    """Constant inputs of one op whose type the profile refuses (DEQUANTIZE reads any)."""
    name = flatbuffer.op_name(model, op.opcodeIndex)
    if name == "DEQUANTIZE":
        return
    refused = flatbuffer.FLOAT_TYPES if profile == "int8" else flatbuffer.QUANT_TYPES
    refused = refused | ({_T.INT16, _T.INT4} if profile == "gpu" else set())
    tensors = subgraph.tensors or []
    for t in flatbuffer.ints(op.inputs):
        if t >= 0 and flatbuffer.is_constant(model, tensors[t]) and tensors[t].type in refused:
            yield (
                f"op {op_index} {name}: weight {_tensor_label(subgraph, t)} has type "
                f"{flatbuffer.TYPE_NAMES.get(tensors[t].type, tensors[t].type)}"
            )


def _int8_refusal(name: str, version: int) -> str:
    """Why the int8 profile refuses op `name` at `version`; "" when both classes map it."""
    rule = INT8_ACCELERATOR_OPS.get(name)
    if rule is None:
        return "mapped by neither NNAPI-class drivers nor Edge-TPU-class compilers for int8"
    if rule.nnapi_max_version is None:
        return "NNAPI-class drivers map it for float only"
    if not rule.edgetpu:
        hint = (
            "; the float output's edge, int8_io=True leaves it out" if name == "DEQUANTIZE" else ""
        )
        return "not on the Edge TPU's supported-operations list" + hint
    if version > rule.nnapi_max_version:
        return f"version {version} > {rule.nnapi_max_version}, the newest NNAPI-class drivers map"
    return ""
