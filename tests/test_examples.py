"""The examples run (smoke mode) and do what they say: the README's main job among them."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-m", f"examples.{script}", "--smoke", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


def test_quickstart_main_job(tmp_path):
    out = _run("quickstart", f"--out={tmp_path}")
    assert "restored bundle in LiteRT" in out
    assert sorted(os.listdir(tmp_path)) == [
        "model.dcw",
        "model.skeleton.tflite",
        "model.report.json",
        "model.report.png",
        "model.report.txt",
    ]
    ratio = float(out.split("bytes  = ")[1].split("x")[0])
    assert ratio > 20  # 92% pruned, 5-bit clusters: a real small file even in smoke mode


def test_sensitivity_example():
    out = _run("sensitivity_analysis")
    assert "proposed:" in out and "test accuracy after pruning" in out


@pytest.mark.parametrize("script", ["tfmot_interop"])
def test_tfmot_example(script, tmp_path):
    out = _run(script, f"--out={tmp_path}")
    assert "keras-dc bundle" in out


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
