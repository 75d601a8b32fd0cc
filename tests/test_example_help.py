"""Every example's --help lists the example's own flags (not only --helpfull)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "example, flags",
    [
        ("quickstart", ["--smoke", "--out", "--data", "--fixed", "--max_error", "--weights"]),
        (
            "budget_search",
            ["--smoke", "--out", "--data", "--model", "--max_error", "--seed", "--dense_weights"],
        ),
        ("lenet_300_100", ["--smoke", "--out", "--data", "--seed"]),
        ("lenet5", ["--smoke", "--out", "--data", "--seed"]),
        ("sensitivity_analysis", ["--smoke"]),
        ("tfmot_interop", ["--smoke", "--out"]),
        ("distributed_train", ["--smoke", "--out", "--local"]),
    ],
)
def test_example_help_lists_its_flags(example, flags):
    proc = subprocess.run(
        [sys.executable, "-m", f"examples.{example}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    for flag in flags:
        assert f"  {flag}" in proc.stdout or f"  --[no]{flag[2:]}" in proc.stdout, (
            flag,
            proc.stdout,
        )
