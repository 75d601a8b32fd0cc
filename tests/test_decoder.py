"""Tests of converters.decoder against docs/bundle-format.md and the golden bundles.

Decoder test vectors: the goldens restore to their bytes, every truncation and
mutation of them is rejected cleanly (section 10), and each check names its field and
offset. Byte positions come from converters.format (see sidecar_testing.py).
"""

import hashlib
import struct
import zlib

import numpy as np
import pytest
from sidecar_testing import (
    ALL,
    DENSE_INDICES,
    SPARSE_ESCAPE_RUN,
    SPARSE_GAPS,
    SPARSE_INDICES,
    expect_error,
    golden,
    hand_vectors,
    payloads_of,
    rebuild,
    stream_data,
    with_entry,
    with_header,
)

from converters import decoder
from converters.format import (
    CODEBOOK_COUNT,
    ENTRY,
    ENTRY_COUNT,
    ENTRY_SIZE,
    HEADER,
    HEADER_CRC,
    HEADER_SIZE,
    STREAM,
    FormatError,
)


@pytest.mark.parametrize("name", ALL)
def test_golden_restores_to_expected_bytes(name):
    skeleton, side, restored = golden(name)
    assert decoder.restore_bytes(skeleton, side) == restored


def test_hand_vector_is_the_golden_file_and_its_checksums_are_right():
    _, side, _ = golden("hand")
    assert side == hand_vectors.SIDECAR
    header = HEADER.unpack_from(hand_vectors.HEADER)
    assert header.restored_sha256 == hashlib.sha256(hand_vectors.RESTORED).digest()
    assert header.skeleton_sha256 == hashlib.sha256(hand_vectors.SKELETON).digest()
    table = hand_vectors.TABLE + hand_vectors.NAMES
    assert header.table_crc32 == zlib.crc32(table)
    crc_at = HEADER_SIZE - HEADER_CRC.size
    assert HEADER_CRC.unpack_from(hand_vectors.HEADER, crc_at) == zlib.crc32(
        hand_vectors.HEADER[:crc_at]
    )
    assert ENTRY.unpack_from(table, 0).payload_crc32 == zlib.crc32(hand_vectors.PAYLOAD_DENSE)
    assert ENTRY.unpack_from(table, ENTRY_SIZE).payload_crc32 == zlib.crc32(
        hand_vectors.PAYLOAD_SPARSE
    )


def test_hand_vector_inspect():
    info = decoder.inspect(hand_vectors.SIDECAR)
    assert info["version"] == "1.0" and info["restored_size"] == 79 and info["skeleton_size"] == 15
    dense, sparse = info["segments"]
    assert (dense["name"], dense["encoding"], dense["index_bits"]) == (
        "dense",
        "CLUSTERED_DENSE",
        11,
    )
    assert dense["nonzeros"] == 3
    assert (sparse["encoding"], sparse["escape_run"], sparse["gap_count"]) == (
        "CLUSTERED_SPARSE",
        3,
        3,
    )
    assert sparse["gap_bits"] == 6
    assert (sparse["nonzeros"], sparse["codebook_entries"], sparse["payload_bytes"]) == (2, 2, 58)


# =================================================================== fuzzing


@pytest.mark.parametrize("name", ALL)
def test_every_truncation_of_the_sidecar_is_rejected(name):
    skeleton, side, _ = golden(name)
    for n in range(len(side)):
        with pytest.raises(FormatError):
            decoder.restore_bytes(skeleton, side[:n])
    expect_error(skeleton, side + b"\x00")


@pytest.mark.parametrize("name", ALL)
def test_every_truncation_of_the_skeleton_is_rejected(name):
    skeleton, side, _ = golden(name)
    for n in range(len(skeleton)):
        expect_error(skeleton[:n], side, "skeleton_size", HEADER["skeleton_size"].offset)
    expect_error(skeleton + b"\x00", side, "skeleton_size", HEADER["skeleton_size"].offset)


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
            out = decoder.restore_bytes(mutated_skeleton, mutated_side)
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
        prefix = HEADER["header_size"].end
        if mutated[:prefix] != side[:prefix]:
            mutated = side[:prefix] + mutated[prefix:]  # keep magic/version/header_size parseable
        try:
            mutated = rebuild(mutated)
        except (ValueError, struct.error, IndexError, OverflowError):
            pass  # too broken to re-checksum: still must be rejected cleanly
        try:
            out = decoder.restore_bytes(skeleton, mutated)
        except FormatError:
            continue
        assert out == restored


@pytest.mark.parametrize(
    "field, value",
    [
        ("restored_size", 2**60),
        ("restored_size", 2**31),
        ("segment_count", 2**32 - 1),
        ("names_size", 2**32 - 1),
        ("payload_size", 2**60),
        ("entry_size", 2**32 - 1),
        ("entry_size", ENTRY_SIZE - 1),
        ("skeleton_size", 2**60),
    ],
)
def test_absurd_header_sizes_rejected_before_allocation(field, value):
    skeleton, side, _ = golden("hand")
    expect_error(skeleton, with_header(side, field, value), field, HEADER[field].offset)


def test_absurd_header_size_rejected():
    skeleton, side, _ = golden("hand")
    for value in (0, 119, 2**32 - 1, len(side) + 1):
        b = bytearray(side)
        HEADER["header_size"].pack_into(b, 0, value)
        expect_error(skeleton, bytes(b), "header_size", HEADER["header_size"].offset)


@pytest.mark.parametrize(
    "stream_field, value, field",
    [
        ("count", 2**60, "segment[0].indices.nbits"),  # count > nbits (reported at nbits)
        ("nbits", 2**60, "segment[0].indices.nbits"),  # more bits than bytes present
        ("nbits", 0, "segment[0].indices.nbits"),  # nbits < count
    ],
)
def test_absurd_stream_sizes_rejected(stream_field, value, field):
    # Dense payload: the codebooks, then the index stream.
    payload = bytearray(hand_vectors.PAYLOAD_DENSE)
    STREAM[stream_field].pack_into(payload, DENSE_INDICES, value)
    side = rebuild(hand_vectors.SIDECAR, [bytes(payload), hand_vectors.PAYLOAD_SPARSE])
    error = expect_error(hand_vectors.SKELETON, side)
    assert error.field == field


def test_max_restored_size_limit():
    skeleton, side, restored = golden("sparse_f32")
    assert decoder.restore_bytes(skeleton, side, max_restored_size=len(restored)) == restored
    expect = pytest.raises(FormatError, match="restored_size")
    with expect:
        decoder.restore_bytes(skeleton, side, max_restored_size=len(restored) - 1)


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
_DENSE_DATA = stream_data(DENSE_INDICES, 2)  # the dense index stream has 2 code lengths
_FIRST_ENTRY = CODEBOOK_COUNT.size + ENTRY_COUNT.size  # one codebook: its entries follow


@pytest.mark.parametrize(
    "dense, sparse, field",
    [
        # indices.nbits one too many: 8 symbols use 11 bits, not 12
        pytest.param(
            _patched(_DENSE, DENSE_INDICES + STREAM["nbits"].offset, b"\x0c"),
            None,
            "segment[0].indices.nbits",
            id="nbits",
        ),
        # a padding bit set in the last data byte (bit 3 of byte 1, stream bit 11)
        pytest.param(
            _patched(_DENSE, _DENSE_DATA + 1, b"\x09"),
            None,
            "segment[0].indices.data",
            id="padding",
        ),
        # lengths [1, 1]: a complete code, no reserved codeword
        pytest.param(
            _patched(_DENSE, DENSE_INDICES + STREAM.size, b"\x11"),
            None,
            "segment[0].indices.lengths",
            id="complete-code",
        ),
        # the reserved codeword "11" in the data
        pytest.param(
            _patched(_DENSE, _DENSE_DATA, b"\x0f"),
            None,
            "segment[0].indices.data",
            id="reserved-codeword",
        ),
        # codebook_count 2 with channels = 1
        pytest.param(
            _patched(_DENSE, CODEBOOK_COUNT.offset, b"\x02"),
            None,
            "segment[0].codebook_count",
            id="codebook-count",
        ),
        # only one codebook entry: index 1 is out of range
        pytest.param(
            CODEBOOK_COUNT.pack(1)
            + ENTRY_COUNT.pack(1)
            + _DENSE[_FIRST_ENTRY : _FIRST_ENTRY + 4]
            + _DENSE[DENSE_INDICES:],
            None,
            "segment[0].indices.data",
            id="index-range",
        ),
        # a trailing byte after the last stream
        pytest.param(_DENSE + b"\x00", None, "segment[0].payload_size", id="trailing-byte"),
        # escape_run 0
        pytest.param(
            None,
            _patched(_SPARSE, SPARSE_ESCAPE_RUN, b"\x00"),
            "segment[1].escape_run",
            id="escape-run-0",
        ),
        # escape_run 2: the gap alphabet (4 symbols) exceeds escape_run + 1
        pytest.param(
            None,
            _patched(_SPARSE, SPARSE_ESCAPE_RUN, b"\x02"),
            "segment[1].gaps.alphabet",
            id="gap-alphabet",
        ),
        # escape_run 4: position 2, then 4 + 1 background elements: position 8 ≥ 8 elements
        pytest.param(
            None,
            _patched(_SPARSE, SPARSE_ESCAPE_RUN, b"\x04"),
            "segment[1].gaps.data",
            id="position-range",
        ),
        # indices.count 1 for 2 emitted elements
        pytest.param(
            None,
            _patched(_SPARSE, SPARSE_INDICES + STREAM["count"].offset, b"\x01"),
            "segment[1].indices.count",
            id="index-count",
        ),
    ],
)
def test_structural_errors_behind_valid_checksums(dense, sparse, field):
    error = expect_error(hand_vectors.SKELETON, _hand_with(dense, sparse))
    assert error.field == field, str(error)


def test_gap_stream_ending_with_escape_rejected():
    # Gap symbols [3, 0] (sym3="10", sym0="00") with one index: ends with an escape.
    sparse = bytearray(hand_vectors.PAYLOAD_SPARSE)
    STREAM["count"].pack_into(sparse, SPARSE_GAPS, 2)
    STREAM["nbits"].pack_into(sparse, SPARSE_GAPS, 4)
    sparse[stream_data(SPARSE_GAPS, 4)] = 0b0001  # bits 1,0,0,0
    STREAM["count"].pack_into(sparse, SPARSE_INDICES, 1)
    error = expect_error(hand_vectors.SKELETON, _hand_with(sparse=bytes(sparse)))
    assert error.field == "segment[1].gaps.data" and "escape" in str(error)


def test_error_names_offset_and_field():
    b = bytearray(hand_vectors.SIDECAR)
    b[0] = ord("X")
    error = expect_error(hand_vectors.SKELETON, bytes(b), "magic", HEADER["magic"].offset)
    assert "magic" in str(error) and "byte 0" in str(error)
    assert isinstance(error, ValueError)


def test_header_crc_checked():
    b = bytearray(hand_vectors.SIDECAR)
    b[HEADER["restored_sha256"].offset + 12] ^= 1
    expect_error(hand_vectors.SKELETON, bytes(b), "header_crc32", HEADER_SIZE - HEADER_CRC.size)


def test_table_and_payload_crcs_checked():
    b = bytearray(hand_vectors.SIDECAR)
    b[HEADER_SIZE + ENTRY["offset"].offset + 5] ^= 1  # segment[0].offset
    expect_error(hand_vectors.SKELETON, bytes(b), "table_crc32", HEADER["table_crc32"].offset)
    b = bytearray(hand_vectors.SIDECAR)
    b[-1] ^= 1  # last byte of segment 1's payload
    expect_error(
        hand_vectors.SKELETON,
        bytes(b),
        "segment[1].payload_crc32",
        HEADER_SIZE + ENTRY_SIZE + ENTRY["payload_crc32"].offset,
    )


def test_unknown_major_version_rejected():
    side = with_header(hand_vectors.SIDECAR, "version_major", 2)
    expect_error(hand_vectors.SKELETON, side, "version_major", HEADER["version_major"].offset)


def test_newer_minor_with_extra_fields_is_read():
    # Version 1.7: 8 more header bytes before header_crc32, 8 more bytes per entry.
    h = hand_vectors
    header = bytearray(h.HEADER[: HEADER.size] + b"NEWFIELD")
    HEADER["version_minor"].pack_into(header, 0, 7)
    HEADER["header_size"].pack_into(header, 0, HEADER_SIZE + 8)
    HEADER["entry_size"].pack_into(header, 0, ENTRY_SIZE + 8)
    table = h.TABLE[:ENTRY_SIZE] + b"EXTRA-0!" + h.TABLE[ENTRY_SIZE:] + b"EXTRA-1!"
    HEADER["table_crc32"].pack_into(header, 0, zlib.crc32(table + h.NAMES))
    header += HEADER_CRC.pack(zlib.crc32(header))
    side = bytes(header) + table + h.NAMES + h.PAYLOAD_DENSE + h.PAYLOAD_SPARSE
    assert decoder.restore_bytes(h.SKELETON, side) == h.RESTORED
    assert decoder.inspect(side)["version"] == "1.7"


@pytest.mark.parametrize(
    "segment, entry_field, value, field",
    [
        (0, "dtype", 9, "segment[0].dtype"),
        (0, "encoding", 11, "segment[0].encoding"),  # 8 PACKED (1.4), 9 ZLIB_DICT, 10 MASKED
        (0, "reserved", b"\x00\x00\x01", "segment[0].reserved"),
        (0, "channels", 0, "segment[0].channels"),  # channels = 0
        (0, "channels", 3, "segment[0].size"),  # 32 bytes is not a multiple of 3 × 4
        (1, "offset", 31, "segment[1].offset"),  # segment 1 at 31 overlaps segment 0 (ends at 40)
        (1, "offset", 48, "segment[1].size"),  # [48, 80) exceeds the 79 restored bytes
        (
            0,
            "name_offset",
            10,
            "segment[0].name_offset",
        ),  # name [10, 15) is outside the 11-byte table
        (1, "payload_size", 255, "segment[1].payload_size"),  # 255 > the payload bytes left
        (0, "payload_size", 32, "payload_size"),  # 32 + 58 payload bytes cover 90 of 91
        (0, "size", 28, "skeleton_size"),  # segment 0 of 28 bytes: skeleton would be 19 bytes
        (0, "offset", 9, "restored_sha256"),  # a legal table that no longer matches the data
    ],
)
def test_segment_table_checks(segment, entry_field, value, field):
    error = expect_error(
        hand_vectors.SKELETON, with_entry(hand_vectors.SIDECAR, segment, entry_field, value)
    )
    assert error.field == field, str(error)


def test_invalid_utf8_name_rejected():
    b = bytearray(hand_vectors.SIDECAR)
    b[HEADER_SIZE + 2 * ENTRY_SIZE] = 0xFF  # first byte of "dense" in the name table
    error = expect_error(hand_vectors.SKELETON, rebuild(bytes(b)))
    assert error.field == "segment[0].name_offset" and "UTF-8" in str(error)


def test_skeleton_from_another_bundle_rejected():
    skeleton, side, _ = golden("hand")
    other = bytes(reversed(skeleton))  # same length, other bytes
    expect_error(other, side, "skeleton_sha256", HEADER["skeleton_sha256"].offset)


def test_wrong_restored_hash_rejected():
    digest = bytearray(HEADER.unpack_from(hand_vectors.SIDECAR).restored_sha256)
    digest[0] ^= 1
    side = with_header(hand_vectors.SIDECAR, "restored_sha256", bytes(digest))
    expect_error(hand_vectors.SKELETON, side, "restored_sha256", HEADER["restored_sha256"].offset)


def test_zlib_payload_checks():
    skeleton, side, restored = golden("zlib")
    payload = payloads_of(side)[0]
    expect_error(
        skeleton, rebuild(side, [payload + b"\x00"]), "segment[0].payload"
    )  # trailing byte
    expect_error(skeleton, rebuild(side, [payload[:-1]]), "segment[0].payload")  # no Adler-32 end
    expect_error(
        skeleton,
        rebuild(side, [zlib.compress(restored[12:-4], 9)]),
        "segment[0].payload",
    )  # too short
    expect_error(
        skeleton, rebuild(side, [zlib.compress(restored[12:] + b"\x00", 9)]), "segment[0].payload"
    )


def test_raw_payload_size_checked():
    skeleton, side, _ = golden("raw")
    payload = payloads_of(side)[0]
    expect_error(skeleton, rebuild(side, [payload[:-4]]), "segment[0].payload_size")


def test_not_bytes_like_input_is_a_type_error():
    with pytest.raises(TypeError):
        decoder.restore_bytes(b"", 12345)
