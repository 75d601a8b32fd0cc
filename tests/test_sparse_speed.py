"""benchmarks.sparse_speed: its helpers on hand-made models and numbers, and --smoke end to end."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from absl import app

from benchmarks import sparse_speed as ss
from converters import export

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _mlp_with_masks():
    """784 -> 64 -> 10 with hand-made zeros: the hidden kernel in 1x4 blocks (90% zero),
    the output kernel single weights (90% zero, no block structure)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(64, activation="relu", name="hidden"),
            keras.layers.Dense(10, name="out"),
        ]
    )
    rng = np.random.default_rng(0)
    hidden = model.get_layer("hidden").kernel
    # Keras kernels are [in, out]; a 1x4 block is 4 consecutive inputs of one output.
    keep = rng.random((784 // 4, 64)) < 0.1
    hidden.assign(hidden.numpy() * np.repeat(keep, 4, axis=0))
    out = model.get_layer("out").kernel
    out.assign(out.numpy() * (rng.random(out.shape) < 0.1))
    return model


def test_layer_kernels_tells_block_sparse_from_densified_weights():
    model = _mlp_with_masks()
    rows = ss.layer_kernels(export.to_tflite(model, sparse=True), model)
    assert [(r["layer"], r["op"], r["shape"]) for r in rows] == [
        ("hidden", "FULLY_CONNECTED", [64, 784]),
        ("out", "FULLY_CONNECTED", [10, 64]),
    ]
    assert (rows[0]["stored"], rows[0]["kernel"]) == ("sparse 1x4 blocks", "sparse")
    # Unstructured zeros: the converter stores them sparse and DENSIFY expands them.
    assert rows[1]["stored"].startswith("sparse, unstructured") and rows[1]["kernel"] == "dense"
    dense = ss.layer_kernels(export.to_tflite(model))
    assert [(r["layer"], r["stored"], r["kernel"]) for r in dense] == [
        (None, "dense", "dense"),
        (None, "dense", "dense"),
    ]


def _variant(error, size, sparse_error=None, sparse_size=None, speedup=None):
    v = {"bundle_error": error, "bundle_bytes": size}
    if sparse_size is not None:
        v.update(sparse_bundle_error=sparse_error, sparse_ratio=1_000_000 / sparse_size)
    if speedup is not None:
        v["latency"] = {"1": {"speedup": speedup}}
    return v


def test_comparison_is_block_minus_unstructured():
    r = {"variants": {"unstructured": _variant(0.015, 20_000), "block": _variant(0.0175, 25_000)}}
    c = ss.comparison(r)
    assert c["block_minus_unstructured_error_pp"] == pytest.approx(0.25)
    assert c["bundle_bytes_block_over_unstructured"] == pytest.approx(1.25)
    assert ss.comparison({"variants": {"block": _variant(0.01, 1)}}) is None


def test_targets_are_the_issues_three_figures():
    met = _variant(0.016, 20_000, sparse_error=0.0164, sparse_size=25_000, speedup=3.0)
    assert ss.targets({"variants": {"block": met}}) == {
        "error": True,
        "ratio": True,
        "speedup_1_thread": True,
    }
    missed = _variant(0.016, 20_000, sparse_error=0.0165, sparse_size=25_001, speedup=2.99)
    assert ss.targets({"variants": {"block": missed}}) == {
        "error": False,
        "ratio": False,
        "speedup_1_thread": False,
    }
    # No sparse bundle (convert failed): nothing to judge.
    assert ss.targets({"variants": {"block": _variant(0.01, 1)}}) is None


def test_speedup_is_the_median_of_the_rounds_ratios():
    # Rounds of [dense µs, variant A µs, variant B µs]: the ratio is taken within each
    # round (the flatbuffers were interleaved there), then the median over rounds.
    rounds = [[30.0, 15.0, 10.0], [27.0, 7.5, 9.0], [31.0, 14.0, 31.0]]
    a = ss.speedup(rounds, 1)
    assert a["speedups"] == pytest.approx([2.0, 3.6, 31 / 14])
    assert a["speedup"] == pytest.approx(31 / 14)  # not 30/14 (ratio of the medians)
    assert (a["speedup_min"], a["speedup_max"]) == pytest.approx((2.0, 3.6))
    assert (a["dense_us"], a["sparse_us"]) == (30.0, 14.0)
    assert ss.speedup(rounds, 2)["speedup"] == pytest.approx(3.0)
    assert ss.format_speedup(a) == "2.21× (2.00–3.60×)"
    assert ss.format_speedup(ss.speedup(rounds[:1], 1)) == "2.00×"


def test_parse_block_prune_per_layer_and_per_model():
    layers = {"lenet_300_100": {"ip1", "ip2", "ip3"}, "lenet5": {"conv1", "ip1", "ip2"}}
    models = ["lenet_300_100", "lenet5"]
    assert ss.parse_block_prune(["ip1=0.9", "lenet5:ip2=0.5", "ip3=0"], models, layers) == {
        "lenet_300_100": {"ip1": 0.9, "ip3": 0.0},
        "lenet5": {"ip1": 0.9, "ip2": 0.5},
    }
    assert ss.parse_block_prune([], models, layers) == {}
    for bad in (["ip1"], ["ip1=x"], ["ip1=1.0"], ["ip1=-0.1"], ["=0.5"], ["conv9=0.5"]):
        with pytest.raises(app.UsageError, match="--block_prune"):
            ss.parse_block_prune(bad, models, layers)
    with pytest.raises(app.UsageError, match="not run"):
        ss.parse_block_prune(["mobilenet:ip1=0.5"], models, layers)
    with pytest.raises(app.UsageError, match="prunable layer"):
        ss.parse_block_prune(["lenet_300_100:conv1=0.5"], models, layers)


def test_hold_out_evaluates_on_the_last_training_images_never_the_test_set():
    x = np.arange(10 * 28 * 28, dtype=np.float32).reshape(10, 28, 28)
    y = np.arange(10)
    x_test = np.full((4, 784), -1.0, np.float32)  # LeNet-300-100's flattened test images
    (xt, yt), (xv, yv) = ss.hold_out(((x, y), (x_test, np.zeros(4))), 3)
    assert xt.shape == (7, 28, 28) and list(yt) == list(range(7))
    assert xv.shape == (3, 784) and list(yv) == [7, 8, 9]
    assert np.array_equal(xv, x[7:].reshape(3, 784)) and not np.any(xv == -1.0)
    for bad in (0, 10, 11):
        with pytest.raises(app.UsageError, match="--validation"):
            ss.hold_out(((x, y), (x_test, np.zeros(4))), bad)
    assert "not the test set" in ss.title(False, "last 3 training images")
    assert ss.title(False) == "==== sparse speed (issue #12)"


def test_parse_threads_rejects_what_is_not_a_positive_int():
    assert ss.parse_threads(["1", "2"]) == [1, 2]
    for bad in (["0"], ["x"], []):
        with pytest.raises(app.UsageError):
            ss.parse_threads(bad)


def test_parse_variants_keeps_the_benchmarks_order_and_rejects_unknown_names():
    assert ss.parse_variants([]) == ()
    assert ss.parse_variants(["block", "unstructured"]) == ss.VARIANTS
    assert ss.parse_variants(["block"]) == ("block",)
    with pytest.raises(app.UsageError, match="--variants: unknown"):
        ss.parse_variants(["blocks"])


def test_recipe_overrides_change_only_what_is_named():
    from examples import lenet_300_100
    from examples.paper_common import cubic_fractions

    bench = ss.networks()["lenet_300_100"].recipe
    example = ss.networks("example")["lenet_300_100"].recipe
    assert example == lenet_300_100.recipe() and example != bench
    assert ss.override_recipe(example) == example
    r = ss.override_recipe(example, prune_events=24, retrain_epochs=12, distill=0.5)
    assert r.prune_fractions == cubic_fractions(24) and len(r.prune_fractions) == 24
    assert (r.prune_final_epochs, r.distill) == (12, 0.5)
    assert r.dense_epochs == example.dense_epochs and r.prune_every == example.prune_every
    assert ss.override_recipe(example, distill=0.0).distill == 0.0


# --- the --smoke run, end to end ------------------------------------------------------


def _run(*args, timeout):
    """``python -m benchmarks.sparse_speed ARGS`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.sparse_speed", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One --smoke run of LeNet-300-100: (results JSON, stdout, its folder)."""
    tmp = tmp_path_factory.mktemp("sparse_speed")
    out_json = tmp / "sparse.json"
    proc = _run(
        "--smoke",
        "--model=lenet_300_100",
        "--threads=1,2",
        "--repeats=30",
        "--rounds=2",
        "--block_prune=ip1=0.5",
        f"--work={tmp / 'work'}",
        f"--json_out={out_json}",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out_json) as f:
        return json.load(f), proc.stdout, tmp


def test_smoke_run_has_both_variants_from_one_dense_model(smoke):
    results, stdout, _ = smoke
    assert results["smoke"] and results["threads"] == [1, 2]
    r = results["models"]["lenet_300_100"]
    assert set(r["variants"]) == {"unstructured", "block"}
    u, b = r["variants"]["unstructured"], r["variants"]["block"]
    # The block variant starts from the unstructured variant's dense model.
    assert u["dense_error"] == b["dense_error"]
    assert u["dense_tflite_bytes"] == b["dense_tflite_bytes"] == r["dense_tflite_bytes"]
    for v in (u, b):
        assert 0.0 <= v["bundle_error"] <= 1.0 and 0.0 <= v["sparse_bundle_error"] <= 1.0
    assert "==== sparse speed (issue #12) (SMOKE" in stdout
    assert "targets (block, sparse bundle)" in stdout


def test_smoke_run_ratios_and_speedups_are_divided_right(smoke):
    r = smoke[0]["models"]["lenet_300_100"]
    dense = r["dense_tflite_bytes"]
    assert r["latency_repeats"] == 30
    for v in r["variants"].values():
        assert v["ratio"] == pytest.approx(dense / v["bundle_bytes"])
        assert v["sparse_ratio"] == pytest.approx(dense / v["sparse_bundle_bytes"])
        assert set(v["latency"]) == {"1", "2"}
        for m in v["latency"].values():
            assert m["dense_us"] > 0 and m["sparse_us"] > 0
            # Two rounds: the median of two ratios is their mean, within their range.
            assert len(m["speedups"]) == r["latency_rounds"] == 2
            assert m["speedup"] == pytest.approx(sum(m["speedups"]) / 2)
            assert m["speedup_min"] <= m["speedup"] <= m["speedup_max"]
    # Interleaved: one dense median per thread count, shared by both variants.
    for t in ("1", "2"):
        assert len({v["latency"][t]["dense_us"] for v in r["variants"].values()}) == 1
    c = r["comparison"]
    u, b = r["variants"]["unstructured"], r["variants"]["block"]
    assert c["block_minus_unstructured_error_pp"] == pytest.approx(
        100 * (b["bundle_error"] - u["bundle_error"])
    )


def test_smoke_run_gives_the_block_variant_its_own_targets(smoke):
    r = smoke[0]["models"]["lenet_300_100"]
    assert r["block_prune"] == {**r["prune"], "ip1": 0.5}
    u, b = r["variants"]["unstructured"], r["variants"]["block"]
    # The zeros of the trained kernels follow each variant's targets.
    assert b["sparsity"]["ip1"] == pytest.approx(0.5, abs=0.01)
    assert u["sparsity"]["ip1"] == pytest.approx(r["prune"]["ip1"], abs=0.01)
    for layer in ("ip2", "ip3"):
        assert b["sparsity"][layer] == pytest.approx(r["prune"][layer], abs=0.01)


def test_retime_measures_the_kept_flatbuffers_again(smoke):
    results, _, tmp = smoke
    out_json = tmp / "retimed.json"
    out_json.write_text(json.dumps(results))
    proc = _run(
        "--retime",
        "--threads=1",
        "--repeats=20",
        "--rounds=3",
        f"--work={tmp / 'work'}",
        f"--json_out={out_json}",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    again = json.loads(out_json.read_text())
    r = again["models"]["lenet_300_100"]
    assert "retimed" in again and again["threads"] == [1]
    assert (r["latency_repeats"], r["latency_rounds"]) == (20, 3)
    for v in r["variants"].values():
        assert set(v["latency"]) == {"1"} and len(v["latency"]["1"]["speedups"]) == 3
    # Everything but the latency is the run's.
    for name, v in r["variants"].items():
        old = results["models"]["lenet_300_100"]["variants"][name]
        assert {k: x for k, x in v.items() if k != "latency"} == {
            k: x for k, x in old.items() if k != "latency"
        }
    assert "(retimed)" in proc.stdout


def test_plot_from_draws_one_bar_per_variant_and_thread_count(smoke, tmp_path):
    results, _, _ = smoke
    run = tmp_path / "run.json"
    run.write_text(json.dumps(results))
    png = tmp_path / "img" / "speed.png"
    # Two variants × two thread counts, twice (the same run given twice).
    assert ss.figure_from([str(run), str(run)], str(png)) == 8
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(app.UsageError, match="cannot read"):
        ss.figure_from([str(tmp_path / "missing.json")], str(png))
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"models": {}}))
    with pytest.raises(app.UsageError, match="no real model"):
        ss.figure_from([str(empty)], str(png))


def test_plot_from_labels_a_model_in_several_runs_with_their_seeds(tmp_path, monkeypatch):
    runs = []
    for seed, models in ((0, ["lenet_300_100", "lenet5"]), (1, ["lenet_300_100"])):
        runs.append(tmp_path / f"run{seed}.json")
        runs[-1].write_text(json.dumps({"seed": seed, "models": {m: {} for m in models}}))
    monkeypatch.setattr(ss, "figure", lambda results, path: [label for label, _ in results])
    assert ss.figure_from([str(r) for r in runs], "x.png") == [
        "LeNet-300-100, seed 0",
        "LeNet-5",
        "LeNet-300-100, seed 1",
    ]


def test_smoke_run_of_one_variant_with_the_examples_recipe(tmp_path):
    out_json = tmp_path / "block.json"
    proc = _run(
        "--smoke",
        "--model=lenet_300_100",
        "--variants=block",
        "--recipe=example",
        "--retrain_epochs=3",
        "--distill=0.5",
        "--threads=1",
        "--repeats=20",
        "--rounds=1",
        f"--work={tmp_path / 'work'}",
        f"--json_out={out_json}",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out_json.read_text())["models"]["lenet_300_100"]
    assert list(r["variants"]) == ["block"] and r["comparison"] is None
    assert r["recipe_name"] == "example" and r["recipe"]["distill"] == 0.5
    assert "distillation: weight 0.5" in proc.stdout
    assert r["variants"]["block"]["latency"]["1"]["speedup"] > 0
    assert not (tmp_path / "work" / "lenet_300_100_unstructured").exists()


def test_a_variant_the_model_does_not_train_is_a_usage_error(tmp_path):
    proc = _run("--model=mobilenet", "--variants=unstructured", f"--work={tmp_path}", timeout=120)
    assert proc.returncode != 0
    assert "--variants=unstructured: mobilenet trains only ['block']" in proc.stderr
    assert not os.listdir(tmp_path)


def test_retime_without_a_finished_run_is_a_usage_error(tmp_path):
    proc = _run(
        "--retime",
        f"--work={tmp_path}",
        f"--json_out={tmp_path / 'none.json'}",
        timeout=120,
    )
    assert proc.returncode != 0 and "--retime: cannot read" in proc.stderr
    assert not (tmp_path / "none.json").exists()


def test_smoke_run_lists_the_kernel_of_each_layer(smoke):
    r = smoke[0]["models"]["lenet_300_100"]
    b, u = r["variants"]["block"], r["variants"]["unstructured"]
    # Block pruning: every FC weight a 1x4 block-sparse tensor on the sparse kernel,
    # as the convert report's sparse_tensors say.
    assert [x["layer"] for x in b["layers"]] == ["ip1", "ip2", "ip3"]
    assert all(x["kernel"] == "sparse" for x in b["layers"])
    assert len(b["sparse_tensors"]) == 3
    assert all(w["block"] == [1, 4] for w in b["sparse_tensors"])
    # Unstructured pruning: no block-sparse tensor, every layer on the dense kernel.
    assert not any(w["block"] == [1, 4] for w in u["sparse_tensors"])
    assert all(x["kernel"] == "dense" for x in u["layers"])
