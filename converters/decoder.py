"""Reader of the keras-dc bundle: checks a sidecar, restores R from it, inspects it.

Follows the levels of `docs/bundle-format.md`: the header and the tables (sections 3,
4, 5, 8), each segment's payload (section 7: RAW, ZLIB, ZLIB_DICT with its preset
dictionary, and the clustered encodings' codebooks, background, gap and index streams,
and the grouped encodings' codebook map; SPARSE_RAW's background, gaps and values;
DELTA's inner payload and running sums; MASKED's fill, row and column masks and inner
payload; PACKED's part table, each part read as a segment of its own), each HuffmanStream
(section 6, its compact header inside PACKED parts: 6.5; decoded by `converters.huffman`), and restoring (section 9). Field offsets
and codes come from `converters.format`. The checks run in the order of section 10, and
every malformed input raises `FormatError`, naming the byte offset and the field:

    restored = restore_bytes(skeleton, sidecar)
    info = inspect(sidecar)     # header fields and per-segment statistics
"""

import dataclasses
import hashlib
import zlib

import numpy as np

from converters import huffman
from converters.format import (
    CODEBOOK_COUNT,
    COMPACT_STREAM,
    DELTA,
    DTYPE_BY_CODE,
    ENCODING_NAMES,
    ENTRY,
    ENTRY_COUNT,
    ENTRY_SIZE,
    ESCAPE_RUN,
    GROUPED_CODES,
    HEADER,
    HEADER_CRC,
    HEADER_SIZE,
    INNER_CODES,
    INNER_ENCODING,
    MAGIC,
    MASKED,
    MAX_ALPHABET,
    MAX_CHANNELS,
    MAX_CODEBOOK,
    MAX_ENTRY_SIZE,
    MAX_ESCAPE_RUN,
    MAX_GROUPS,
    MAX_HEADER_SIZE,
    MAX_RESTORED_SIZE,
    MIN_PART_SIZE,
    PACKED,
    PART_CHANNELS,
    PART_CODES,
    PART_COUNT,
    PART_DTYPE,
    PART_ENCODING,
    PART_PAYLOAD_SIZE,
    PART_SIZE,
    RAW,
    SLICE_COUNT,
    SPARSE_CODES,
    SPARSE_RAW,
    STREAM,
    VERSION_MAJOR,
    ZLIB,
    ZLIB_DICT,
    ZLIB_DICTID,
    ZLIB_FDICT,
    ZLIB_FLG,
    FormatError,
    Varint,
    element_dtype,
    lengths_size,
    mask_size,
    skeleton_dict,
    unpack_lengths,
)
from converters.stats import SegmentStats, count_nonzero, nonzero_mask

__all__ = ["FormatError", "inspect", "restore_bytes"]

# Bytes a reader needs before it can check magic, version and header_size (check 1).
_PREFIX_SIZE = HEADER["header_size"].end


class _Reader:
    """Bounds-checked little-endian reads from the sidecar; errors are FormatErrors."""

    def __init__(self, data, start=0, end=None):
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end

    def take(self, n, field):
        if n > self.end - self.pos:
            raise FormatError(self.pos, field, f"needs {n} bytes, {self.end - self.pos} present.")
        start = self.pos
        self.pos += n
        return self.data[start : self.pos]

    def field(self, field, prefix):
        """The value of the `format.Field` at the current position."""
        return field.unpack_from(self.take(field.size, prefix + field.name))

    def varint(self, field, prefix):
        """The value of the `format.Varint` at the current position (section 2)."""
        value, self.pos = field.read(self.data, self.pos, self.end, prefix)
        return value

    def layout(self, layout, prefix):
        """The values of the `format.Layout` at the current position, checked field by field."""
        start = self.pos
        for field in layout.fields:
            self.take(field.size, prefix + field.name)
        return layout.unpack_from(self.data, start)


# --- tables (sections 4, 5, 8)


@dataclasses.dataclass
class _Entry:
    """A segment-table entry, or a part of a PACKED segment (7.10) read as one."""

    index: int
    table_offset: int  # file offset of the entry
    offset: int
    size: int
    payload_size: int
    payload_crc32: int
    channels: int
    name: str
    dtype: str
    esize: int
    encoding: int
    payload_offset: int = 0
    part: int = -1  # k of a part of a PACKED segment; -1 for a segment
    field_offsets: dict = None  # a part's: file offset of each descriptor field

    @property
    def prefix(self):
        if self.part >= 0:
            return f"segment[{self.index}].part[{self.part}]."
        return f"segment[{self.index}]."

    @property
    def compact(self):
        """Whether the payload's HuffmanStreams have the compact header (6.5)."""
        return self.part >= 0

    def field(self, name):
        return self.prefix + name

    def error(self, name, message):
        """A FormatError naming field `name` of this entry (or part descriptor)."""
        if self.field_offsets is not None:
            return FormatError(self.field_offsets[name], self.prefix + name, message)
        return ENTRY.error(name, message, self.table_offset, self.prefix)


@dataclasses.dataclass
class _Header:
    fields: tuple  # format.HEADER.Values
    entries: list  # _Entry per segment, in table order


def _parse_header(sidecar, max_restored_size):
    """Checks 1–13 of section 10; returns the sidecar as a memoryview and its `_Header`."""
    data = memoryview(sidecar).cast("B")
    n = len(data)
    if n < _PREFIX_SIZE or bytes(data[0 : len(MAGIC)]) != MAGIC:
        raise HEADER.error(
            "magic",
            f"not a keras-dc sidecar (expected {MAGIC!r} and at least {_PREFIX_SIZE} bytes).",
        )
    major = HEADER["version_major"].unpack_from(data)
    minor = HEADER["version_minor"].unpack_from(data)
    header_size = HEADER["header_size"].unpack_from(data)
    if major != VERSION_MAJOR:
        raise HEADER.error(
            "version_major", f"version {major}.{minor} is not supported (major {VERSION_MAJOR})."
        )
    if not HEADER_SIZE <= header_size <= MAX_HEADER_SIZE or header_size > n:
        raise HEADER.error(
            "header_size",
            f"{header_size} is out of range [{HEADER_SIZE}, min({MAX_HEADER_SIZE}, {n})].",
        )
    crc_at = header_size - HEADER_CRC.size
    if zlib.crc32(data[:crc_at]) != HEADER_CRC.unpack_from(data, crc_at):
        raise HEADER_CRC.error("header checksum mismatch.", crc_at)
    h = HEADER.unpack_from(data)
    if not ENTRY_SIZE <= h.entry_size <= MAX_ENTRY_SIZE:
        raise HEADER.error(
            "entry_size", f"{h.entry_size} is out of range [{ENTRY_SIZE}, {MAX_ENTRY_SIZE}]."
        )
    limit = min(MAX_RESTORED_SIZE, max_restored_size)
    if h.restored_size > limit:
        raise HEADER.error(
            "restored_size", f"{h.restored_size} bytes exceeds the limit of {limit}."
        )
    remaining = n - header_size
    if h.segment_count > remaining // h.entry_size:
        raise HEADER.error(
            "segment_count",
            f"{h.segment_count} entries of {h.entry_size} bytes do not fit in {remaining} bytes.",
        )
    table_end = header_size + h.segment_count * h.entry_size
    if h.names_size > n - table_end:
        raise HEADER.error(
            "names_size", f"{h.names_size} bytes do not fit in {n - table_end} bytes."
        )
    names_end = table_end + h.names_size
    if h.payload_size != n - names_end:
        raise HEADER.error(
            "payload_size",
            f"{h.payload_size} does not match the {n - names_end} bytes after the name table.",
        )
    if zlib.crc32(data[header_size:names_end]) != h.table_crc32:
        raise HEADER.error("table_crc32", "segment/name table checksum mismatch.")

    entries = []
    previous_end = 0
    payload_cursor = names_end
    total_size = 0
    reserved = ENTRY["reserved"]
    for i in range(h.segment_count):
        base = header_size + i * h.entry_size
        e = ENTRY.unpack_from(data, base)
        prefix = f"segment[{i}]."
        if e.dtype not in DTYPE_BY_CODE:
            raise ENTRY.error("dtype", f"unknown dtype code {e.dtype}.", base, prefix)
        if e.encoding not in ENCODING_NAMES:
            raise ENTRY.error("encoding", f"unknown encoding code {e.encoding}.", base, prefix)
        if any(data[base + reserved.offset : base + reserved.end]):
            raise reserved.error("reserved bytes must be zero.", base, prefix)
        dtype, esize = DTYPE_BY_CODE[e.dtype]
        if e.channels < 1:
            raise ENTRY.error("channels", "must be at least 1.", base, prefix)
        if e.size % (e.channels * esize):
            raise ENTRY.error(
                "size",
                f"{e.size} is not a multiple of channels × esize = {e.channels * esize}.",
                base,
                prefix,
            )
        if e.offset < previous_end:
            raise ENTRY.error(
                "offset",
                f"{e.offset} overlaps or precedes the previous segment (ends at {previous_end}).",
                base,
                prefix,
            )
        if e.size > h.restored_size or e.offset > h.restored_size - e.size:
            raise ENTRY.error(
                "size",
                f"segment [{e.offset}, {e.offset}+{e.size}) exceeds restored_size {h.restored_size}.",
                base,
                prefix,
            )
        if e.payload_size > n - payload_cursor:
            raise ENTRY.error(
                "payload_size",
                f"{e.payload_size} exceeds the {n - payload_cursor} unassigned payload bytes.",
                base,
                prefix,
            )
        if e.name_offset > h.names_size or e.name_size > h.names_size - e.name_offset:
            raise ENTRY.error("name_offset", "name lies outside the name table.", base, prefix)
        name_start = table_end + e.name_offset
        try:
            name = str(data[name_start : name_start + e.name_size], "utf-8")
        except UnicodeDecodeError:
            raise ENTRY.error("name_offset", "name is not valid UTF-8.", base, prefix) from None
        entries.append(
            _Entry(
                i,
                base,
                e.offset,
                e.size,
                e.payload_size,
                e.payload_crc32,
                e.channels,
                name,
                dtype,
                esize,
                e.encoding,
                payload_cursor,
            )
        )
        payload_cursor += e.payload_size
        previous_end = e.offset + e.size
        total_size += e.size
    if payload_cursor != n:
        raise HEADER.error(
            "payload_size",
            f"segment payloads cover {payload_cursor - names_end} of {h.payload_size} bytes.",
        )
    if h.skeleton_size != h.restored_size - total_size:
        raise HEADER.error(
            "skeleton_size",
            f"{h.skeleton_size} != restored_size − Σ size = {h.restored_size - total_size}.",
        )
    return data, _Header(h, entries)


# --- HuffmanStream (section 6)


@dataclasses.dataclass
class _Stream:
    field: str
    field_offsets: dict  # file offset of `count`, `nbits` and `alphabet`
    count: int
    nbits: int
    lengths: np.ndarray
    data_offset: int
    data: memoryview
    symbols: np.ndarray = None
    hist: np.ndarray = None

    def error(self, name, message):
        """A FormatError naming field `name` of the stream's header."""
        return FormatError(self.field_offsets[name], f"{self.field}.{name}", message)


def _read_stream_header(rd, prefix, compact):
    """(count, nbits, alphabet) of a stream header (6, or 6.5 when `compact`) and the file
    offset of each field."""
    if not compact:
        start = rd.pos
        fixed = rd.layout(STREAM, prefix)
        return fixed, {f.name: start + f.offset for f in STREAM.fields}
    offsets, values = {}, []
    for field in COMPACT_STREAM:
        offsets[field.name] = rd.pos
        values.append(rd.varint(field, prefix))
    return STREAM.Values(*values), offsets


def _read_stream(rd, field, compact=False):
    """Reads a stream's fields and checks the rules of 6.4 that need no decoding.

    `compact`: the stream has the varint header of 6.5 (inside a PACKED part)."""
    prefix = field + "."
    fixed, offsets = _read_stream_header(rd, prefix, compact)
    stream = _Stream(field, offsets, fixed.count, fixed.nbits, None, 0, None)
    if fixed.alphabet > MAX_ALPHABET:
        raise stream.error("alphabet", f"{fixed.alphabet} exceeds {MAX_ALPHABET}.")
    lengths_at = rd.pos
    lengths = unpack_lengths(rd.take(lengths_size(fixed.alphabet), prefix + "lengths"))
    if fixed.alphabet % 2:
        if lengths[-1]:
            raise FormatError(rd.pos - 1, prefix + "lengths", "unused high nibble must be zero.")
        lengths = lengths[:-1]
    if fixed.count == 0:
        if fixed.nbits or fixed.alphabet:
            raise stream.error("nbits", "an empty stream must have nbits = 0 and alphabet = 0.")
    else:
        if huffman.kraft_deficit(lengths) != 1:
            raise FormatError(
                lengths_at,
                prefix + "lengths",
                "code lengths must leave exactly one reserved codeword (Kraft sum 1 − 2^−L).",
            )
        if not fixed.count <= fixed.nbits <= huffman.MAX_CODE_LENGTH * fixed.count:
            raise stream.error(
                "nbits", f"{fixed.nbits} bits cannot hold {fixed.count} codewords of 1..15 bits."
            )
    stream.lengths = lengths
    stream.data_offset = rd.pos
    stream.data = rd.take((fixed.nbits + 7) // 8, prefix + "data")
    return stream


def _decode_stream(stream):
    if stream.count == 0:
        stream.symbols = np.zeros(0, np.uint8)
        stream.hist = np.zeros(0, np.int64)
        return stream
    try:
        symbols, hist = huffman.decode_counted(stream.data, stream.lengths, stream.count)
    except huffman.HuffmanDecodeError as exc:
        offset = stream.data_offset + max(exc.bit, 0) // 8
        raise FormatError(offset, stream.field + ".data", str(exc)) from None
    consumed = int(np.dot(hist, stream.lengths[: hist.size]))
    if consumed != stream.nbits:
        raise stream.error(
            "nbits", f"{stream.count} symbols take {consumed} bits, not {stream.nbits}."
        )
    tail_bits = stream.nbits % 8
    if tail_bits and stream.data[-1] >> tail_bits:
        raise FormatError(
            stream.data_offset + len(stream.data) - 1,
            stream.field + ".data",
            "padding bits must be zero.",
        )
    stream.symbols, stream.hist = symbols, hist
    return stream


# --- gaps (section 7.4, also used by 7.6)


def _read_gaps(rd, entry):
    """Reads `escape_run` and the gap stream's fields (7.4), checking the alphabet."""
    escape_at = rd.pos
    escape_run = rd.field(ESCAPE_RUN, entry.prefix)
    if escape_run < 1:
        raise ESCAPE_RUN.error(f"must be in 1..{MAX_ESCAPE_RUN}.", escape_at, entry.prefix)
    gaps = _read_stream(rd, entry.field("gaps"), entry.compact)
    if gaps.lengths.size > escape_run + 1:
        raise gaps.error(
            "alphabet", f"{gaps.lengths.size} symbols exceed escape_run + 1 = {escape_run + 1}."
        )
    return escape_run, gaps


def _decode_gaps(gaps, escape_run, elements, emitted, count_error):
    """Decodes the gap stream into the emitted positions (int32, increasing) and checks
    the rules of 7.4: `emitted` non-escape symbols (else `count_error(found)` is
    raised), no escape at the end, every position < `elements`."""
    _decode_stream(gaps)
    escapes = int(gaps.hist[0]) if gaps.hist.size else 0
    if gaps.count - escapes != emitted:
        raise count_error(gaps.count - escapes)
    if not gaps.count:
        return np.zeros(0, np.int64)
    if gaps.symbols[-1] == 0:
        raise FormatError(
            gaps.data_offset,
            gaps.field + ".data",
            "the gap stream must not end with an escape.",
        )
    # Σ steps = one past the last non-zero position: check it before the cumsum,
    # which then fits in int32 (elements < 2^31).
    steps_of = np.arange(gaps.hist.size, dtype=np.int64)
    steps_of[0] = escape_run
    end = int(np.dot(gaps.hist, steps_of))
    if end > elements:
        raise FormatError(
            gaps.data_offset,
            gaps.field + ".data",
            f"non-zero position {end - 1} is beyond {elements} elements.",
        )
    if escapes:
        steps = gaps.symbols.copy()
        steps[gaps.symbols == 0] = escape_run
        positions = np.cumsum(steps, dtype=np.int32)[gaps.symbols != 0]
    else:
        positions = np.cumsum(gaps.symbols, dtype=np.int32)
    positions -= 1
    return positions


# --- clustered and grouped payloads (section 7.3–7.5, 7.7, 7.8)


@dataclasses.dataclass
class _Clustered:
    entry_counts: np.ndarray
    entries: np.ndarray  # uint<8·esize>, all codebooks back to back
    background: np.ndarray  # sparse only: one value per channel slice (or one in all)
    escape_run: int
    gaps: _Stream
    indices: _Stream
    positions: np.ndarray  # sparse only: non-zero element positions (int64)
    book_of: np.ndarray  # codebook of each index symbol (None when one codebook in all)
    codebook_map: _Stream = None  # grouped only: codebook of each channel


def _read_clustered(data, entry):
    """Parse and fully check a clustered payload (everything but writing R)."""
    rd = _Reader(data, entry.payload_offset, entry.payload_offset + entry.payload_size)
    elements = entry.size // entry.esize
    uint = element_dtype(entry.esize)
    grouped = entry.encoding in GROUPED_CODES
    start = rd.pos
    n_books = rd.field(CODEBOOK_COUNT, entry.prefix)
    if grouped:
        if not 1 <= n_books <= min(entry.channels, MAX_GROUPS):
            raise CODEBOOK_COUNT.error(
                f"{n_books} must be in 1..min(channels, {MAX_GROUPS}) = "
                f"{min(entry.channels, MAX_GROUPS)}.",
                start,
                entry.prefix,
            )
    elif n_books != 1 and n_books != entry.channels:
        raise CODEBOOK_COUNT.error(
            f"{n_books} must be 1 or channels = {entry.channels}.", start, entry.prefix
        )
    counts_at = rd.pos
    entry_counts = np.frombuffer(
        rd.take(ENTRY_COUNT.size * n_books, entry.field(ENTRY_COUNT.name)), ENTRY_COUNT.dtype
    ).astype(np.int64)
    if entry_counts.max() > MAX_CODEBOOK:
        bad = int(np.argmax(entry_counts > MAX_CODEBOOK))
        raise ENTRY_COUNT.error(
            f"codebook {bad} has {entry_counts[bad]} > {MAX_CODEBOOK} entries.",
            counts_at + ENTRY_COUNT.size * bad,
            entry.prefix,
        )
    total = int(entry_counts.sum())
    entries = np.frombuffer(rd.take(total * entry.esize, entry.field("entries")), uint)
    codebook_map = None
    if grouped:
        codebook_map = _read_stream(rd, entry.field("codebook_map"), entry.compact)
        if codebook_map.count != entry.channels:
            raise codebook_map.error(
                "count", f"{codebook_map.count} must equal channels = {entry.channels}."
            )
        if codebook_map.lengths.size > n_books:
            raise codebook_map.error(
                "alphabet", f"{codebook_map.lengths.size} symbols exceed {n_books} codebooks."
            )
    sparse = entry.encoding in SPARSE_CODES
    escape_run = 0
    gaps = background = None
    if sparse:
        background = np.frombuffer(rd.take(n_books * entry.esize, entry.field("background")), uint)
        escape_run, gaps = _read_gaps(rd, entry)
    indices = _read_stream(rd, entry.field("indices"), entry.compact)
    if rd.pos != rd.end:
        raise FormatError(
            rd.pos,
            entry.field("payload_size"),
            f"{rd.end - rd.pos} bytes after the end of the payload.",
        )

    positions = None
    if sparse:
        positions = _decode_gaps(
            gaps,
            escape_run,
            elements,
            indices.count,
            lambda emitted: indices.error(
                "count", f"{indices.count} indices for {emitted} non-zero elements."
            ),
        )
    elif indices.count != elements:
        raise indices.error("count", f"{indices.count} indices for {elements} elements.")
    if grouped:
        _decode_stream(codebook_map)
        if sparse:  # one background per channel: its codebook's
            background = background[codebook_map.symbols]
    _decode_stream(indices)

    book_of = None
    if n_books == 1 and not grouped:
        if indices.hist.size > entry_counts[0] and indices.hist[entry_counts[0] :].any():
            raise FormatError(
                indices.data_offset,
                indices.field + ".data",
                f"index beyond the {entry_counts[0]} codebook entries.",
            )
    elif indices.count:
        per_channel = elements // entry.channels
        if sparse:
            book_of = positions // per_channel
        else:
            book_of = np.repeat(np.arange(entry.channels), per_channel)
        if grouped:
            book_of = codebook_map.symbols[book_of].astype(np.int64)
        if not (indices.symbols < entry_counts[book_of]).all():
            raise FormatError(
                indices.data_offset,
                indices.field + ".data",
                "index beyond its channel's codebook.",
            )
    return _Clustered(
        entry_counts,
        entries,
        background,
        escape_run,
        gaps,
        indices,
        positions,
        book_of,
        codebook_map,
    )


# --- SPARSE_RAW payloads (section 7.6)


@dataclasses.dataclass
class _SparseRaw:
    background: np.ndarray  # one value per slice
    escape_run: int
    gaps: _Stream
    values: np.ndarray  # uint<8·esize>, the emitted elements in position order
    positions: np.ndarray  # their positions (int32 or int64)


def _read_sparse_raw(data, entry):
    """Parse and fully check a SPARSE_RAW payload (everything but writing R)."""
    rd = _Reader(data, entry.payload_offset, entry.payload_offset + entry.payload_size)
    elements = entry.size // entry.esize
    start = rd.pos
    n_slices = rd.field(SLICE_COUNT, entry.prefix)
    if n_slices != 1 and n_slices != entry.channels:
        raise SLICE_COUNT.error(
            f"{n_slices} must be 1 or channels = {entry.channels}.", start, entry.prefix
        )
    uint = element_dtype(entry.esize)
    background = np.frombuffer(rd.take(n_slices * entry.esize, entry.field("background")), uint)
    escape_run, gaps = _read_gaps(rd, entry)
    values_at = rd.pos
    left = rd.end - rd.pos
    if left % entry.esize or left // entry.esize > elements:
        raise FormatError(
            values_at,
            entry.field("values"),
            f"{left} bytes are not whole {entry.esize}-byte values of at most {elements} elements.",
        )
    values = np.frombuffer(rd.take(left, entry.field("values")), uint)
    positions = _decode_gaps(
        gaps,
        escape_run,
        elements,
        values.size,
        lambda emitted: FormatError(
            values_at,
            entry.field("values"),
            f"{values.size} values for {emitted} emitted elements.",
        ),
    )
    return _SparseRaw(background, escape_run, gaps, values, positions)


# --- payloads (section 7)


def _check_payload_crc(data, entry):
    payload = data[entry.payload_offset : entry.payload_offset + entry.payload_size]
    if zlib.crc32(payload) != entry.payload_crc32:
        raise entry.error("payload_crc32", "payload checksum mismatch.")
    return payload


def _check_raw_size(entry):
    if entry.payload_size != entry.size:
        raise entry.error("payload_size", f"RAW payload must be {entry.size} bytes.")


_ZLIB_CODES = (ZLIB, ZLIB_DICT)  # a zlib stream (7.2), with the preset dictionary (7.11)


def _inflate(payload, entry):
    """Inflate a ZLIB or ZLIB_DICT payload to exactly `entry.size` bytes, never more."""
    if entry.encoding == ZLIB_DICT:
        inflater = zlib.decompressobj(zdict=_dictionary(payload, entry))
    else:
        inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(payload, max(entry.size, 1))
        if len(out) <= entry.size and not inflater.eof:  # the output is full: finish the trailer
            out += inflater.decompress(inflater.unconsumed_tail, 1)
    except zlib.error as exc:
        raise FormatError(
            entry.payload_offset,
            entry.field("payload"),
            f"zlib stream is invalid ({exc}).",
        ) from None
    if (
        len(out) != entry.size
        or not inflater.eof
        or inflater.unused_data
        or inflater.unconsumed_tail
    ):
        raise FormatError(
            entry.payload_offset,
            entry.field("payload"),
            f"zlib stream must inflate to exactly {entry.size} bytes and end with the payload.",
        )
    return out


def _dictionary(payload, entry):
    """ZLIB_DICT's preset dictionary, once the stream's header is checked to ask for it:
    FDICT set, and DICTID the dictionary's Adler-32 (7.11)."""
    dictionary, adler = skeleton_dict()
    if len(payload) <= ZLIB_FLG or not payload[ZLIB_FLG] & ZLIB_FDICT:
        raise FormatError(
            entry.payload_offset + min(ZLIB_FLG, len(payload)),
            entry.field("payload"),
            "a ZLIB_DICT stream must set FDICT in its header.",
        )
    dictid = bytes(payload[ZLIB_DICTID.offset : ZLIB_DICTID.end])  # short when truncated
    if dictid != adler.to_bytes(ZLIB_DICTID.size, "big"):
        raise FormatError(
            entry.payload_offset + ZLIB_DICTID.offset,
            entry.field("payload"),
            f"DICTID must be the Adler-32 of the preset dictionary, {adler:08x}.",
        )
    return dictionary


def _inner_code(data, at, entry):
    """The `inner_encoding` of a DELTA (7.9) or MASKED (7.12) payload, at file offset `at`."""
    code = INNER_ENCODING.unpack_from(data, at)
    if code not in INNER_CODES:
        raise INNER_ENCODING.error(
            f"{code} is not the code of an encoding other than DELTA, PACKED and MASKED.",
            at,
            entry.prefix,
        )
    return code


def _inner_entry(data, entry):
    """The entry of a DELTA payload's inner payload (7.9): one byte later, its own code."""
    if entry.payload_size < INNER_ENCODING.size:
        raise entry.error("payload_size", "a DELTA payload starts with its inner_encoding.")
    at = entry.payload_offset
    code = _inner_code(data, at, entry)
    return dataclasses.replace(
        entry,
        encoding=code,
        payload_offset=at + INNER_ENCODING.size,
        payload_size=entry.payload_size - INNER_ENCODING.size,
    )


def _running_sums(target, esize):
    """Element k becomes the sum of elements 0..k modulo 2^(8·esize), in place (7.9)."""
    values = target.view(element_dtype(esize))
    values[:] = np.cumsum(values, dtype=values.dtype)  # unsigned: wraps modulo 2^(8·esize)


# --- MASKED payloads (section 7.12)


@dataclasses.dataclass
class _Masked:
    fill: np.ndarray  # one element: the fill bit pattern
    rows: np.ndarray  # indices of the kept rows, increasing
    columns: np.ndarray  # indices of the kept columns, increasing
    inner: _Entry  # the kept submatrix's payload, read as a segment of its own


def _read_mask(data, at, count, entry, name):
    """The kept indices of a MASKED payload's `row_mask` or `column_mask` of `count` bits."""
    bits = np.unpackbits(np.frombuffer(data, np.uint8, mask_size(count), at), bitorder="little")
    if bits[count:].any():
        raise FormatError(at, entry.field(name), f"the bits after bit {count - 1} must be 0.")
    kept = np.flatnonzero(bits[:count])
    if not kept.size:
        raise FormatError(at, entry.field(name), "keeps nothing: at least one bit must be set.")
    return kept


def _read_masked(data, entry):
    """The fields of a MASKED payload (7.12), checked in the order of section 10, and the
    entry of its inner payload: the kept submatrix, one channel per kept row."""
    esize = entry.esize
    n_rows = entry.channels
    n_columns = entry.size // esize // n_rows
    head = esize + mask_size(n_rows) + mask_size(n_columns) + INNER_ENCODING.size
    if entry.payload_size < head:
        raise entry.error(
            "payload_size",
            f"a MASKED payload of {n_rows} × {n_columns} elements starts with {head} bytes "
            f"(fill, row_mask, column_mask, inner_encoding); it has {entry.payload_size}.",
        )
    at = entry.payload_offset
    fill = np.frombuffer(data, element_dtype(esize), 1, at)
    at += esize
    rows = _read_mask(data, at, n_rows, entry, "row_mask")
    at += mask_size(n_rows)
    columns = _read_mask(data, at, n_columns, entry, "column_mask")
    at += mask_size(n_columns)
    code = _inner_code(data, at, entry)  # MASKED_INNER_CODES: the same codes as DELTA's
    inner = dataclasses.replace(
        entry,
        encoding=code,
        size=rows.size * columns.size * esize,
        channels=int(rows.size),
        payload_offset=at + INNER_ENCODING.size,
        payload_size=entry.payload_size - head,
    )
    return _Masked(fill, rows, columns, inner)


def _decode_masked(data, entry, target, masked=None):
    """Decode a MASKED payload (its CRC already checked) into `target` (7.12); `masked`:
    its `_read_masked` fields, if the caller has them."""
    masked = masked or _read_masked(data, entry)
    kept = np.zeros(masked.inner.size, np.uint8)
    _decode_payload(data, masked.inner, kept)
    uint = element_dtype(entry.esize)
    values = target.view(uint).reshape(entry.channels, -1)
    values[:] = masked.fill[0]
    values[np.ix_(masked.rows, masked.columns)] = kept.view(uint).reshape(
        masked.rows.size, masked.columns.size
    )


# --- PACKED payloads (section 7.10)


def _read_parts(data, entry):
    """The parts of a PACKED payload (7.10), each an `_Entry` of its own, checked in the
    order of section 10 (the parts' payloads are checked when they are decoded)."""
    if entry.dtype != "bytes":
        raise entry.error("dtype", f"a PACKED segment has dtype bytes (0), not {entry.dtype}.")
    if entry.channels != 1:
        raise entry.error("channels", f"a PACKED segment has 1 channel, not {entry.channels}.")
    rd = _Reader(data, entry.payload_offset, entry.payload_offset + entry.payload_size)
    count_at = rd.pos
    count = rd.varint(PART_COUNT, entry.prefix)
    if not 1 <= count <= (rd.end - rd.pos) // MIN_PART_SIZE:
        raise PART_COUNT.error(
            f"{count} parts of at least {MIN_PART_SIZE} bytes each do not fit in the "
            f"{rd.end - rd.pos} bytes left (at least 1 part).",
            count_at,
            entry.prefix,
        )
    parts = []
    covered = assigned = 0
    for k in range(count):
        prefix = f"{entry.prefix}part[{k}]."
        at = {}  # file offset of each descriptor field
        left = entry.size - covered
        size = _read_descriptor_field(
            rd, PART_SIZE, prefix, at, range(left + 1), f"{{}} exceeds the {left} bytes left."
        )
        dtype, esize = DTYPE_BY_CODE[
            _read_descriptor_field(
                rd, PART_DTYPE, prefix, at, DTYPE_BY_CODE, "unknown dtype code {}."
            )
        ]
        encoding = _read_descriptor_field(
            rd, PART_ENCODING, prefix, at, PART_CODES, "{} is not a code other than PACKED."
        )
        channels = _read_descriptor_field(
            rd, PART_CHANNELS, prefix, at, range(1, MAX_CHANNELS + 1), "{} is not in 1 … 2^32 − 1."
        )
        if size % (channels * esize):
            raise PART_SIZE.error(
                f"{size} is not a multiple of channels × esize = {channels * esize}.",
                at["size"],
                prefix,
            )
        at["payload_size"] = rd.pos
        payload_size = rd.varint(PART_PAYLOAD_SIZE, prefix)
        if payload_size > rd.end - rd.pos - assigned:
            raise PART_PAYLOAD_SIZE.error(
                f"{payload_size} exceeds the {rd.end - rd.pos - assigned} payload bytes "
                "not yet assigned.",
                at["payload_size"],
                prefix,
            )
        parts.append(
            dataclasses.replace(
                entry,
                offset=entry.offset + covered,
                size=size,
                payload_size=payload_size,
                channels=channels,
                name="",
                dtype=dtype,
                esize=esize,
                encoding=encoding,
                payload_offset=assigned,  # relative until the table's end is known
                part=k,
                field_offsets=at,
            )
        )
        covered += size
        assigned += payload_size
    if covered != entry.size:
        raise entry.error("size", f"the parts cover {covered} of the segment's {entry.size} bytes.")
    if rd.pos + assigned != rd.end:
        raise FormatError(
            rd.pos + assigned,
            entry.field("payload_size"),
            f"{rd.end - rd.pos - assigned} bytes after the last part's payload.",
        )
    for part in parts:
        part.payload_offset += rd.pos
    return parts


def _read_descriptor_field(rd, field, prefix, at, allowed, message):
    """The value of a part descriptor's `field` (a `Varint` or a u8 `Field`), which must be
    `in allowed`; else a FormatError with `message.format(value)`. Records its offset in `at`."""
    at[field.name] = rd.pos
    value = rd.varint(field, prefix) if isinstance(field, Varint) else rd.field(field, prefix)
    if value not in allowed:
        raise field.error(message.format(value), at[field.name], prefix)
    return value


def _units(data, entry):
    """What decodes on its own: the segment, or the parts of a PACKED segment (7.10)."""
    return _read_parts(data, entry) if entry.encoding == PACKED else [entry]


def _decode_into(data, entry, target):
    """Decode segment `entry`'s payload into `target` (a uint8 array of entry.size)."""
    _check_payload_crc(data, entry)
    for unit in _units(data, entry):
        start = unit.offset - entry.offset
        _decode_unit(data, unit, target[start : start + unit.size])


def _decode_unit(data, entry, target):
    """Decode a payload of any encoding but PACKED (its CRC already checked) into `target`."""
    if entry.encoding == DELTA:
        _decode_payload(data, _inner_entry(data, entry), target)
        _running_sums(target, entry.esize)
    elif entry.encoding == MASKED:
        _decode_masked(data, entry, target)
    else:
        _decode_payload(data, entry, target)


def _decode_payload(data, entry, target):
    """Decode a payload of any encoding but DELTA, PACKED and MASKED (its CRC already
    checked) into `target`."""
    payload = data[entry.payload_offset : entry.payload_offset + entry.payload_size]
    if entry.encoding == RAW:
        _check_raw_size(entry)
        target[:] = np.frombuffer(payload, np.uint8)
        return
    if entry.encoding in _ZLIB_CODES:
        target[:] = np.frombuffer(_inflate(payload, entry), np.uint8)
        return
    values = target.view(element_dtype(entry.esize))
    if entry.encoding == SPARSE_RAW:
        parsed = _read_sparse_raw(data, entry)
        if parsed.background.any():  # R starts zeroed
            values.reshape(parsed.background.size, -1)[:] = parsed.background[:, None]
        values[parsed.positions] = parsed.values
        return
    parsed = _read_clustered(data, entry)
    sparse = entry.encoding in SPARSE_CODES
    if sparse and values.size and parsed.background.any():  # R starts zeroed
        values.reshape(parsed.background.size, -1)[:] = parsed.background[:, None]
    if not parsed.indices.count:
        return
    symbols = parsed.indices.symbols
    if parsed.book_of is not None:
        bases = np.concatenate([[0], np.cumsum(parsed.entry_counts)[:-1]])
        symbols = bases[parsed.book_of] + symbols
    if sparse:
        values[parsed.positions] = parsed.entries[symbols]
    else:
        values[:] = parsed.entries[symbols]


# --- restoring (section 9)


def restore_bytes(skeleton, sidecar, *, max_restored_size=MAX_RESTORED_SIZE):
    """Rebuild the restored file R from its skeleton and sidecar.

    Checks everything the format defines (`docs/bundle-format.md` section 10): header
    and table CRCs, the skeleton's size and SHA-256 (so a skeleton from another
    conversion is rejected), every payload's CRC and structure, and the SHA-256 of R.

    Args:
        skeleton: bytes-like, the skeleton file.
        sidecar: bytes-like, the `.dcw` file.
        max_restored_size: refuse bundles whose restored size exceeds this many bytes
            (checked before allocating). Defaults to 2^31 − 1, the format's limit.

    Returns:
        The restored file as `bytes`.

    Raises:
        FormatError: malformed or mismatched input; `.offset` and `.field` say where.
    """
    data, header = _parse_header(sidecar, max_restored_size)
    h = header.fields
    skeleton = memoryview(skeleton).cast("B")
    if len(skeleton) != h.skeleton_size:
        raise HEADER.error(
            "skeleton_size",
            f"the skeleton has {len(skeleton)} bytes, the sidecar expects {h.skeleton_size}.",
        )
    if hashlib.sha256(skeleton).digest() != h.skeleton_sha256:
        raise HEADER.error(
            "skeleton_sha256", "the skeleton does not belong to this sidecar (SHA-256 mismatch)."
        )
    out = np.zeros(h.restored_size, np.uint8)  # calloc: untouched pages cost nothing
    skel = np.frombuffer(skeleton, np.uint8)
    s = r = 0
    for entry in header.entries:
        gap = entry.offset - r
        out[r : entry.offset] = skel[s : s + gap]
        s += gap
        _decode_into(data, entry, out[entry.offset : entry.offset + entry.size])
        r = entry.offset + entry.size
    out[r:] = skel[s:]
    if hashlib.sha256(out).digest() != h.restored_sha256:
        raise HEADER.error("restored_sha256", "the restored file's SHA-256 does not match.")
    return out.tobytes()


# --- inspecting


def _clustered_figures(parsed):
    """The `SegmentStats` figures of a parsed clustered payload's codebooks and streams."""
    figures = {
        "codebooks": int(parsed.entry_counts.size),
        "codebook_entries": int(parsed.entry_counts.sum()),
        "escape_run": int(parsed.escape_run),
        "index_count": parsed.indices.count,
        "index_bits": parsed.indices.nbits,
        "index_entropy_bits_total": huffman.entropy_bits(parsed.indices.hist),
    }
    if parsed.gaps is not None:
        figures.update(_gap_figures(parsed.gaps, parsed.escape_run))
    if parsed.codebook_map is not None:
        figures["map_bits"] = parsed.codebook_map.nbits
    return figures


def _gap_figures(gaps, escape_run):
    """The `SegmentStats` figures of a decoded gap stream."""
    return {
        "escape_run": int(escape_run),
        "gap_count": gaps.count,
        "gap_bits": gaps.nbits,
        "gap_entropy_bits_total": huffman.entropy_bits(gaps.hist),
    }


def _background_nonzeros(background, positions, entry):
    """Non-zero values among the elements a sparse segment's gaps do not emit."""
    elements = entry.size // entry.esize
    if not elements:
        return 0
    per_slice = elements // background.size
    emitted = np.bincount(positions // per_slice, minlength=background.size)
    return int(np.dot(per_slice - emitted, nonzero_mask(background, entry.dtype)))


def _clustered_nonzeros(parsed, entry):
    """Non-zero values of a parsed clustered segment, background included."""
    book_start = np.concatenate([[0], np.cumsum(parsed.entry_counts)[:-1]])
    symbols = parsed.indices.symbols.astype(np.int64)
    if parsed.book_of is not None:
        symbols = symbols + book_start[parsed.book_of]
    nonzeros = count_nonzero(parsed.entries[symbols], entry.dtype)
    if entry.encoding in SPARSE_CODES:  # plus the background
        nonzeros += _background_nonzeros(parsed.background, parsed.positions, entry)
    return nonzeros


def _payload_figures(data, entry):
    """(figures, nonzeros) of a payload of any encoding but DELTA."""
    payload = data[entry.payload_offset : entry.payload_offset + entry.payload_size]
    uint = element_dtype(entry.esize)
    if entry.encoding == RAW:
        _check_raw_size(entry)
        return {}, count_nonzero(np.frombuffer(payload, uint), entry.dtype)
    if entry.encoding in _ZLIB_CODES:
        return {}, count_nonzero(np.frombuffer(_inflate(payload, entry), uint), entry.dtype)
    if entry.encoding == SPARSE_RAW:
        parsed = _read_sparse_raw(data, entry)
        nonzeros = count_nonzero(parsed.values, entry.dtype) + _background_nonzeros(
            parsed.background, parsed.positions, entry
        )
        return _gap_figures(parsed.gaps, parsed.escape_run), nonzeros
    parsed = _read_clustered(data, entry)
    return _clustered_figures(parsed), _clustered_nonzeros(parsed, entry)


def _unit_stats(data, entry):
    """The `SegmentStats` of a segment, or of a PACKED segment's part, named by its index."""
    if entry.encoding == DELTA:  # the inner payload's figures, the running sums' values
        inner = _inner_entry(data, entry)
        figures, _ = _payload_figures(data, inner)
        figures["inner_encoding"] = ENCODING_NAMES[inner.encoding]
        restored = np.zeros(entry.size, np.uint8)
        _decode_payload(data, inner, restored)
        _running_sums(restored, entry.esize)
        nonzeros = count_nonzero(restored.view(element_dtype(entry.esize)), entry.dtype)
    elif entry.encoding == MASKED:  # the kept submatrix's figures, the whole segment's values
        masked = _read_masked(data, entry)
        figures, _ = _payload_figures(data, masked.inner)
        figures["inner_encoding"] = ENCODING_NAMES[masked.inner.encoding]
        restored = np.zeros(entry.size, np.uint8)
        _decode_masked(data, entry, restored, masked)
        nonzeros = count_nonzero(restored.view(element_dtype(entry.esize)), entry.dtype)
    else:
        figures, nonzeros = _payload_figures(data, entry)
    return SegmentStats.of_segment(
        entry.prefix[:-1] if entry.part >= 0 else entry.name,
        entry.offset,
        entry.size,
        entry.dtype,
        entry.channels,
        encoding=ENCODING_NAMES[entry.encoding],
        nonzeros=nonzeros,
        payload_bytes=entry.payload_size,
        **figures,
    )


def _segment_stats(data, entry):
    """The `SegmentStats` of a segment: one, or one per part of a PACKED segment."""
    _check_payload_crc(data, entry)
    return [_unit_stats(data, unit) for unit in _units(data, entry)]


def inspect(sidecar):
    """Header fields and per-segment statistics of a sidecar (for `keras-dc inspect`).

    Verifies the sidecar's own checksums and decodes every stream (the skeleton is not
    needed, so the SHA-256 checks of `restore_bytes` are not made).

    Returns:
        A JSON-ready dict with `version`, `restored_size`, `skeleton_size`,
        `payload_size`, `sidecar_size`, `segment_count`, `restored_sha256` and
        `skeleton_sha256` (hex), and `segments`: one `SegmentStats.to_dict()` per
        segment (the keys of `build_bundle`'s stats), or for a PACKED segment one per
        part, named by its index (e.g. `segment[0].part[3]`: parts have no names in
        the file), in file order.

    Raises:
        FormatError: malformed input; `.offset` and `.field` say where.
    """
    data, header = _parse_header(sidecar, MAX_RESTORED_SIZE)
    h = header.fields
    return {
        "version": f"{VERSION_MAJOR}.{h.version_minor}",
        "restored_size": h.restored_size,
        "skeleton_size": h.skeleton_size,
        "payload_size": h.payload_size,
        "sidecar_size": len(data),
        "segment_count": h.segment_count,
        "restored_sha256": h.restored_sha256.hex(),
        "skeleton_sha256": h.skeleton_sha256.hex(),
        "segments": [
            stats.to_dict() for entry in header.entries for stats in _segment_stats(data, entry)
        ],
    }
