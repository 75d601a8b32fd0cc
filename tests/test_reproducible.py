"""A seeded run is bit-reproducible on one machine: same seed, same bundle bytes."""

import os
import subprocess
import sys

import pytest

import keras_dc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _quickstart(out, *args):
    proc = subprocess.run(
        [sys.executable, "-m", "examples.quickstart", "--smoke", "--fixed", f"--out={out}", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return {f: (out / "bundle" / f).read_bytes() for f in ("model.dcw", "model.skeleton.tflite")}


def test_same_seed_same_bundle_bytes(tmp_path):
    first = _quickstart(tmp_path / "a", "--seed=3")
    again = _quickstart(tmp_path / "b", "--seed=3")
    assert first == again
    other = _quickstart(tmp_path / "c", "--seed=4")
    assert other["model.dcw"] != first["model.dcw"]  # the seed is really used


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_make_reproducible_rejects_bad_seeds(seed):
    with pytest.raises(TypeError, match="seed must be an int"):
        keras_dc.make_reproducible(seed)
