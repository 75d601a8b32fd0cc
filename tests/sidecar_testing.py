"""Test helpers for the sidecar tests: golden files, and a test-side patcher of sidecars.

Every byte position comes from `converters.format` (checked against the spec's tables
in test_format.py), so the layout is written once in Python, tests included. The one
exception is tests/golden/hand_vectors.py, written byte by byte on purpose; the
positions of its payloads' fields are derived below and checked in test_format.py.
"""

import importlib.util
import json
import pathlib
import zlib

import pytest

from converters.decoder import restore_bytes
from converters.encoder import Segment
from converters.format import (
    CODEBOOK_COUNT,
    ENCODING_MINOR,
    ENCODING_NAMES,
    ENTRY,
    ENTRY_COUNT,
    ENTRY_SIZE,
    ESCAPE_RUN,
    HEADER,
    HEADER_CRC,
    HEADER_SIZE,
    PART,
    PART_COUNT,
    STREAM,
    FormatError,
    Varint,
    lengths_size,
)

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

# Where the hand vectors' payload fields are (hand_vectors.py, docs sections 7.3–7.5):
# each payload has one codebook of two float32 entries.
HAND_CODEBOOKS = CODEBOOK_COUNT.size + ENTRY_COUNT.size + 2 * 4
DENSE_INDICES = HAND_CODEBOOKS  # the dense payload's index stream
SPARSE_ESCAPE_RUN = HAND_CODEBOOKS + 4  # after one float32 background value
SPARSE_GAPS = SPARSE_ESCAPE_RUN + ESCAPE_RUN.size
SPARSE_INDICES = SPARSE_GAPS + STREAM.size + lengths_size(4) + 1  # gaps: 4 lengths, 1 data byte


def stream_data(stream_at, alphabet):
    """Offset of the `data` field of a stream at `stream_at` with `alphabet` lengths."""
    return stream_at + STREAM.size + lengths_size(alphabet)


def golden(name):
    read = lambda ext: (GOLDEN / f"{name}.{ext}").read_bytes()
    return read("skeleton"), read("dcw"), read("restored")


def segments_of(name):
    return [Segment(**s) for s in MANIFEST["cases"][name]["segments"]]


def encodings_of(name):
    """The encodings the golden case `name` was written with: those of its format version."""
    minor = MANIFEST["cases"][name]["version_minor"]
    return [
        ENCODING_NAMES[code] for code, since in sorted(ENCODING_MINOR.items()) if since <= minor
    ]


def options_of(name):
    """The other `build_bundle` options the golden case `name` was written with (its
    manifest's `options`, e.g. `packed=False` for a 1.5 file without PACKED)."""
    return MANIFEST["cases"][name].get("options", {})


def _entry_base(header_size, entry_size, i):
    return header_size + i * entry_size


def reseal(side):
    """Recompute `table_crc32` and `header_crc32` of `side` (bytes-like) after a patch."""
    b = bytearray(side)
    h = HEADER.unpack_from(b)
    names_end = h.header_size + h.segment_count * h.entry_size + h.names_size
    HEADER["table_crc32"].pack_into(b, 0, zlib.crc32(b[h.header_size : names_end]))
    return seal_header(b)


def seal_header(side):
    """Recompute `header_crc32` of `side` (bytes-like) after a patch."""
    b = bytearray(side)
    crc_at = HEADER["header_size"].unpack_from(b) - HEADER_CRC.size
    HEADER_CRC.pack_into(b, crc_at, zlib.crc32(b[:crc_at]))
    return bytes(b)


def rebuild(side, payloads=None):
    """Rewrite payload sizes and every checksum of `side` (a test-side writer).

    Lets a test change a payload or a header/table field and still get past the CRC
    checks, so that the structural checks behind them are exercised.
    """
    b = bytearray(side)
    header_size = HEADER["header_size"].unpack_from(b)
    count = HEADER["segment_count"].unpack_from(b)
    entry_size = HEADER["entry_size"].unpack_from(b)
    names_end = header_size + count * entry_size + HEADER["names_size"].unpack_from(b)
    if not HEADER_SIZE <= header_size <= len(b) or entry_size < ENTRY_SIZE or names_end > len(b):
        raise ValueError("header too damaged to re-checksum")
    cursor, old = names_end, []
    for i in range(count):
        size = ENTRY["payload_size"].unpack_from(b, _entry_base(header_size, entry_size, i))
        old.append(bytes(b[cursor : cursor + size]))
        cursor += size
    payloads = old if payloads is None else payloads
    for i, payload in enumerate(payloads):
        base = _entry_base(header_size, entry_size, i)
        ENTRY["payload_size"].pack_into(b, base, len(payload))
        ENTRY["payload_crc32"].pack_into(b, base, zlib.crc32(payload))
    HEADER["payload_size"].pack_into(b, 0, sum(len(p) for p in payloads))
    out = b[:names_end] + b"".join(payloads)
    HEADER["table_crc32"].pack_into(out, 0, zlib.crc32(out[header_size:names_end]))
    return seal_header(out)


def payloads_of(side):
    h = HEADER.unpack_from(side)
    cursor = h.header_size + h.segment_count * h.entry_size + h.names_size
    out = []
    for i in range(h.segment_count):
        size = ENTRY["payload_size"].unpack_from(side, _entry_base(h.header_size, h.entry_size, i))
        out.append(side[cursor : cursor + size])
        cursor += size
    return out


def payload_offsets(side):
    """File offset of each segment's payload."""
    h = HEADER.unpack_from(side)
    cursor = h.header_size + h.segment_count * h.entry_size + h.names_size
    out = []
    for i in range(h.segment_count):
        out.append(cursor)
        cursor += ENTRY["payload_size"].unpack_from(
            side, _entry_base(h.header_size, h.entry_size, i)
        )
    return out


def entry_field(side, i, name):
    """The value of field `name` of segment-table entry `i`."""
    h = HEADER.unpack_from(side)
    return ENTRY[name].unpack_from(side, _entry_base(h.header_size, h.entry_size, i))


def parts_of(payload):
    """The part table of a valid PACKED payload (docs/bundle-format.md 7.10).

    Returns (descriptors, payloads): per part a dict of its fields' values and, under
    "at", each field's offset in `payload` (and "payload": where its payload starts).
    """
    end = len(payload)
    count, pos = PART_COUNT.read(payload, 0, end)
    descriptors = []
    for _ in range(count):
        d = {"at": {}}
        for field in PART:
            d["at"][field.name] = pos
            if isinstance(field, Varint):
                d[field.name], pos = field.read(payload, pos, end)
            else:
                d[field.name] = field.unpack_from(payload, pos)
                pos += field.size
        descriptors.append(d)
    payloads = []
    for d in descriptors:
        d["at"]["payload"] = pos
        payloads.append(bytes(payload[pos : pos + d["payload_size"]]))
        pos += d["payload_size"]
    return descriptors, payloads


def pack_parts(descriptors, payloads):
    """A PACKED payload (7.10): the parts' descriptors (dicts of their fields; each
    `payload_size` is its payload's length) and payloads."""
    out = [PART_COUNT.pack(len(descriptors))]
    for d, payload in zip(descriptors, payloads):
        values = dict(d, payload_size=len(payload))
        for field in PART:
            out.append(field.pack(values[field.name]))
    return b"".join(out + list(payloads))


def with_header(side, name, value):
    """`side` with header field `name` set to `value` and a valid header CRC."""
    b = bytearray(side)
    HEADER[name].pack_into(b, 0, value)
    return seal_header(b)


def with_entry(side, i, name, value):
    """`side` with field `name` of segment-table entry `i` set and valid CRCs.

    `value` is an int for the field, or bytes written from the field's first byte.
    """
    b = bytearray(side)
    h = HEADER.unpack_from(b)
    base = _entry_base(h.header_size, h.entry_size, i)
    if isinstance(value, bytes):
        at = base + ENTRY[name].offset
        b[at : at + len(value)] = value
    else:
        ENTRY[name].pack_into(b, base, value)
    return reseal(b)


def expect_error(skeleton, side, field=None, offset=None):
    with pytest.raises(FormatError) as info:
        restore_bytes(skeleton, side)
    if field is not None:
        assert info.value.field == field, str(info.value)
    if offset is not None:
        assert info.value.offset == offset, str(info.value)
    return info.value
