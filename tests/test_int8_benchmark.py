"""benchmarks.int8_benchmark: its helpers on hand-made numbers, and the --smoke run end to end."""

import json
import os
import subprocess
import sys

import pytest

import converters
from benchmarks import int8_benchmark as ib
from converters import decoder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def weight(name, distinct, zeros=10, keras_zeros=10):
    """An ``Int8Weight.as_dict()`` as the convert report writes it."""
    return {
        "keras_name": name,
        "tflite_name": "x/MatMul",
        "shape": [10, 100],
        "channels": 10,
        "zeros": zeros,
        "keras_zeros": keras_zeros,
        "max_distinct_per_channel": distinct,
        "zeros_preserved": zeros == keras_zeros,
    }


def test_layer_bits_reads_the_layer_before_the_variable():
    bits = {"ip1": 4, "ip2": 6}
    assert ib.layer_bits("lenet_300_100/ip1/kernel", bits, 5) == 4
    assert ib.layer_bits("ip2/kernel", bits, 5) == 6
    assert ib.layer_bits("ip3/kernel", bits, 5) == 5
    assert ib.layer_bits("ip3/kernel", bits, None) is None


def test_check_weights_limits_each_kernel_to_its_layers_bits():
    bits = {"ip1": 4, "ip2": 5}
    ok = ib.check_weights([weight("m/ip1/kernel", 16), weight("m/ip2/kernel", 32)], bits, 5)
    assert ok["zeros_preserved"] and ok["distinct_within_bits"]
    assert [w["bits"] for w in ok["weights"]] == [4, 5]
    # 17 values in a 4-bit layer: that kernel and the summary fail; the 5-bit one passes.
    bad = ib.check_weights([weight("m/ip1/kernel", 17), weight("m/ip2/kernel", 17)], bits, 5)
    assert [w["distinct_within_bits"] for w in bad["weights"]] == [False, True]
    assert not bad["distinct_within_bits"] and bad["zeros_preserved"]
    # A zero lost (or gained) fails the zeros check only.
    lost = ib.check_weights([weight("m/ip1/kernel", 3, zeros=9)], bits, 5)
    assert not lost["zeros_preserved"] and lost["distinct_within_bits"]
    # A layer that was not clustered has no limit; no kernel at all passes nothing.
    free = ib.check_weights([weight("m/ip9/kernel", 200)], bits, None)
    assert free["weights"][0]["bits"] is None and free["distinct_within_bits"]
    assert ib.check_weights([], bits, 5) == {
        "weights": [],
        "zeros_preserved": False,
        "distinct_within_bits": False,
    }


K = {
    "dense_float32_tflite_bytes": 1_000_000,
    "dense_int8_tflite_bytes": 250_000,
    "float_bundle_error": 0.0150,
    "float_bundle_bytes": 20_000,
    "int8_bundle_error": 0.0160,
    "int8_bundle_bytes": 25_000,
    "int8_pp_vs_float": 0.10,
}
T = {
    "float_tflite_error": 0.0170,
    "float_tflite": {"raw": 1_000_000, "gzip9": 50_000, "zstd19": 40_000},
    "int8_tflite_error": 0.0180,
    "int8_tflite": {"raw": 250_000, "gzip9": 40_000, "zstd19": 31_250},
    "int8_pp_vs_float": 0.10,
}


def test_table_rows_divide_the_dense_sizes_by_each_file():
    rows = ib.table_rows("lenet_300_100", K, T)
    by_what = {(r.side, r.what): r for r in rows}
    assert {r.side for r in rows} == {"keras-dc", "tfmot"}
    int8 = by_what[("keras-dc", "int8 bundle")]
    assert (int8.bytes, int8.error, int8.pp_vs_float) == (25_000, 0.0160, 0.10)
    assert int8.ratio_vs_dense_float32 == pytest.approx(40.0)
    assert int8.ratio_vs_dense_int8 == pytest.approx(10.0)
    zstd = by_what[("tfmot", "PCQAT int8 .tflite, zstd -19")]
    assert zstd.bytes == 31_250 and zstd.error is None
    assert zstd.ratio_vs_dense_float32 == pytest.approx(32.0)
    assert zstd.ratio_vs_dense_int8 == pytest.approx(8.0)
    assert by_what[("keras-dc", "float bundle")].pp_vs_float is None


def test_format_table_prints_one_line_per_row_and_the_checks():
    rows = ib.table_rows("lenet_300_100", K, T)
    side = {"weights": [weight("ip1/kernel", 16)], "zeros_preserved": True, "int8_float_tensors": 0}
    models = {
        "lenet_300_100": {
            "keras_dc": dict(K, **side, distinct_within_bits=True),
            "tfmot": dict(T, **side, distinct_within_bits=False),
        }
    }
    text = ib.format_table(rows, models)
    assert (
        "| lenet_300_100 | keras-dc | int8 bundle | 1.60% | 25,000 | 40.0× | 10.0× | +0.10 pp |"
        in text
    )
    assert text.count("| lenet_300_100 |") == len(rows)
    assert "dense int8 .tflite 250,000 B" in text
    assert "tfmot PCQAT int8: full-integer (no float32 tensor inside): yes, 1 int8" in text
    assert "1 int8 kernels checked, zeros preserved: yes" in text
    assert text.rstrip().endswith("within 2^bits: NO")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One --smoke run of LeNet-300-100, both sides: (results JSON, stdout, work folder)."""
    tmp = tmp_path_factory.mktemp("int8_benchmark")
    out_json = tmp / "int8.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.int8_benchmark",
            "--smoke",
            "--models=lenet_300_100",
            f"--work={tmp / 'work'}",
            f"--json_out={out_json}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    with open(out_json) as f:
        return json.load(f), proc.stdout, tmp / "work"


def test_smoke_run_measures_both_sides(smoke):
    results, stdout, _ = smoke
    assert "==== int8 benchmark (issue #15) (SMOKE" in stdout
    assert "| lenet_300_100 | keras-dc | int8 bundle |" in stdout
    assert results["smoke"] and results["representative_images"] == 500
    model = results["models"]["lenet_300_100"]
    k, t = model["keras_dc"], model["tfmot"]
    errors = [
        k["float_bundle_error"],
        k["int8_bundle_error"],
        t["float_tflite_error"],
        t["int8_tflite_error"],
    ]
    assert all(0.0 <= e <= 1.0 for e in errors), errors
    assert k["int8_pp_vs_float"] == pytest.approx(
        100 * (k["int8_bundle_error"] - k["float_bundle_error"])
    )
    assert t["int8_pp_vs_float"] == pytest.approx(
        100 * (t["int8_tflite_error"] - t["float_tflite_error"])
    )
    # Sizes: the dense int8 .tflite is about a quarter of the float32 one; the compressed
    # files are smaller than either; zstd -19 and gzip -9 shrink the PCQAT .tflite.
    f32, i8 = k["dense_float32_tflite_bytes"], k["dense_int8_tflite_bytes"]
    assert 0.2 < i8 / f32 < 0.35, (i8, f32)
    assert 0 < k["int8_bundle_bytes"] < i8 and 0 < k["float_bundle_bytes"] < i8
    assert t["int8_tflite"]["raw"] > t["int8_tflite"]["gzip9"] > 0
    assert t["int8_tflite"]["raw"] > t["int8_tflite"]["zstd19"] > 0


def test_smoke_rows_are_the_sizes_divided(smoke):
    results, _, _ = smoke
    k = results["models"]["lenet_300_100"]["keras_dc"]
    t = results["models"]["lenet_300_100"]["tfmot"]
    rows = {(r["side"], r["what"]): r for r in results["rows"]}
    assert {side for side, _ in rows} == {"keras-dc", "tfmot"}
    expected = {
        ("keras-dc", "float bundle"): k["float_bundle_bytes"],
        ("keras-dc", "int8 bundle"): k["int8_bundle_bytes"],
        ("tfmot", "PCQAT int8 .tflite"): t["int8_tflite"]["raw"],
        ("tfmot", "PCQAT int8 .tflite, gzip -9"): t["int8_tflite"]["gzip9"],
        ("tfmot", "PCQAT int8 .tflite, zstd -19"): t["int8_tflite"]["zstd19"],
    }
    for key, size in expected.items():
        r = rows[key]
        assert r["bytes"] == size, key
        assert r["ratio_vs_dense_float32"] == pytest.approx(
            k["dense_float32_tflite_bytes"] / size
        ), key
        assert r["ratio_vs_dense_int8"] == pytest.approx(k["dense_int8_tflite_bytes"] / size), key
    assert rows[("keras-dc", "int8 bundle")]["pp_vs_float"] == k["int8_pp_vs_float"]
    assert rows[("tfmot", "PCQAT int8 .tflite")]["pp_vs_float"] == t["int8_pp_vs_float"]


def test_smoke_checks_every_int8_kernel_on_both_sides(smoke):
    """Each side's three int8 kernels are matched to their layers and checked."""
    results, _, _ = smoke
    model = results["models"]["lenet_300_100"]
    bits = {"ip1": 4, "ip2": 5, "ip3": 6}  # examples/lenet_300_100.BITS
    for side in ("keras_dc", "tfmot"):
        s = model[side]
        layers = sorted(w["keras_name"].split("/")[-2] for w in s["weights"])
        assert layers == ["ip1", "ip2", "ip3"], (side, layers)
        for w in s["weights"]:
            assert w["bits"] == bits[w["keras_name"].split("/")[-2]], (side, w)
            assert w["keras_zeros"] > 0 and w["zeros"] > 0, (side, w)
    # keras-dc's int8 bundle keeps the pruned zeros and at most 2^bits values per channel.
    assert model["keras_dc"]["zeros_preserved"] and model["keras_dc"]["distinct_within_bits"]
    # Both int8 files compute in int8 throughout (float32 only at the inputs and outputs).
    assert model["keras_dc"]["int8_float_tensors"] == 0
    assert model["tfmot"]["int8_float_tensors"] == 0


def test_reencode_writes_the_same_bundle_from_the_saved_model(smoke, tmp_path):
    # --reencode converts the run's saved compressed model again: with the same encoder
    # it must give the run's own int8 bundle size, and a LiteRT error on the test set.
    results, _, work = smoke
    out_json = tmp_path / "re.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.int8_benchmark",
            f"--reencode={work}",
            "--models=lenet_300_100",
            f"--work={tmp_path / 'out'}",
            f"--json_out={out_json}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    found = json.loads(out_json.read_text())["models"]["lenet_300_100"]
    assert 0.0 <= found["int8_bundle_error"] <= 1.0
    assert {"ip1/kernel", "ip2/kernel", "ip3/kernel"} <= set(found["encodings"]), found
    # The same restored flatbuffer and the same payloads; only the name table differs
    # (a reloaded model's variable paths lose the model's name: "ip1/kernel").
    run, again = work / "lenet_300_100_int8", tmp_path / "out" / "lenet_300_100"
    assert converters.restore(str(again)) == converters.restore(str(run))
    payloads = [
        [s["payload_bytes"] for s in decoder.inspect((d / "model.dcw").read_bytes())["segments"]]
        for d in (run, again)
    ]
    assert payloads[0] == payloads[1]
    k = results["models"]["lenet_300_100"]["keras_dc"]
    assert found["int8_bundle_bytes"] - k["int8_bundle_bytes"] == (
        (again / "model.dcw").stat().st_size - (run / "model.dcw").stat().st_size
    )
    missing = subprocess.run(
        [sys.executable, "-m", "benchmarks.int8_benchmark", f"--reencode={tmp_path}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=300,
    )
    assert missing.returncode != 0 and "does not exist" in missing.stderr
