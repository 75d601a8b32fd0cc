"""Format version 1.6: MASKED segments and parts (docs/bundle-format.md 7.12), their
malformed-input rules (section 10), the minor-version rule (4.1) and the encoder's choice
(section 13)."""

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
)
from test_encoder import bundles
from test_format import spec_section, spec_table

from converters import decoder, encoder
from converters.encoder import Segment
from converters.format import (
    CLUSTERED_DENSE,
    DELTA,
    ENCODINGS,
    HEADER,
    INNER_CODES,
    MASKED,
    MASKED_INNER_CODES,
    PACKED,
    RAW,
    ZLIB,
    ZLIB_DICT,
    mask_size,
)

ALL_BUT_MASKED = [name for name, code in ENCODINGS.items() if code != MASKED]


def _masked_payload(fill, rows, columns, n_rows, n_columns, code, inner):
    """A MASKED payload (7.12) written here, without the encoder: `rows` and `columns` are
    the kept indices, `inner` the kept submatrix's payload of encoding `code`."""
    row_mask = np.zeros(8 * mask_size(n_rows), bool)
    row_mask[list(rows)] = True
    column_mask = np.zeros(8 * mask_size(n_columns), bool)
    column_mask[list(columns)] = True
    return b"".join(
        (
            fill,
            np.packbits(row_mask, bitorder="little").tobytes(),
            np.packbits(column_mask, bitorder="little").tobytes(),
            bytes([code]),
            inner,
        )
    )


def _matrix(name, k):
    """Segment `k` of golden `name` as a (channels × M) array of bit patterns."""
    seg = segments_of(name)[k]
    restored = golden(name)[2]
    dtype = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[
        {"float32": 4, "float16": 2, "int8": 1}[seg.dtype]
    ]
    data = np.frombuffer(restored[seg.offset : seg.offset + seg.size], dtype)
    return seg, data.reshape(seg.channels, -1)


# =================================================================== the spec


def test_masked_is_in_the_spec_tables():
    assert MASKED == 10 and ENCODINGS["MASKED"] == MASKED
    rows = {row[3].strip("`"): row for row in spec_table("### 7.12 MASKED")}
    assert list(rows) == ["fill", "row_mask", "column_mask", "inner_encoding", "inner"]
    assert "0 … 6 or 9" in rows["inner_encoding"][4]
    assert MASKED_INNER_CODES == INNER_CODES == set(range(7)) | {ZLIB_DICT}
    assert MASKED not in INNER_CODES and DELTA not in MASKED_INNER_CODES
    assert "MASKED (7.12), in this order" in spec_section("## 10. Malformed input")
    assert "**MASKED (7.12).**" in spec_section("## 13. The reference encoder")
    assert [mask_size(n) for n in (0, 1, 8, 9, 300)] == [0, 1, 1, 2, 38]


# =================================================================== the golden files


def test_masked_golden_is_v1_6_with_masked_parts():
    skeleton, side, restored = golden("masked")
    assert decoder.restore_bytes(skeleton, side) == restored
    h = HEADER.unpack_from(side)
    assert (h.version_minor, h.segment_count) == (6, 1)
    assert entry_field(side, 0, "encoding") == PACKED
    info = decoder.inspect(side)
    assert info["version"] == "1.6"
    case = MANIFEST["cases"]["masked"]
    assert [s["encoding"] for s in info["segments"]] == case["encodings"]
    assert [s["inner_encoding"] for s in info["segments"]] == case["inner_encodings"]
    assert {"CLUSTERED_SPARSE", "CLUSTERED_DENSE", "SPARSE_RAW"} <= set(case["inner_encodings"])
    # Each MASKED part's masks are exactly the rows and columns with a non-fill value.
    descriptors, payloads = parts_of(payloads_of(side)[0])
    masked = [k for k, d in enumerate(descriptors) if d["encoding"] == MASKED]
    for k, seg_index in zip(masked, (0, 2, 3)):
        seg, matrix = _matrix("masked", seg_index)
        esize = matrix.dtype.itemsize
        payload = payloads[k]
        fill = np.frombuffer(payload[:esize], matrix.dtype)[0]
        rows = np.unpackbits(
            np.frombuffer(payload[esize : esize + mask_size(seg.channels)], np.uint8),
            bitorder="little",
        )[: seg.channels]
        assert (rows == (matrix != fill).any(axis=1)).all()
    assert _matrix("masked", 2)[1].dtype == np.uint16  # the float16 kernel
    assert np.frombuffer(payloads[masked[1]][:2], np.uint16)[0] == 0x8000  # -0.0 fills


def test_masked_segments_golden_has_masked_segments_of_their_own():
    skeleton, side, restored = golden("masked_segments")
    assert decoder.restore_bytes(skeleton, side) == restored
    assert options_of("masked_segments") == {"packed": False}
    h = HEADER.unpack_from(side)
    assert h.version_minor == 6 and h.segment_count == 3
    assert [entry_field(side, i, "encoding") for i in range(3)] == [MASKED, MASKED, CLUSTERED_DENSE]
    info = decoder.inspect(side)["segments"]
    assert [s["codebooks"] for s in info] == [16, 1, 1]  # a codebook per kept row (of 20)
    assert np.frombuffer(payloads_of(side)[1][:4], np.float32)[0] == 0.75  # its fill


@pytest.mark.parametrize("name", CASES)
def test_older_goldens_keep_their_version(name):
    _, side, _ = golden(name)
    minor = HEADER.unpack_from(side).version_minor
    assert (minor == 6) == name.startswith("masked")


@pytest.mark.parametrize("name", CASES)
def test_masked_false_is_the_1_5_encoder(name):
    # On every golden's input, all encodings: masked=False writes exactly what the encoder
    # writes without the code (the 1.5 encoder), never a version 1.6 file; the goldens
    # written before 1.6 come out byte for byte.
    skeleton, side, restored = golden(name)
    options = options_of(name)
    off = encoder.build_bundle(restored, segments_of(name), masked=False, **options)
    old = encoder.build_bundle(restored, segments_of(name), encodings=ALL_BUT_MASKED, **options)
    assert off[:2] == old[:2]
    assert HEADER.unpack_from(off[1]).version_minor <= 5
    if MANIFEST["cases"][name]["version_minor"] < 6:
        new = encoder.build_bundle(
            restored, segments_of(name), encodings=encodings_of(name) + ["MASKED"], **options
        )
        assert new[:2] == (skeleton, side) or zlib.ZLIB_VERSION != MANIFEST["zlib_version"]


# =================================================================== the decoder


def test_a_hand_written_masked_payload_restores():
    # masked_segments' float32 kernel written here: its fill, masks and the kept submatrix
    # RAW, then ZLIB, then with every row and column kept (allowed, if useless).
    skeleton, side, restored = golden("masked_segments")
    seg, matrix = _matrix("masked_segments", 1)
    fill = np.float32(0.75).view(np.uint32)
    rows = np.flatnonzero((matrix != fill).any(axis=1))
    columns = np.flatnonzero((matrix != fill).any(axis=0))
    kept = np.ascontiguousarray(matrix[np.ix_(rows, columns)]).tobytes()
    shape = matrix.shape
    others = payloads_of(side)
    for payload in (
        _masked_payload(fill.tobytes(), rows, columns, *shape, RAW, kept),
        _masked_payload(fill.tobytes(), rows, columns, *shape, ZLIB, zlib.compress(kept)),
        _masked_payload(
            fill.tobytes(), range(shape[0]), range(shape[1]), *shape, RAW, matrix.tobytes()
        ),
    ):
        assert decoder.restore_bytes(skeleton, rebuild(side, [others[0], payload, others[2]])) == (
            restored
        )


def _bad_float_kernel(payload_edit):
    """masked_segments with segment 1's payload changed by `payload_edit(payload, at)`
    (`at`: the payload's file offset); returns (skeleton, side, at)."""
    skeleton, side, _ = golden("masked_segments")
    payloads = list(payloads_of(side))
    at = payload_offsets(side)[1]
    payloads[1] = payload_edit(payloads[1])
    return skeleton, rebuild(side, payloads), at


def test_masked_header_rules():
    # The float32 kernel of masked_segments: 8 rows (1 mask byte), 40 columns (5 bytes).
    skeleton, side, _ = golden("masked_segments")
    payload = payloads_of(side)[1]
    at = payload_offsets(side)[1]
    rows_at, columns_at, code_at = at + 4, at + 5, at + 10
    field = "segment[1]."

    def bad(new_payload, name, offset=None):
        others = list(payloads_of(side))
        others[1] = new_payload
        expect_error(skeleton, rebuild(side, others), field + name, offset)

    for short in (b"", payload[:4], payload[:10]):  # fill, masks, inner_encoding missing
        bad(short, "payload_size")
    assert payload[4] != 0xFF and payload[5:10] != b"\xff" * 5
    bad(payload[:4] + b"\x00" + payload[5:], "row_mask", rows_at)  # keeps no row
    bad(payload[:5] + b"\x00" * 5 + payload[10:], "column_mask", columns_at)  # no column
    # Padding bits: 40 columns fill their 5 bytes; take the int8 kernel (20 rows: 3 bytes,
    # bits 20-23 of its row mask are padding; 36 columns: bits 36-39).
    int8 = payloads_of(side)[0]
    int8_at = payload_offsets(side)[0]
    others = list(payloads_of(side))
    for byte, bit, name, where in ((3, 4, "row_mask", 1), (8, 6, "column_mask", 4)):
        broken = bytearray(int8)
        broken[byte] |= 1 << bit
        others[0] = bytes(broken)
        expect_error(skeleton, rebuild(side, others), f"segment[0].{name}", int8_at + where)
    others[0] = int8
    for code in (DELTA, PACKED, MASKED, 11, 255):  # never wrapped, or unknown
        bad(payload[:10] + bytes([code]) + payload[11:], "inner_encoding", code_at)
    # A RAW inner of the wrong length, an inner stream cut short.
    bad(payload[:10] + bytes([RAW]) + b"\x00" * 8, "payload_size")
    expect_error(skeleton, rebuild(side, [others[0], payload[:-1], others[2]]))
    # A segment of 0 bytes cannot be MASKED: no row or column can be kept.
    assert payload[:4] == np.float32(0.75).tobytes()


def test_masked_part_rules_name_the_part():
    skeleton, side, _ = golden("masked")
    descriptors, payloads = parts_of(payloads_of(side)[0])
    k = next(i for i, d in enumerate(descriptors) if d["encoding"] == MASKED)
    payload_at = payload_offsets(side)[0] + descriptors[k]["at"]["payload"]
    seg = segments_of("masked")[0]  # 32 rows (4 bytes), 200 columns (25 bytes)
    assert (descriptors[k]["size"], descriptors[k]["channels"]) == (seg.size, seg.channels)
    code_at = 4 + 4 + 25

    def packed_with(new):
        parts = list(payloads)
        parts[k] = new
        return rebuild(side, [pack_parts(descriptors, parts)])

    payload = payloads[k]
    field = f"segment[0].part[{k}]."
    expect_error(skeleton, packed_with(payload[:20]), field + "payload_size")
    expect_error(
        skeleton,
        packed_with(payload[:4] + b"\x00" * 4 + payload[8:]),
        field + "row_mask",
        payload_at + 4,
    )
    expect_error(
        skeleton,
        packed_with(payload[:code_at] + bytes([PACKED]) + payload[code_at + 1 :]),
        field + "inner_encoding",
        payload_at + code_at,
    )
    # The inner payload's streams have the compact header (6.5): a stream error names
    # the part's fields.
    error = expect_error(skeleton, packed_with(payload[:-1]))
    assert error.field.startswith(field)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=60), st.integers(0, 3))
def test_random_masked_payloads_never_crash(payload, which):
    # Any bytes as segment 1's payload: restored exactly, or one FormatError.
    skeleton, side, restored = golden("masked_segments")
    others = list(payloads_of(side))
    others[1] = payloads_of(side)[1][: which * 3] + payload
    try:
        out = decoder.restore_bytes(skeleton, rebuild(side, others))
    except decoder.FormatError:
        return
    assert out == restored


# =================================================================== the encoder (section 13)


def _dead_unit_kernel(rng, rows, columns, dead_rows, dead_columns, density=0.2, levels=6):
    kernel = np.zeros((rows, columns), np.float32)
    live = rng.random((rows, columns)) < density
    kernel[live] = np.linspace(-1, 1, levels, dtype=np.float32)[rng.integers(0, levels, live.sum())]
    kernel[list(dead_rows), :] = 0
    kernel[:, list(dead_columns)] = 0
    return kernel


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 24),
    st.integers(1, 80),
    st.floats(0.0, 0.9),
    st.floats(0.0, 0.9),
    st.floats(0.02, 1.0),
    st.booleans(),
    st.integers(0, 2**31),
)
def test_masked_round_trip_only_when_strictly_smaller(
    rows, columns, dead_rows, dead_columns, density, packed, seed
):
    rng = np.random.default_rng(seed)
    kernel = _dead_unit_kernel(
        rng,
        rows,
        columns,
        np.flatnonzero(rng.random(rows) < dead_rows),
        np.flatnonzero(rng.random(columns) < dead_columns),
        density,
    )
    restored = b"\x01" * 16 + kernel.tobytes() + b"\x02" * 4
    segments = [Segment(16, kernel.nbytes, "float32", rows, "k")]
    old = encoder.build_bundle(restored, segments, packed=packed, masked=False)
    skeleton, side, stats = encoder.build_bundle(restored, segments, packed=packed)
    assert decoder.restore_bytes(skeleton, side) == restored
    used = "MASKED" in [s.encoding for s in stats]
    assert (HEADER.unpack_from(side).version_minor == 6) == used  # section 4.1
    if not used:
        assert (skeleton, side) == old[:2]
    else:
        assert len(skeleton) + len(side) < len(old[0]) + len(old[1])
        bits = kernel.view(np.uint32)
        values, counts = np.unique(bits, return_counts=True)
        other = bits != values[np.argmax(counts)]  # the fill: most frequent, smallest
        assert not (other.any(axis=1).all() and other.any(axis=0).all())
    info = decoder.inspect(side)["segments"]
    assert [(s["encoding"], s["payload_bytes"], s["nonzeros"]) for s in info] == [
        (s.encoding, s.payload_bytes, s.nonzeros) for s in stats
    ]


@settings(max_examples=25, deadline=None)
@given(bundles())
def test_masked_on_any_bundle_round_trips(bundle):
    restored, segments = bundle
    skeleton, side, stats = encoder.build_bundle(restored, segments)
    assert decoder.restore_bytes(skeleton, side) == restored
    minor = HEADER.unpack_from(side).version_minor
    assert (minor == 6) == ("MASKED" in [s.encoding for s in stats])


def test_masked_head_declines_where_nothing_is_left_out():
    values = np.arange(24, dtype=np.uint32).reshape(4, 6)
    assert encoder._masked_head(values.ravel(), 1) is None  # one row: nothing to mask
    assert encoder._masked_head(values.ravel(), 4) is None  # every row and column used
    assert encoder._masked_head(np.zeros(24, np.uint32), 4) is None  # all fill
    values[1] = 0
    values[:, 0] = 0
    head, kept = encoder._masked_head(values.ravel(), 4)
    assert head == b"\x00" * 4 + bytes([0b1101]) + bytes([0b111110])
    assert kept.shape == (3, 5) and (kept == values[[0, 2, 3]][:, 1:]).all()


def test_dead_units_of_a_lenet_like_layer_pay():
    # A 300 × 784 layer at 1.6% density whose dead units leave 55 rows and 326 columns
    # empty, as the pruned LeNet-300-100's ip1 (BENCHMARKS.md): MASKED wins, by > 3%.
    rng = np.random.default_rng(0)
    kernel = _dead_unit_kernel(
        rng, 300, 784, rng.choice(300, 55, False), rng.choice(784, 326, False), 0.028, 8
    )
    restored = kernel.tobytes()
    segments = [Segment(0, kernel.nbytes, "float32", 300, "ip1")]
    plain = encoder.build_bundle(restored, segments, masked=False)
    skeleton, side, stats = encoder.build_bundle(restored, segments)
    assert [(s.encoding, s.inner_encoding) for s in stats] == [("MASKED", "CLUSTERED_SPARSE")]
    assert len(side) < 0.97 * len(plain[1])
    assert decoder.restore_bytes(skeleton, side) == restored


def test_masked_option():
    rng = np.random.default_rng(1)
    kernel = _dead_unit_kernel(rng, 40, 100, range(20), range(50), 0.3)
    restored = kernel.tobytes()
    segments = [Segment(0, kernel.nbytes, "float32", 40, "k")]
    for kwargs in ({"masked": False}, {"encodings": ALL_BUT_MASKED}):
        _, side, stats = encoder.build_bundle(restored, segments, **kwargs)
        assert "MASKED" not in [s.encoding for s in stats]
    with pytest.raises(TypeError, match="masked"):
        encoder.build_bundle(restored, segments, masked="yes")
