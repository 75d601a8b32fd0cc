"""Tests of converters.format: its layouts, codes and limits are those of the spec.

The field tables of docs/bundle-format.md are parsed here and compared with the
`Layout`s, so the one Python definition of each byte layout is checked against the
normative text; every other test takes its byte positions from converters.format.
"""

import pathlib
import re

import numpy as np
import pytest
from sidecar_testing import (
    DENSE_INDICES,
    SPARSE_ESCAPE_RUN,
    SPARSE_GAPS,
    SPARSE_INDICES,
    hand_vectors,
    stream_data,
)

from converters import format as fmt

SPEC = (pathlib.Path(__file__).parents[1] / "docs" / "bundle-format.md").read_text(encoding="utf-8")
_CODES = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q"}


def spec_section(heading):
    """The text of the section whose heading starts with `heading` (e.g. "## 4.")."""
    start = SPEC.index("\n" + heading)
    level = heading.split(" ")[0]
    end = SPEC.find("\n" + level + " ", start + 1)
    return SPEC[start : end if end >= 0 else len(SPEC)]


def spec_tables(heading):
    """The tables of a section: for each, its rows (lists of cell strings) without the heading row."""
    tables, rows = [], None
    for line in spec_section(heading).splitlines():
        if line.startswith("|"):
            if rows is None:
                rows = []
                tables.append(rows)
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        else:
            rows = None
    return [table[2:] for table in tables]  # without the heading row and the |---| row


def spec_table(heading):
    """Rows of the first table of a section."""
    return spec_tables(heading)[0]


def _name(cell):
    return cell.strip("`")


def _layout_rows(layout):
    rows = []
    for field in layout.fields:
        rows.append((field.offset, field.size, field.code, field.name))
    return rows


def _spec_rows(rows):
    """(offset, size, struct code, name) of a spec table's fixed rows."""
    out = []
    for offset, size, kind, name, *_ in rows:
        if not offset.isdigit() or not size.isdigit():
            continue
        if kind in _CODES:
            code = _CODES[kind]
        elif _name(name) == "reserved":
            code = f"{size}x"
        else:
            assert kind == "bytes", kind
            code = f"{size}s"
        out.append((int(offset), int(size), code, _name(name)))
    return out


def test_header_layout_is_the_spec_table():
    rows = spec_table("## 4. Header")
    assert _layout_rows(fmt.HEADER) == _spec_rows(rows)
    offset, size, kind, name, _ = rows[-1]  # header_crc32, at header_size − 4
    assert (offset, int(size), _CODES[kind], _name(name)) == (
        "`header_size` − 4",
        fmt.HEADER_CRC.size,
        fmt.HEADER_CRC.code,
        fmt.HEADER_CRC.name,
    )
    assert fmt.HEADER_SIZE == fmt.HEADER.size + fmt.HEADER_CRC.size == 120
    assert f"`header_size` = {fmt.HEADER_SIZE}" in spec_section("## 4. Header")


def test_entry_layout_is_the_spec_table():
    assert _layout_rows(fmt.ENTRY) == _spec_rows(spec_table("## 5. Segment table"))
    assert f"Version 1.0 entry ({fmt.ENTRY_SIZE} bytes)" in spec_section("## 5. Segment table")


def test_stream_layout_is_the_spec_table():
    rows = spec_table("## 6. Canonical Huffman streams")
    assert _layout_rows(fmt.STREAM) == _spec_rows(rows)
    lengths = rows[len(fmt.STREAM.fields)]
    assert (int(lengths[0]), lengths[1], _name(lengths[3])) == (
        fmt.STREAM.size,
        "⌈alphabet/2⌉",
        "lengths",
    )


def test_codebook_fields_are_the_spec_table():
    rows = spec_table("### 7.3 Codebooks")
    assert _spec_rows(rows) == [
        (0, fmt.CODEBOOK_COUNT.size, fmt.CODEBOOK_COUNT.code, fmt.CODEBOOK_COUNT.name)
    ]
    _, size, kind, name, _ = rows[1]
    assert (size, kind, _name(name)) == ("2·C", "u16[C]", fmt.ENTRY_COUNT.name)
    assert fmt.ENTRY_COUNT.size == 2 and fmt.ENTRY_COUNT.dtype == np.dtype("<u2")
    assert re.search(r"\nu8 +escape_run +E, 1 … 255", spec_section("### 7.4")), "escape_run is a u8"
    assert fmt.ESCAPE_RUN.code == "B" and fmt.MAX_ESCAPE_RUN == 255


def test_dtype_and_encoding_codes_are_the_spec_tables():
    dtypes = spec_tables("## 5. Segment table")[1]
    assert {
        name.split("`")[1]: (int(code), int(esize)) for code, name, esize in dtypes
    } == fmt.DTYPES
    encodings = {_name(name): int(code) for code, name, _ in spec_table("## 7. Segment encodings")}
    assert encodings == fmt.ENCODINGS


def test_limits_are_the_spec_limits():
    header = spec_section("## 4. Header")
    assert f"{fmt.HEADER_SIZE} ≤ `header_size` ≤ {fmt.MAX_HEADER_SIZE}" in header
    assert f"{fmt.ENTRY_SIZE} ≤ `entry_size` ≤ {fmt.MAX_ENTRY_SIZE}" in header
    assert fmt.MAX_RESTORED_SIZE == 2**31 - 1 and "≤ 2^31 − 1" in header
    assert f"`alphabet` | number of code lengths that follow, 0 … {fmt.MAX_ALPHABET}" in SPEC
    assert f"K_c: entries in codebook *c*, 0 … {fmt.MAX_CODEBOOK}" in SPEC
    assert f"requires `channels` ≤ {fmt.MAX_CODEBOOK_COUNT}" in SPEC
    assert fmt.MAGIC == bytes.fromhex("4b444357") and (fmt.VERSION_MAJOR, fmt.VERSION_MINOR) == (
        1,
        6,
    )
    assert SPEC.startswith(f"# keras-dc bundle format, version 1.{fmt.VERSION_MINOR} (normative)")
    assert f"requires `channels` ≤ {fmt.MAX_CODEBOOK_COUNT}" in spec_section("### 7.6 SPARSE_RAW")
    grouped = spec_section("### 7.8 GROUPED_SPARSE")
    assert f"G, 1 … min(channels, {fmt.MAX_GROUPS})" in grouped
    assert f"K_g, 0 … {fmt.MAX_CODEBOOK}" in grouped


def test_minor_version_is_the_lowest_that_defines_the_codes():
    # 4.1: 1 only for a file that uses a v1.1 code, 2 for a v1.2 code, so older files
    # keep their bytes.
    codes = spec_section("## 7. Segment encodings")
    since = {
        int(code): int(re.search(r"since 1\.(\d)", text).group(1)) if "since 1." in text else 0
        for code, _, text in spec_table("## 7. Segment encodings")
    }
    assert "| 4 | `SPARSE_RAW` | anything (since 1.1)" in codes
    assert fmt.ENCODING_MINOR == since
    assert since[fmt.GROUPED_SPARSE] == since[fmt.GROUPED_DENSE] == 2
    assert fmt.minor_version_for([]) == 0
    assert (
        fmt.minor_version_for([fmt.RAW, fmt.ZLIB, fmt.CLUSTERED_SPARSE, fmt.CLUSTERED_DENSE]) == 0
    )
    assert fmt.minor_version_for([fmt.ZLIB, fmt.SPARSE_RAW]) == 1
    assert fmt.minor_version_for([fmt.SPARSE_RAW, fmt.GROUPED_DENSE, fmt.RAW]) == 2
    assert fmt.minor_version_for([fmt.DELTA, fmt.RAW]) == 3
    assert fmt.minor_version_for([fmt.PACKED, fmt.DELTA, fmt.RAW]) == 4
    assert fmt.minor_version_for([fmt.PACKED, fmt.ZLIB_DICT]) == 5
    assert fmt.minor_version_for([fmt.PACKED, fmt.MASKED, fmt.CLUSTERED_SPARSE]) == 6
    assert "`version_minor` | 0 … 6 (section 4.1)" in spec_section("## 4. Header")
    assert fmt.CLUSTERED_CODES == {
        fmt.CLUSTERED_SPARSE,
        fmt.CLUSTERED_DENSE,
        fmt.GROUPED_SPARSE,
        fmt.GROUPED_DENSE,
    }
    assert fmt.SPARSE_CODES == {fmt.CLUSTERED_SPARSE, fmt.GROUPED_SPARSE}
    assert fmt.GROUPED_CODES == {fmt.GROUPED_SPARSE, fmt.GROUPED_DENSE}


def test_sparse_raw_fields_are_the_spec_table():
    rows = spec_table("### 7.6 SPARSE_RAW")
    assert _spec_rows(rows) == [
        (0, fmt.SLICE_COUNT.size, fmt.SLICE_COUNT.code, fmt.SLICE_COUNT.name)
    ]
    # The fields after slice_count, at offsets that depend on C and esize, in this order:
    assert [(r[0], r[1], r[2], _name(r[3])) for r in rows[1:]] == [
        ("2", "C·esize", "bytes", "background"),
        ("2 + C·esize", f"{fmt.ESCAPE_RUN.size}", "u8", fmt.ESCAPE_RUN.name),
        ("3 + C·esize", "…", "HuffmanStream", "gaps"),
        ("after `gaps`", "N·esize", "bytes", "values"),
    ]
    assert fmt.ESCAPE_RUN.code == "B"


def test_layout_pack_and_unpack_round_trip():
    values = {
        "offset": 1,
        "size": 2**40,
        "payload_size": 3,
        "payload_crc32": 2**32 - 1,
        "channels": 5,
        "name_offset": 6,
        "name_size": 7,
        "dtype": 8,
        "encoding": 9,
    }
    packed = fmt.ENTRY.pack(**values)
    assert len(packed) == fmt.ENTRY_SIZE
    assert packed[fmt.ENTRY["reserved"].offset :] == bytes(fmt.ENTRY["reserved"].size)
    assert fmt.ENTRY.unpack_from(b"pad" + packed, 3)._asdict() == values
    assert fmt.ENTRY["size"].unpack_from(packed) == 2**40
    with pytest.raises(TypeError):
        fmt.ENTRY.pack(offset=1)  # every field but the reserved ones is needed


def test_lengths_are_nibble_packed_low_first():
    lengths = np.array([1, 2, 0, 15, 3], np.uint8)
    packed = fmt.pack_lengths(lengths)
    assert packed == bytes([0x21, 0xF0, 0x03]) and len(packed) == fmt.lengths_size(lengths.size)
    assert fmt.unpack_lengths(packed).tolist() == [1, 2, 0, 15, 3, 0]


def test_format_error_names_field_and_offset():
    error = fmt.STREAM.error("nbits", "bad.", base=100, prefix="segment[2].indices.")
    assert isinstance(error, ValueError)
    assert (error.offset, error.field) == (108, "segment[2].indices.nbits")
    assert str(error) == "segment[2].indices.nbits (byte 108): bad."


def test_hand_vector_positions():
    # The payload positions the decoder tests patch are those of hand_vectors.py.
    dense, sparse = hand_vectors.PAYLOAD_DENSE, hand_vectors.PAYLOAD_SPARSE
    assert fmt.CODEBOOK_COUNT.unpack_from(dense) == 1
    assert tuple(fmt.STREAM.unpack_from(dense, DENSE_INDICES)) == (8, 11, 2)
    assert stream_data(DENSE_INDICES, 2) + 2 == len(dense)
    assert fmt.ESCAPE_RUN.unpack_from(sparse, SPARSE_ESCAPE_RUN) == 3
    assert tuple(fmt.STREAM.unpack_from(sparse, SPARSE_GAPS)) == (3, 6, 4)
    assert tuple(fmt.STREAM.unpack_from(sparse, SPARSE_INDICES)) == (2, 3, 2)
    assert stream_data(SPARSE_INDICES, 2) + 1 == len(sparse)
