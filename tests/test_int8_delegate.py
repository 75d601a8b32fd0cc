"""The int8 accelerator profile of the static delegate check (issue #15).

`converters.delegate.check_delegate_compatibility(profile="int8")` against real
int8 flatbuffers from the TFLite converter, and against ones edited by hand so
that exactly one rule breaks (an op version NNAPI does not map, an op NNAPI maps
for float only, an op missing from the Edge TPU list, an op neither maps);
`check_ops` per op for both profiles; ``convert(int8=True)`` runs the int8
profile, reports it per op and applies ``strict_delegate`` to it.
"""

import json
import os

import keras
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

import converters
from converters import delegate, export

OPS = schema.BuiltinOperator


@pytest.fixture(scope="module")
def model_and_data():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(4),
            keras.layers.Softmax(),
        ]
    )
    return model, np.random.default_rng(3).normal(size=(32, 8)).astype("float32")


@pytest.fixture(scope="module")
def int8_flat(model_and_data):
    model, x = model_and_data
    return export.to_tflite(model, int8=True, representative_data=x)


@pytest.fixture(scope="module")
def int8_io_flat(model_and_data):
    model, x = model_and_data
    return export.to_tflite(model, int8=True, representative_data=x, int8_io=True)


def _edited(flat, edit):
    model = schema.ModelT.InitFromPackedBuf(flat, 0)
    edit(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _opcode(model, name):
    """The operator code of the first op called `name`."""
    return next(c for c in model.operatorCodes if c.builtinCode == getattr(OPS, name))


def test_an_int8_io_model_passes_the_int8_profile_and_fails_the_gpu_one(int8_io_flat):
    assert delegate.check_delegate_compatibility(int8_io_flat, profile="int8") == []
    gpu = delegate.check_delegate_compatibility(int8_io_flat)  # default: the GPU profile
    assert any("INT8 constant read by FULLY_CONNECTED" in p for p in gpu), gpu


def test_float_io_leaves_a_dequantize_the_edge_tpu_does_not_map(int8_flat):
    problems = delegate.check_delegate_compatibility(int8_flat, profile="int8")
    assert len(problems) == 1, problems
    assert "DEQUANTIZE: not on the Edge TPU's supported-operations list" in problems[0]
    assert "int8_io=True" in problems[0]


def test_check_ops_says_per_op_which_profiles_accept_it(int8_flat):
    checks = delegate.check_ops(int8_flat)
    accepted = [(c.op, c.accepted_by) for c in checks]
    assert accepted == [
        ("QUANTIZE", ("gpu", "int8")),
        ("FULLY_CONNECTED", ("int8",)),  # int8 weights: not the GPU delegate's
        ("FULLY_CONNECTED", ("int8",)),
        ("SOFTMAX", ("gpu", "int8")),
        ("DEQUANTIZE", ("gpu",)),
    ], accepted
    fc = checks[1]
    assert fc.version >= 1 and "weight" in fc.problems["gpu"][0] and "INT8" in fc.problems["gpu"][0]
    assert [c.index for c in checks] == list(range(5)) and {c.subgraph for c in checks} == {0}


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            lambda m: setattr(_opcode(m, "FULLY_CONNECTED"), "version", 6),
            "op 0 FULLY_CONNECTED: version 6 > 5, the newest NNAPI-class drivers map",
        ),
        (
            lambda m: _rename(m, "SOFTMAX", "SUM"),
            "op 2 SUM: NNAPI-class drivers map it for float only",
        ),
        (
            lambda m: _rename(m, "SOFTMAX", "TOPK_V2"),
            "op 2 TOPK_V2: not on the Edge TPU's supported-operations list",
        ),
        (
            lambda m: _rename(m, "SOFTMAX", "BATCH_MATMUL"),
            "op 2 BATCH_MATMUL: mapped by neither NNAPI-class drivers nor Edge-TPU-class",
        ),
    ],
    ids=["op-version", "float-only", "not-edge-tpu", "neither"],
)
def test_the_int8_profile_names_the_rule_an_op_breaks(int8_io_flat, edit, expected):
    problems = delegate.check_delegate_compatibility(_edited(int8_io_flat, edit), profile="int8")
    assert any(expected in p for p in problems), problems
    refused = [c for c in delegate.check_ops(_edited(int8_io_flat, edit)) if c.problems["int8"]]
    assert refused and {c.op for c in refused} == {expected.split()[2].rstrip(":")}
    assert all("int8" not in c.accepted_by for c in refused)


def _rename(model, old, new):
    code = _opcode(model, old)
    code.builtinCode = code.deprecatedBuiltinCode = getattr(OPS, new)


def test_a_float_model_fails_the_int8_profile_on_weights_and_activations(model_and_data):
    flat = export.to_tflite(model_and_data[0])
    problems = delegate.check_delegate_compatibility(flat, profile="int8")
    assert any("FLOAT32 constant read by FULLY_CONNECTED" in p for p in problems), problems
    for role in ("input", "output"):  # float activations, into and out of the op
        assert any(
            f"op 0 FULLY_CONNECTED: {role} tensor" in p
            and "has type FLOAT32, which int8 accelerators do not take" in p
            for p in problems
        ), problems
    assert delegate.check_delegate_compatibility(flat) == []  # the GPU profile: unchanged
    assert all(c.accepted_by == ("gpu",) for c in delegate.check_ops(flat))


def test_an_unknown_profile_is_refused(int8_flat):
    with pytest.raises(ValueError, match="profile must be one of"):
        delegate.check_delegate_compatibility(int8_flat, profile="npu")


def test_convert_int8_runs_and_reports_the_int8_profile(model_and_data, tmp_path):
    model, x = model_and_data
    result = converters.convert(
        model, str(tmp_path), int8=True, representative_data=x, picture=False, verbose=0
    )
    assert len(result.delegate_problems) == 1 and "DEQUANTIZE" in result.delegate_problems[0]
    with open(os.path.join(str(tmp_path), "model.report.json")) as f:
        report = json.load(f)
    assert report["delegate_profile"] == "int8"
    assert report["delegate_problems"] == result.delegate_problems
    ops = report["delegate_ops"]
    assert [o["op"] for o in ops] == [
        "QUANTIZE",
        "FULLY_CONNECTED",
        "FULLY_CONNECTED",
        "SOFTMAX",
        "DEQUANTIZE",
    ]
    assert ops[1]["problems"]["int8"] == [] and ops[1]["problems"]["gpu"]
    with open(os.path.join(str(tmp_path), "model.report.txt")) as f:
        text = f.read()
    assert "delegate check (int8 profile): op 4 DEQUANTIZE" in text
    assert (
        "FULLY_CONNECTED v" in text
        and "x2: GPU no (weight" in text
        and "int8 accelerators yes" in text
    )


def test_strict_delegate_applies_the_int8_profile_to_int8_bundles(model_and_data, tmp_path):
    model, x = model_and_data
    out = tmp_path / "never"
    with pytest.raises(ValueError, match=r"delegate check \(int8 profile\): op 4 DEQUANTIZE"):
        converters.convert(
            model, str(out), int8=True, representative_data=x, strict_delegate=True, verbose=0
        )
    assert not out.exists() or os.listdir(out) == []
    result = converters.convert(  # int8 in and out: nothing left for the CPU
        model,
        str(tmp_path / "io"),
        int8=True,
        int8_io=True,
        representative_data=x,
        strict_delegate=True,
        picture=False,
        verbose=0,
    )
    assert result.delegate_problems == [] and result.report["delegate_profile"] == "int8"


def test_float_bundles_keep_the_gpu_profile(model_and_data, tmp_path):
    result = converters.convert(model_and_data[0], str(tmp_path), picture=False, verbose=0)
    assert result.delegate_problems == [] and result.report["delegate_profile"] == "gpu"
    assert all(o["problems"]["gpu"] == [] for o in result.report["delegate_ops"])
