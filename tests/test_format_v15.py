"""Format version 1.5: ZLIB_DICT segments and parts (docs/bundle-format.md 7.11), the
preset dictionary (its bytes in both implementations), the malformed-input rules
(section 10), the minor-version rule (4.1) and the encoder's choice (section 13)."""

import hashlib
import pathlib
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
    options_of,
    pack_parts,
    parts_of,
    payload_offsets,
    payloads_of,
    rebuild,
    segments_of,
    with_entry,
)
from test_encoder import bundles
from test_format import spec_section, spec_table

from converters import decoder, encoder, format
from converters.encoder import Segment
from converters.format import (
    DELTA,
    ENCODINGS,
    HEADER,
    PACKED,
    SKELETON_DICT_SHA256,
    SKELETON_DICT_SIZE,
    ZLIB,
    ZLIB_DICT,
    ZLIB_DICTID,
    ZLIB_FDICT,
    ZLIB_FLG,
    FormatError,
    skeleton_dict,
)
from converters.stats import SKELETON_NAME

ROOT = pathlib.Path(__file__).parents[1]
JAVA_DICT = ROOT / "android/core/src/main/resources/dev/kerasdc/bundle/skeleton.zdict"
DICT, ADLER = skeleton_dict()
ALL_BUT_ZLIB_DICT = [name for name, code in ENCODINGS.items() if code != ZLIB_DICT]


def _zdict_stream(data, level=9):
    """`data` as a ZLIB_DICT payload (7.11), written here without the encoder."""
    compressor = zlib.compressobj(level, zdict=DICT)
    return compressor.compress(data) + compressor.flush()


def _head(n=700, start=3000, seed=0):
    """`n` bytes like the dictionary's flatbuffer material (a few bytes changed)."""
    data = np.frombuffer(DICT[start : start + n], np.uint8).copy()
    rng = np.random.default_rng(seed)
    changed = rng.random(data.size) < 0.04
    data[changed] = rng.integers(0, 256, int(changed.sum()), dtype=np.uint8)
    return data.tobytes()


def _kernel(n=2000, seed=1):
    rng = np.random.default_rng(seed)
    values = np.zeros(n, np.float32)
    keep = rng.random(n) < 0.1
    values[keep] = np.linspace(-1, 1, 8, dtype=np.float32)[rng.integers(0, 8, keep.sum())]
    return values.tobytes()


# =================================================================== the dictionary


def test_dictionary_is_the_spec_one_in_both_implementations():
    rows = {row[0]: row[1] for row in spec_table("### 7.11 ZLIB_DICT")}
    assert rows["size"] == f"{SKELETON_DICT_SIZE} bytes"
    assert rows["SHA-256"] == f"`{SKELETON_DICT_SHA256}`"
    assert rows["Adler-32 (the `DICTID`)"] == f"`0x{ADLER:08X}`"
    python = (ROOT / "converters" / "skeleton.zdict").read_bytes()
    assert python == DICT == JAVA_DICT.read_bytes()
    assert len(DICT) == SKELETON_DICT_SIZE <= 4096
    assert hashlib.sha256(DICT).hexdigest() == SKELETON_DICT_SHA256
    assert zlib.adler32(DICT) == ADLER
    section = spec_section("### 7.11 ZLIB_DICT")
    assert " ".join(f"{b:02X}" for b in ADLER.to_bytes(4, "big")) in section
    assert "`converters/skeleton.zdict`" in section
    assert "`dev/kerasdc/bundle/skeleton.zdict`" in section
    assert (ZLIB_FLG, ZLIB_FDICT, ZLIB_DICTID.offset, ZLIB_DICTID.size) == (1, 0x20, 2, 4)


def test_a_wrong_dictionary_file_is_an_installation_error(tmp_path, monkeypatch):
    bad = tmp_path / "skeleton.zdict"
    bad.write_bytes(DICT[:-1] + bytes([DICT[-1] ^ 1]))
    for path in (bad, tmp_path / "missing.zdict"):
        monkeypatch.setattr(format, "_SKELETON_DICT_PATH", str(path))
        format.skeleton_dict.cache_clear()
        try:
            with pytest.raises(RuntimeError, match="ZLIB_DICT dictionary"):
                format.skeleton_dict()
        finally:
            format.skeleton_dict.cache_clear()
    monkeypatch.undo()
    assert format.skeleton_dict() == (DICT, ADLER)


# =================================================================== the golden files


def _zdict_part(name="zdict"):
    """The zdict golden: skeleton, sidecar, the file offset of its head part's payload,
    the descriptors and the parts' payloads."""
    skeleton, side, _ = golden(name)
    descriptors, payloads = parts_of(payloads_of(side)[0])
    at = payload_offsets(side)[0] + descriptors[0]["at"]["payload"]
    return skeleton, side, at, descriptors, payloads


def test_zdict_golden_is_v1_5_with_a_zlib_dict_part():
    skeleton, side, restored = golden("zdict")
    assert decoder.restore_bytes(skeleton, side) == restored
    h = HEADER.unpack_from(side)
    assert (h.version_minor, h.segment_count) == (5, 1)
    assert entry_field(side, 0, "encoding") == PACKED
    info = decoder.inspect(side)
    assert info["version"] == "1.5"
    assert [s["encoding"] for s in info["segments"]] == MANIFEST["cases"]["zdict"]["encodings"]
    _, _, _, descriptors, payloads = _zdict_part()
    head = payloads[0]
    assert descriptors[0]["encoding"] == ZLIB_DICT and descriptors[0]["dtype"] == 0
    assert head[ZLIB_FLG] & ZLIB_FDICT and head[2:6] == ADLER.to_bytes(4, "big")
    plain = zlib.compress(restored[: descriptors[0]["size"]], 9)
    assert len(head) < len(plain)  # the dictionary pays
    assert descriptors[2]["encoding"] == ZLIB  # a gap it does not help stays ZLIB


def test_zdict_segments_golden_has_top_level_zlib_dict_segments():
    skeleton, side, restored = golden("zdict_segments")
    assert decoder.restore_bytes(skeleton, side) == restored
    assert options_of("zdict_segments") == {"packed": False}
    h = HEADER.unpack_from(side)
    assert h.version_minor == 5 and h.segment_count == 4
    codes = [entry_field(side, i, "encoding") for i in range(h.segment_count)]
    assert codes[0] == ZLIB_DICT and codes[-1] == ZLIB
    info = decoder.inspect(side)["segments"]
    assert [s["name"] for s in info] == [SKELETON_NAME, "conv/kernel", "conv/bias", SKELETON_NAME]
    assert len(skeleton) == 20


@pytest.mark.parametrize("name", CASES)
def test_older_goldens_keep_their_version_and_restore(name):
    skeleton, side, restored = golden(name)
    assert decoder.restore_bytes(skeleton, side) == restored
    minor = HEADER.unpack_from(side).version_minor
    assert (minor == 5) == name.startswith("zdict")


@pytest.mark.parametrize("name", [c for c in CASES if MANIFEST["cases"][c]["version_minor"] < 5])
def test_skeleton_dict_false_writes_the_older_encoders_bytes(name):
    # With ZLIB_DICT allowed but skeleton_dict=False, every older golden comes out as it was.
    skeleton, side, restored = golden(name)
    new = encoder.build_bundle(
        restored,
        segments_of(name),
        encodings=encodings_of(name) + ["ZLIB_DICT"],
        skeleton_dict=False,
        **options_of(name),
    )
    assert new[:2] == (skeleton, side) or zlib.ZLIB_VERSION != MANIFEST["zlib_version"]
    assert decoder.restore_bytes(*new[:2]) == restored


@pytest.mark.parametrize("name", CASES)
def test_skeleton_dict_false_is_the_1_4_encoder(name):
    # On every golden's input, all encodings: skeleton_dict=False writes exactly what the
    # encoder writes without the code (the 1.4 encoder), never a version 1.5 file.
    _, _, restored = golden(name)
    options = {k: v for k, v in options_of(name).items()}
    options["masked"] = False  # MASKED (1.6): test_format_v16
    off = encoder.build_bundle(restored, segments_of(name), skeleton_dict=False, **options)
    old = encoder.build_bundle(restored, segments_of(name), encodings=ALL_BUT_ZLIB_DICT, **options)
    assert off[:2] == old[:2]
    assert HEADER.unpack_from(off[1]).version_minor <= 4


# =================================================================== the encoder (section 13)


@settings(max_examples=40, deadline=None)
@given(bundles(), st.sampled_from([0, 300, 900]), st.booleans())
def test_zlib_dict_round_trip_only_when_strictly_smaller(bundle, head, packed):
    restored, segments = bundle
    segments = [Segment(s.offset + head, s.size, s.dtype, s.channels, s.name) for s in segments]
    restored = _head(head) + restored
    old = encoder.build_bundle(restored, segments, packed=packed, skeleton_dict=False, masked=False)
    skeleton, side, stats = encoder.build_bundle(restored, segments, packed=packed, masked=False)
    assert decoder.restore_bytes(skeleton, side) == restored
    used = "ZLIB_DICT" in [s.encoding for s in stats]
    assert (HEADER.unpack_from(side).version_minor == 5) == used  # section 4.1
    if not used:
        assert (skeleton, side) == old[:2]
    else:
        assert len(skeleton) + len(side) < len(old[0]) + len(old[1])
    info = decoder.inspect(side)["segments"]
    assert [(s["encoding"], s["payload_bytes"]) for s in info] == [
        (s.encoding, s.payload_bytes) for s in stats
    ]
    if head >= 300:  # the dictionary-like head is always worth it
        assert stats[0].is_skeleton and stats[0].encoding == "ZLIB_DICT"


def test_zlib_dict_only_where_strictly_smaller_than_zlib():
    tail = bytes(range(20)) * 15  # repeating, not in the dictionary: ZLIB
    restored = _head() + _kernel() + tail
    segments = [Segment(700, 8000, "float32", 1, "k")]
    for packed in (True, False):
        skeleton, side, stats = encoder.build_bundle(restored, segments, packed=packed)
        assert [(s.name, s.encoding) for s in stats] == [
            (SKELETON_NAME, "ZLIB_DICT"),
            ("k", "CLUSTERED_SPARSE"),
            (SKELETON_NAME, "ZLIB"),
        ]
        assert decoder.restore_bytes(skeleton, side) == restored
        assert stats[0].payload_bytes == len(encoder._zlib_dict(_head(), 9))
        assert stats[0].payload_bytes < len(zlib.compress(_head(), 9))
    # Ties go to ZLIB, the lower code; neither allowed: no zlib stream.
    assert encoder._gap_zlib(b"", {ZLIB, ZLIB_DICT}, 9)[0] == ZLIB
    assert encoder._gap_zlib(b"abc", {0}, 9) is None


def test_skeleton_dict_option_and_encodings():
    restored = _head() + _kernel()
    segments = [Segment(700, 8000, "float32", 1, "k")]
    with_dict = encoder.build_bundle(restored, segments)
    assert HEADER.unpack_from(with_dict[1]).version_minor == 5
    for kwargs in ({"skeleton_dict": False}, {"encodings": ALL_BUT_ZLIB_DICT}):
        skeleton, side, _ = encoder.build_bundle(restored, segments, **kwargs)
        assert HEADER.unpack_from(side).version_minor == 4
        assert len(skeleton) + len(side) > len(with_dict[0]) + len(with_dict[1])
    # ZLIB_DICT without ZLIB still compacts the skeleton.
    _, side, stats = encoder.build_bundle(
        restored, segments, encodings=["ZLIB_DICT", "CLUSTERED_SPARSE"]
    )
    assert [s.encoding for s in stats] == ["ZLIB_DICT", "CLUSTERED_SPARSE"]
    with pytest.raises(TypeError, match="skeleton_dict"):
        encoder.build_bundle(restored, segments, skeleton_dict="yes")


# =================================================================== malformed input (section 10)


def _with_head(side, descriptors, payloads, head, **descriptor):
    """The zdict golden with its head part's payload (and descriptor fields) replaced."""
    ds = list(descriptors)
    ds[0] = dict(ds[0], **descriptor)
    return rebuild(side, [pack_parts(ds, [head] + payloads[1:])])


def test_zlib_dict_header_rules():
    skeleton, side, at, descriptors, payloads = _zdict_part()
    head = payloads[0]
    field = "segment[0].part[0].payload"
    # FDICT not set: a plain zlib stream of the same bytes.
    restored = golden("zdict")[2][: descriptors[0]["size"]]
    plain = zlib.compress(restored, 9)
    expect_error(skeleton, _with_head(side, descriptors, payloads, plain), field, at + ZLIB_FLG)
    # FDICT cleared, FCHECK recomputed (so only the FDICT rule is broken).
    flg = head[ZLIB_FLG] & ~ZLIB_FDICT & 0xE0
    flg |= 31 - (head[0] * 256 + flg) % 31
    cleared = bytes([head[0], flg]) + head[2:]
    expect_error(skeleton, _with_head(side, descriptors, payloads, cleared), field, at + ZLIB_FLG)
    # DICTID: every single bit flipped, and another dictionary's.
    for bit in range(32):
        bad = bytearray(head)
        bad[2 + bit // 8] ^= 1 << (bit % 8)
        expect_error(skeleton, _with_head(side, descriptors, payloads, bytes(bad)), field, at + 2)
    other = zlib.compressobj(9, zdict=DICT[:-1])
    other = other.compress(restored) + other.flush()
    expect_error(skeleton, _with_head(side, descriptors, payloads, other), field, at + 2)
    # Too short to hold FLG, or DICTID (a shorter payload_size varint: the payload moves).
    for short, where in ((head[:1], ZLIB_FLG), (head[:4], 2)):
        bad = _with_head(side, descriptors, payloads, short)
        moved = payload_offsets(bad)[0] + parts_of(payloads_of(bad)[0])[0][0]["at"]["payload"]
        expect_error(skeleton, bad, field, moved + where)


def test_zlib_dict_stream_rules():
    skeleton, side, at, descriptors, payloads = _zdict_part()
    head = payloads[0]
    restored = golden("zdict")[2][: descriptors[0]["size"]]
    field = "segment[0].part[0].payload"
    # Truncated (at any point after the header), a corrupt Adler-32 trailer, a byte after
    # the stream.
    for bad in (head[:6], head[: len(head) // 2], head[:-1], head[:-1] + bytes([head[-1] ^ 1])):
        expect_error(skeleton, _with_head(side, descriptors, payloads, bad), field)
    expect_error(skeleton, _with_head(side, descriptors, payloads, head + b"\x00"), field)
    # Wrong size: a stream of one byte more, and one of one byte less, than the part.
    for data in (restored + b"\x00", restored[:-1]):
        expect_error(skeleton, _with_head(side, descriptors, payloads, _zdict_stream(data)), field)
    # A ZLIB part cannot hold a ZLIB_DICT stream (no dictionary), nor the reverse.
    expect_error(skeleton, _with_head(side, descriptors, payloads, head, encoding=ZLIB), field)


def test_zlib_dict_top_level_segment_rules():
    skeleton, side, restored = golden("zdict_segments")
    head = payloads_of(side)[0]
    size = entry_field(side, 0, "size")
    at = payload_offsets(side)[0]
    others = payloads_of(side)[1:]
    for bad, where in (
        (zlib.compress(restored[:size], 9), at + ZLIB_FLG),  # FDICT not set
        (head[:2] + bytes([head[2] ^ 0x80]) + head[3:], at + 2),  # DICTID
        (head[:-3], at),  # truncated
        (head + b"\x00", at),  # trailing data
        (_zdict_stream(restored[: size - 1]), at),  # one byte short of the segment
    ):
        expect_error(skeleton, rebuild(side, [bad] + others), "segment[0].payload", where)
    expect_error(skeleton, with_entry(side, 0, "encoding", ZLIB), "segment[0].payload")


def test_delta_with_a_zlib_dict_inner_payload_restores():
    # ZLIB_DICT is allowed wherever ZLIB is (7.11): also as a DELTA payload's inner code.
    values = np.cumsum(np.arange(100) % 3).astype(np.int32)
    restored = _head(200) + values.tobytes()
    segments = [Segment(200, values.nbytes, "int32", 1, "counter")]
    skeleton, side, _ = encoder.build_bundle(restored, segments, packed=False)
    differences = np.diff(values, prepend=np.int32(0)).astype(np.int32).tobytes()
    index = [entry_field(side, i, "offset") for i in range(HEADER.unpack_from(side).segment_count)]
    k = index.index(200)
    payloads = list(payloads_of(side))
    payloads[k] = bytes([ZLIB_DICT]) + _zdict_stream(differences)
    side = with_entry(rebuild(side, payloads), k, "encoding", DELTA)
    assert decoder.restore_bytes(skeleton, side) == restored
    info = decoder.inspect(side)["segments"][k]
    assert (info["encoding"], info["inner_encoding"]) == ("DELTA", "ZLIB_DICT")


def test_unknown_encoding_is_rejected_by_its_code():
    skeleton, side, _ = golden("zdict")
    expect_error(skeleton, with_entry(side, 0, "encoding", 11), "segment[0].encoding")
    with pytest.raises(FormatError):
        decoder.inspect(with_entry(side, 0, "encoding", 11))


def test_make_zdict_ends_with_the_material_most_heads_share():
    # converters/make_zdict.py (informative): the greedy choice, the commonest segment last.
    from converters import make_zdict

    rng = np.random.default_rng(4)
    common = rng.integers(0, 256, make_zdict.SEGMENT, np.uint8).tobytes()
    heads = [common + rng.integers(0, 256, 400, np.uint8).tobytes() for _ in range(3)]
    heads.append(rng.integers(0, 256, 500, np.uint8).tobytes())
    built = make_zdict.build(heads, size=3 * make_zdict.SEGMENT)
    assert built.endswith(common) and len(built) == 3 * make_zdict.SEGMENT
    assert make_zdict.build(heads, size=100) == common[-100:]
