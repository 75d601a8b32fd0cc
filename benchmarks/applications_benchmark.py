"""Real architectures through the whole pipeline, and the converter's cost curve.

For each model: a few ``model.fit`` steps on random data with
``keras_dc.MagnitudePruning(0.8, OneShot)``, then a few with
``keras_dc.WeightClustering()`` (default bits: 8 for conv, 5 for dense), then
``converters.convert(..., picture=False)`` (the real TFLite converter; its own
check restores the bundle and compares LiteRT with Keras), then
``converters.restore`` + ``converters.verify`` (LiteRT on the restored file against
Keras again). Recorded: bundle bytes against the dense float32 ``.tflite``, the
conversion's wall time split by phase, and its peak memory — the growth of the
process's RSS high-water mark (VmHWM, reset just before ``convert``) over its RSS
just before ``convert``.

Models (``keras.applications`` with ``weights=None``: no download; trained at
64×64×3 with batch ``--batch`` to save time, then the weights — which do not depend
on the input size — are copied into the same architecture built at 224×224×3,
1000 classes, which is converted with batch 1):
MobileNetV2, EfficientNetB0, ResNet50; a small Transformer encoder (token
embedding + learned positions, ``--transformer_blocks`` blocks of 4-head
``MultiHeadAttention`` + FFN with LayerNormalization, pooled, Dense head); and a
scaled family of MLPs (784 → h → h → 10 for several widths h), whose only
difference is size, for the cost curve.

Each model runs in a fresh child process (this script with ``--worker``), so that
imports and earlier models do not blur its memory figures. After converting, the
child also encodes the same laid-out flatbuffer again with
``encoder.build_bundle(..., zlib_estimate=False)`` (the encoder before the
zlib-estimate change: zlib -9 of every buffer is computed) and with the default,
interleaved (``--encode_repeats`` each), for a before/after of the encoder in the
same process.

The cost curve fits, by least squares over all models, conversion wall seconds
against millions of parameters and peak-memory growth against parameter bytes,
and prints the slopes, intercepts and R².

    python -m benchmarks.applications_benchmark            # all models, ~20 min on 2 cores
    python -m benchmarks.applications_benchmark --smoke    # tiny Transformer + MobileNetV2(alpha=0.35) at 32×32
    python -m benchmarks.applications_benchmark --models=resnet50,mlp_2048 --json_out=out/apps.json
"""

import gc
import json
import os
import resource
import shlex
import statistics
import sys
import tempfile
import time
import traceback

import numpy as np
from absl import app, flags

from benchmarks._common import machine_info, memory_kib, module_command, reset_peak_rss, run_child

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MLP_WIDTHS = (1024, 2048, 4096)
ALL_MODELS = ("transformer", "mobilenet_v2", "efficientnet_b0", "resnet50") + tuple(
    f"mlp_{h}" for h in MLP_WIDTHS
)
SMOKE_MODELS = ("transformer", "mobilenet_v2")

_SMOKE = flags.DEFINE_bool(
    "smoke",
    False,
    "Tiny run to check the script: a 2-block Transformer with d=32 and MobileNetV2(alpha=0.35) at "
    "32×32, one step per stage, both in one child process.",
)
_MODELS = flags.DEFINE_list(
    "models",
    None,
    f"Models to run, from {list(ALL_MODELS)}; default: all (smoke: {list(SMOKE_MODELS)}).",
)
_STEPS = flags.DEFINE_integer("steps", 2, "Optimizer steps per stage (pruning, clustering).")
_BATCH = flags.DEFINE_integer("batch", 4, "Batch size of the random training data.")
_SPARSITY = flags.DEFINE_float("sparsity", 0.8, "One-shot pruning target.")
_TRANSFORMER_BLOCKS = flags.DEFINE_integer("transformer_blocks", 4, "Transformer encoder blocks.")
_ENCODE_REPEATS = flags.DEFINE_integer(
    "encode_repeats", 2, "Interleaved runs of each encoder variant per model."
)
_TIMEOUT = flags.DEFINE_integer("timeout", 1800, "Seconds before a child process is killed.")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the results as JSON to this file.")
_WORK_DIR = flags.DEFINE_string(
    "work_dir", None, "Where bundles are written; default: a temporary directory."
)
_WORKER = flags.DEFINE_list("worker", None, "Internal: run these models in this (child) process.")
_WORKER_DIR = flags.DEFINE_string("worker_dir", None, "Internal: the child's output directory.")

MB = 1e6


# --- models ------------------------------------------------------------------------------


def image_sizes():
    """(training, conversion) image size: the weights of these models do not depend on it."""
    return (32, 32) if _SMOKE.value else (64, 224)


def build_transformer(keras, smoke):
    vocab, length, width, heads, blocks = (
        (500, 16, 32, 2, 2) if smoke else (8000, 128, 256, 4, _TRANSFORMER_BLOCKS.value)
    )
    layers = keras.layers
    tokens = keras.Input((length,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab, width, name="token_embedding")(tokens)
    positions = keras.ops.zeros_like(tokens) + keras.ops.arange(length, dtype="int32")
    x = x + layers.Embedding(length, width, name="position_embedding")(positions)
    for i in range(blocks):
        attention = layers.MultiHeadAttention(heads, width // heads, name=f"block{i}_attention")(
            x, x
        )
        x = layers.LayerNormalization(name=f"block{i}_norm1")(x + attention)
        hidden = layers.Dense(4 * width, activation="relu", name=f"block{i}_ffn1")(x)
        x = layers.LayerNormalization(name=f"block{i}_norm2")(
            x + layers.Dense(width, name=f"block{i}_ffn2")(hidden)
        )
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(10, name="head")(x)
    return keras.Model(tokens, outputs, name="transformer_encoder")


def build_model(keras, name, size=None):
    """(model, input sampler: rng, n → batch of inputs, number of classes)."""
    size = size or image_sizes()[1]
    apps = keras.applications
    if name == "transformer":
        model = build_transformer(keras, _SMOKE.value)
        vocab = model.get_layer("token_embedding").input_dim
        length = model.input.shape[1]
        return model, lambda rng, n: rng.integers(0, vocab, size=(n, length)).astype(np.int32), 10
    if name.startswith("mlp_"):
        width = int(name[4:])
        layers = keras.layers
        model = keras.Sequential(
            [
                keras.Input((784,)),
                layers.Dense(width, activation="relu"),
                layers.Dense(width, activation="relu"),
                layers.Dense(10),
            ],
            name=name,
        )
        return model, lambda rng, n: rng.normal(size=(n, 784)).astype(np.float32), 10
    builders = {
        "mobilenet_v2": lambda: apps.MobileNetV2(
            alpha=0.35 if _SMOKE.value else 1.0,
            weights=None,
            input_shape=(size, size, 3),
            classes=10 if _SMOKE.value else 1000,
        ),
        "efficientnet_b0": lambda: apps.EfficientNetB0(weights=None, input_shape=(size, size, 3)),
        "resnet50": lambda: apps.ResNet50(weights=None, input_shape=(size, size, 3)),
    }
    if name not in builders:
        raise app.UsageError(f"unknown model {name!r}; choose from {list(ALL_MODELS)}.")
    model = builders[name]()
    classes = model.output.shape[-1]
    return model, lambda rng, n: rng.normal(size=(n, size, size, 3)).astype(np.float32), classes


IMAGE_MODELS = ("mobilenet_v2", "efficientnet_b0", "resnet50")


# --- the child: one model through the pipeline ---------------------------------------------


def _param_bytes(model):
    return int(sum(np.prod(w.shape) * np.dtype(w.dtype).itemsize for w in model.weights))


def _segments(buffers, names):
    """The encoder's input for `buffers`, named as convert named them (`names`: the
    sidecar's name of the segment or PACKED part at each offset)."""
    from converters import encoder as encoder_lib

    stored = [b for b in buffers if b.size > 0]
    missing = [b.offset for b in stored if b.offset not in names]
    if missing:
        raise RuntimeError(f"weight buffers at {missing[:5]} are not segments of the sidecar")
    return [
        encoder_lib.Segment(
            offset=b.offset, size=b.size, dtype=b.dtype, channels=b.channels, name=names[b.offset]
        )
        for b in stored
    ]


def encoder_before_after(directory, written_sidecar, repeats):
    """Encodes the restored file again: zlib_estimate=False (before) and True (after), interleaved."""
    import converters
    from converters import encoder as encoder_lib
    from converters import layout as layout_lib

    restored = converters.restore(directory)
    # Where the restored file's buffers are, the file unchanged ("inline" reads the offsets;
    # laying it out again would repack it: its blanked tensor names then take no bytes).
    again, buffers = layout_lib.lay_out(restored, mode="inline")
    if again != restored:
        return {"error": "lay_out() of the restored file did not reproduce it"}
    from converters import decoder

    # By offset: the flatbuffer's own ZLIB segments or parts are no buffers (a packed
    # sidecar's parts have no names: their names do not reach its bytes either).
    names = {seg["offset"]: seg["name"] for seg in decoder.inspect(written_sidecar)["segments"]}
    segments = _segments(buffers, names)
    del again
    runs = {"before": [], "after": []}
    sizes, encodings = {}, {}
    for r in range(repeats):
        for variant in ("before", "after") if r % 2 == 0 else ("after", "before"):
            gc.collect()
            rss, _ = memory_kib()
            reset_peak_rss()
            t0 = time.perf_counter()
            skeleton, sidecar, stats = encoder_lib.build_bundle(
                restored, segments, zlib_estimate=variant == "after"
            )
            seconds = time.perf_counter() - t0
            _, hwm = memory_kib()
            runs[variant].append({"seconds": seconds, "peak_growth_bytes": (hwm - rss) * 1024})
            sizes[variant] = len(skeleton) + len(sidecar)
            encodings[variant] = [s.encoding for s in stats]
            if variant == "after":
                sizes["after_equals_convert"] = sidecar == written_sidecar
            del skeleton, sidecar, stats
    changed = sum(a != b for a, b in zip(encodings["before"], encodings["after"]))
    return {
        "segments": len(segments),
        "runs": runs,
        "before_median_s": statistics.median(r["seconds"] for r in runs["before"]),
        "after_median_s": statistics.median(r["seconds"] for r in runs["after"]),
        "before_bundle_bytes": sizes["before"],
        "after_bundle_bytes": sizes["after"],
        "after_equals_convert": sizes["after_equals_convert"],
        "segments_with_other_encoding": changed,
        "zlib_segments_before": encodings["before"].count("ZLIB"),
        "zlib_segments_after": encodings["after"].count("ZLIB"),
    }


def run_model(name, directory):
    import keras

    import converters
    import keras_dc
    from keras_dc import schedules

    out = {"model": name, "step": "build", "ok": False}
    keras.utils.set_random_seed(0)
    train_size, convert_size = image_sizes()
    model, sample, classes = build_model(keras, name, train_size)
    out.update(
        params=int(model.count_params()), param_bytes=_param_bytes(model), classes=int(classes)
    )
    rng = np.random.default_rng(0)
    steps, batch = (1, 2) if _SMOKE.value else (_STEPS.value, _BATCH.value)
    x = sample(rng, steps * batch)
    y = rng.integers(0, classes, size=(steps * batch,))
    model.compile(
        keras.optimizers.SGD(1e-3, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(
            from_logits=name in ("transformer",) or name.startswith("mlp_")
        ),
    )
    out["step"] = "fit with MagnitudePruning"
    t0 = time.perf_counter()
    pruning = keras_dc.MagnitudePruning(_SPARSITY.value, schedule=schedules.OneShot(), verbose=0)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, callbacks=[pruning])
    out["prune_fit_s"] = time.perf_counter() - t0
    out["step"] = "fit with WeightClustering"
    t0 = time.perf_counter()
    clustering = keras_dc.WeightClustering(verbose=0)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, callbacks=[clustering])
    out["cluster_fit_s"] = time.perf_counter() - t0
    out.update(pruned_variables=len(pruning.selected), clustered_variables=len(clustering.selected))
    del x, y
    if name in IMAGE_MODELS and convert_size != train_size:
        out["step"] = f"copy the weights into the model built at {convert_size}×{convert_size}"
        trained = model
        model, _, _ = build_model(keras, name, convert_size)
        model.set_weights(trained.get_weights())
        del trained
    out["step"] = "converters.convert"
    bundle_dir = os.path.join(directory, name)
    gc.collect()
    rss, _ = memory_kib()
    out["peak_reset"] = reset_peak_rss()
    t0 = time.perf_counter()
    result = converters.convert(model, bundle_dir, picture=False, keep_tflite=True, verbose=0)
    out["convert_wall_s"] = time.perf_counter() - t0
    _, hwm = memory_kib()
    out.update(
        rss_before_convert_bytes=rss * 1024,
        hwm_convert_bytes=hwm * 1024,
        peak_growth_bytes=(hwm - rss) * 1024,
    )
    out["timings"] = result.report["timings"]
    totals = result.report["totals"]
    out.update(
        {
            k: totals[k]
            for k in (
                "weights",
                "kept",
                "dense_tflite_bytes",
                "restored_bytes",
                "skeleton_bytes",
                "sidecar_bytes",
                "bundle_bytes",
                "ratio_vs_dense",
                "huffman_over_entropy",
            )
        }
    )
    out["convert_max_abs_diff"] = result.max_abs_diff
    out["convert_max_scaled_diff"] = result.max_scaled_diff
    out["encodings"] = {}
    for row in result.report["buffers"]:
        out["encodings"][row["encoding"]] = out["encodings"].get(row["encoding"], 0) + 1
    out["step"] = "converters.restore + converters.verify"
    restored = converters.restore(bundle_dir)
    verified_path = os.path.join(bundle_dir, "model.tflite")  # the bytes convert ran in LiteRT
    with open(verified_path, "rb") as f:
        out["restored_matches_report"] = (
            len(restored) == totals["restored_bytes"] and restored == f.read()
        )
    os.remove(verified_path)
    del restored
    check = converters.verify(bundle_dir, model, verbose=0, seed=1)
    out.update(
        verify_max_abs_diff=check["max_abs_diff"],
        verify_max_scaled_diff=check["max_scaled_diff"],
        delegate_problems=check["delegate_problems"],
    )
    with open(result.sidecar_path, "rb") as f:
        written = f.read()
    out["step"] = "encoder before/after"
    out["encoder"] = encoder_before_after(
        bundle_dir, written, 1 if _SMOKE.value else _ENCODE_REPEATS.value
    )
    out["step"] = "done"
    out["ok"] = True
    return out


def worker(names, directory):
    results = []
    path = os.path.join(directory, "worker.json")
    base_rss, _ = memory_kib()
    for name in names:
        try:
            out = run_model(name, directory)
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            out = {
                "model": name,
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        out["ru_maxrss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out["rss_at_child_start_bytes"] = base_rss * 1024
        results.append(out)
        with open(path, "w") as f:
            json.dump(results, f, indent=2, default=float)
        gc.collect()


def run_worker(names, directory):
    cmd = module_command(
        "benchmarks.applications_benchmark",
        f"--worker={','.join(names)}",
        f"--worker_dir={directory}",
    )
    cmd.append("--smoke" if _SMOKE.value else "--nosmoke")
    for flag in (_STEPS, _BATCH, _SPARSITY, _TRANSFORMER_BLOCKS, _ENCODE_REPEATS):
        cmd.append(f"--{flag.name}={flag.value}")
    os.makedirs(directory, exist_ok=True)
    print(f"-- {', '.join(names)}: `{shlex.join(cmd)}`", flush=True)
    log_path = os.path.join(directory, "worker.log")
    rc, timed_out, wall = run_child(cmd, log_path, _TIMEOUT.value)
    results = []
    if os.path.exists(os.path.join(directory, "worker.json")):
        with open(os.path.join(directory, "worker.json")) as f:
            results = json.load(f)
    done = {r["model"] for r in results}
    with open(log_path, errors="replace") as f:
        tail = f.read()[-3000:]
    for name in names:
        if name not in done:
            results.append(
                {
                    "model": name,
                    "ok": False,
                    "error": f"child exited with {rc}"
                    f"{' (timed out)' if timed_out else ''} (log: {log_path})",
                    "log_tail": tail,
                }
            )
    for r in results:
        r["child_wall_s"] = wall
        if not r.get("ok"):
            print(
                f"   {r['model']}: FAILED: {r.get('error')}\n{r.get('traceback', r.get('log_tail', ''))[-2000:]}",
                flush=True,
            )
        else:
            print(
                f"   {r['model']}: {r['params']:,} params, convert {r['convert_wall_s']:.1f} s, peak +"
                f"{r['peak_growth_bytes'] / MB:.0f} MB, bundle {r['bundle_bytes']:,} B "
                f"({r['ratio_vs_dense']:.1f}× smaller than the dense .tflite)",
                flush=True,
            )
    return results


# --- the parent: tables and the cost curve --------------------------------------------------


def linear_fit(x, y):
    """Least squares y = slope·x + intercept: (slope, intercept, R²); None below 2 points."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size < 2 or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = np.sum((y - y.mean()) ** 2)
    return float(slope), float(intercept), float(1 - np.sum(residual**2) / total) if total else 1.0


def cost_curve(rows):
    ok = [r for r in rows if r.get("ok")]
    mparams = [r["params"] / 1e6 for r in ok]
    curve = {
        "points": [
            {
                "model": r["model"],
                "mparams": r["params"] / 1e6,
                "convert_wall_s": r["convert_wall_s"],
                "tflite_convert_s": r["timings"]["convert_s"],
                "keras_dc_s": r["convert_wall_s"] - r["timings"]["convert_s"],
                "encode_s": r["timings"]["encode_s"],
                "peak_growth_bytes": r["peak_growth_bytes"],
                "param_bytes": r["param_bytes"],
            }
            for r in ok
        ],
    }
    for key, ys in (
        ("convert_wall_s", [r["convert_wall_s"] for r in ok]),
        ("tflite_convert_s", [r["timings"]["convert_s"] for r in ok]),
        ("keras_dc_s", [r["convert_wall_s"] - r["timings"]["convert_s"] for r in ok]),
        ("encode_s", [r["timings"]["encode_s"] for r in ok]),
    ):
        curve[key + "_per_mparam"] = linear_fit(mparams, ys)
    curve["peak_growth_per_param_byte"] = linear_fit(
        [r["param_bytes"] for r in ok], [r["peak_growth_bytes"] for r in ok]
    )
    curve["median_peak_over_param_bytes"] = (
        statistics.median(r["peak_growth_bytes"] / r["param_bytes"] for r in ok) if ok else None
    )
    return curve


def _fit_text(fit, unit, scale=1.0):
    if fit is None:
        return "n/a (fewer than 2 models)"
    slope, intercept, r2 = fit
    return f"{slope * scale:.3g} {unit}, intercept {intercept:.3g}, R² {r2:.3f}"


def _table_head(head):
    print(head)
    print("-" * len(head))


def print_results(results):
    info, rows = results["info"], results["models"]
    print()
    print("=" * 110)
    print(
        "keras-dc applications benchmark"
        + (" (SMOKE: tiny, figures meaningless)" if results["smoke"] else "")
    )
    print(
        f"   {info['date']}; {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"{info['memory_gib']} GiB; load average {info['load_average_at_start']} at start, "
        f"{results['load_average_at_end']} at end (shared machine: other jobs run concurrently)"
    )
    print(
        f"   Python {info['python']}, NumPy {info['numpy']}, TensorFlow {info['tensorflow']}, Keras {info['keras']}, "
        f"ai-edge-litert {info['ai_edge_litert']}, zlib {info['zlib']}"
    )
    print(f"   command: {results['command']}")
    print(f"   {results['settings']}")
    print()
    head = (
        f"{'model':<16s} {'params':>11s} {'kept':>6s} {'dense .tflite B':>16s} {'bundle B':>12s} {'ratio':>7s} "
        f"{'fit s':>6s} {'convert s':>9s} {'peak +MB':>9s} {'×param B':>8s} {'|LiteRT-Keras|':>14s} {'restored':>8s}"
    )
    _table_head(head)
    for r in rows:
        if not r.get("ok"):
            print(f"{r['model']:<16s} FAILED: {r.get('error')}")
            continue
        fit_s = r["prune_fit_s"] + r["cluster_fit_s"]
        diff = max(r["convert_max_abs_diff"], r["verify_max_abs_diff"])
        print(
            f"{r['model']:<16s} {r['params']:>11,d} {r['kept']:>6.1%} {r['dense_tflite_bytes']:>16,d} "
            f"{r['bundle_bytes']:>12,d} {r['ratio_vs_dense']:>6.1f}× {fit_s:>6.0f} {r['convert_wall_s']:>9.1f} "
            f"{r['peak_growth_bytes'] / MB:>9.0f} {r['peak_growth_bytes'] / r['param_bytes']:>7.1f}× "
            f"{diff:>14.2e} {'ok' if r['restored_matches_report'] else 'DIFFERS':>8s}"
        )
    print()
    print("Conversion phases (converters.convert report timings, seconds)")
    head = (
        f"{'model':<16s} {'TFLite':>8s} {'layout':>7s} {'encode':>7s} {'restore':>8s} {'verify':>7s} "
        f"{'other':>7s} {'total':>7s}"
    )
    _table_head(head)
    for r in rows:
        if r.get("ok"):
            t = r["timings"]
            other = r["convert_wall_s"] - sum(t.values())
            print(
                f"{r['model']:<16s} {t['convert_s']:>8.1f} {t['layout_s']:>7.2f} {t['encode_s']:>7.2f} "
                f"{t['restore_s']:>8.2f} {t['verify_s']:>7.2f} {other:>7.2f} {r['convert_wall_s']:>7.1f}"
            )
    print()
    print(
        "Encoder before/after (encoder.build_bundle on the same flatbuffer, interleaved, medians):"
    )
    print(
        "  before = zlib_estimate=False (zlib -9 of every buffer, the old encoder); after = the default"
    )
    head = (
        f"{'model':<16s} {'before s':>9s} {'after s':>8s} {'after/before':>12s} {'peak+MB b/a':>12s} "
        f"{'bundle B before':>16s} {'bundle B after':>15s} {'size Δ':>8s} {'zlib segs b/a':>13s}"
    )
    _table_head(head)
    for r in rows:
        e = r.get("encoder")
        if not r.get("ok") or "runs" not in (e or {}):
            continue
        peak = "/".join(
            f"{max(x['peak_growth_bytes'] for x in e['runs'][v]) / MB:.0f}"
            for v in ("before", "after")
        )
        delta = e["after_bundle_bytes"] / e["before_bundle_bytes"] - 1
        print(
            f"{r['model']:<16s} {e['before_median_s']:>9.2f} {e['after_median_s']:>8.2f} "
            f"{e['after_median_s'] / e['before_median_s']:>11.2f}× {peak:>12s} {e['before_bundle_bytes']:>16,d} "
            f"{e['after_bundle_bytes']:>15,d} {delta:>+8.3%} "
            f"{e['zlib_segments_before']:>6d}/{e['zlib_segments_after']:<6d}"
            + ("" if e["after_equals_convert"] else "  (differs from convert's sidecar!)")
        )
    for key, title in (
        ("cost_curve", "the models above"),
        ("cost_curve_mlp", "the MLP family only"),
    ):
        c = results.get(key)
        if not c or not c["points"]:
            continue
        print()
        print(f"Cost curve over {title} (least squares):")
        print(
            f"  conversion wall time:          {_fit_text(c['convert_wall_s_per_mparam'], 's per M params')}"
        )
        print(
            f"    of which the TFLite converter: {_fit_text(c['tflite_convert_s_per_mparam'], 's per M params')}"
        )
        print(
            f"    of which keras-dc (the rest):  {_fit_text(c['keras_dc_s_per_mparam'], 's per M params')}"
        )
        print(
            f"    of which sidecar encoding:     {_fit_text(c['encode_s_per_mparam'], 's per M params')}"
        )
        peak = c["peak_growth_per_param_byte"]
        print(
            "  peak RSS growth during convert: "
            + (
                f"{peak[0]:.2f} B per parameter byte, intercept {peak[1] / MB:.0f} MB, R² {peak[2]:.3f}"
                if peak
                else "n/a"
            )
            + (
                f"; median ratio {c['median_peak_over_param_bytes']:.1f}× parameter bytes"
                if c["median_peak_over_param_bytes"]
                else ""
            )
        )
    print()
    print(f"total wall time {results['wall_s']:.0f} s")


def benchmark():
    names = _MODELS.value or list(SMOKE_MODELS if _SMOKE.value else ALL_MODELS)
    unknown = [n for n in names if n not in ALL_MODELS]
    if unknown:
        raise app.UsageError(f"unknown models {unknown}; choose from {list(ALL_MODELS)}.")
    info = machine_info()
    t_start = time.perf_counter()
    settings = {
        "train_image_size": image_sizes()[0],
        "convert_image_size": image_sizes()[1],
        "steps": 1 if _SMOKE.value else _STEPS.value,
        "batch": 2 if _SMOKE.value else _BATCH.value,
        "sparsity": _SPARSITY.value,
        "transformer_blocks": 2 if _SMOKE.value else _TRANSFORMER_BLOCKS.value,
        "encode_repeats": 1 if _SMOKE.value else _ENCODE_REPEATS.value,
    }
    results = {
        "info": info,
        "command": shlex.join([sys.executable] + sys.argv),
        "smoke": _SMOKE.value,
        "settings": settings,
        "models": [],
    }
    with tempfile.TemporaryDirectory(prefix="keras_dc_apps_bench_") as tmp:
        work = _WORK_DIR.value or tmp
        groups = [names] if _SMOKE.value else [[n] for n in names]  # smoke: one child for all
        for group in groups:
            results["models"] += run_worker(group, os.path.join(work, "_".join(group)))
    results["cost_curve"] = cost_curve(results["models"])
    # One architecture at growing width: the linearity question without the graph's own cost.
    results["cost_curve_mlp"] = cost_curve(
        [r for r in results["models"] if r["model"].startswith("mlp_")]
    )
    results["wall_s"] = time.perf_counter() - t_start
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if _JSON_OUT.value:
        os.makedirs(os.path.dirname(os.path.abspath(_JSON_OUT.value)), exist_ok=True)
        with open(_JSON_OUT.value, "w") as f:
            json.dump(results, f, indent=2, default=float)
        print(f"JSON written to {_JSON_OUT.value}", flush=True)
    print_results(results)
    return results


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _WORKER.value:
        worker(_WORKER.value, _WORKER_DIR.value)
    else:
        benchmark()


if __name__ == "__main__":
    app.run(main)
