"""python -m benchmarks.applications_benchmark --smoke: real architectures through fit, convert, restore."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_applications_benchmark_smoke(tmp_path):
    out_json = tmp_path / "apps.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.applications_benchmark",
            "--smoke",
            f"--json_out={out_json}",
            f"--work_dir={tmp_path / 'work'}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    results = json.loads(out_json.read_text())
    rows = {r["model"]: r for r in results["models"]}
    assert sorted(rows) == ["mobilenet_v2", "transformer"]
    for name, r in rows.items():
        assert r["ok"], (name, r.get("error"), r.get("traceback", r.get("log_tail")))
        assert r["clustered_variables"] > 0 and r["pruned_variables"] > 0
        assert 0.1 < r["kept"] < 0.5  # 80% one-shot pruning of the kernels
        assert r["ratio_vs_dense"] > 1.5 and r["dense_tflite_bytes"] > r["bundle_bytes"]
        assert r["restored_matches_report"]  # byte for byte the flatbuffer convert verified
        # LiteRT matched Keras within the documented 1e-5 × (1 + |Keras output|), twice.
        assert r["verify_max_scaled_diff"] <= 1e-5 and r["convert_max_scaled_diff"] <= 1e-5
        assert r["peak_growth_bytes"] > 0 and r["convert_wall_s"] > 0
        e = r["encoder"]
        assert e["after_equals_convert"]  # the encoder is deterministic
        assert e["after_bundle_bytes"] <= 1.01 * e["before_bundle_bytes"]
    assert results["cost_curve"]["convert_wall_s_per_mparam"] is not None
    assert "Cost curve" in proc.stdout and "Encoder before/after" in proc.stdout
