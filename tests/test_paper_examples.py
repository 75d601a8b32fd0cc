"""The paper examples (LeNet-300-100, LeNet-5) and the paper benchmark run end to end in smoke mode."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLE_FILES = [
    "model.dcw",
    "model.report.json",
    "model.report.png",
    "model.report.txt",
    "model.skeleton.tflite",
    "paper.png",
    "stages.npz",
]


@pytest.mark.parametrize(
    "script, title", [("lenet_300_100", "LeNet-300-100"), ("lenet5", "LeNet-5")]
)
def test_paper_example_smoke(script, title, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-m", f"examples.{script}", "--smoke", f"--out={tmp_path}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = proc.stdout
    # The stages, the per-layer tables and the summary.
    for stage in (
        "1/5 dense training",
        "2/5 iterative pruning",
        "3/5 clustering",
        "4/5 converting",
        "5/5 restoring",
    ):
        assert stage in out
    assert f"{title}: layer by layer" in out and f"{title}: the bundle, buffer by buffer" in out
    assert "all buffers" in out and "Huffman vs entropy" in out
    assert f"{title}: the paper's table" in out and "P+Q+H" in out
    with open(tmp_path / "paper.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "restored bundle in LiteRT" in out and "bundle (skeleton + sidecar)" in out
    assert sorted(os.listdir(tmp_path)) == BUNDLE_FILES
    # The table and the picture can be made again from the directory alone.
    again = subprocess.run(
        [sys.executable, "-m", "examples.paper_figures", str(tmp_path), f"--title={title}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    table = out.split("the paper's table")[1].split("\n\n")[0].split("\n", 1)[1]
    assert table.strip() in again.stdout
    ratio = float(out.split("bytes = ")[1].split("x")[0])
    assert ratio > 20  # per-layer targets already apply in smoke mode: a real small file


def test_paper_benchmark_smoke(tmp_path):
    """The side-by-side benchmark (keras-dc and tfmot in a tf_keras subprocess), tiny subset."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out_json = tmp_path / "paper.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.paper_benchmark",
            "--smoke",
            f"--out={tmp_path / 'work'}",
            f"--json_out={out_json}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "==== paper benchmark (SMOKE" in proc.stdout
    with open(out_json) as f:
        results = json.load(f)
    assert set(results["models"]) == {"lenet_300_100", "lenet5"}
    for name, r in results["models"].items():
        k, t = r["keras_dc"], r["tfmot"]
        # Each stage is measured, and the sizes shrink stage by stage on both sides.
        assert k["dense_tflite_bytes"] > k["pruned_bundle"] > k["bundle_bytes"], name
        assert k["pruned_paper_count"] > k["clustered_paper_count"], name
        # The restored bundle in LiteRT classifies like the Keras model it came from (outputs
        # within 1e-5): at most one near-tie of the 500 smoke test images may flip; the same
        # for tfmot's .tflite. Both learned: well below chance (0.9 error). The smoke run trains
        # on 2,000 images for a few steps per stage, so its error varies (0.51 seen once).
        assert abs(k["bundle_error"] - k["clustered_error"]) <= 1 / 500 + 1e-9, name
        assert abs(t["tflite_error"] - t["clustered_error"]) <= 1 / 500 + 1e-9, name
        assert k["bundle_error"] < 0.75 and t["tflite_error"] < 0.75, name
        assert t["clustered_tflite"]["raw"] > t["clustered_tflite"]["gzip9"] > 0
        assert t["max_distinct"] <= 256 and 0 < t["kept"] < 0.5, (name, t["kept"])
        assert "P+Q+H" in k["paper_table"]
        # One row per clustered layer (read at the report's offsets in the restored file).
        rows = [ln.split()[0] for ln in k["paper_table"].splitlines()[3:] if ln[:1].isalpha()]
        assert {"ip1", "ip2"} <= set(rows), k["paper_table"]


def test_cubic_fractions_stay_strictly_increasing_for_many_events():
    from examples.paper_common import cubic_fractions
    from keras_dc.schedules import Iterative

    # The recipes' 12 events keep their 4-decimal values.
    assert cubic_fractions(12)[:3] == (0.2297, 0.4213, 0.5781) and cubic_fractions(12)[-1] == 1.0
    for events in (1, 4, 24, 36, 100):
        f = cubic_fractions(events)
        assert len(f) == events and f[-1] == 1.0
        assert all(a < b for a, b in zip(f, f[1:])), events
        Iterative(fractions=f, every=1, begin=0, unit="step")  # accepted by the schedule
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="positive int"):
            cubic_fractions(bad)
