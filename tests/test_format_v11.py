"""Format version 1.1: SPARSE_RAW (docs/bundle-format.md 7.6), the minor-version rule
(4.1) and the compacted skeleton (sections 11, 13), in the encoder and the decoder."""

import numpy as np
import pytest
from sidecar_testing import expect_error, golden, payloads_of, rebuild

from converters import decoder, encoder
from converters.encoder import Segment
from converters.format import (
    ENTRY_SIZE,
    ESCAPE_RUN,
    HEADER,
    HEADER_SIZE,
    SLICE_COUNT,
    STREAM,
    lengths_size,
)
from converters.stats import SKELETON_NAME

HEAD = b"\x07\x08\x09"


def _pruned(n=2000, density=0.1, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(n).astype(np.float32)  # no codebook holds them
    values[rng.random(n) >= density] = 0
    return values


def _one(values, **kwargs):
    restored = HEAD + values.tobytes() + b"\x01"
    segment = Segment(len(HEAD), values.nbytes, values.dtype.name, kwargs.pop("channels", 1))
    kwargs.setdefault("packed", False)  # the 1.1 layout (format 1.4 packs: test_format_v14)
    return (restored, *encoder.build_bundle(restored, [segment], **kwargs))


def _payload_start(side):
    h = HEADER.unpack_from(side)
    return h.header_size + h.segment_count * h.entry_size + h.names_size


# ----------------------------------------------------------------------- SPARSE_RAW (7.6)


def test_sparse_raw_layout_is_the_spec():
    values = _pruned()
    restored, skeleton, side, stats = _one(values)
    assert stats[0].encoding == "SPARSE_RAW" and decoder.restore_bytes(skeleton, side) == restored
    (payload,) = payloads_of(side)
    kept = values[values != 0]
    # slice_count 1, background +0.0, escape_run, gaps, then the kept values as they are.
    assert SLICE_COUNT.unpack_from(payload) == 1 and payload[2:6] == bytes(4)
    assert ESCAPE_RUN.unpack_from(payload, 6) == stats[0].escape_run
    gaps = STREAM.unpack_from(payload, 7)
    gaps_end = 7 + STREAM.size + lengths_size(gaps.alphabet) + (gaps.nbits + 7) // 8
    assert payload[gaps_end:] == kept.tobytes()
    assert gaps.count == stats[0].gap_count and HEADER.unpack_from(side).version_minor == 1


def test_sparse_raw_keeps_one_background_per_channel():
    # BatchNorm folding flipped the sign of zero in every other channel.
    values = _pruned(8 * 400).reshape(8, 400)
    values[1::2][values[1::2] == 0] = -0.0
    restored, skeleton, side, stats = _one(values, channels=8)
    assert stats[0].encoding == "SPARSE_RAW"
    assert SLICE_COUNT.unpack_from(payloads_of(side)[0]) == 8
    assert decoder.restore_bytes(skeleton, side) == restored
    info = decoder.inspect(side)["segments"][0]
    assert info["nonzeros"] == stats[0].nonzeros == np.count_nonzero(values)


def test_sparse_raw_is_tried_only_when_it_can_win():
    dense = np.random.default_rng(1).standard_normal(500).astype(np.float32)
    only = ["RAW", "SPARSE_RAW"]
    assert _one(dense, encodings=only)[3][0].encoding == "RAW"  # no background to leave out
    clustered = np.where(_pruned() != 0, np.float32(0.5), np.float32(0))
    assert _one(clustered)[3][0].encoding == "CLUSTERED_SPARSE"
    _, _, side, _ = _one(clustered)
    assert HEADER.unpack_from(side).version_minor == 0  # no v1.1 code: a v1.0 file


def _sparse_raw_side():
    values = np.zeros(10, np.float32)
    values[[2, 9]] = [0.5, -2.0]
    restored, skeleton, side, stats = _one(values, encodings=["SPARSE_RAW"])
    assert stats[0].encoding == "SPARSE_RAW"
    return skeleton, side, payloads_of(side)[0], _payload_start(side)


def test_sparse_raw_values_must_be_exactly_present():
    skeleton, side, payload, start = _sparse_raw_side()
    values_at = start + len(payload) - 8
    for bad in (payload[:-1], payload[:-4], payload + bytes(4), payload + bytes(4 * 9)):
        expect_error(skeleton, rebuild(side, [bad]), "segment[0].values", values_at)


def test_sparse_raw_field_rules():
    skeleton, side, payload, start = _sparse_raw_side()
    bad = SLICE_COUNT.pack(2) + payload[2:]
    expect_error(skeleton, rebuild(side, [bad]), "segment[0].slice_count", start)
    bad = payload[:6] + ESCAPE_RUN.pack(0) + payload[7:]
    expect_error(skeleton, rebuild(side, [bad]), "segment[0].escape_run", start + 6)
    expect_error(skeleton, rebuild(side, [payload[:5]]), "segment[0].background", start + 2)
    # No gap symbols but values: an empty gap stream followed by the two values.
    bad = payload[:7] + STREAM.pack(count=0, nbits=0, alphabet=0) + payload[-8:]
    expect_error(skeleton, rebuild(side, [bad]), "segment[0].values")


def test_sparse_raw_golden_is_v1_1_and_the_others_v1_0():
    for name in ("sparse_raw", "sparse_f32", "compact_skeleton", "compact_empty", "mixed"):
        _, side, _ = golden(name)
        assert HEADER.unpack_from(side).version_minor == (name == "sparse_raw"), name
    # A reader accepts minor 0 and 1 (and any other, section 4.1).
    skeleton, side, restored = golden("sparse_raw")
    assert decoder.restore_bytes(skeleton, side) == restored
    assert decoder.inspect(side)["version"] == "1.1"


# ------------------------------------------------------------------ compacted skeleton


def _flatbuffer_like(n):
    return (b"serving_default_input:0\x00dense/MatMul\x00" * n)[:n]


def test_compact_skeleton_moves_compressible_gaps_into_zlib_segments():
    kernel = _pruned(1000)
    gap = np.random.default_rng(2).integers(0, 256, 40, np.uint8).tobytes()  # too short
    bias = np.arange(16, dtype=np.float32)
    restored = b"".join(
        [_flatbuffer_like(900), kernel.tobytes(), gap, bias.tobytes(), _flatbuffer_like(500)]
    )
    segments = [
        Segment(900, kernel.nbytes, "float32", 1, "k"),
        Segment(900 + kernel.nbytes + len(gap), bias.nbytes, "float32", 1, "b"),
    ]
    # packed=False: compact_skeleton is the 1.0–1.3 way (format 1.4 packs: test_format_v14);
    # skeleton_dict=False: no ZLIB_DICT gaps (format 1.5: test_format_v15).
    skeleton, side, stats = encoder.build_bundle(
        restored, segments, packed=False, skeleton_dict=False
    )
    assert skeleton == gap and decoder.restore_bytes(skeleton, side) == restored
    assert [(s.name, s.encoding, s.is_skeleton) for s in stats] == [
        (SKELETON_NAME, "ZLIB", True),
        ("k", "SPARSE_RAW", False),
        ("b", stats[2].encoding, False),
        (SKELETON_NAME, "ZLIB", True),
    ]
    h = HEADER.unpack_from(side)
    assert h.names_size == len(SKELETON_NAME) + 2  # the skeleton segments share one name
    assert h.skeleton_size == len(gap) and h.version_minor == 1
    plain, plain_side, plain_stats = encoder.build_bundle(
        restored, segments, compact_skeleton=False, packed=False
    )
    assert len(plain) == len(restored) - kernel.nbytes - bias.nbytes and len(plain_stats) == 2
    assert len(skeleton) + len(side) < len(plain) + len(plain_side)
    info = decoder.inspect(side)["segments"]
    assert [s["name"] for s in info] == [s.name for s in stats]


def test_compact_skeleton_only_where_it_pays_and_may_leave_nothing():
    # Incompressible gaps, and gaps no longer than an entry, stay in the skeleton.
    noise = np.random.default_rng(3).integers(0, 256, 500, np.uint8).tobytes()
    restored = noise + _flatbuffer_like(ENTRY_SIZE)
    skeleton, side, stats = encoder.build_bundle(restored, [Segment(500, 0, "bytes")], packed=False)
    assert skeleton == restored and len(stats) == 1
    # Every gap compacted: an empty skeleton restores.
    restored = _flatbuffer_like(400)
    skeleton, side, stats = encoder.build_bundle(restored, [], packed=False)
    assert skeleton == b"" and [s.is_skeleton for s in stats] == [True]
    assert decoder.restore_bytes(b"", side) == restored
    expect_error(b"\x00", side, "skeleton_size")
    # Without ZLIB among the encodings there is nothing to compact with.
    skeleton, _, _ = encoder.build_bundle(restored, [], encodings=["RAW"])
    assert skeleton == restored
    with pytest.raises(TypeError, match="compact_skeleton"):
        encoder.build_bundle(restored, [], compact_skeleton="yes")


def test_compact_skeleton_segments_are_valid_v1_0_entries():
    # Sorted, non-overlapping, dtype bytes, channels 1: the header sizes add up (section 5).
    skeleton, side, restored = golden("compact_skeleton")
    h = HEADER.unpack_from(side)
    assert h.version_minor == 0 and h.header_size == HEADER_SIZE
    info = decoder.inspect(side)
    ends = [(s["offset"], s["offset"] + s["raw_bytes"]) for s in info["segments"]]
    assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:]))
    assert h.skeleton_size == h.restored_size - sum(s["raw_bytes"] for s in info["segments"])
    assert decoder.restore_bytes(skeleton, side) == restored
