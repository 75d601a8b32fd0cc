"""benchmarks.budget_benchmark on synthetic runs: the table's statistics, the figure, run mode."""

import json
import os

import numpy as np
import pytest

from benchmarks import budget_benchmark as bb

DENSE = 1_066_600  # dense float32 .tflite bytes of the synthetic LeNet-300-100

# (budget, seed) -> (test error, bundle bytes, validation error, seconds); dense validation 1.60 %,
# so the validation limits are 1.60 % + 0.40 % = 2.00 % and 2.50 %: the table orders them so,
# though the folders are found max_error first.
RUNS = {
    (("max_increase", 0.004), 0): (0.0151, 9_000, 0.0149, 610.0),
    (("max_increase", 0.004), 1): (0.0163, 8_100, 0.0148, 650.0),
    (("max_increase", 0.004), 2): (0.0148, 9_900, 0.0150, 700.0),
    (("max_error", 0.025), 0): (0.0189, 6_000, 0.0195, 500.0),
    (("max_error", 0.025), 1): (0.0201, 5_400, 0.0199, 520.0),
    (("max_error", 0.025), 2): (0.0176, 7_200, 0.0198, 560.0),
}


def write_run(folder, model, kind, value, seed, test_error, bundle, validation, seconds, **extra):
    os.makedirs(folder, exist_ok=True)
    res = {
        "validation_images": 10000,
        "calibrated": False,
        "model": model,
        "seed": seed,
        "max_increase": value if kind == "max_increase" else 0.002,
        "max_error": value if kind == "max_error" else None,
        "dense_test_error": 0.0160,
        "dense_validation_error": 0.0160,
        "validation_error": validation,
        "test_error": test_error,
        "dense_tflite_bytes": DENSE,
        "bundle_bytes": bundle,
        "skeleton_bytes": 2_000,
        "sidecar_bytes": bundle - 2_000,
        "ratio": DENSE / bundle,
        "layers": [],
        "seconds": seconds,
        "search_seconds": seconds - 10,
        "moves": 9,
        **extra,
    }
    res = {k: v for k, v in res.items() if v is not None or k == "max_error"}
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump(res, f)


PAPER = {
    "date": "2025-01-01T00:00:00",
    "host": "test",
    "cpus": 2,
    "smoke": False,
    "seed": 0,
    "versions": {"keras": "3"},
    "models": {
        "lenet_300_100": {
            "recipe": {"dense_epochs": 12},
            "keras_dc": {
                "dense_error": 0.0170,
                "pruned_error": 0.0165,
                "clustered_error": 0.0168,
                "bundle_error": 0.0169,
                "dense_tflite_bytes": DENSE,
                "pruned_paper_count": 110_000,
                "pruned_bundle": 80_000,
                "clustered_paper_count": 30_000,
                "bundle_bytes": 21_000,
                "restored_gzip9": 90_000,
                "restored_zstd19": 85_000,
                "wall_s": 1200.0,
                "times": {"dense": 300.0},
                "layer_table": "",
                "paper_table": "",
                "figure": None,
            },
            "tfmot": {
                "dense_error": 0.0171,
                "pruned_error": 0.0180,
                "pruned_tflite": {"raw": DENSE, "gzip9": 200_000, "zstd19": 180_000},
                "clustered_error": 0.0185,
                "wall_s": 900.0,
                "tflite_error": 0.0186,
                "clustered_tflite": {"raw": DENSE, "gzip9": 70_000, "zstd19": 64_000},
                "kept": 0.08,
                "max_distinct": 64,
                "process_s": 950.0,
            },
        }
    },
}


@pytest.fixture
def work(tmp_path):
    """3 seeds x 2 budgets at different depths, plus an unrelated file, plus paper.json."""
    for ((kind, value), seed), numbers in RUNS.items():
        depth = "deeper/still" if seed == 2 else ""
        folder = tmp_path / "work" / depth / f"{kind}={value}" / f"seed{seed}"
        write_run(str(folder), "lenet_300_100", kind, value, seed, *numbers)
    (tmp_path / "work" / "notes.json").write_text("{}")
    paper = tmp_path / "paper.json"
    paper.write_text(json.dumps(PAPER))
    return tmp_path


def cells(table, first):
    """The cells of the table row whose first cell is `first`."""
    for line in table.splitlines():
        row = [c.strip() for c in line.strip("|").split("|")]
        if row[0] == first:
            return row
    raise AssertionError(f"no row {first!r} in\n{table}")


def expected(budget):
    rows = np.array([RUNS[(budget, s)] for s in (0, 1, 2)])
    err, size, val, sec = rows.T
    ratio = DENSE / size
    return err, size, val, sec, ratio


def test_collect_table_statistics_and_figure(work):
    lines = []
    agg = bb.collect(
        str(work / "work"),
        paper_json=str(work / "paper.json"),
        figure_dir=str(work / "img"),
        json_out=str(work / "out" / "agg.json"),
        log=lines.append,
    )
    assert list(agg["models"]) == ["lenet_300_100"]
    m = agg["models"]["lenet_300_100"]
    table = m["table"]
    assert table in "\n".join(lines)
    assert m["dense_tflite_bytes"] == DENSE

    # Groups in order of their validation limit: 1.60 % + 0.40 % before ≤ 2.50 %.
    assert [g["label"] for g in m["groups"]] == ["+0.40%", "≤2.50%"]
    assert table.index("| +0.40% |") < table.index("| ≤2.50% |")
    for label, budget in (("≤2.50%", ("max_error", 0.025)), ("+0.40%", ("max_increase", 0.004))):
        err, size, val, sec, ratio = expected(budget)
        row = cells(table, label)
        assert row[1] == "0,1,2"
        # Sample std (n - 1) over the seeds of one budget.
        assert row[2] == f"{err.mean():.2%} ± {err.std(ddof=1):.2%}"
        assert row[3] == f"{err.min():.2%}–{err.max():.2%}"
        assert row[4] == f"{size.mean():,.0f} ± {size.std(ddof=1):,.0f}"
        assert row[5] == f"{ratio.mean():.1f}× ({ratio.min():.1f}–{ratio.max():.1f})"
        assert row[6] == f"{val.mean():.2%}"
        assert row[7] == f"{sec.mean():,.0f} s"
        g = next(g for g in m["groups"] if g["label"] == label)
        assert g["test_error"]["std"] == pytest.approx(err.std(ddof=1))
        assert g["bundle_bytes"]["std"] == pytest.approx(size.std(ddof=1))
        assert g["ratio"]["mean"] == pytest.approx(ratio.mean())
        assert list(g["seeds"]) == [0, 1, 2]

    k, t = PAPER["models"]["lenet_300_100"]["keras_dc"], PAPER["models"]["lenet_300_100"]["tfmot"]
    row = cells(table, "paper preset, keras-dc bundle")
    assert row[2] == f"{k['bundle_error']:.2%}" and row[4] == f"{k['bundle_bytes']:,}"
    assert row[5] == f"{DENSE / k['bundle_bytes']:.1f}×"
    row = cells(table, "tfmot prune + cluster, .tflite zstd -19")
    assert row[2] == f"{t['tflite_error']:.2%}" and row[4] == "64,000"
    assert row[5] == f"{DENSE / 64_000:.1f}×"
    row = cells(table, "reported (Han et al. 2016, weights + indices only)")
    assert row[2] == "1.58%" and row[4] == f"{DENSE / 40:,.0f}" and row[5] == "40.0×"
    assert "bytes = dense .tflite / 40" in table

    with open(work / "img" / "budget_lenet_300_100.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert m["figure"] == str(work / "img" / "budget_lenet_300_100.png")
    saved = json.loads((work / "out" / "agg.json").read_text())
    assert saved["models"]["lenet_300_100"]["table"] == table


def test_one_seed_has_no_std(tmp_path):
    write_run(str(tmp_path / "a"), "lenet5", "max_error", 0.01, 4, 0.009, 20_000, 0.0095, 60.0)
    agg = bb.collect(str(tmp_path), figure_dir=str(tmp_path / "img"), log=lambda s: None)
    m = agg["models"]["lenet5"]
    row = cells(m["table"], "≤1.00%")
    assert row[1:6] == [
        "4",
        "0.90% (one run)",
        "0.90%–0.90%",
        "20,000 (one run)",
        "53.3× (53.3–53.3)",
    ]
    assert m["groups"][0]["test_error"]["std"] is None
    # No paper JSON: the reported point only, from the runs' dense bytes.
    assert [p["bytes"] for p in m["points"]] == [DENSE / 39, DENSE / 162]


def test_collect_finds_paper_json_in_work(work):
    os.replace(work / "paper.json", work / "work" / "paper.json")
    agg = bb.collect(str(work / "work"), figure_dir=str(work / "img"), log=lambda s: None)
    labels = [p["label"] for p in agg["models"]["lenet_300_100"]["points"]]
    assert labels[:2] == [
        "paper preset, keras-dc bundle",
        "tfmot prune + cluster, .tflite zstd -19",
    ]


def test_parse_budget():
    assert bb.parse_budget("max_error=0.015") == ("max_error", 0.015)
    assert bb.parse_budget(" max_increase=0.002") == ("max_increase", 0.002)
    for bad in ("max_error", "error=0.01", "max_error=x", "max_increase=1.5"):
        with pytest.raises(ValueError, match="budget"):
            bb.parse_budget(bad)


def test_run_missing_runs_each_missing_run_once(tmp_path, monkeypatch):
    calls = []

    def fake_child(cmd, log_path, timeout):
        calls.append(cmd)
        args = dict(a[2:].split("=", 1) for a in cmd if a.startswith("--") and "=" in a)
        kind = "max_error" if "max_error" in args else "max_increase"
        write_run(
            args["out"], args["model"], kind, float(args[kind]), int(args["seed"]),
            0.02, 10_000, 0.02, 1.0,
        )  # fmt: skip
        return 0, False, 1.0

    monkeypatch.setattr(bb, "run_child", fake_child)
    budgets = [("max_error", 0.015), ("max_increase", 0.5)]
    out = []
    failed = bb.run_missing(str(tmp_path), ["lenet5"], budgets, [0, 1], smoke=True, log=out.append)
    assert failed == [] and len(calls) == 4 and len(out) == 8
    first = calls[0]
    assert first[1:3] == ["-m", "examples.budget_search"]
    folder = str(tmp_path / "lenet5" / "max_error=0.015" / "seed0")
    assert first[3:] == [
        "--model=lenet5",
        "--seed=0",
        "--max_error=0.015",
        f"--out={folder}",
        "--smoke",
    ]
    assert os.path.exists(os.path.join(folder, "results.json"))
    # Again: everything is there, nothing runs.
    assert bb.run_missing(str(tmp_path), ["lenet5"], budgets, [0, 1], log=out.append) == []
    assert len(calls) == 4 and all("reused" in line for line in out[-4:])


def test_distilled_runs_are_their_own_group(tmp_path):
    write_run(str(tmp_path / "a"), "lenet5", "max_error", 0.01, 0, 0.009, 20_000, 0.0095, 60.0)
    write_run(str(tmp_path / "b"), "lenet5", "max_error", 0.01, 0, 0.008, 30_000, 0.0090, 60.0)
    with open(tmp_path / "b" / "results.json") as f:
        res = json.load(f)
    res["distill"] = 0.5
    with open(tmp_path / "b" / "results.json", "w") as f:
        json.dump(res, f)
    agg = bb.collect(str(tmp_path), figure_dir=str(tmp_path / "img"), log=lambda s: None)
    table = agg["models"]["lenet5"]["table"]
    assert cells(table, "≤1.00%")[2] == "0.90% (one run)"
    assert cells(table, "≤1.00%, distill 0.5")[2] == "0.80% (one run)"


def test_runs_of_older_protocols_are_grouped_and_labelled_apart(tmp_path):
    """Runs before --validation (5,000 images, no field) are not averaged with today's runs,
    nor runs with a learning-rate calibration (a "calibrate" step in search.json) with
    runs without."""
    old = dict(validation_images=None, calibrated=None)
    write_run(tmp_path / "a", "lenet_300_100", "max_error", 0.016, 0, 0.016, 8_000, 0.015, 1, **old)
    write_run(tmp_path / "b", "lenet_300_100", "max_error", 0.016, 1, 0.017, 7_000, 0.015, 1)
    write_run(tmp_path / "c", "lenet_300_100", "max_error", 0.016, 2, 0.018, 6_000, 0.016, 1, **old)
    write_run(
        tmp_path / "d",
        "lenet_300_100",
        "max_error",
        0.016,
        3,
        0.018,
        6_000,
        0.016,
        1,
        calibrated=True,
    )
    with open(tmp_path / "c" / "search.json", "w") as f:
        json.dump({"steps": [{"stage": "dense"}, {"stage": "calibrate"}]}, f)
    results = bb.find_results(str(tmp_path))
    assert [bool(r.get("calibrated")) for r in results] == [False, False, True, True]
    groups = bb.group_runs(results)["lenet_300_100"]
    labels = sorted(g.label for g in groups)
    assert labels == [
        "≤1.60%",
        "≤1.60%, 5,000 val",
        "≤1.60%, 5,000 val, calibrated lr",
        "≤1.60%, calibrated lr",
    ]
    assert all(len(g.runs) == 1 for g in groups)


def test_runs_with_another_centroid_update_or_prune_share_are_grouped_apart(tmp_path):
    """Runs before --centroid_update / --prune_share (no field) are the paper's update at 0.75."""
    write_run(tmp_path / "a", "lenet_300_100", "max_error", 0.016, 0, 0.016, 8_000, 0.015, 1)
    write_run(
        tmp_path / "b",
        "lenet_300_100",
        "max_error",
        0.016,
        1,
        0.017,
        7_000,
        0.015,
        1,
        centroid_update="auto",
        prune_share=0.75,
    )
    for folder, seed, share in (("c", 0, 0.75), ("d", 1, 0.75), ("e", 0, 0.85)):
        write_run(
            tmp_path / folder,
            "lenet_300_100",
            "max_error",
            0.016,
            seed,
            0.015,
            6_000,
            0.015,
            1,
            centroid_update="latent",
            prune_share=share,
        )
    groups = bb.group_runs(bb.find_results(str(tmp_path)))["lenet_300_100"]
    assert sorted((g.label, g.seeds) for g in groups) == [
        ("≤1.60%", (0, 1)),
        ("≤1.60%, latent centroid update", (0, 1)),
        ("≤1.60%, latent centroid update, prune share 0.85", (0,)),
    ]


def test_runs_with_a_gradual_stage_are_grouped_apart(tmp_path):
    """Runs before --gradual_epochs (no field) had no gradual stage: 0 epochs."""
    write_run(tmp_path / "a", "lenet5", "max_error", 0.008, 0, 0.007, 38_000, 0.0077, 1)
    write_run(
        tmp_path / "b",
        "lenet5",
        "max_error",
        0.008,
        1,
        0.007,
        37_000,
        0.0077,
        1,
        gradual_epochs=0.0,
    )
    for folder, seed in (("c", 0), ("d", 1)):
        write_run(
            tmp_path / folder,
            "lenet5",
            "max_error",
            0.008,
            seed,
            0.007,
            14_000,
            0.0077,
            1,
            gradual_epochs=16.0,
        )
    groups = bb.group_runs(bb.find_results(str(tmp_path)))["lenet5"]
    assert sorted((g.label, g.seeds, g.gradual_epochs) for g in groups) == [
        ("≤0.80%", (0, 1), 0.0),
        ("≤0.80%, gradual 16 ep", (0, 1), 16.0),
    ]


def test_runs_with_a_variational_stage_are_grouped_apart(tmp_path):
    """Runs before --variational_epochs (no field) had none; the KL weight splits them too."""
    write_run(tmp_path / "a", "lenet5", "max_error", 0.0075, 0, 0.007, 12_000, 0.0077, 1)
    for folder, seed, kl in (("b", 0, 0.3), ("c", 1, 0.3), ("d", 0, 1.0)):
        write_run(
            tmp_path / folder,
            "lenet5",
            "max_error",
            0.0075,
            seed,
            0.007,
            8_600,
            0.0077,
            1,
            variational_epochs=20.0,
            variational_kl=kl,
        )
    groups = bb.group_runs(bb.find_results(str(tmp_path)))["lenet5"]
    assert sorted((g.label, g.seeds) for g in groups) == [
        ("≤0.75%", (0,)),
        ("≤0.75%, variational 20 ep KL 0.3", (0, 1)),
        ("≤0.75%, variational 20 ep KL 1", (0,)),
    ]
    # One line per method in the figure: the label without its budget.
    assert sorted(g.method for g in groups) == [
        "defaults",
        "variational 20 ep KL 0.3",
        "variational 20 ep KL 1",
    ]
    path = bb.save_figure(str(tmp_path / "f.png"), "lenet5", DENSE, groups, [])
    assert path is None or os.path.getsize(path) > 10_000


def test_runs_converted_again_take_the_new_bytes_and_errors(tmp_path):
    """`--bytes_from`: skeleton_bytes rows (the same weights, today's converter) replace the
    bytes and test error of the runs they name; other runs keep their own."""
    write_run(
        str(tmp_path / "w" / "a"), "lenet5", "max_error", 0.01, 0, 0.009, 20_000, 0.0095, 60.0
    )
    write_run(
        str(tmp_path / "w" / "b"), "lenet5", "max_error", 0.01, 1, 0.008, 30_000, 0.0090, 60.0
    )
    rows = [
        {"run": "/x/a/", "variant": "packed", "bundle_bytes": 19_000, "test_error": 0.009},
        {"run": "/x/a/", "variant": "zdict", "bundle_bytes": 10_000, "test_error": 0.007},
    ]
    again = tmp_path / "again.json"
    again.write_text(json.dumps(rows))
    lines = []
    agg = bb.collect(
        str(tmp_path / "w"),
        figure_dir=str(tmp_path / "img"),
        log=lines.append,
        bytes_from=[str(again)],
    )
    assert "bytes and test errors of 1 of 2 runs: converted again (zdict)" in lines
    group = agg["models"]["lenet5"]["groups"][0]
    assert group["bundle_bytes"]["mean"] == pytest.approx(20_000)  # (10,000 + 30,000) / 2
    assert group["test_error"]["mean"] == pytest.approx(0.0075)
    packed = bb.collect(
        str(tmp_path / "w"),
        figure_dir=str(tmp_path / "img"),
        log=lambda s: None,
        bytes_from=[str(again)],
        variant="packed",
    )
    assert packed["models"]["lenet5"]["groups"][0]["bundle_bytes"]["mean"] == pytest.approx(24_500)
    with pytest.raises(ValueError, match="no 'names' rows"):
        bb.converted_again(bb.find_results(str(tmp_path / "w")), rows, "names")
    with pytest.raises(ValueError, match="not rows of benchmarks.skeleton_bytes"):
        bb.converted_again([], [{"run": "a", "variant": "zdict"}], "zdict")
