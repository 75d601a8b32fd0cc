"""In CI a skip is a failure (tests/conftest.py): a missing dependency cannot hide a test."""

import os
import subprocess
import sys
import textwrap

TESTS = os.path.dirname(os.path.abspath(__file__))

_SKIPPING = textwrap.dedent("""
    import pytest

    def test_runs():
        pass

    def test_skips():
        pytest.skip("no reason")

    @pytest.mark.skipif(True, reason="a marker")
    def test_marked():
        pass

    def test_missing_module():
        pytest.importorskip("keras_dc_no_such_module")
""")


def _pytest(tmp_path, ci):
    (tmp_path / "test_skipping.py").write_text(_SKIPPING)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([TESTS, env.get("PYTHONPATH", "")])
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "conftest",
            f"--rootdir={tmp_path}",
            str(tmp_path / "test_skipping.py"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )


def test_skips_fail_in_ci(tmp_path):
    proc = _pytest(tmp_path, "true")
    assert proc.returncode == 1, proc.stdout
    assert "2 failed, 1 passed, 1 error" in proc.stdout, proc.stdout
    assert "skipped in CI" in proc.stdout and " skipped" not in proc.stdout.splitlines()[-1]


def test_skips_are_skips_outside_ci(tmp_path):
    for ci in (None, "", "false"):
        proc = _pytest(tmp_path, ci)
        assert proc.returncode == 0, proc.stdout
        assert "1 passed, 3 skipped" in proc.stdout, proc.stdout
