"""The examples run (smoke mode) and do what they say: the README's main job among them."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _module(module, *args):
    """`python -m module args` from the repository root; the finished process."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=600,
    )


def _run(script, *args):
    proc = _module(f"examples.{script}", "--smoke", *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


def test_quickstart_main_job(tmp_path):
    out = _run("quickstart", f"--out={tmp_path}")
    assert "restored bundle in LiteRT" in out
    assert "== compress_to_budget on 500 validation images" in out
    assert sorted(os.listdir(tmp_path / "bundle")) == [
        "model.dcw",
        "model.report.json",
        "model.report.png",
        "model.report.txt",
        "model.skeleton.tflite",
    ]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model"] == "lenet_300_100" and results["dense_weights"] is None  # smoke
    # The summary line is the results file's figure, and the search made the file small.
    summary = out.split("compressed bundle     test error")[1].splitlines()[0]
    ratio = float(summary.split("bytes = ")[1].split("x")[0])
    assert ratio == pytest.approx(results["ratio"], abs=0.05)
    assert ratio > 10


def test_quickstart_fixed_recipe(tmp_path):
    out = _run("quickstart", "--fixed", f"--out={tmp_path}")
    assert "restored bundle in LiteRT" in out
    assert (tmp_path / "bundle" / "model.dcw").is_file()
    ratio = float(out.split("bytes  = ")[1].split("x")[0])
    assert ratio > 20  # 92% pruned, 5-bit clusters: a real small file even in smoke mode


def test_budget_search_example_with_a_variational_stage(tmp_path):
    out = _run(
        "budget_search",
        "--model=lenet5",
        f"--out={tmp_path}",
        "--time_limit=20",
        "--variational_epochs=0.5",
        "--variational_kl=0.3",
        "--gradual_epochs=0",
        "--bit_moves=none",
    )
    assert "variational sparsification: 0.5 epochs, KL weight 0.3" in out
    assert out.count("[prune] variational: log alpha <") == 6
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model"] == "lenet5" and results["bundle_bytes"] > 0
    assert results["variational_epochs"] == 0.5 and results["variational_kl"] == 0.3
    assert results["gradual_epochs"] == 0.0


def test_budget_search_example(tmp_path):
    out = _run(
        "budget_search",
        f"--out={tmp_path}",
        "--time_limit=30",
        "--bit_moves=best",
        "--final_epochs=0.75",
        "--centroid_update=latent",
        "--cluster_lr=3e-4",
        "--prune_share=0.8",
        "--shifts",  # LeNet-300-100 retrains on unshifted images by default
    )
    assert "compressed bundle     test error" in out
    assert "[prune] retrain 0.75 epochs" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model"] == "lenet_300_100" and results["bundle_bytes"] > 0
    assert results["bit_moves"] == "best" and results["final_epochs"] == 0.75
    assert results["centroid_update"] == "latent" and results["cluster_lr"] == 3e-4
    assert results["centroid_update_used"] == "latent"
    assert results["prune_share"] == 0.8
    assert results["shifts"] is True and results["dense_epochs"] == 1  # smoke
    assert 0 < results["search_seconds"] < results["seconds"] - results["dense_seconds"] + 1
    assert results["ratio"] == results["dense_tflite_bytes"] / results["bundle_bytes"]
    assert results["validation_error"] <= results["dense_validation_error"] + 0.002 + 1e-9
    assert (tmp_path / "bundle" / "model.dcw").exists() and (tmp_path / "search.png").exists()

    # The centroid-update benchmark re-clusters this run's pruned network.
    rows_path = tmp_path / "rows.json"
    proc = _module(
        "benchmarks.centroid_update",
        f"--runs={tmp_path}",
        "--bits=2,2,3",
        "--updates=auto,latent",
        "--lrs=3e-4",
        "--epochs=0.02",
        f"--json_out={rows_path}",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    rows = json.loads(rows_path.read_text())
    assert [r["update"] for r in rows] == ["auto", "latent"]
    for r in rows:
        assert r["bits"] == [2, 2, 3] and 0.0 <= r["error"] <= 1.0
        assert all(v <= 2**b for v, b in zip(r["values"], r["bits"]))
        assert r["nonzeros"] == rows[0]["nonzeros"]  # the same pruned network, pruning kept
    bad = _module("benchmarks.centroid_update", f"--runs={tmp_path}", "--bits=2,2")
    assert bad.returncode != 0 and "--bits lists 2 values" in bad.stderr + bad.stdout


def test_sensitivity_example():
    out = _run("sensitivity_analysis")
    lines = out.splitlines()
    # The table: baseline, then each variable's accuracy at each sparsity.
    (title,) = [line for line in lines if line.startswith("accuracy (baseline ")]
    baseline = float(title.split("baseline ")[1].split(")")[0])
    sparsities = [float(s) for s in lines[lines.index(title) + 1].split()[1:]]
    assert sparsities == [0.5, 0.7, 0.8, 0.9, 0.95, 0.98]
    curves = {}
    for line in lines[lines.index(title) + 3 :]:
        if not line.startswith("lenet_300_100/"):
            break
        path, *values = line.split()
        curves[path] = [float(v) for v in values]
    assert len(curves) == 3 and all(len(c) == len(sparsities) for c in curves.values())
    # Each proposal is the largest sparsity before the first drop > --max_drop (0.005),
    # recomputed from the printed table.
    proposed = {line.split()[1]: line.split()[2] for line in lines if line.startswith("proposed: ")}
    assert sorted(proposed) == sorted(curves)
    for path, curve in curves.items():
        best = None
        for s, value in zip(sparsities, curve, strict=True):
            if baseline - value > 0.005 + 1e-9:
                break
            best = s
        assert proposed[path] == str(best), (path, curve)
    # The pruned model holds the proposed sparsities (None: left dense).
    for path, target in proposed.items():
        (row,) = [
            line for line in lines if line.startswith(path) and "%" in line
        ]  # the layer report
        kept = float(row.split()[3].rstrip("%"))
        assert kept == pytest.approx(
            100.0 if target == "None" else 100 * (1 - float(target)), abs=0.01
        ), row
    accuracy = float(out.split("test accuracy after pruning: ")[1].split()[0])
    assert 0.5 < accuracy <= 1  # far above chance (0.1) even in smoke mode


@pytest.mark.parametrize("script", ["tfmot_interop"])
def test_tfmot_example(script, tmp_path):
    import converters

    out = _run(script, f"--out={tmp_path}")
    tflite, gzipped = (
        int(v.replace(",", ""))
        for v in out.split("tfmot's way: .tflite ")[1].split(" B\n")[0].split(" B, gzip -9 ")
    )
    bundle = int(out.split("keras-dc bundle: ")[1].split(" B")[0].replace(",", ""))
    ratio = float(out.split(" B (")[-1].split("x smaller")[0])
    # The real small file beats "zip the .tflite yourself", and the bundle restores to that .tflite.
    assert bundle < gzipped < tflite and ratio > 10
    assert len(converters.restore(str(tmp_path))) == tflite
    skeleton, sidecar = (
        os.path.getsize(tmp_path / f) for f in ("model.skeleton.tflite", "model.dcw")
    )
    assert skeleton + sidecar == bundle
    check = converters.verify(str(tmp_path), verbose=0)  # restores, runs in LiteRT, finite outputs
    assert check["restored_bytes"] == tflite


@pytest.mark.parametrize(
    "args, message",
    [
        (["--smoke", "stray"], "unexpected arguments: ['stray']"),
        (["--smoke", "--local=0"], "no TF_CONFIG"),
        (["--smokee"], "Unknown command line flag 'smokee'"),
    ],
)
def test_distributed_example_command_line(args, message):
    """The absl command line of the distributed example: it stops, with a message that says
    why, before importing TensorFlow."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    proc = subprocess.run(
        [sys.executable, "-m", "examples.distributed_train", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout, proc.stderr[-3000:]
