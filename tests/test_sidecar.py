"""Tests of converters.sidecar against docs/bundle-format.md and the golden bundles."""

import hashlib
import importlib.util
import json
import pathlib
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from converters import sidecar
from converters.sidecar import FormatError, Segment

GOLDEN = pathlib.Path(__file__).parent / "golden"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
CASES = sorted(MANIFEST["cases"])
ALL = CASES + ["hand"]


def _load_module(name):
    spec = importlib.util.spec_from_file_location(name, GOLDEN / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hand_vectors = _load_module("hand_vectors")


def golden(name):
    read = lambda ext: (GOLDEN / f"{name}.{ext}").read_bytes()  # noqa: E731
    return read("skeleton"), read("dcw"), read("restored")


def segments_of(name):
    return [Segment(**s) for s in MANIFEST["cases"][name]["segments"]]


def rebuild(side, payloads=None):
    """Rewrite payload sizes and every checksum of `side` (a test-side writer).

    Lets a test change a payload or a header/table field and still get past the CRC
    checks, so that the structural checks behind them are exercised.
    """
    b = bytearray(side)
    header_size = struct.unpack_from("<I", b, 8)[0]
    count, entry_size, names_size = struct.unpack_from("<III", b, 12)
    names_end = header_size + count * entry_size + names_size
    if not 120 <= header_size <= len(b) or entry_size < 48 or names_end > len(b):
        raise ValueError("header too damaged to re-checksum")
    cursor, old = names_end, []
    for i in range(count):
        size = struct.unpack_from("<Q", b, header_size + i * entry_size + 16)[0]
        old.append(bytes(b[cursor : cursor + size]))
        cursor += size
    payloads = old if payloads is None else payloads
    for i, payload in enumerate(payloads):
        struct.pack_into("<QI", b, header_size + i * entry_size + 16, len(payload), zlib.crc32(payload))
    struct.pack_into("<Q", b, 24, sum(len(p) for p in payloads))
    out = b[:names_end] + b"".join(payloads)
    struct.pack_into("<I", out, 112, zlib.crc32(out[header_size:names_end]))
    struct.pack_into("<I", out, header_size - 4, zlib.crc32(out[: header_size - 4]))
    return bytes(out)


def payloads_of(side):
    header_size = struct.unpack_from("<I", side, 8)[0]
    count, entry_size, names_size = struct.unpack_from("<III", side, 12)
    cursor = header_size + count * entry_size + names_size
    out = []
    for i in range(count):
        size = struct.unpack_from("<Q", side, header_size + i * entry_size + 16)[0]
        out.append(side[cursor : cursor + size])
        cursor += size
    return out


def expect_error(skeleton, side, field=None, offset=None):
    with pytest.raises(FormatError) as info:
        sidecar.restore(skeleton, side)
    if field is not None:
        assert info.value.field == field, str(info.value)
    if offset is not None:
        assert info.value.offset == offset, str(info.value)
    return info.value


# =================================================================== goldens


@pytest.mark.parametrize("name", ALL)
def test_golden_restores_to_expected_bytes(name):
    skeleton, side, restored = golden(name)
    assert sidecar.restore(skeleton, side) == restored


@pytest.mark.parametrize("name", CASES)
def test_golden_rebuilt_byte_for_byte(name):
    skeleton, side, restored = golden(name)
    case = MANIFEST["cases"][name]
    new_skeleton, new_side, stats = sidecar.build_bundle(restored, segments_of(name))
    assert [s["encoding"] for s in stats] == case["encodings"]
    assert [s["codebooks"] for s in stats] == case["codebooks"]
    assert new_skeleton == skeleton
    # DEFLATE output depends on the zlib build: ZLIB payloads are compared inflated (with
    # their sizes and CRCs recomputed), every other byte as it is, whatever the zlib.
    assert _inflated(new_side, case["encodings"]) == _inflated(side, case["encodings"])
    if "ZLIB" not in case["encodings"] or zlib.ZLIB_VERSION == MANIFEST["zlib_version"]:
        assert new_side == side


def _inflated(side, encodings):
    """`side` with each ZLIB payload replaced by its inflated bytes, checksums recomputed."""
    payloads = payloads_of(side)
    assert len(payloads) == len(encodings)
    return rebuild(side, [zlib.decompress(p) if e == "ZLIB" else bytes(p)
                          for p, e in zip(payloads, encodings)])


def test_hand_vector_is_the_golden_file_and_its_checksums_are_right():
    _, side, _ = golden("hand")
    assert side == hand_vectors.SIDECAR
    assert hand_vectors.HEADER[48:80] == hashlib.sha256(hand_vectors.RESTORED).digest()
    assert hand_vectors.HEADER[80:112] == hashlib.sha256(hand_vectors.SKELETON).digest()
    table = hand_vectors.TABLE + hand_vectors.NAMES
    assert struct.unpack_from("<I", hand_vectors.HEADER, 112)[0] == zlib.crc32(table)
    assert struct.unpack_from("<I", hand_vectors.HEADER, 116)[0] == zlib.crc32(hand_vectors.HEADER[:116])
    assert struct.unpack_from("<I", table, 24)[0] == zlib.crc32(hand_vectors.PAYLOAD_DENSE)
    assert struct.unpack_from("<I", table, 72)[0] == zlib.crc32(hand_vectors.PAYLOAD_SPARSE)


def test_hand_vector_inspect():
    info = sidecar.inspect(hand_vectors.SIDECAR)
    assert info["version"] == "1.0" and info["restored_size"] == 79 and info["skeleton_size"] == 15
    dense, sparse = info["segments"]
    assert (dense["name"], dense["encoding"], dense["index_bits"]) == ("dense", "CLUSTERED_DENSE", 11)
    assert dense["nonzeros"] == 3
    assert (sparse["encoding"], sparse["escape_run"], sparse["gap_count"]) == ("CLUSTERED_SPARSE", 3, 3)
    assert sparse["gap_bits"] == 6
    assert (sparse["nonzeros"], sparse["codebook_entries"], sparse["payload_bytes"]) == (2, 2, 58)


@pytest.mark.parametrize("name", CASES)
def test_golden_inspect_matches_build_stats(name):
    _, side, restored = golden(name)
    _, _, stats = sidecar.build_bundle(restored, segments_of(name))
    info = sidecar.inspect(side)
    assert info["segment_count"] == len(stats)
    assert info["sidecar_size"] == len(side)
    for got, want in zip(info["segments"], stats):
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key]), key


# =================================================================== fuzzing


@pytest.mark.parametrize("name", ALL)
def test_every_truncation_of_the_sidecar_is_rejected(name):
    skeleton, side, _ = golden(name)
    for n in range(len(side)):
        with pytest.raises(FormatError):
            sidecar.restore(skeleton, side[:n])
    expect_error(skeleton, side + b"\x00")


@pytest.mark.parametrize("name", ALL)
def test_every_truncation_of_the_skeleton_is_rejected(name):
    skeleton, side, _ = golden(name)
    for n in range(len(skeleton)):
        expect_error(skeleton[:n], side, "skeleton_size", 40)
    expect_error(skeleton + b"\x00", side, "skeleton_size", 40)


def _mutate(rng, data):
    data = bytearray(data)
    kind = rng.integers(4)
    if kind == 0 or not data:  # flip one bit
        if not data:
            return bytes([rng.integers(256)])
        i = rng.integers(len(data))
        data[i] ^= 1 << rng.integers(8)
    elif kind == 1:  # overwrite a byte
        i = rng.integers(len(data))
        data[i] = (data[i] + rng.integers(1, 256)) % 256
    elif kind == 2:  # insert a byte
        data.insert(rng.integers(len(data) + 1), rng.integers(256))
    else:  # delete a byte
        del data[rng.integers(len(data))]
    return bytes(data)


@pytest.mark.parametrize("name", ALL)
def test_random_mutations_are_rejected(name):
    # ≥ 2000 mutations over all goldens, counted: every one is rejected.
    skeleton, side, restored = golden(name)
    rng = np.random.default_rng(sum(name.encode()))
    count, rejected = 2400 // len(ALL), 0
    for _ in range(count):
        if rng.random() < 0.85:
            mutated_skeleton, mutated_side = skeleton, _mutate(rng, side)
        else:
            mutated_skeleton, mutated_side = _mutate(rng, skeleton), side
        try:
            out = sidecar.restore(mutated_skeleton, mutated_side)
        except FormatError:
            rejected += 1
            continue
        assert out == restored
    # Each mutation changes the bytes (a flip, a different byte, one more or one less),
    # and the checksums and hashes see every change: all are rejected.
    assert rejected == count, f"{count - rejected} of {count} mutations restored"


@pytest.mark.parametrize("name", ALL)
def test_mutations_behind_valid_checksums_are_rejected(name):
    # With every CRC recomputed the structural checks must catch the damage (or the
    # SHA-256 of the result must): FormatError or the exact bytes, nothing else.
    skeleton, side, restored = golden(name)
    rng = np.random.default_rng(1000 + sum(name.encode()))
    for _ in range(200):
        mutated = _mutate(rng, side)
        if mutated[:12] != side[:12]:
            mutated = side[:12] + mutated[12:]  # keep magic/version/header_size parseable
        try:
            mutated = rebuild(mutated)
        except (ValueError, struct.error, IndexError, OverflowError):
            pass  # too broken to re-checksum: still must be rejected cleanly
        try:
            out = sidecar.restore(skeleton, mutated)
        except FormatError:
            continue
        assert out == restored


def _with_header(side, fmt, offset, value):
    b = bytearray(side)
    struct.pack_into(fmt, b, offset, value)
    header_size = struct.unpack_from("<I", b, 8)[0]
    struct.pack_into("<I", b, header_size - 4, zlib.crc32(b[: header_size - 4]))
    return bytes(b)


@pytest.mark.parametrize(
    "fmt, offset, value, field",
    [
        ("<Q", 32, 2**60, "restored_size"),
        ("<Q", 32, 2**31, "restored_size"),
        ("<I", 12, 2**32 - 1, "segment_count"),
        ("<I", 20, 2**32 - 1, "names_size"),
        ("<Q", 24, 2**60, "payload_size"),
        ("<I", 16, 2**32 - 1, "entry_size"),
        ("<I", 16, 47, "entry_size"),
        ("<Q", 40, 2**60, "skeleton_size"),
    ],
)
def test_absurd_header_sizes_rejected_before_allocation(fmt, offset, value, field):
    skeleton, side, _ = golden("hand")
    expect_error(skeleton, _with_header(side, fmt, offset, value), field, offset)


def test_absurd_header_size_rejected():
    skeleton, side, _ = golden("hand")
    for value in (0, 119, 2**32 - 1, len(side) + 1):
        b = bytearray(side)
        struct.pack_into("<I", b, 8, value)
        expect_error(skeleton, bytes(b), "header_size", 8)


@pytest.mark.parametrize(
    "position, value, field",
    [
        (8, 2**60, "segment[0].indices.nbits"),  # count > nbits (reported at nbits)
        (16, 2**60, "segment[0].indices.nbits"),  # more bits than bytes present
        (16, 0, "segment[0].indices.nbits"),  # nbits < count
    ],
)
def test_absurd_stream_sizes_rejected(position, value, field):
    # Dense payload: codebook block of 12 bytes, then indices.count (u64), nbits (u64).
    payload = bytearray(hand_vectors.PAYLOAD_DENSE)
    struct.pack_into("<Q", payload, 12 + position - 8, value)
    side = rebuild(hand_vectors.SIDECAR, [bytes(payload), hand_vectors.PAYLOAD_SPARSE])
    error = expect_error(hand_vectors.SKELETON, side)
    assert error.field == field


def test_max_restored_size_limit():
    skeleton, side, restored = golden("sparse_f32")
    assert sidecar.restore(skeleton, side, max_restored_size=len(restored)) == restored
    expect = pytest.raises(FormatError, match="restored_size")
    with expect:
        sidecar.restore(skeleton, side, max_restored_size=len(restored) - 1)


# =================================================================== decoder vectors


def _hand_with(dense=None, sparse=None):
    return rebuild(
        hand_vectors.SIDECAR,
        [dense or hand_vectors.PAYLOAD_DENSE, sparse or hand_vectors.PAYLOAD_SPARSE],
    )


def _patched(payload, offset, data):
    b = bytearray(payload)
    b[offset : offset + len(data)] = data
    return bytes(b)


def test_rebuild_helper_is_identity_on_goldens():
    for name in ALL:
        _, side, _ = golden(name)
        assert rebuild(side) == side


_DENSE, _SPARSE = hand_vectors.PAYLOAD_DENSE, hand_vectors.PAYLOAD_SPARSE


@pytest.mark.parametrize(
    "dense, sparse, field",
    [
        # indices.nbits one too many: 8 symbols use 11 bits, not 12
        pytest.param(_patched(_DENSE, 20, b"\x0c"), None, "segment[0].indices.nbits", id="nbits"),
        # a padding bit set in the last data byte (bit 3 of byte 1, stream bit 11)
        pytest.param(_patched(_DENSE, 32, b"\x09"), None, "segment[0].indices.data", id="padding"),
        # lengths [1, 1]: a complete code, no reserved codeword
        pytest.param(_patched(_DENSE, 30, b"\x11"), None, "segment[0].indices.lengths", id="complete-code"),
        # the reserved codeword "11" in the data
        pytest.param(_patched(_DENSE, 31, b"\x0f"), None, "segment[0].indices.data", id="reserved-codeword"),
        # codebook_count 2 with channels = 1
        pytest.param(_patched(_DENSE, 0, b"\x02"), None, "segment[0].codebook_count", id="codebook-count"),
        # only one codebook entry: index 1 is out of range
        pytest.param(b"\x01\x00\x01\x00" + _DENSE[4:8] + _DENSE[12:], None, "segment[0].indices.data",
                     id="index-range"),
        # a trailing byte after the last stream
        pytest.param(_DENSE + b"\x00", None, "segment[0].payload_size", id="trailing-byte"),
        # escape_run 0
        pytest.param(None, _patched(_SPARSE, 16, b"\x00"), "segment[1].escape_run", id="escape-run-0"),
        # escape_run 2: the gap alphabet (4 symbols) exceeds escape_run + 1
        pytest.param(None, _patched(_SPARSE, 16, b"\x02"), "segment[1].gaps.alphabet", id="gap-alphabet"),
        # escape_run 4: position 2, then 4 + 1 background elements: position 8 ≥ 8 elements
        pytest.param(None, _patched(_SPARSE, 16, b"\x04"), "segment[1].gaps.data", id="position-range"),
        # indices.count 1 for 2 emitted elements
        pytest.param(None, _patched(_SPARSE, 38, b"\x01"), "segment[1].indices.count", id="index-count"),
    ],
)
def test_structural_errors_behind_valid_checksums(dense, sparse, field):
    error = expect_error(hand_vectors.SKELETON, _hand_with(dense, sparse))
    assert error.field == field, str(error)


def test_gap_stream_ending_with_escape_rejected():
    # Gap symbols [3, 0] (sym3="10", sym0="00") with one index: ends with an escape.
    sparse = bytearray(hand_vectors.PAYLOAD_SPARSE)
    struct.pack_into("<QQ", sparse, 17, 2, 4)  # gaps.count = 2, nbits = 4
    sparse[37] = 0b0001  # bits 1,0,0,0
    struct.pack_into("<Q", sparse, 38, 1)  # indices.count = 1
    error = expect_error(hand_vectors.SKELETON, _hand_with(sparse=bytes(sparse)))
    assert error.field == "segment[1].gaps.data" and "escape" in str(error)


def test_error_names_offset_and_field():
    b = bytearray(hand_vectors.SIDECAR)
    b[0] = ord("X")
    error = expect_error(hand_vectors.SKELETON, bytes(b), "magic", 0)
    assert "magic" in str(error) and "byte 0" in str(error)
    assert isinstance(error, ValueError)


def test_header_crc_checked():
    b = bytearray(hand_vectors.SIDECAR)
    b[60] ^= 1  # inside restored_sha256
    expect_error(hand_vectors.SKELETON, bytes(b), "header_crc32", 116)


def test_table_and_payload_crcs_checked():
    b = bytearray(hand_vectors.SIDECAR)
    b[120 + 5] ^= 1  # segment[0].offset
    expect_error(hand_vectors.SKELETON, bytes(b), "table_crc32", 112)
    b = bytearray(hand_vectors.SIDECAR)
    b[-1] ^= 1  # last byte of segment 1's payload
    expect_error(hand_vectors.SKELETON, bytes(b), "segment[1].payload_crc32", 120 + 48 + 24)


def test_unknown_major_version_rejected():
    side = _with_header(hand_vectors.SIDECAR, "<H", 4, 2)
    expect_error(hand_vectors.SKELETON, side, "version_major", 4)


def test_newer_minor_with_extra_fields_is_read():
    # Version 1.7: 8 more header bytes before header_crc32, 8 more bytes per entry.
    h = hand_vectors
    header = bytearray(h.HEADER[:116] + b"NEWFIELD")
    struct.pack_into("<HI", header, 6, 7, 128)  # version_minor = 7, header_size = 128
    struct.pack_into("<I", header, 16, 56)  # entry_size = 56
    table = h.TABLE[:48] + b"EXTRA-0!" + h.TABLE[48:] + b"EXTRA-1!"
    struct.pack_into("<I", header, 112, zlib.crc32(table + h.NAMES))
    header += struct.pack("<I", zlib.crc32(header))
    side = bytes(header) + table + h.NAMES + h.PAYLOAD_DENSE + h.PAYLOAD_SPARSE
    assert sidecar.restore(h.SKELETON, side) == h.RESTORED
    assert sidecar.inspect(side)["version"] == "1.7"


def _with_table_bytes(offset, data):
    """The hand vector with table bytes replaced at `offset` and table/header CRCs fixed."""
    b = bytearray(hand_vectors.SIDECAR)
    b[offset : offset + len(data)] = data
    struct.pack_into("<I", b, 112, zlib.crc32(b[120 : 120 + 2 * 48 + 11]))
    struct.pack_into("<I", b, 116, zlib.crc32(b[:116]))
    return bytes(b)


@pytest.mark.parametrize(
    "entry_offset, data, field",
    [
        (40, b"\x09", "segment[0].dtype"),
        (41, b"\x07", "segment[0].encoding"),
        (44, b"\x01", "segment[0].reserved"),
        (28, b"\x00", "segment[0].channels"),  # channels = 0
        (28, b"\x03", "segment[0].size"),  # 32 bytes is not a multiple of 3 × 4
        (48 + 0, b"\x1f", "segment[1].offset"),  # segment 1 at 31 overlaps segment 0 (ends at 40)
        (48 + 0, b"\x30", "segment[1].size"),  # [48, 80) exceeds the 79 restored bytes
        (32, b"\x0a", "segment[0].name_offset"),  # name [10, 15) is outside the 11-byte table
        (48 + 16, b"\xff", "segment[1].payload_size"),  # 255 > the payload bytes left
        (16, b"\x20", "payload_size"),  # 32 + 58 payload bytes cover 90 of 91
        (8, b"\x1c", "skeleton_size"),  # segment 0 of 28 bytes: skeleton would be 19 bytes
        (0, b"\x09", "restored_sha256"),  # a legal table that no longer matches the data
    ],
)
def test_segment_table_checks(entry_offset, data, field):
    error = expect_error(hand_vectors.SKELETON, _with_table_bytes(120 + entry_offset, data))
    assert error.field == field, str(error)


def test_invalid_utf8_name_rejected():
    b = bytearray(hand_vectors.SIDECAR)
    b[120 + 96] = 0xFF  # first byte of "dense" in the name table
    error = expect_error(hand_vectors.SKELETON, rebuild(bytes(b)))
    assert error.field == "segment[0].name_offset" and "UTF-8" in str(error)


def test_skeleton_from_another_bundle_rejected():
    skeleton, side, _ = golden("hand")
    other = bytes(reversed(skeleton))  # same length, other bytes
    expect_error(other, side, "skeleton_sha256", 80)


def test_wrong_restored_hash_rejected():
    side = _with_header(hand_vectors.SIDECAR, "<B", 48, hand_vectors.SIDECAR[48] ^ 1)
    expect_error(hand_vectors.SKELETON, side, "restored_sha256", 48)


def test_zlib_payload_checks():
    skeleton, side, restored = golden("zlib")
    payload = payloads_of(side)[0]
    expect_error(skeleton, rebuild(side, [payload + b"\x00"]), "segment[0].payload")  # trailing byte
    expect_error(skeleton, rebuild(side, [payload[:-1]]), "segment[0].payload")  # no Adler-32 end
    expect_error(
        skeleton,
        rebuild(side, [zlib.compress(restored[12:-4], 9)]),
        "segment[0].payload",
    )  # too short
    expect_error(skeleton, rebuild(side, [zlib.compress(restored[12:] + b"\x00", 9)]), "segment[0].payload")


def test_raw_payload_size_checked():
    skeleton, side, _ = golden("raw")
    payload = payloads_of(side)[0]
    expect_error(skeleton, rebuild(side, [payload[:-4]]), "segment[0].payload_size")


def test_not_bytes_like_input_is_a_type_error():
    with pytest.raises(TypeError):
        sidecar.restore(b"", 12345)


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
    skeleton, side, stats = sidecar.build_bundle(restored, segments)
    assert sidecar.restore(skeleton, side) == restored
    assert len(skeleton) == len(restored) - sum(s.size for s in segments)
    assert len(stats) == len(segments)
    info = sidecar.inspect(side)
    for got, want, seg in zip(info["segments"], stats, segments):
        assert got["encoding"] == want["encoding"] and got["name"] == seg.name
        assert got["nonzeros"] == want["nonzeros"]
        assert want["payload_bytes"] <= seg.size  # never worse than RAW


def test_round_trip_keeps_bit_patterns():
    # -0.0 and NaN payloads are values of their own; +0.0 is the implicit zero.
    nan = np.array([0x7FC00123], np.uint32).view(np.float32)[0]
    palette = np.array([0.0, -0.0, 1.0, nan, 0.0, 0.0, -0.0, 0.0], np.float32)
    values = palette[np.random.default_rng(9).integers(0, 8, 4000)]
    restored = b"head" + values.tobytes()
    skeleton, side, stats = sidecar.build_bundle(restored, [Segment(4, values.nbytes, "float32")])
    assert sidecar.restore(skeleton, side) == restored
    assert stats[0]["encoding"].startswith("CLUSTERED")
    assert stats[0]["nonzeros"] == np.count_nonzero(values != 0)  # ±0.0 are zeros, NaN is not


def test_negative_zero_background():
    # tfmot writes pruned weights as -0.0: the sparse encoding still applies.
    rng = np.random.default_rng(10)
    values = _clustered(rng, 20_000, 0.1, 16)
    values[values == 0] = -0.0
    restored = values.tobytes()
    skeleton, side, stats = sidecar.build_bundle(restored, [Segment(0, len(restored), "float32")])
    s = stats[0]
    assert s["encoding"] == "CLUSTERED_SPARSE" and s["codebook_entries"] == 16
    assert s["nonzeros"] == s["index_count"] == np.count_nonzero(values)
    assert s["payload_bytes"] < 0.05 * s["raw_bytes"]
    assert sidecar.restore(skeleton, side) == restored
    assert sidecar.inspect(side)["segments"][0]["nonzeros"] == s["nonzeros"]


def test_per_channel_backgrounds_with_sign_flipped_zeros():
    # BatchNorm folding with negative scales turns +0.0 into -0.0 in some channels.
    rng = np.random.default_rng(11)
    shared = _clustered(rng, 8 * 512, 0.1, 16).reshape(8, 512)
    scales = np.array([1.5, -0.5, 2.0, -1.0, 0.75, -2.5, 1.0, -0.25], np.float32)[:, None]
    kernel = (shared * scales).astype(np.float32)
    assert np.signbit(kernel[1][kernel[1] == 0]).all() and not np.signbit(kernel[0][kernel[0] == 0]).any()
    restored = kernel.tobytes()
    skeleton, side, stats = sidecar.build_bundle(restored, [Segment(0, len(restored), "float32", channels=8)])
    assert stats[0]["encoding"] == "CLUSTERED_SPARSE" and stats[0]["codebooks"] == 8
    assert stats[0]["index_count"] == np.count_nonzero(kernel)
    assert sidecar.restore(skeleton, side) == restored
    info = sidecar.inspect(side)["segments"][0]
    assert info["nonzeros"] == stats[0]["nonzeros"] == np.count_nonzero(kernel)


def test_nonzero_background_fills_unemitted_elements():
    # A layer dominated by one non-zero value, with an all-background channel.
    values = np.full((4, 300), 0.5, np.float32)
    values[0, ::7] = -1.0
    values[2, 5] = 0.0
    restored = b"xy" + values.tobytes()
    segment = Segment(2, values.nbytes, "float32", channels=4)
    skeleton, side, stats = sidecar.build_bundle(restored, [segment], encodings=["CLUSTERED_SPARSE"])
    assert stats[0]["encoding"] == "CLUSTERED_SPARSE" and stats[0]["index_count"] == 44
    assert sidecar.restore(skeleton, side) == restored
    assert sidecar.inspect(side)["segments"][0]["nonzeros"] == 1199


def test_sparse_round_trip_with_long_zero_runs():
    values = np.zeros(100_000, np.float32)
    values[[0, 5, 70_000, 99_999]] = [1, 2, 3, 1]
    restored = values.tobytes()
    skeleton, side, stats = sidecar.build_bundle(
        restored,
        [Segment(0, len(restored), "float32")],
        encodings=["CLUSTERED_SPARSE"],
    )
    assert stats[0]["encoding"] == "CLUSTERED_SPARSE"
    assert stats[0]["gap_count"] > 4  # escapes
    assert sidecar.restore(skeleton, side) == restored


def test_per_channel_codebooks_when_one_is_too_large():
    rng = np.random.default_rng(5)
    shared = np.array([-1, -0.5, 0.5, 1, 2, -2], np.float64)
    kernel = (shared[rng.integers(0, 6, (64, 100))] * rng.uniform(0.5, 2, (64, 1))).astype(np.float32)
    restored = kernel.tobytes()
    segment = Segment(0, len(restored), "float32", channels=64, name="bn_folded")
    skeleton, side, stats = sidecar.build_bundle(restored, [segment])
    assert stats[0]["encoding"] == "CLUSTERED_DENSE" and stats[0]["codebooks"] == 64
    assert stats[0]["codebook_entries"] == 64 * 6
    assert sidecar.restore(skeleton, side) == restored
    _, side_single, stats_single = sidecar.build_bundle(restored, [segment], per_channel=False)
    assert stats_single[0]["codebooks"] == 0  # 384 distinct values: not clustered at all
    assert len(side) < len(side_single)


def test_dense_mode_for_nearly_dense_layers():
    rng = np.random.default_rng(6)
    restored = _clustered(rng, 5000, 0.66, 64).tobytes()
    skeleton, side, stats = sidecar.build_bundle(restored, [Segment(0, len(restored), "float32")])
    assert stats[0]["encoding"] == "CLUSTERED_DENSE"


def test_sparse_mode_for_sparse_layers_and_stats():
    rng = np.random.default_rng(7)
    values = _clustered(rng, 50_000, 0.08, 32)
    restored = values.tobytes()
    skeleton, side, stats = sidecar.build_bundle(restored, [Segment(0, len(restored), "float32", name="ip1")])
    s = stats[0]
    assert s["encoding"] == "CLUSTERED_SPARSE" and s["name"] == "ip1"
    assert s["elements"] == 50_000 and s["nonzeros"] == np.count_nonzero(values)
    assert s["index_count"] == s["nonzeros"] and s["codebook_entries"] == 32
    assert s["index_entropy_bits"] <= s["index_bits"] <= 1.02 * s["index_entropy_bits"] + 8
    assert s["gap_entropy_bits"] <= s["gap_bits"] <= 1.03 * s["gap_entropy_bits"] + 8
    assert s["payload_bytes"] < 0.1 * s["raw_bytes"]
    assert len(side) == 120 + 48 + 3 + s["payload_bytes"]


def test_encodings_option_restricts_choice():
    rng = np.random.default_rng(8)
    restored = _clustered(rng, 2000, 0.1, 8).tobytes()
    segment = [Segment(0, len(restored), "float32")]
    for only in ("RAW", "ZLIB", "CLUSTERED_DENSE", "CLUSTERED_SPARSE"):
        skeleton, side, stats = sidecar.build_bundle(restored, segment, encodings=[only])
        assert stats[0]["encoding"] == only
        assert sidecar.restore(skeleton, side) == restored
    with pytest.raises(ValueError, match="unknown encodings"):
        sidecar.build_bundle(restored, segment, encodings=["HUFFMAN"])


def test_build_is_deterministic():
    _, _, restored = golden("mixed")
    first = sidecar.build_bundle(restored, segments_of("mixed"))
    second = sidecar.build_bundle(bytearray(restored), list(segments_of("mixed")))
    assert first[:2] == second[:2]


def test_empty_segment_list():
    skeleton, side, stats = sidecar.build_bundle(b"abc", [])
    assert skeleton == b"abc" and stats == [] and len(side) == 120
    assert sidecar.restore(skeleton, side) == b"abc"
    skeleton, side, _ = sidecar.build_bundle(b"", [])
    assert sidecar.restore(skeleton, side) == b""


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
        sidecar.build_bundle(bytes(16), segments)


def test_build_bundle_rejects_bad_arguments():
    with pytest.raises(TypeError):
        sidecar.build_bundle(bytes(8), [(0, 4, "float32")])
    with pytest.raises(ValueError, match="zlib_level"):
        sidecar.build_bundle(bytes(8), [], zlib_level=10)
