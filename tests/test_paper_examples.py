"""The paper examples (LeNet-300-100, LeNet-5) run end to end in smoke mode and print their table."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLE_FILES = ["model.dcw", "model.skeleton.tflite", "report.json", "report.png", "report.txt"]


@pytest.mark.parametrize("script, title", [("lenet_300_100.py", "LeNet-300-100"), ("lenet5.py", "LeNet-5")])
def test_paper_example_smoke(script, title, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script), "--smoke", f"--out={tmp_path}"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = proc.stdout
    # The stages, the per-layer tables and the summary.
    for stage in ("1/5 dense training", "2/5 iterative pruning", "3/5 clustering", "4/5 converting",
                  "5/5 restoring"):
        assert stage in out
    assert f"{title}: layer by layer" in out and f"{title}: the bundle, buffer by buffer" in out
    assert "all buffers" in out and "Huffman vs entropy" in out
    assert "restored bundle in LiteRT" in out and "bundle (skeleton + sidecar)" in out
    assert sorted(os.listdir(tmp_path)) == BUNDLE_FILES
    ratio = float(out.split("bytes = ")[1].split("x")[0])
    assert ratio > 20  # per-layer targets already apply in smoke mode: a real small file
