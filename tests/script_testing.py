"""Test helper: run a Python snippet in a fresh interpreter (its own TensorFlow set-up:
logical CPU devices, TF_USE_LEGACY_KERAS) from the repository root."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(code, **env):
    """Runs `code` with the repository importable and `env` set; asserts exit 0 (showing the
    output's tail otherwise) and returns its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", **env),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout
