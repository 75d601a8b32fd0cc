"""Tests of converters.encoder: the golden bundles rebuilt byte for byte, round trips,
and the encoder's choices (docs/bundle-format.md section 13)."""

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sidecar_testing import (
    CASES,
    MANIFEST,
    encodings_of,
    entry_field,
    golden,
    options_of,
    pack_parts,
    parts_of,
    payloads_of,
    rebuild,
    segments_of,
)

from converters import decoder, encoder
from converters.encoder import Segment
from converters.format import ENTRY_SIZE, HEADER, HEADER_SIZE, PACKED, skeleton_dict


@pytest.mark.parametrize("name", CASES)
def test_golden_rebuilt_byte_for_byte(name):
    skeleton, side, restored = golden(name)
    case = MANIFEST["cases"][name]
    new_skeleton, new_side, stats = encoder.build_bundle(
        restored, segments_of(name), encodings=encodings_of(name), **options_of(name)
    )
    assert HEADER.unpack_from(side).version_minor <= case["version_minor"]
    assert [s.encoding for s in stats] == case["encodings"]
    assert [s.codebooks for s in stats] == case["codebooks"]
    assert [s.inner_encoding for s in stats] == case["inner_encodings"]
    assert new_skeleton == skeleton
    # DEFLATE output depends on the zlib build: ZLIB payloads (also inside DELTA) are
    # compared inflated (with their sizes and CRCs recomputed), every other byte as it
    # is, whatever the zlib.
    outer, inner = case["encodings"], case["inner_encodings"]
    assert _inflated(new_side, outer, inner) == _inflated(side, outer, inner)
    if (
        not {"ZLIB", "ZLIB_DICT"} & {*outer, *inner}
        or zlib.ZLIB_VERSION == MANIFEST["zlib_version"]
    ):
        assert new_side == side


def _inflated(side, encodings, inner_encodings):
    """`side` with each ZLIB and ZLIB_DICT payload inflated (a DELTA payload's after its
    inner_encoding byte, docs/bundle-format.md 7.9; a PACKED segment's parts, 7.10),
    checksums recomputed. `encodings`: of each segment, or of each part of a PACKED file."""
    payloads = [bytes(p) for p in payloads_of(side)]
    packed = len(payloads) == 1 and entry_field(side, 0, "encoding") == PACKED
    descriptors, parts = parts_of(payloads[0]) if packed else (None, payloads)
    assert len(parts) == len(encodings) == len(inner_encodings)
    for i, (outer, inner) in enumerate(zip(encodings, inner_encodings)):
        if outer == "ZLIB":
            parts[i] = zlib.decompress(parts[i])
        elif outer == "ZLIB_DICT":
            inflater = zlib.decompressobj(zdict=skeleton_dict()[0])
            parts[i] = inflater.decompress(parts[i]) + inflater.flush()
        elif outer == "DELTA" and inner == "ZLIB":
            parts[i] = parts[i][:1] + zlib.decompress(parts[i][1:])
    return rebuild(side, [pack_parts(descriptors, parts)] if packed else parts)


@pytest.mark.parametrize("name", CASES)
def test_golden_inspect_matches_build_stats(name):
    _, side, restored = golden(name)
    _, _, stats = encoder.build_bundle(
        restored, segments_of(name), encodings=encodings_of(name), **options_of(name)
    )
    info = decoder.inspect(side)
    assert len(info["segments"]) == len(stats)
    assert info["sidecar_size"] == len(side)
    packed = entry_field(side, 0, "encoding") == PACKED if stats else False  # 7.10
    assert info["segment_count"] == (1 if packed else len(stats))
    for k, (got, want) in enumerate(zip(info["segments"], stats)):
        want = want.to_dict()
        if packed:  # parts have no names in the file
            want["name"] = f"segment[0].part[{k}]"
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key]), key


# =================================================================== encoder


def _clustered(rng, n, density, k, dtype=np.float32):
    codebook = (rng.standard_normal(k) * 0.1).astype(dtype)
    codebook[codebook == 0] = 1
    values = np.zeros(n, dtype)
    keep = rng.random(n) < density
    values[keep] = codebook[rng.integers(0, k, keep.sum())]
    return values


@st.composite
def bundles(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    parts, segments, offset = [], [], 0
    for i in range(draw(st.integers(0, 4))):
        gap = rng.integers(0, 256, draw(st.integers(0, 12)), dtype=np.uint8).tobytes()
        parts.append(gap)
        offset += len(gap)
        dtype = draw(st.sampled_from(["float32", "float16", "int8", "int32", "bytes", "int64"]))
        np_dtype = np.uint8 if dtype == "bytes" else np.dtype(dtype)
        channels = draw(st.sampled_from([1, 1, 2, 3]))
        n = channels * draw(st.integers(0, 120))
        kind = draw(st.sampled_from(["sparse", "dense", "random", "zeros", "constant"]))
        if kind == "sparse":
            values = _clustered(rng, n, 0.1, 8, np_dtype)
        elif kind == "dense":
            values = _clustered(rng, n, 0.8, 5, np_dtype)
        elif kind == "random":
            values = np.frombuffer(rng.bytes(n * np.dtype(np_dtype).itemsize), np_dtype)
        elif kind == "zeros":
            values = np.zeros(n, np_dtype)
        else:
            values = np.full(n, 3, np_dtype)
        data = values.tobytes()
        segments.append(Segment(offset, len(data), dtype, channels, f"t{i}/é"))
        parts.append(data)
        offset += len(data)
    parts.append(rng.integers(0, 256, draw(st.integers(0, 12)), dtype=np.uint8).tobytes())
    return b"".join(parts), segments


@settings(max_examples=60, deadline=None)
@given(bundles())
def test_bundle_round_trip(bundle):
    restored, segments = bundle
    # One entry per segment (format 1.4's PACKED round trip: test_format_v14).
    skeleton, side, stats = encoder.build_bundle(restored, segments, packed=False)
    assert decoder.restore_bytes(skeleton, side) == restored
    assert len(skeleton) == len(restored) - sum(s.size for s in segments)
    assert len(stats) == len(segments)
    info = decoder.inspect(side)
    for got, want, seg in zip(info["segments"], stats, segments):
        assert got["encoding"] == want.encoding and got["name"] == seg.name
        assert got["nonzeros"] == want.nonzeros
        assert want.payload_bytes <= seg.size  # never worse than RAW


def test_round_trip_keeps_bit_patterns():
    # -0.0 and NaN payloads are values of their own; +0.0 is the implicit zero.
    nan = np.array([0x7FC00123], np.uint32).view(np.float32)[0]
    palette = np.array([0.0, -0.0, 1.0, nan, 0.0, 0.0, -0.0, 0.0], np.float32)
    values = palette[np.random.default_rng(9).integers(0, 8, 4000)]
    restored = b"head" + values.tobytes()
    skeleton, side, stats = encoder.build_bundle(restored, [Segment(4, values.nbytes, "float32")])
    assert decoder.restore_bytes(skeleton, side) == restored
    assert stats[0].encoding.startswith("CLUSTERED")
    assert stats[0].nonzeros == np.count_nonzero(values != 0)  # ±0.0 are zeros, NaN is not


def test_negative_zero_background():
    # tfmot writes pruned weights as -0.0: the sparse encoding still applies.
    rng = np.random.default_rng(10)
    values = _clustered(rng, 20_000, 0.1, 16)
    values[values == 0] = -0.0
    restored = values.tobytes()
    skeleton, side, stats = encoder.build_bundle(restored, [Segment(0, len(restored), "float32")])
    s = stats[0]
    assert s.encoding == "CLUSTERED_SPARSE" and s.codebook_entries == 16
    assert s.nonzeros == s.index_count == np.count_nonzero(values)
    assert s.payload_bytes < 0.05 * s.raw_bytes
    assert decoder.restore_bytes(skeleton, side) == restored
    assert decoder.inspect(side)["segments"][0]["nonzeros"] == s.nonzeros


def test_per_channel_backgrounds_with_sign_flipped_zeros():
    # BatchNorm folding with negative scales turns +0.0 into -0.0 in some channels.
    rng = np.random.default_rng(11)
    shared = _clustered(rng, 8 * 512, 0.1, 16).reshape(8, 512)
    scales = np.array([1.5, -0.5, 2.0, -1.0, 0.75, -2.5, 1.0, -0.25], np.float32)[:, None]
    kernel = (shared * scales).astype(np.float32)
    assert (
        np.signbit(kernel[1][kernel[1] == 0]).all()
        and not np.signbit(kernel[0][kernel[0] == 0]).any()
    )
    restored = kernel.tobytes()
    skeleton, side, stats = encoder.build_bundle(
        restored, [Segment(0, len(restored), "float32", channels=8)]
    )
    assert stats[0].encoding == "CLUSTERED_SPARSE" and stats[0].codebooks == 8
    assert stats[0].index_count == np.count_nonzero(kernel)
    assert decoder.restore_bytes(skeleton, side) == restored
    info = decoder.inspect(side)["segments"][0]
    assert info["nonzeros"] == stats[0].nonzeros == np.count_nonzero(kernel)


def test_nonzero_background_fills_unemitted_elements():
    # A layer dominated by one non-zero value, with an all-background channel.
    values = np.full((4, 300), 0.5, np.float32)
    values[0, ::7] = -1.0
    values[2, 5] = 0.0
    restored = b"xy" + values.tobytes()
    segment = Segment(2, values.nbytes, "float32", channels=4)
    skeleton, side, stats = encoder.build_bundle(
        restored, [segment], encodings=["CLUSTERED_SPARSE"]
    )
    assert stats[0].encoding == "CLUSTERED_SPARSE" and stats[0].index_count == 44
    assert decoder.restore_bytes(skeleton, side) == restored
    assert decoder.inspect(side)["segments"][0]["nonzeros"] == 1199


def test_sparse_round_trip_with_long_zero_runs():
    values = np.zeros(100_000, np.float32)
    values[[0, 5, 70_000, 99_999]] = [1, 2, 3, 1]
    restored = values.tobytes()
    skeleton, side, stats = encoder.build_bundle(
        restored,
        [Segment(0, len(restored), "float32")],
        encodings=["CLUSTERED_SPARSE"],
    )
    assert stats[0].encoding == "CLUSTERED_SPARSE"
    assert stats[0].gap_count > 4  # escapes
    assert decoder.restore_bytes(skeleton, side) == restored


def test_per_channel_codebooks_when_one_is_too_large():
    rng = np.random.default_rng(5)
    shared = np.array([-1, -0.5, 0.5, 1, 2, -2], np.float64)
    kernel = (shared[rng.integers(0, 6, (64, 100))] * rng.uniform(0.5, 2, (64, 1))).astype(
        np.float32
    )
    restored = kernel.tobytes()
    segment = Segment(0, len(restored), "float32", channels=64, name="bn_folded")
    skeleton, side, stats = encoder.build_bundle(restored, [segment])
    assert stats[0].encoding == "CLUSTERED_DENSE" and stats[0].codebooks == 64
    assert stats[0].codebook_entries == 64 * 6
    assert decoder.restore_bytes(skeleton, side) == restored
    _, side_single, stats_single = encoder.build_bundle(restored, [segment], per_channel=False)
    assert stats_single[0].codebooks == 0  # 384 distinct values: not clustered at all
    assert len(side) < len(side_single)


def test_dense_mode_for_nearly_dense_layers():
    rng = np.random.default_rng(6)
    restored = _clustered(rng, 5000, 0.66, 64).tobytes()
    _, _, stats = encoder.build_bundle(restored, [Segment(0, len(restored), "float32")])
    assert stats[0].encoding == "CLUSTERED_DENSE"


def test_sparse_mode_for_sparse_layers_and_stats():
    rng = np.random.default_rng(7)
    values = _clustered(rng, 50_000, 0.08, 32)
    restored = values.tobytes()
    _, side, stats = encoder.build_bundle(
        restored, [Segment(0, len(restored), "float32", name="ip1")], packed=False
    )
    s = stats[0]
    assert s.encoding == "CLUSTERED_SPARSE" and s.name == "ip1"
    assert s.elements == 50_000 and s.nonzeros == np.count_nonzero(values)
    assert s.index_count == s.nonzeros and s.codebook_entries == 32
    assert s.index_entropy_bits_total <= s.index_bits <= 1.02 * s.index_entropy_bits_total + 8
    assert s.gap_entropy_bits_total <= s.gap_bits <= 1.03 * s.gap_entropy_bits_total + 8
    assert s.payload_bytes < 0.1 * s.raw_bytes
    assert len(side) == HEADER_SIZE + ENTRY_SIZE + len("ip1") + s.payload_bytes


def test_encodings_option_restricts_choice():
    rng = np.random.default_rng(8)
    restored = _clustered(rng, 2000, 0.1, 8).tobytes()
    segment = [Segment(0, len(restored), "float32")]
    for only in ("RAW", "ZLIB", "CLUSTERED_DENSE", "CLUSTERED_SPARSE"):
        skeleton, side, stats = encoder.build_bundle(restored, segment, encodings=[only])
        assert stats[0].encoding == only
        assert decoder.restore_bytes(skeleton, side) == restored
    with pytest.raises(ValueError, match="unknown encodings"):
        encoder.build_bundle(restored, segment, encodings=["HUFFMAN"])


def test_build_is_deterministic():
    _, _, restored = golden("mixed")
    first = encoder.build_bundle(restored, segments_of("mixed"))
    second = encoder.build_bundle(bytearray(restored), list(segments_of("mixed")))
    assert first[:2] == second[:2]


def test_empty_segment_list():
    skeleton, side, stats = encoder.build_bundle(b"abc", [])
    assert skeleton == b"abc" and stats == [] and len(side) == HEADER_SIZE
    assert decoder.restore_bytes(skeleton, side) == b"abc"
    skeleton, side, _ = encoder.build_bundle(b"", [])
    assert decoder.restore_bytes(skeleton, side) == b""


@pytest.mark.parametrize(
    "segments, message",
    [
        ([Segment(8, 4, "float32"), Segment(0, 4, "float32")], "sorted"),
        ([Segment(0, 8, "float32"), Segment(4, 4, "float32")], "overlaps"),
        ([Segment(12, 8, "float32")], "exceeds"),
        ([Segment(0, 6, "float32")], "multiple"),
        ([Segment(0, 8, "float32", channels=3)], "multiple"),
        ([Segment(0, 8, "float64")], "dtype"),
        ([Segment(0, 8, "float32", channels=0)], "channels"),
        ([Segment(-4, 8, "float32")], "non-negative"),
    ],
)
def test_build_bundle_rejects_bad_segments(segments, message):
    with pytest.raises(ValueError, match=message):
        encoder.build_bundle(bytes(16), segments)


def test_build_bundle_rejects_bad_arguments():
    with pytest.raises(TypeError):
        encoder.build_bundle(bytes(8), [(0, 4, "float32")])
    with pytest.raises(ValueError, match="zlib_level"):
        encoder.build_bundle(bytes(8), [], zlib_level=10)
