"""Format version 1.4: PACKED segments (docs/bundle-format.md 7.10), compact stream
headers (6.5), varints (section 2), their malformed-input rules (section 10), the
minor-version rule (4.1) and the encoder's choice (section 13)."""

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
    expect_error,
    golden,
    pack_parts,
    parts_of,
    payload_offsets,
    payloads_of,
    rebuild,
    segments_of,
    with_entry,
    with_header,
)
from test_encoder import _inflated, bundles
from test_format import _name, spec_section, spec_table, spec_tables

from converters import decoder, encoder
from converters.encoder import Segment
from converters.format import (
    COMPACT_STREAM,
    ENTRY,
    HEADER,
    HEADER_SIZE,
    MAX_VARINT_SIZE,
    MIN_PART_SIZE,
    PACKED,
    PART,
    PART_COUNT,
    Field,
    FormatError,
    Varint,
)
from converters.stats import SKELETON_NAME

# =================================================================== varints (section 2)

COUNT = Varint("count")


@given(st.integers(0, 2**63 - 1))
def test_varint_round_trip_is_minimal(value):
    data = Varint.pack(value)
    assert len(data) == Varint.size_of(value) <= MAX_VARINT_SIZE
    assert COUNT.read(data + b"\xff", 0, len(data)) == (value, len(data))
    assert data[-1] < 0x80 and (len(data) == 1 or data[-1] != 0)


@pytest.mark.parametrize(
    "data, value",
    [
        (b"\x00", 0),
        (b"\x7f", 127),
        (b"\x80\x01", 128),
        (b"\xff\x7f", 16383),
        (b"\x80\x80\x01", 16384),
        (b"\xff" * 8 + b"\x7f", 2**63 - 1),  # the largest: 9 bytes
    ],
)
def test_varint_bytes(data, value):
    assert Varint.pack(value) == data
    assert COUNT.read(data, 0, len(data)) == (value, len(data))


@pytest.mark.parametrize(
    "data, why",
    [
        (b"\x80\x00", "not minimal"),  # 0 in two bytes
        (b"\x81\x00", "not minimal"),  # 1 in two bytes
        (b"\xff\x80\x00", "not minimal"),
        (b"\x80" * 9 + b"\x01", "at most 9"),  # 2^63: a tenth byte
        (b"\xff" * 9 + b"\x01", "at most 9"),
        (b"\x80", "runs past"),  # truncated
        (b"", "runs past"),
    ],
)
def test_varint_rejects_other_forms(data, why):
    with pytest.raises(FormatError, match=why) as info:
        COUNT.read(b"xx" + data, 2, 2 + len(data), "segment[0].part[1].indices.")
    assert info.value.field == "segment[0].part[1].indices.count"
    assert info.value.offset == 2  # the varint's first byte


def test_varint_pack_refuses_values_out_of_range():
    for value in (-1, 2**63):
        with pytest.raises(ValueError, match="varint"):
            Varint.pack(value)


# =================================================================== the spec's tables


def test_part_descriptor_and_compact_header_are_the_spec_tables():
    types = {"varint": Varint, "u8": Field}
    descriptor = spec_tables("### 7.10 PACKED")[1]
    assert [(_name(r[3]), r[2]) for r in descriptor] == [
        (f.name, "varint" if isinstance(f, Varint) else "u8") for f in PART
    ]
    assert all(isinstance(f, types[r[2]]) for f, r in zip(PART, descriptor))
    assert all(f.code == "B" for f in PART if isinstance(f, Field))
    header = spec_table("### 6.5 Compact stream header")
    assert [(_name(r[3]), r[2]) for r in header[:3]] == [(f.name, "varint") for f in COMPACT_STREAM]
    (count,) = [(_name(r[3]), r[2]) for r in spec_table("### 7.10 PACKED")[:1]]
    assert count == (PART_COUNT.name, "varint")
    assert f"`{PART_COUNT.name}` × {MIN_PART_SIZE} ≤" in spec_section("## 10. Malformed input")
    assert f"at most {MAX_VARINT_SIZE} bytes long" in spec_section("## 2. Conventions")


# =================================================================== a hand-written PACKED payload

# Spelled out byte by byte from docs/bundle-format.md 7.10 and 6.5 (not by the encoder);
# MalformedInputTest.PACKED_GOOD (Java) is the same payload.
HAND_PACKED = bytes(
    [
        0x02,  # part_count 2
        0x10, 0x01, 0x03, 0x01, 0x11,  # part 0: size 16, float32, CLUSTERED_DENSE, 1 channel, 17 B
        0x02, 0x00, 0x00, 0x01, 0x02,  # part 1: size 2, bytes, RAW, 1 channel, 2 B
        # part 0's payload (7.3, 7.5): one codebook of two float32 entries, 0.5 and -2.0
        0x01, 0x00,  # codebook_count 1
        0x02, 0x00,  # entry_count 2
        0x00, 0x00, 0x00, 0x3F,  # 0.5
        0x00, 0x00, 0x00, 0xC0,  # -2.0
        0x04, 0x06, 0x02,  # indices, compact header (6.5): count 4, nbits 6, alphabet 2
        0x21,  # lengths: symbol 0 → 1 bit (code 0), symbol 1 → 2 bits (code 10)
        0x0A,  # data: 0 | 10 | 10 | 0, LSB first → 0b00001010
        0x11, 0x22,  # part 1's payload: its bytes
    ]
)  # fmt: skip
HAND_R = bytes([7, 8, 9]) + np.array([0.5, -2, -2, 0.5], "<f4").tobytes() + b"\x11\x22\x01"


def test_hand_written_packed_payload_restores():
    restored = HAND_R
    skeleton, side, _ = encoder.build_bundle(
        restored, [Segment(3, 18, "bytes")], encodings=["RAW"], packed=False
    )
    side = with_entry(rebuild(side, [HAND_PACKED]), 0, "encoding", PACKED)
    side = with_header(side, "version_minor", 4)
    assert skeleton == bytes([7, 8, 9, 1])
    assert decoder.restore_bytes(skeleton, side) == restored
    info = decoder.inspect(side)
    assert [(s["encoding"], s["raw_bytes"], s["payload_bytes"]) for s in info["segments"]] == [
        ("CLUSTERED_DENSE", 16, 17),
        ("RAW", 2, 2),
    ]
    assert info["segments"][0]["index_bits"] == 6 and info["segments"][0]["offset"] == 3


# =================================================================== the golden file


def test_packed_golden_is_v1_4_with_one_packed_segment():
    skeleton, side, restored = golden("packed")
    assert decoder.restore_bytes(skeleton, side) == restored
    h = HEADER.unpack_from(side)
    assert (h.version_minor, h.segment_count, h.names_size) == (4, 1, 0)
    assert h.header_size == HEADER_SIZE and entry_field(side, 0, "encoding") == PACKED
    assert len(skeleton) == 10  # the incompressible tail
    info = decoder.inspect(side)
    case = MANIFEST["cases"]["packed"]
    assert [s["encoding"] for s in info["segments"]] == case["encodings"]
    assert [s["inner_encoding"] for s in info["segments"]] == case["inner_encodings"]
    assert [s["name"] for s in info["segments"]] == [
        f"segment[0].part[{k}]" for k in range(len(case["encodings"]))
    ]
    descriptors, payloads = parts_of(payloads_of(side)[0])
    assert [len(p) for p in payloads] == [s["payload_bytes"] for s in info["segments"]]
    assert sum(d["size"] for d in descriptors) == entry_field(side, 0, "size")


@pytest.mark.parametrize("name", CASES)
def test_older_goldens_keep_their_version_and_restore(name):
    skeleton, side, restored = golden(name)
    assert decoder.restore_bytes(skeleton, side) == restored
    minor = HEADER.unpack_from(side).version_minor
    assert minor <= MANIFEST["cases"][name]["version_minor"]
    assert (minor == 4) == (name == "packed")


@pytest.mark.parametrize("name", [c for c in CASES if MANIFEST["cases"][c]["version_minor"] < 4])
def test_packed_false_writes_the_older_encoders_bytes(name):
    # With PACKED allowed but packed=False, every older golden comes out as it was.
    skeleton, side, restored = golden(name)
    case = MANIFEST["cases"][name]
    new_skeleton, new_side, _ = encoder.build_bundle(
        restored, segments_of(name), encodings=encodings_of(name) + ["PACKED"], packed=False
    )
    assert new_skeleton == skeleton
    outer, inner = case["encodings"], case["inner_encodings"]
    assert _inflated(new_side, outer, inner) == _inflated(side, outer, inner)
    if "ZLIB" not in outer + inner or zlib.ZLIB_VERSION == MANIFEST["zlib_version"]:
        assert new_side == side


# =================================================================== the encoder (section 13)


@settings(max_examples=60, deadline=None)
@given(bundles())
def test_packed_round_trip_only_when_strictly_smaller(bundle):
    restored, segments = bundle
    old = encoder.build_bundle(restored, segments, packed=False, masked=False)
    skeleton, side, stats = encoder.build_bundle(restored, segments, masked=False)
    assert decoder.restore_bytes(skeleton, side) == restored
    packed = entry_field(side, 0, "encoding") == PACKED if segments or stats else False
    assert (HEADER.unpack_from(side).version_minor == 4) == packed  # section 4.1
    if not packed:
        assert (skeleton, side) == old[:2]
        return
    assert len(skeleton) + len(side) < len(old[0]) + len(old[1])
    assert HEADER.unpack_from(side).segment_count == 1
    weights = [s for s in stats if not s.is_skeleton]
    assert [(s.name, s.offset) for s in weights] == [(g.name, g.offset) for g in segments]
    info = decoder.inspect(side)["segments"]
    assert len(info) == len(stats)
    for got, want in zip(info, stats):
        assert (got["encoding"], got["offset"], got["raw_bytes"]) == (
            want.encoding,
            want.offset,
            want.raw_bytes,
        )
        assert (got["nonzeros"], got["payload_bytes"]) == (want.nonzeros, want.payload_bytes)
    for unpacked, part in zip([s for s in old[2] if not s.is_skeleton], weights):
        assert part.payload_bytes <= unpacked.payload_bytes  # compact stream headers


def _flatbuffer_like(n, seed=0):
    words = b"serving_default_input:0\x00StatefulPartitionedCall\x00"
    return (words * (n // len(words) + 1))[:n]


def _kernel(n=3000, seed=1):
    rng = np.random.default_rng(seed)
    values = np.zeros(n, np.float32)
    keep = rng.random(n) < 0.1
    values[keep] = np.linspace(-1, 1, 8, dtype=np.float32)[rng.integers(0, 8, keep.sum())]
    return values


def test_packed_covers_the_gaps_that_pay_and_leaves_the_rest():
    noise = np.random.default_rng(2).integers(0, 256, 30, np.uint8).tobytes()
    kernel, bias = _kernel(), np.arange(4, dtype=np.float32)
    restored = b"".join([_flatbuffer_like(500), kernel.tobytes(), b"\x00" * 3, bias.tobytes()])
    restored += noise  # an incompressible tail
    segments = [
        Segment(500, kernel.nbytes, "float32", 1, "k"),
        Segment(500 + kernel.nbytes + 3, bias.nbytes, "float32", 1, "b"),
    ]
    # skeleton_dict=False: the gaps' zlib of format 1.4 (ZLIB_DICT, 1.5: test_format_v15).
    skeleton, side, stats = encoder.build_bundle(restored, segments, skeleton_dict=False)
    assert skeleton == noise and decoder.restore_bytes(skeleton, side) == restored
    assert [(s.name, s.encoding) for s in stats] == [
        (SKELETON_NAME, "ZLIB"),  # the head pays as a ZLIB part
        ("k", "CLUSTERED_SPARSE"),
        (SKELETON_NAME, "RAW"),  # 3 bytes between the buffers: RAW (zlib is longer)
        ("b", "RAW"),
    ]
    assert (entry_field(side, 0, "offset"), entry_field(side, 0, "size")) == (
        0,
        len(restored) - len(noise),
    )
    assert (entry_field(side, 0, "name_size"), HEADER.unpack_from(side).names_size) == (0, 0)
    # compact_skeleton=False: the span is not widened, the head stays in the skeleton.
    skeleton, side, stats = encoder.build_bundle(
        restored, segments, compact_skeleton=False, skeleton_dict=False
    )
    assert skeleton == restored[:500] + noise and decoder.restore_bytes(skeleton, side) == restored
    assert [s.name for s in stats] == ["k", SKELETON_NAME, "b"]
    assert HEADER.unpack_from(side).version_minor == 4


def test_packed_without_segments_or_with_empty_ones():
    head = _flatbuffer_like(400)
    skeleton, side, stats = encoder.build_bundle(head, [], skeleton_dict=False)
    assert skeleton == b"" and [(s.is_skeleton, s.encoding) for s in stats] == [(True, "ZLIB")]
    assert HEADER.unpack_from(side).version_minor == 4
    assert decoder.restore_bytes(b"", side) == head
    # An empty segment is a part of its own (size 0, RAW).
    restored = head + _kernel().tobytes()
    segments = [Segment(400, 0, "int8", 1, "empty"), Segment(400, 12000, "float32", 1, "k")]
    skeleton, side, stats = encoder.build_bundle(restored, segments, skeleton_dict=False)
    assert [(s.name, s.encoding, s.raw_bytes) for s in stats][1:] == [
        ("empty", "RAW", 0),
        ("k", "CLUSTERED_SPARSE", 12000),
    ]
    assert decoder.restore_bytes(skeleton, side) == restored
    # Nothing worth packing: an incompressible file without segments stays as it is.
    noise = np.random.default_rng(3).integers(0, 256, 300, np.uint8).tobytes()
    skeleton, side, stats = encoder.build_bundle(noise, [])
    assert skeleton == noise and stats == [] and HEADER.unpack_from(side).version_minor == 0


def test_packed_option_and_encodings():
    restored = _flatbuffer_like(300) + _kernel().tobytes()
    segments = [Segment(300, 12000, "float32", 1, "k")]
    packed = encoder.build_bundle(restored, segments, skeleton_dict=False)
    assert HEADER.unpack_from(packed[1]).version_minor == 4
    for kwargs in ({"packed": False}, {"encodings": ["ZLIB", "CLUSTERED_SPARSE"]}):
        skeleton, side, _ = encoder.build_bundle(restored, segments, skeleton_dict=False, **kwargs)
        assert HEADER.unpack_from(side).version_minor == 0
        assert len(skeleton) + len(side) > len(packed[0]) + len(packed[1])
    with pytest.raises(TypeError, match="packed"):
        encoder.build_bundle(restored, segments, packed="yes")


# =================================================================== malformed input (section 10)


def _golden_parts():
    """The packed golden: skeleton, sidecar, its payload's file offset, descriptors, payloads."""
    skeleton, side, _ = golden("packed")
    descriptors, payloads = parts_of(payloads_of(side)[0])
    return skeleton, side, payload_offsets(side)[0], descriptors, payloads


def _with_payload(side, payload):
    return rebuild(side, [payload])


def _splice(payload, at, old_size, new):
    return payload[:at] + new + payload[at + old_size :]


def test_packed_entry_must_be_bytes_with_one_channel():
    skeleton, side, _ = golden("packed")
    expect_error(skeleton, with_entry(side, 0, "dtype", 3), "segment[0].dtype", HEADER_SIZE + 40)
    size = entry_field(side, 0, "size")
    assert size % 2 == 0
    expect_error(
        skeleton, with_entry(side, 0, "channels", 2), "segment[0].channels", HEADER_SIZE + 28
    )


def test_part_count_rules():
    skeleton, side, at, descriptors, payloads = _golden_parts()
    payload = payloads_of(side)[0]
    for bad in (b"\x00", b"\x80\x08", b"\x88\x00", bytes([0x80] * 9 + [1])):
        expect_error(
            skeleton, _with_payload(side, _splice(payload, 0, 1, bad)), "segment[0].part_count", at
        )
    # More parts than 5-byte descriptors fit: rejected before anything is read for them.
    too_many = PART_COUNT.pack(len(payload))
    expect_error(
        skeleton,
        _with_payload(side, _splice(payload, 0, 1, too_many)),
        "segment[0].part_count",
        at,
    )
    expect_error(skeleton, _with_payload(side, b""), "segment[0].part_count", at)
    expect_error(skeleton, _with_payload(side, b"\x80"), "segment[0].part_count", at)


def _descriptor_error(field, k, value_bytes, expected_field=None):
    """Replace field `field` of part `k`'s descriptor with `value_bytes`; the error names
    `expected_field` (default: that field) at the field's offset."""
    skeleton, side, at, descriptors, payloads = _golden_parts()
    payload = payloads_of(side)[0]
    d = descriptors[k]
    old = Varint.size_of(d[field]) if field in ("size", "channels", "payload_size") else 1
    bad = _splice(payload, d["at"][field], old, value_bytes)
    name = expected_field or field
    expect_error(
        skeleton, _with_payload(side, bad), f"segment[0].part[{k}].{name}", at + d["at"][field]
    )


def test_part_descriptor_rules():
    _, side, _, descriptors, _ = _golden_parts()
    size = entry_field(side, 0, "size")
    assert [d["dtype"] for d in descriptors][:3] == [0, 1, 0]
    # size: more than the segment has left; not minimal; 10 bytes long.
    _descriptor_error("size", 1, Varint.pack(size))
    _descriptor_error("size", 0, b"\xd8\x84\x00")  # 600 in three bytes
    _descriptor_error("size", 0, b"\x80" * 9 + b"\x01")
    # dtype: unknown code.
    _descriptor_error("dtype", 1, b"\x09")
    # encoding: PACKED (no PACKED inside PACKED) and an unknown code.
    _descriptor_error("encoding", 1, b"\x08")
    _descriptor_error("encoding", 1, b"\xff")
    # channels: 0, 2^32, not minimal.
    _descriptor_error("channels", 1, b"\x00")
    _descriptor_error("channels", 1, Varint.pack(2**32))
    _descriptor_error("channels", 1, b"\x81\x00")
    # size a multiple of channels × esize: the float32 kernel of 8000 bytes in 3 channels.
    skeleton, side, at, descriptors, payloads = _golden_parts()
    payload = payloads_of(side)[0]
    bad = _splice(payload, descriptors[1]["at"]["channels"], 1, b"\x03")
    expect_error(
        skeleton,
        _with_payload(side, bad),
        "segment[0].part[1].size",
        at + descriptors[1]["at"]["size"],
    )
    # payload_size: more than the payload has left.
    _descriptor_error("payload_size", 7, Varint.pack(len(payload)))


def test_parts_must_fill_the_segment_exactly():
    skeleton, side, at, descriptors, payloads = _golden_parts()
    # A part fewer: the parts cover less than the entry's size.
    fewer = pack_parts(descriptors[:-1], payloads[:-1])
    expect_error(skeleton, _with_payload(side, fewer), "segment[0].size", HEADER_SIZE + 8)
    # A byte after the last part's payload.
    payload = payloads_of(side)[0]
    expect_error(
        skeleton,
        _with_payload(side, payload + b"\x00"),
        "segment[0].payload_size",
        at + len(payload),
    )


def test_part_payloads_follow_their_encodings_rules():
    skeleton, side, at, descriptors, payloads = _golden_parts()

    def with_part(k, part_payload, descriptor=None):
        ds = list(descriptors)
        ds[k] = descriptor or ds[k]
        ps = list(payloads)
        ps[k] = part_payload
        return _with_payload(side, pack_parts(ds, ps))

    # RAW (part 2, 6 bytes): payload_size must be size.
    bad = with_part(2, payloads[2][:5])
    d = parts_of(payloads_of(bad)[0])[0][2]
    expect_error(skeleton, bad, "segment[0].part[2].payload_size", at + d["at"]["payload_size"])
    # ZLIB (part 0): a corrupt Adler-32.
    zlib_part = bytearray(payloads[0])
    zlib_part[-1] ^= 1
    bad = with_part(0, bytes(zlib_part))
    expect_error(skeleton, bad, "segment[0].part[0].payload")
    # DELTA (part 7): inner_encoding PACKED is not an inner code.
    bad = with_part(7, bytes([PACKED]) + payloads[7][1:])
    d = parts_of(payloads_of(bad)[0])[0][7]
    expect_error(skeleton, bad, "segment[0].part[7].inner_encoding", at + d["at"]["payload"])


def _index_stream(part_payload, esize=4):
    """Offset of the index stream of a CLUSTERED_DENSE payload with one codebook."""
    entries = int.from_bytes(part_payload[2:4], "little")
    return 2 + 2 + esize * entries


def test_compact_stream_rules():
    skeleton, side, at, descriptors, payloads = _golden_parts()
    dense = payloads[5]  # CLUSTERED_DENSE, one codebook
    s = _index_stream(dense)
    count, p = COMPACT_STREAM[0].read(dense, s, len(dense))
    nbits, q = COMPACT_STREAM[1].read(dense, p, len(dense))
    alphabet, r = COMPACT_STREAM[2].read(dense, q, len(dense))
    assert count == 600 and alphabet <= 256

    def rejects(part_payload, field, offset_in_part):
        ps = list(payloads)
        ps[5] = part_payload
        bad = _with_payload(side, pack_parts(descriptors, ps))
        base = at + parts_of(payloads_of(bad)[0])[0][5]["at"]["payload"]
        expect_error(skeleton, bad, f"segment[0].part[5].indices.{field}", base + offset_in_part)

    # count: not minimal (two extra bytes), and one too many for the elements.
    rejects(_splice(dense, s, p - s, Varint.pack(count)[:1] + b"\x84\x80\x00"), "count", s)
    rejects(_splice(dense, s, p - s, Varint.pack(count + 1)), "count", s)
    # nbits: beyond 15 bits a symbol; runs past the payload.
    rejects(_splice(dense, p, q - p, Varint.pack(15 * count + 1)), "nbits", p)
    rejects(_splice(dense, p, q - p, Varint.pack(8 * len(dense))), "data", r + (alphabet + 1) // 2)
    # alphabet: above 256.
    rejects(_splice(dense, q, r - q, Varint.pack(257)), "alphabet", q)
    # The plain 18-byte header is not read inside a part.
    plain = count.to_bytes(8, "little") + nbits.to_bytes(8, "little")
    plain += alphabet.to_bytes(2, "little")
    with pytest.raises(FormatError, match="segment\\[0\\].part\\[5\\]"):
        ps = list(payloads)
        ps[5] = _splice(dense, s, r - s, plain)
        decoder.restore_bytes(skeleton, _with_payload(side, pack_parts(descriptors, ps)))


def test_plain_stream_headers_stay_outside_parts():
    # A segment of its own keeps the 18-byte header of section 6 in a 1.4 file too.
    restored = _kernel().tobytes()
    skeleton, side, stats = encoder.build_bundle(
        restored, [Segment(0, len(restored), "float32")], packed=False
    )
    assert stats[0].encoding == "CLUSTERED_SPARSE"
    packed = encoder.build_bundle(restored, [Segment(0, len(restored), "float32")])
    assert HEADER.unpack_from(packed[1]).version_minor == 4
    # Same streams, compact headers: 2 × (18 − header) bytes smaller, less the part table.
    (part,) = parts_of(payloads_of(packed[1])[0])[1]
    assert len(part) < len(payloads_of(side)[0]) - 2 * (18 - 9)
    assert ENTRY.size == 48


def test_unknown_encoding_is_rejected_by_its_code():
    skeleton, side, _ = golden("packed")
    # 9 is ZLIB_DICT since 1.5 (its golden: test_format_v15), 10 MASKED since 1.6; 11 is unknown.
    expect_error(skeleton, with_entry(side, 0, "encoding", 11), "segment[0].encoding")
