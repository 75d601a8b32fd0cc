"""Writes the golden bundles of tests/golden/ (see README.md there).

    python tests/golden/make_golden.py          # rewrite the files
    python tests/golden/make_golden.py --check  # exit 1 if a file would change

Each case is a restored file R and its segments; the files are NAME.restored (R),
NAME.skeleton and NAME.dcw (what `converters.encoder.build_bundle` makes of R with the
encodings of the case's format version: a case written before version 1.N keeps its
bytes because the encoder may only use the codes of its version), and manifest.json
lists every case's segments, its `version_minor` and the encodings chosen. The inputs come
from NumPy's seeded PCG64 generator; the tests rebuild each bundle from NAME.restored
and manifest.json (not from the generator), so a change in NumPy's random streams
cannot break them. `hand` is written from tests/golden/hand_vectors.py, byte by byte.
"""

import json
import os
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import hand_vectors  # noqa: E402

from converters import encoder  # noqa: E402
from converters.format import ENCODING_MINOR, ENCODING_NAMES, skeleton_dict  # noqa: E402


class _File:
    """Builds R piece by piece and records the segments."""

    def __init__(self, rng):
        self.rng = rng
        self.parts = []
        self.size = 0
        self.segments = []

    def skeleton(self, n):
        self.raw(self.rng.integers(0, 256, n, dtype=np.uint8).tobytes())

    def raw(self, data):
        self.parts.append(data)
        self.size += len(data)

    def segment(self, array, name, channels=1, dtype=None):
        data = np.ascontiguousarray(array).tobytes()
        dtype = dtype or np.asarray(array).dtype.name
        self.segments.append(encoder.Segment(self.size, len(data), dtype, channels, name))
        self.raw(data)

    def bytes(self):
        return b"".join(self.parts)


def _clustered(rng, n, density, codebook, dtype=np.float32):
    values = np.zeros(n, dtype)
    keep = rng.random(n) < density
    values[keep] = np.asarray(codebook, dtype)[rng.integers(0, len(codebook), keep.sum())]
    return values


def case_empty(rng):
    f = _File(rng)
    f.skeleton(64)
    return f, []


def case_raw(rng):
    f = _File(rng)
    f.skeleton(16)
    f.segment(rng.standard_normal(64).astype(np.float32), "dense/bias")
    f.skeleton(4)
    return f, ["RAW"]


def case_zlib(rng):
    f = _File(rng)
    f.skeleton(12)
    f.segment((np.arange(1000) // 3).astype(np.int32), "lookup/table")
    return f, ["ZLIB"]


def case_sparse_f32(rng):
    f = _File(rng)
    f.skeleton(40)
    codebook = np.linspace(-0.5, 0.5, 17)[np.arange(17) != 8]  # 16 values, no zero
    kernel = _clustered(rng, 4096, 0.10, codebook)
    kernel[1000:2600] = 0  # a long run of zeros: the gap stream needs escapes
    f.segment(kernel, "dense_1/kernel")
    f.segment(rng.standard_normal(8).astype(np.float32), "dense_1/bias")
    f.skeleton(24)
    return f, ["CLUSTERED_SPARSE", "RAW"]


def case_dense_f32(rng):
    f = _File(rng)
    f.skeleton(20)
    codebook = [-0.75, -0.25, 0.25, 0.75, 1.5, -0.0, 0.125]  # -0.0 is a value of its own
    f.segment(_clustered(rng, 600, 0.75, codebook), "conv2d/kernel")
    f.skeleton(8)
    return f, ["CLUSTERED_DENSE"]


def case_per_channel(rng):
    # BatchNorm folding: every output channel scales the shared values by its own factor,
    # 40 × 8 = 320 distinct values in all (too many for one codebook), 8 per channel.
    f = _File(rng)
    f.skeleton(32)
    shared = np.array([-1.0, -0.5, -0.25, -0.125, 0.125, 0.25, 0.5, 1.0])
    scales = rng.uniform(0.5, 2.0, (40, 1))
    dense = _clustered(rng, 40 * 64, 0.95, shared, np.float64).reshape(40, 64) * scales
    f.segment(dense.astype(np.float32), "conv_bn/kernel", channels=40)
    f.skeleton(4)
    sparse = _clustered(rng, 40 * 256, 0.2, shared, np.float64).reshape(40, 256) * scales
    f.segment(sparse.astype(np.float32), "conv_bn_2/kernel", channels=40)
    f.skeleton(4)
    return f, ["CLUSTERED_DENSE", "CLUSTERED_SPARSE"]


def case_float16(rng):
    f = _File(rng)
    f.skeleton(16)
    codebook = np.array([-1.5, -0.5, 0.5, 1.5, 3.0], np.float16)
    f.segment(_clustered(rng, 2000, 0.15, codebook, np.float16), "fc/kernel_fp16")
    nan = np.array([0x7E01], np.uint16).view(np.float16)[0]  # a NaN with a payload
    codebook = np.array([-2.0, 0.0, 1.0, nan], np.float16)
    f.segment(_clustered(rng, 512, 0.9, codebook, np.float16), "fc2/kernel_fp16")
    f.skeleton(6)
    return f, ["CLUSTERED_SPARSE", "CLUSTERED_DENSE"]


def case_background(rng):
    # Sparse layers whose pruned weights are not +0.0: tfmot writes -0.0, and BatchNorm
    # folding with a negative scale flips the sign of zero in some channels.
    f = _File(rng)
    f.skeleton(24)
    kernel = _clustered(rng, 3000, 0.1, np.linspace(-0.4, 0.4, 16) + 0.01)
    kernel[kernel == 0] = -0.0
    f.segment(kernel, "tfmot/kernel")
    f.skeleton(8)
    shared = _clustered(rng, 8 * 400, 0.12, [-1.0, -0.5, 0.5, 1.0, 2.0]).reshape(8, 400)
    scales = np.array([1.5, -0.5, 2.0, -1.0, 0.75, -2.5, 1.0, -0.25], np.float32)[:, None]
    f.segment((shared * scales).astype(np.float32), "conv_bn/kernel", channels=8)
    f.skeleton(4)
    return f, ["CLUSTERED_SPARSE", "CLUSTERED_SPARSE"]


def case_mixed(rng):
    # The inline layout: many buffers with small gaps, assorted element types.
    f = _File(rng)
    f.skeleton(28)
    f.segment(_clustered(rng, 900, 0.3, [-3, -1, 1, 2, 5], np.int8), "q/kernel_int8")
    f.skeleton(4)
    f.segment(np.zeros(0, np.float32), "empty")
    f.skeleton(4)
    f.segment(np.zeros(100, np.float32), "zeros")
    f.segment(rng.integers(0, 256, 64, dtype=np.uint8), "u8")
    f.skeleton(2)
    f.segment(rng.integers(-(2**15), 2**15, 40, dtype=np.int16), "i16")
    f.skeleton(6)
    f.segment(rng.integers(-(2**62), 2**62, 5, dtype=np.int64), "i64")
    f.segment(rng.integers(0, 4, 300, dtype=np.uint8), "opaque", dtype="bytes")
    f.skeleton(8)
    return f, None  # encodings recorded, not prescribed


def case_sparse_raw(rng):
    # v1.1: pruned but not clustered, so no codebook holds the kept values (SPARSE_RAW).
    f = _File(rng)
    f.skeleton(36)
    kernel = rng.standard_normal(3000).astype(np.float32)
    kernel[rng.random(3000) < 0.9] = 0
    kernel[500:1700] = 0  # a long run of zeros: the gap stream needs escapes
    f.segment(kernel, "dense_2/kernel")
    f.skeleton(12)
    # BatchNorm folding flipped the sign of zero in some channels: one background each.
    folded = rng.standard_normal((8, 500)).astype(np.float16)
    folded[rng.random((8, 500)) < 0.85] = 0
    folded[1::2][folded[1::2] == 0] = -0.0
    f.segment(folded, "conv_bn/kernel_fp16", channels=8)
    f.skeleton(4)
    return f, ["SPARSE_RAW", "SPARSE_RAW"]


def _flatbuffer_like(n):
    """`n` bytes as compressible as a flatbuffer head: names, small ints, zero padding."""
    words = b"serving_default_input:0\x00StatefulPartitionedCall\x00dense/MatMul\x00"
    table = np.arange(n, dtype=np.uint32) % 40
    mixed = np.frombuffer(words * (n // len(words) + 1), np.uint8)[:n] ^ (table < 3).astype(
        np.uint8
    )
    return mixed.tobytes()


def case_compact_skeleton(rng):
    # Skeleton gaps zlib shrinks by more than an entry become ZLIB `bytes` segments named
    # "(skeleton)"; a short gap stays in the skeleton (valid v1.0: version_minor 0).
    f = _File(rng)
    f.raw(_flatbuffer_like(700))
    codebook = np.linspace(-0.5, 0.5, 9)[np.arange(9) != 4]
    f.segment(_clustered(rng, 1500, 0.08, codebook), "dense/kernel")
    f.skeleton(20)  # too short to pay for an entry
    f.segment(rng.standard_normal(16).astype(np.float32), "dense/bias")
    f.raw(_flatbuffer_like(300))
    return f, ["ZLIB", "CLUSTERED_SPARSE", "RAW", "ZLIB"]


def case_compact_empty(rng):
    # Every gap compacted: the skeleton file is empty (0 bytes).
    f = _File(rng)
    f.raw(_flatbuffer_like(400))
    f.segment(_clustered(rng, 800, 0.1, [-0.25, 0.25, 0.5]), "small/kernel")
    f.raw(_flatbuffer_like(200))
    return f, ["ZLIB", "CLUSTERED_SPARSE", "ZLIB"]


def _int8_kernel(rng, channels, per_channel, density, centroids):
    # A clustered kernel quantized like TFLite's full-integer converter: per output
    # channel, scale = max |w| / 127, zero point 0 (pruned zeros stay 0). Each channel
    # holds its own few centroids, so its int8 values differ from its neighbours'.
    rows = []
    for _ in range(channels):
        own = rng.choice(centroids, 4, replace=False)
        row = _clustered(rng, per_channel, density, own, np.float64)
        peak = np.max(np.abs(row)) or 1.0
        rows.append(np.round(row * 127 / peak))
    return np.array(rows).astype(np.int8)


def case_int8(rng):
    # A full-integer int8 model (convert(int8=True)): int8 kernels with per-channel
    # codebooks, sparse (pruned) and dense, and their int32 biases.
    f = _File(rng)
    f.skeleton(40)
    centroids = np.linspace(-1.0, 1.0, 16)
    f.segment(_int8_kernel(rng, 24, 96, 0.15, centroids), "dense/kernel_int8", channels=24)
    f.segment(rng.integers(-3000, 3000, 24).astype(np.int32), "dense/bias_int32")
    f.skeleton(12)
    f.segment(_int8_kernel(rng, 10, 24, 0.9, centroids), "dense_1/kernel_int8", channels=10)
    f.segment(rng.integers(-3000, 3000, 10).astype(np.int32), "dense_1/bias_int32")
    f.skeleton(8)
    return f, None  # encodings recorded, not prescribed


def _grouped_int8_kernel(rng, channels, per_channel, density, centroids):
    # A kernel clustered to shared `centroids`, quantized per output channel as TFLite's
    # full-integer converter does (scale = max |w| / 127, zero point 0): the scale depends
    # on the channel's largest-magnitude centroid, so channels fall into a few groups
    # with identical int8 values (docs/bundle-format.md 7.8, section 11).
    weights = _clustered(rng, channels * per_channel, density, centroids, np.float64)
    weights = weights.reshape(channels, per_channel)
    peak = np.max(np.abs(weights), axis=1, keepdims=True)
    return np.round(weights * 127 / np.where(peak > 0, peak, 1)).astype(np.int8)


def case_grouped(rng):
    # v1.2: int8 kernels clustered to shared centroids, pruned and not pruned, whose
    # channels share codebooks by groups (GROUPED_SPARSE, GROUPED_DENSE); a channel
    # pruned away entirely; a float16 kernel whose channels have ±0.0 backgrounds and
    # two value sets (GROUPED_SPARSE, one background per group).
    f = _File(rng)
    f.skeleton(24)
    centroids = np.array([-0.9, -0.5, -0.31, -0.2, -0.12, -0.05, 0.04, 0.1, 0.17, 0.3, 0.45, 0.8])
    sparse = _grouped_int8_kernel(rng, 40, 150, 0.1, centroids)
    sparse[7] = 0  # an empty channel: its background only
    f.segment(sparse, "dense/kernel_int8", channels=40)
    f.segment(rng.integers(-(2**31), 2**31, 40).astype(np.int32), "dense/bias_int32")
    f.skeleton(12)
    f.segment(_grouped_int8_kernel(rng, 16, 60, 0.97, centroids), "conv/kernel_int8", channels=16)
    f.skeleton(8)
    halves = [np.float16(v) for v in (-0.5, -0.25, 0.125, 0.375)]
    rows = []
    for c in range(12):
        row = _clustered(rng, 200, 0.12, [h * (2 if c % 3 == 0 else 1) for h in halves], np.float16)
        if c % 2:
            row[row == 0] = -0.0
        rows.append(row)
    f.segment(np.array(rows), "conv_bn/kernel_fp16", channels=12)
    f.skeleton(4)
    return f, ["GROUPED_SPARSE", "RAW", "GROUPED_DENSE", "GROUPED_SPARSE"]


def case_delta(rng):
    # v1.3: the index vectors of TFLite sparse tensors (DimensionMetadata array_indices:
    # each row's sorted block columns; array_segments: the rows' start positions) →
    # DELTA, the differences coded by CLUSTERED_SPARSE / CLUSTERED_DENSE; an unsorted
    # int32 table keeps its older encoding.
    f = _File(rng)
    f.skeleton(20)
    rows = [np.flatnonzero(rng.random(120) < 0.08) for _ in range(40)]
    f.segment(np.concatenate(rows).astype(np.uint8), "ip1/kernel array_indices")
    f.skeleton(4)
    starts = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    f.segment(starts.astype(np.uint16), "ip1/kernel array_segments", dtype="int16")
    f.skeleton(6)
    f.segment(np.cumsum(rng.integers(0, 3, 300)).astype(np.int32), "counter")
    f.segment(rng.integers(-(2**31), 2**31, 64).astype(np.int32), "table")
    f.skeleton(4)
    return f, ["DELTA", "DELTA", "DELTA", "RAW"]


def case_packed(rng):
    # v1.4: one PACKED segment (7.10) whose parts are the weight buffers and the gaps
    # between them: a compressible head and middle gap → ZLIB parts, short random gaps →
    # RAW parts; a sparse clustered float32 kernel, a RAW bias, a dense clustered kernel
    # and a non-decreasing int32 counter (DELTA over CLUSTERED_DENSE), their streams with
    # compact headers (6.5); an incompressible tail stays in the skeleton.
    f = _File(rng)
    f.raw(_flatbuffer_like(600))
    codebook = np.linspace(-0.5, 0.5, 17)[np.arange(17) != 8]
    f.segment(_clustered(rng, 2000, 0.1, codebook), "dense/kernel")
    f.skeleton(6)
    f.segment(rng.standard_normal(10).astype(np.float32), "dense/bias")
    f.raw(_flatbuffer_like(160))
    f.segment(_clustered(rng, 600, 0.75, [-0.75, -0.25, 0.25, 0.75, 1.5]), "dense_1/kernel")
    f.skeleton(4)
    f.segment(np.cumsum(rng.integers(0, 3, 300)).astype(np.int32), "counter")
    f.skeleton(10)
    return f, ["ZLIB", "CLUSTERED_SPARSE", "RAW", "RAW", "ZLIB", "CLUSTERED_DENSE", "RAW", "DELTA"]


def _like_the_dictionary(rng, start, n):
    """`n` bytes of ZLIB_DICT's preset dictionary (7.11) from `start`, about one byte in 25
    changed: flatbuffer material the dictionary holds, as another model's head would."""
    data = np.frombuffer(skeleton_dict()[0][start : start + n], np.uint8).copy()
    changed = rng.random(n) < 0.04
    data[changed] = rng.integers(0, 256, int(changed.sum()), dtype=np.uint8)
    return data.tobytes()


def _repeating(rng, n, period=24):
    """`n` bytes of a random `period`-byte pattern, repeated: zlib shrinks them, the
    preset dictionary does not help."""
    return (rng.integers(0, 256, period, dtype=np.uint8).tobytes() * (n // period + 1))[:n]


def case_zdict(rng):
    # v1.5: one PACKED segment (7.10) whose head part is ZLIB_DICT (7.11): bytes like the
    # preset dictionary's flatbuffer material; a repeating middle gap that the dictionary
    # does not help stays ZLIB; a sparse clustered kernel and a RAW bias; a short random
    # tail stays in the skeleton.
    f = _File(rng)
    f.raw(_like_the_dictionary(rng, 3296, 800))
    codebook = np.linspace(-0.5, 0.5, 9)[np.arange(9) != 4]
    f.segment(_clustered(rng, 1000, 0.1, codebook), "dense/kernel")
    f.raw(_repeating(rng, 200))
    f.segment(rng.standard_normal(6).astype(np.float32), "dense/bias")
    f.skeleton(8)
    return f, ["ZLIB_DICT", "CLUSTERED_SPARSE", "ZLIB", "RAW"]


def case_zdict_segments(rng):
    # v1.5 without PACKED (written with packed=False, the manifest's `options`): the
    # compacted skeleton's gaps as segments of their own (section 13), the head ZLIB_DICT,
    # the repeating tail ZLIB; a 20-byte random gap stays in the skeleton.
    f = _File(rng)
    f.raw(_like_the_dictionary(rng, 2048, 600))
    f.segment(_clustered(rng, 800, 0.2, [-0.25, 0.125, 0.5]), "conv/kernel")
    f.skeleton(20)
    f.segment(rng.standard_normal(8).astype(np.float32), "conv/bias")
    f.raw(_repeating(rng, 300))
    return f, ["ZLIB_DICT", "CLUSTERED_SPARSE", "RAW", "ZLIB"]


def _masked_kernel(
    rng, rows, columns, dead_rows, dead_columns, density, values, fill=0.0, dtype=np.float32
):
    """A rows × columns kernel whose `dead_rows` and `dead_columns` hold only `fill` (the
    dead units of a pruned layer), the rest `density` of `values`, else `fill`."""
    kernel = np.full((rows, columns), fill, dtype)
    live = rng.random((rows, columns)) < density
    kernel[live] = rng.choice(np.asarray(values, dtype), int(live.sum()))
    kernel[dead_rows, :] = fill
    kernel[:, dead_columns] = fill
    return kernel


def case_masked(rng):
    # v1.6: one PACKED segment whose weight parts are MASKED (7.12): a float32 kernel with
    # 10 of 32 rows and 110 of 200 columns dead, sparse and clustered (MASKED over
    # CLUSTERED_SPARSE); a float16 kernel whose fill is -0.0, 2 of 10 rows and 11 of 30
    # columns dead, dense clustered (MASKED over CLUSTERED_DENSE); an unclustered float32
    # kernel with 5 of 12 rows and 70 of 100 columns dead (MASKED over SPARSE_RAW); a RAW
    # bias; a head like the flatbuffer's.
    f = _File(rng)
    f.raw(_flatbuffer_like(400))
    dead_rows = [0, 3, 7, 8, 9, 15, 20, 21, 22, 30]
    dead = rng.choice(200, 110, replace=False)
    codebook = [-0.5, -0.25, -0.125, 0.125, 0.25, 0.5]
    f.segment(_masked_kernel(rng, 32, 200, dead_rows, dead, 0.1, codebook), "ip1/kernel", 32)
    f.segment(rng.standard_normal(16).astype(np.float32), "ip1/bias")
    dead = rng.choice(30, 11, replace=False)
    half = _masked_kernel(rng, 10, 30, [2, 5], dead, 1.0, [-1, -0.5, 0.5, 1], -0.0, np.float16)
    f.segment(half, "ip2/kernel", 10)
    normal = rng.standard_normal(12 * 100).astype(np.float32)
    dead = rng.choice(100, 70, replace=False)
    f.segment(_masked_kernel(rng, 12, 100, [1, 2, 6, 9, 11], dead, 0.3, normal), "ip3/kernel", 12)
    f.skeleton(6)
    return f, ["ZLIB_DICT", "MASKED", "RAW", "MASKED", "MASKED"]


def case_masked_segments(rng):
    # v1.6 without PACKED (written with packed=False): MASKED segments of their own, with
    # the stream headers of section 6: an int8 kernel (4 of 20 rows, 7 of 36 columns dead)
    # with three values of its own per row (a codebook per kept row), and a float32 kernel whose fill is its most frequent
    # non-zero value; a kernel with no dead row or column is not masked (CLUSTERED_DENSE).
    f = _File(rng)
    f.skeleton(30)
    dead = rng.choice(36, 7, replace=False)
    int8 = _masked_kernel(rng, 20, 36, [4, 5, 10, 19], dead, 1.0, [1], 0, np.int8)
    int8 *= (rng.integers(0, 3, (20, 36)) + 5 * np.arange(20)[:, None] - 50).astype(np.int8)
    f.segment(int8, "conv/kernel", 20, "int8")
    filled = _masked_kernel(
        rng, 8, 40, [6], rng.choice(40, 9, replace=False), 0.4, [0.0, 1.0, 2.0], 0.75
    )
    f.segment(filled, "dense/kernel", 8)
    f.skeleton(12)
    f.segment(_clustered(rng, 400, 0.3, [-0.5, 0.5, 0.25]), "dense_1/kernel", 4)
    return f, ["MASKED", "MASKED", "CLUSTERED_DENSE"]


# name: (case, format version_minor whose encodings the encoder may use[, build_bundle
# options]). Seeds follow from the order, so new cases go last.
CASES = {
    "empty": (case_empty, 1),
    "raw": (case_raw, 1),
    "zlib": (case_zlib, 1),
    "sparse_f32": (case_sparse_f32, 1),
    "dense_f32": (case_dense_f32, 1),
    "per_channel": (case_per_channel, 1),
    "float16": (case_float16, 1),
    "mixed": (case_mixed, 1),
    "background": (case_background, 1),
    "sparse_raw": (case_sparse_raw, 1),
    "compact_skeleton": (case_compact_skeleton, 1),
    "compact_empty": (case_compact_empty, 1),
    "int8": (case_int8, 1),
    "grouped": (case_grouped, 2),
    "delta": (case_delta, 3),
    "packed": (case_packed, 4),
    "zdict": (case_zdict, 5),
    "zdict_segments": (case_zdict_segments, 5, {"packed": False}),
    "masked": (case_masked, 6),
    "masked_segments": (case_masked_segments, 6, {"packed": False}),
}


def encodings_up_to(minor):
    """The encoding names a writer of format version 1.`minor` may use."""
    return [
        ENCODING_NAMES[code] for code, since in sorted(ENCODING_MINOR.items()) if since <= minor
    ]


def build_all():
    """{file name: bytes} for every golden file, and the manifest."""
    files = {}
    manifest = {"zlib_version": zlib.ZLIB_VERSION, "cases": {}}
    for seed, (name, (make, minor, *options)) in enumerate(CASES.items()):
        options = options[0] if options else {}
        f, expected = make(np.random.default_rng(seed))
        restored = f.bytes()
        skeleton, side, stats = encoder.build_bundle(
            restored, f.segments, encodings=encodings_up_to(minor), **options
        )
        chosen = [s.encoding for s in stats]
        if expected is not None and chosen != expected:
            raise AssertionError(
                f"case {name}: encoder chose {chosen}, the case is meant for {expected}"
            )
        files[f"{name}.restored"] = restored
        files[f"{name}.skeleton"] = skeleton
        files[f"{name}.dcw"] = side
        manifest["cases"][name] = {
            "segments": [
                {
                    "offset": s.offset,
                    "size": s.size,
                    "dtype": s.dtype,
                    "channels": s.channels,
                    "name": s.name,
                }
                for s in f.segments
            ],
            "encodings": chosen,
            "codebooks": [s.codebooks for s in stats],
            "inner_encodings": [s.inner_encoding for s in stats],
            "version_minor": minor,
        }
        if options:
            manifest["cases"][name]["options"] = options
    files["hand.restored"] = hand_vectors.RESTORED
    files["hand.skeleton"] = hand_vectors.SKELETON
    files["hand.dcw"] = hand_vectors.SIDECAR
    manifest["hand"] = {"encodings": ["CLUSTERED_DENSE", "CLUSTERED_SPARSE"]}
    files["manifest.json"] = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    return files


def main(argv):
    check = "--check" in argv[1:]
    changed = []
    for name, data in build_all().items():
        path = os.path.join(HERE, name)
        old = open(path, "rb").read() if os.path.exists(path) else None
        if old != data:
            changed.append(name)
            if not check:
                tmp = path + ".tmp"
                with open(tmp, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
    print(("would change: " if check else "wrote: ") + (", ".join(changed) or "nothing"))
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
