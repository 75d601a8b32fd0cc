"""JVM restore throughput of keras-dc bundles, side by side with gzip -9 + Inflater.

For each bundle, compiles the Java core (android/core) and its benchmark main
(android/benchmark) with `javac --release 8`, writes the gzip -9 of the restored
`.tflite`, and runs `dev.kerasdc.benchmark.RestoreBenchmark`. Its measurements take
turns (interleaved runs, so that a change in the machine's load hits all alike) and it
prints, per measurement, the median wall time, MB (10^6 bytes) of restored flatbuffer per
second, the minimum, and the median CPU time of the measuring thread (steadier than wall
time on a busy machine):

- `BundleRestorer.restore` (every check of the format, SHA-256 of R included) with the
  default HuffmanStream decoder, and with each of `HuffmanDecoding.TABLE` (Java block
  table decoder) and `HuffmanDecoding.INFLATER` (zlib behind a synthesised DEFLATE
  header, format spec section 12);
- `restoreDirect` (direct ByteBuffer, what LiteRT's Interpreter takes), `check` alone;
- SHA-256 of the restored file alone (the mandatory check 18, a floor for any restore);
- `java.util.zip.Inflater` on the gzip file, with and without its CRC-32;

then the restore side by side with the Inflater (ratios), and SHA-256's share of the
Inflater's time. Prints the figures; writes nothing else.

Usage:
    python -m benchmarks.java_restore --bundle=out/quickstart
    python -m benchmarks.java_restore --synthetic_mb=32          # a large synthetic bundle
    python -m benchmarks.java_restore --bundle=out/quickstart --synthetic_mb=0 --runs=101
"""

import gzip
import os
import platform
import shutil
import subprocess
import tempfile
import time

from absl import app, flags

from benchmarks._common import ROOT

_BUNDLE = flags.DEFINE_multi_string(
    "bundle", [], "Bundle directory (NAME.skeleton.tflite + NAME.dcw); repeatable."
)
_SYNTHETIC_MB = flags.DEFINE_integer(
    "synthetic_mb",
    32,
    "Also benchmark a synthetic bundle whose restored file has about this many MB (0: none).",
)
_RUNS = flags.DEFINE_integer("runs", 15, "Measured runs per figure (the median is printed).")
_WARMUP = flags.DEFINE_integer("warmup", 5, "Unmeasured warm-up runs per figure.")
_JVM_FLAGS = flags.DEFINE_multi_string(
    "jvm_flag", [], "Flag for the benchmark's JVM, e.g. -Xmx2g; repeatable."
)


def _sources(*dirs):
    return sorted(
        os.path.join(d, f)
        for top in dirs
        for d, _, files in os.walk(os.path.join(ROOT, top))
        for f in files
        if f.endswith(".java")
    )


def _compile(out):
    cmd = ["javac", "--release", "8", "-d", out] + _sources(
        "android/core/src/main/java", "android/benchmark/src/main/java"
    )
    subprocess.run(cmd, check=True)


def synthetic_bundle(megabytes, seed=0):
    """A bundle shaped like a pruned, clustered CNN: (skeleton, sidecar, restored)."""
    import numpy as np

    from converters import encoder as encoder_lib

    rng = np.random.default_rng(seed)
    scale = megabytes * 1e6 / 37.4e6
    parts, segments = [rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()], []
    position = len(parts[0])

    def add(name, values, dtype, channels=1):
        nonlocal position
        raw = values.astype(dtype).tobytes()
        segments.append(encoder_lib.Segment(position, len(raw), dtype, channels, name))
        parts.append(raw)
        position += len(raw)
        parts.append(b"\0" * 4)  # flatbuffer padding between buffers
        position += 4

    # fc1: 92% pruned, 32 shared values (CLUSTERED_SPARSE).
    n = int(6e6 * scale)
    fc1 = rng.normal(size=32).astype(np.float32)[rng.integers(0, 32, n)]
    fc1[rng.random(n) < 0.92] = 0
    add("fc1/kernel", fc1, "float32")
    # conv: BatchNorm-folded, 64 channels x 16 values each, 30% pruned (per-channel CLUSTERED_DENSE).
    per = int(36864 * scale)
    centroids = rng.normal(size=16).astype(np.float32)
    conv = centroids[rng.integers(0, 16, (64, per))] * rng.uniform(0.5, 2, (64, 1)).astype(
        np.float32
    )
    conv[rng.random((64, per)) < 0.3] = 0
    add("conv/kernel", conv.ravel(), "float32", channels=64)
    # fc2 in float16: 90% pruned, 16 values.
    n = int(2e6 * scale)
    fc2 = rng.normal(size=16).astype(np.float16)[rng.integers(0, 16, n)]
    fc2[rng.random(n) < 0.9] = 0
    add("fc2/kernel_fp16", fc2, "float16")
    add("fc2/bias", rng.normal(size=1000), "float32")
    restored = b"".join(parts)
    skeleton, sidecar, _ = encoder_lib.build_bundle(restored, segments)
    return skeleton, sidecar, restored


def _benchmark(label, classes, skeleton, sidecar, restored, workdir):
    paths = {}
    for name, data in (
        ("skeleton", skeleton),
        ("dcw", sidecar),
        ("gz", gzip.compress(restored, 9, mtime=0)),
    ):
        paths[name] = os.path.join(workdir, f"{label}.{name}")
        with open(paths[name], "wb") as f:
            f.write(data)
    print(f"\n== {label}", flush=True)
    subprocess.run(
        ["java"]
        + _JVM_FLAGS.value
        + [
            "-cp",
            classes,
            "dev.kerasdc.benchmark.RestoreBenchmark",
            paths["skeleton"],
            paths["dcw"],
            paths["gz"],
            str(_RUNS.value),
            str(_WARMUP.value),
        ],
        check=True,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if shutil.which("javac") is None:
        raise app.UsageError("javac not found: run `make java-deps`.")
    from converters import decoder as decoder_lib
    from converters import files

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[
        0
    ]
    print(
        f"JVM: {java} {' '.join(_JVM_FLAGS.value)}; {platform.machine()}, {os.cpu_count()} CPUs; "
        f"runs={_RUNS.value} warmup={_WARMUP.value}"
    )
    with tempfile.TemporaryDirectory() as workdir:
        classes = os.path.join(workdir, "classes")
        _compile(classes)
        for directory in _BUNDLE.value:
            skeleton, sidecar = files.load_bundle(directory)
            restored = decoder_lib.restore_bytes(skeleton, sidecar)
            _benchmark(
                os.path.basename(os.path.normpath(directory)),
                classes,
                skeleton,
                sidecar,
                restored,
                workdir,
            )
        if _SYNTHETIC_MB.value > 0:
            start = time.perf_counter()
            skeleton, sidecar, restored = synthetic_bundle(_SYNTHETIC_MB.value)
            print(f"\n(synthetic bundle encoded in Python in {time.perf_counter() - start:.1f} s)")
            _benchmark(
                f"synthetic-{_SYNTHETIC_MB.value}MB", classes, skeleton, sidecar, restored, workdir
            )


if __name__ == "__main__":
    app.run(main)
