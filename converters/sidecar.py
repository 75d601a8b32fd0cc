"""Encoder, decoder and restorer of the keras-dc bundle (skeleton + `.dcw` sidecar).

The byte format is specified in `docs/bundle-format.md`; this module mirrors it and
uses only the standard library and NumPy. A restored file R is described by sorted,
non-overlapping byte ranges (`Segment`s) holding weight buffers; the skeleton is R with
those ranges cut out, and the sidecar holds each range compressed:

    skeleton, sidecar, stats = build_bundle(tflite_bytes, segments)
    assert restore(skeleton, sidecar) == tflite_bytes

Every malformed input makes `restore` and `inspect` raise `FormatError`, which names the
byte offset and the field.
"""

import dataclasses
import hashlib
import heapq
import struct
import zlib

import numpy as np

from converters import huffman

__all__ = [
    "DTYPES",
    "ENCODINGS",
    "FormatError",
    "MAX_RESTORED_SIZE",
    "Segment",
    "build_bundle",
    "inspect",
    "restore",
]

MAGIC = b"KDCW"
VERSION_MAJOR = 1
VERSION_MINOR = 0
HEADER_SIZE = 120  # v1.0
ENTRY_SIZE = 48  # v1.0
MAX_HEADER_SIZE = 65536
MAX_ENTRY_SIZE = 65536
MAX_RESTORED_SIZE = 2**31 - 1
MAX_CODEBOOK = 256
MAX_ESCAPE_RUN = 255

# dtype name -> (code, element size in bytes)
DTYPES = {
    "bytes": (0, 1),
    "float32": (1, 4),
    "float16": (2, 2),
    "int8": (3, 1),
    "uint8": (4, 1),
    "int16": (5, 2),
    "int32": (6, 4),
    "int64": (7, 8),
}
_DTYPE_BY_CODE = {code: (name, size) for name, (code, size) in DTYPES.items()}

RAW, ZLIB, CLUSTERED_SPARSE, CLUSTERED_DENSE = 0, 1, 2, 3
ENCODINGS = {
    "RAW": RAW,
    "ZLIB": ZLIB,
    "CLUSTERED_SPARSE": CLUSTERED_SPARSE,
    "CLUSTERED_DENSE": CLUSTERED_DENSE,
}
_ENCODING_NAMES = {code: name for name, code in ENCODINGS.items()}
_UINT = {1: np.dtype("<u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}
_STREAM_FIXED = 18  # count u64, nbits u64, alphabet u16
_NIBBLES = np.stack([np.arange(256) & 15, np.arange(256) >> 4], axis=1).astype(
    np.uint8,
)  # byte -> (low, high)


class FormatError(ValueError):
    """A malformed bundle: names the sidecar byte `offset` and the `field`.

    Attributes:
        offset: byte offset in the sidecar of the offending field (or of the byte
            where decoding failed).
        field: field name as in `docs/bundle-format.md`, e.g.
            `segment[2].indices.nbits`.
    """

    def __init__(self, offset, field, message):
        self.offset = int(offset)
        self.field = field
        super().__init__(f"{field} (byte {self.offset}): {message}")


@dataclasses.dataclass(frozen=True)
class Segment:
    """One weight buffer of the restored file.

    Attributes:
        offset: byte offset of the buffer in the restored file R.
        size: byte length.
        dtype: element type: one of `DTYPES` ("float32", "float16", "int8", "uint8",
            "int16", "int32", "int64", or "bytes" for opaque data).
        channels: > 1 when the data splits into `channels` equal contiguous slices
            (output channels) that may each get their own codebook. Defaults to `1`.
        name: tensor name, stored for reports. Defaults to `""`.
    """

    offset: int
    size: int
    dtype: str
    channels: int = 1
    name: str = ""


# =========================================================================== reading


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

    def uint(self, size, field):
        raw = self.take(size, field)
        return int.from_bytes(raw, "little")


@dataclasses.dataclass
class _Entry:
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

    def field(self, name):
        return f"segment[{self.index}].{name}"


@dataclasses.dataclass
class _Header:
    version_minor: int
    header_size: int
    segment_count: int
    entry_size: int
    names_size: int
    payload_size: int
    restored_size: int
    skeleton_size: int
    restored_sha256: bytes
    skeleton_sha256: bytes
    entries: list


# Entry field offsets (v1.0), for error reports.
_E_OFFSET, _E_SIZE, _E_PAYLOAD_SIZE, _E_CRC, _E_CHANNELS = 0, 8, 16, 24, 28
_E_NAME_OFFSET, _E_NAME_SIZE, _E_DTYPE, _E_ENCODING, _E_RESERVED = 32, 36, 40, 41, 42


def _parse_header(sidecar, max_restored_size):
    data = memoryview(sidecar).cast("B")
    n = len(data)
    if n < 12 or bytes(data[0:4]) != MAGIC:
        raise FormatError(0, "magic", f"not a keras-dc sidecar (expected {MAGIC!r} and at least 12 bytes).")
    major, minor, header_size = struct.unpack_from("<HHI", data, 4)
    if major != VERSION_MAJOR:
        raise FormatError(
            4,
            "version_major",
            f"version {major}.{minor} is not supported (major {VERSION_MAJOR}).",
        )
    if not HEADER_SIZE <= header_size <= MAX_HEADER_SIZE or header_size > n:
        raise FormatError(
            8,
            "header_size",
            f"{header_size} is out of range [{HEADER_SIZE}, min({MAX_HEADER_SIZE}, {n})].",
        )
    (stored_crc,) = struct.unpack_from("<I", data, header_size - 4)
    if zlib.crc32(data[: header_size - 4]) != stored_crc:
        raise FormatError(header_size - 4, "header_crc32", "header checksum mismatch.")
    (segment_count, entry_size, names_size, payload_size, restored_size, skeleton_size) = struct.unpack_from(
        "<IIIQQQ", data, 12
    )
    restored_sha256 = bytes(data[48:80])
    skeleton_sha256 = bytes(data[80:112])
    (table_crc,) = struct.unpack_from("<I", data, 112)
    if not ENTRY_SIZE <= entry_size <= MAX_ENTRY_SIZE:
        raise FormatError(16, "entry_size", f"{entry_size} is out of range [{ENTRY_SIZE}, {MAX_ENTRY_SIZE}].")
    limit = min(MAX_RESTORED_SIZE, max_restored_size)
    if restored_size > limit:
        raise FormatError(32, "restored_size", f"{restored_size} bytes exceeds the limit of {limit}.")
    remaining = n - header_size
    if segment_count > remaining // entry_size:
        raise FormatError(
            12,
            "segment_count",
            f"{segment_count} entries of {entry_size} bytes do not fit in {remaining} bytes.",
        )
    table_end = header_size + segment_count * entry_size
    if names_size > n - table_end:
        raise FormatError(20, "names_size", f"{names_size} bytes do not fit in {n - table_end} bytes.")
    names_end = table_end + names_size
    if payload_size != n - names_end:
        raise FormatError(
            24,
            "payload_size",
            f"{payload_size} does not match the {n - names_end} bytes after the name table.",
        )
    if zlib.crc32(data[header_size:names_end]) != table_crc:
        raise FormatError(112, "table_crc32", "segment/name table checksum mismatch.")

    entries = []
    previous_end = 0
    payload_cursor = names_end
    total_size = 0
    for i in range(segment_count):
        base = header_size + i * entry_size
        (offset, size, seg_payload_size, crc, channels, name_offset, name_size, dtype_code, encoding) = (
            struct.unpack_from("<QQQIIIIBB", data, base)
        )
        field = f"segment[{i}]."
        if dtype_code not in _DTYPE_BY_CODE:
            raise FormatError(base + _E_DTYPE, field + "dtype", f"unknown dtype code {dtype_code}.")
        if encoding not in _ENCODING_NAMES:
            raise FormatError(base + _E_ENCODING, field + "encoding", f"unknown encoding code {encoding}.")
        if any(data[base + _E_RESERVED : base + ENTRY_SIZE]):
            raise FormatError(base + _E_RESERVED, field + "reserved", "reserved bytes must be zero.")
        dtype, esize = _DTYPE_BY_CODE[dtype_code]
        if channels < 1:
            raise FormatError(base + _E_CHANNELS, field + "channels", "must be at least 1.")
        if size % (channels * esize):
            raise FormatError(
                base + _E_SIZE,
                field + "size",
                f"{size} is not a multiple of channels × esize = {channels * esize}.",
            )
        if offset < previous_end:
            raise FormatError(
                base + _E_OFFSET,
                field + "offset",
                f"{offset} overlaps or precedes the previous segment (ends at {previous_end}).",
            )
        if size > restored_size or offset > restored_size - size:
            raise FormatError(
                base + _E_SIZE,
                field + "size",
                f"segment [{offset}, {offset}+{size}) exceeds restored_size {restored_size}.",
            )
        if seg_payload_size > n - payload_cursor:
            raise FormatError(
                base + _E_PAYLOAD_SIZE,
                field + "payload_size",
                f"{seg_payload_size} exceeds the {n - payload_cursor} unassigned payload bytes.",
            )
        if name_offset > names_size or name_size > names_size - name_offset:
            raise FormatError(
                base + _E_NAME_OFFSET,
                field + "name_offset",
                "name lies outside the name table.",
            )
        name_start = table_end + name_offset
        try:
            name = str(data[name_start : name_start + name_size], "utf-8")
        except UnicodeDecodeError:
            raise FormatError(
                base + _E_NAME_OFFSET,
                field + "name_offset",
                "name is not valid UTF-8.",
            ) from None
        entries.append(
            _Entry(i, base, offset, size, seg_payload_size, crc, channels, name, dtype, esize, encoding,
                   payload_cursor)
        )
        payload_cursor += seg_payload_size
        previous_end = offset + size
        total_size += size
    if payload_cursor != n:
        raise FormatError(
            24,
            "payload_size",
            f"segment payloads cover {payload_cursor - names_end} of {payload_size} bytes.",
        )
    if skeleton_size != restored_size - total_size:
        raise FormatError(
            40,
            "skeleton_size",
            f"{skeleton_size} != restored_size − Σ size = {restored_size - total_size}.",
        )
    return data, _Header(
        minor,
        header_size,
        segment_count,
        entry_size,
        names_size,
        payload_size,
        restored_size,
        skeleton_size,
        restored_sha256,
        skeleton_sha256,
        entries,
    )


@dataclasses.dataclass
class _Stream:
    field: str
    offset: int  # file offset of the stream structure
    count: int
    nbits: int
    lengths: np.ndarray
    data_offset: int
    data: memoryview
    symbols: np.ndarray = None
    hist: np.ndarray = None


def _read_stream(rd, field):
    start = rd.pos
    count = rd.uint(8, field + ".count")
    nbits = rd.uint(8, field + ".nbits")
    alphabet = rd.uint(2, field + ".alphabet")
    if alphabet > MAX_CODEBOOK:
        raise FormatError(start + 16, field + ".alphabet", f"{alphabet} exceeds {MAX_CODEBOOK}.")
    packed = np.frombuffer(rd.take((alphabet + 1) // 2, field + ".lengths"), np.uint8)
    lengths = _NIBBLES[packed].ravel()
    if alphabet % 2:
        if lengths[-1]:
            raise FormatError(rd.pos - 1, field + ".lengths", "unused high nibble must be zero.")
        lengths = lengths[:-1]
    if count == 0:
        if nbits or alphabet:
            raise FormatError(
                start + 8,
                field + ".nbits",
                "an empty stream must have nbits = 0 and alphabet = 0.",
            )
    else:
        if huffman.kraft_deficit(lengths) != 1:
            raise FormatError(
                start + 18,
                field + ".lengths",
                "code lengths must leave exactly one reserved codeword (Kraft sum 1 − 2^−L).",
            )
        if not count <= nbits <= huffman.MAX_CODE_LENGTH * count:
            raise FormatError(
                start + 8,
                field + ".nbits",
                f"{nbits} bits cannot hold {count} codewords of 1..15 bits.",
            )
    data_offset = rd.pos
    data = rd.take((nbits + 7) // 8, field + ".data")
    return _Stream(field, start, count, nbits, lengths, data_offset, data)


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
        raise FormatError(
            stream.offset + 8,
            stream.field + ".nbits",
            f"{stream.count} symbols take {consumed} bits, not {stream.nbits}.",
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


@dataclasses.dataclass
class _Clustered:
    entry_counts: np.ndarray
    entries: np.ndarray  # uint<8·esize>, all codebooks back to back
    background: np.ndarray  # sparse only: one value per codebook
    escape_run: int
    gaps: _Stream
    indices: _Stream
    positions: np.ndarray  # sparse only: non-zero element positions (int64)
    channel_of: np.ndarray  # channel of each index symbol (None when one codebook)


def _read_clustered(data, entry):
    """Parse and fully check a clustered payload (everything but writing R)."""
    rd = _Reader(data, entry.payload_offset, entry.payload_offset + entry.payload_size)
    elements = entry.size // entry.esize
    start = rd.pos
    n_books = rd.uint(2, entry.field("codebook_count"))
    if n_books != 1 and n_books != entry.channels:
        raise FormatError(
            start,
            entry.field("codebook_count"),
            f"{n_books} must be 1 or channels = {entry.channels}.",
        )
    counts_at = rd.pos
    entry_counts = np.frombuffer(rd.take(2 * n_books, entry.field("entry_count")), "<u2").astype(np.int64)
    if entry_counts.max() > MAX_CODEBOOK:
        bad = int(np.argmax(entry_counts > MAX_CODEBOOK))
        raise FormatError(
            counts_at + 2 * bad,
            entry.field("entry_count"),
            f"codebook {bad} has {entry_counts[bad]} > {MAX_CODEBOOK} entries.",
        )
    total = int(entry_counts.sum())
    entries = np.frombuffer(rd.take(total * entry.esize, entry.field("entries")), _UINT[entry.esize])
    sparse = entry.encoding == CLUSTERED_SPARSE
    escape_run = 0
    gaps = background = None
    if sparse:
        background = np.frombuffer(
            rd.take(n_books * entry.esize, entry.field("background")),
            _UINT[entry.esize],
        )
        escape_at = rd.pos
        escape_run = rd.uint(1, entry.field("escape_run"))
        if escape_run < 1:
            raise FormatError(escape_at, entry.field("escape_run"), "must be in 1..255.")
        gaps = _read_stream(rd, entry.field("gaps"))
        if gaps.lengths.size > escape_run + 1:
            raise FormatError(
                gaps.offset + 16,
                gaps.field + ".alphabet",
                f"{gaps.lengths.size} symbols exceed escape_run + 1 = {escape_run + 1}.",
            )
    indices = _read_stream(rd, entry.field("indices"))
    if rd.pos != rd.end:
        raise FormatError(
            rd.pos,
            entry.field("payload_size"),
            f"{rd.end - rd.pos} bytes after the end of the payload.",
        )

    positions = None
    if sparse:
        _decode_stream(gaps)
        escapes = int(gaps.hist[0]) if gaps.hist.size else 0
        if gaps.count - escapes != indices.count:
            raise FormatError(
                indices.offset,
                indices.field + ".count",
                f"{indices.count} indices for {gaps.count - escapes} non-zero elements.",
            )
        if gaps.count:
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
        else:
            positions = np.zeros(0, np.int64)
    elif indices.count != elements:
        raise FormatError(
            indices.offset,
            indices.field + ".count",
            f"{indices.count} indices for {elements} elements.",
        )
    _decode_stream(indices)

    channel_of = None
    if n_books == 1:
        if indices.hist.size > entry_counts[0] and indices.hist[entry_counts[0] :].any():
            raise FormatError(
                indices.data_offset,
                indices.field + ".data",
                f"index beyond the {entry_counts[0]} codebook entries.",
            )
    elif indices.count:
        per_channel = elements // n_books
        if sparse:
            channel_of = positions // per_channel
        else:
            channel_of = np.repeat(np.arange(n_books), per_channel)
        if not (indices.symbols < entry_counts[channel_of]).all():
            raise FormatError(
                indices.data_offset,
                indices.field + ".data",
                "index beyond its channel's codebook.",
            )
    return _Clustered(entry_counts, entries, background, escape_run, gaps, indices, positions, channel_of)


def _check_payload_crc(data, entry):
    payload = data[entry.payload_offset : entry.payload_offset + entry.payload_size]
    if zlib.crc32(payload) != entry.payload_crc32:
        raise FormatError(
            entry.table_offset + _E_CRC,
            entry.field("payload_crc32"),
            "payload checksum mismatch.",
        )
    return payload


def _inflate(payload, entry):
    """Inflate a ZLIB payload to exactly `entry.size` bytes, never more."""
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
    if len(out) != entry.size or not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
        raise FormatError(
            entry.payload_offset,
            entry.field("payload"),
            f"zlib stream must inflate to exactly {entry.size} bytes and end with the payload.",
        )
    return out


def _decode_into(data, entry, target):
    """Decode segment `entry`'s payload into `target` (a uint8 array of entry.size)."""
    payload = _check_payload_crc(data, entry)
    if entry.encoding == RAW:
        if entry.payload_size != entry.size:
            raise FormatError(
                entry.table_offset + _E_PAYLOAD_SIZE,
                entry.field("payload_size"),
                f"RAW payload must be {entry.size} bytes.",
            )
        target[:] = np.frombuffer(payload, np.uint8)
        return
    if entry.encoding == ZLIB:
        target[:] = np.frombuffer(_inflate(payload, entry), np.uint8)
        return
    parsed = _read_clustered(data, entry)
    values = target.view(_UINT[entry.esize])
    if entry.encoding == CLUSTERED_SPARSE and parsed.background.any():  # R starts zeroed
        values.reshape(parsed.background.size, -1)[:] = parsed.background[:, None]
    if not parsed.indices.count:
        return
    symbols = parsed.indices.symbols
    if parsed.channel_of is not None:
        bases = np.concatenate([[0], np.cumsum(parsed.entry_counts)[:-1]])
        symbols = bases[parsed.channel_of] + symbols
    if entry.encoding == CLUSTERED_SPARSE:
        values[parsed.positions] = parsed.entries[symbols]
    else:
        values[:] = parsed.entries[symbols]


def restore(skeleton, sidecar, *, max_restored_size=MAX_RESTORED_SIZE):
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
    skeleton = memoryview(skeleton).cast("B")
    if len(skeleton) != header.skeleton_size:
        raise FormatError(
            40,
            "skeleton_size",
            f"the skeleton has {len(skeleton)} bytes, the sidecar expects {header.skeleton_size}.",
        )
    if hashlib.sha256(skeleton).digest() != header.skeleton_sha256:
        raise FormatError(
            80,
            "skeleton_sha256",
            "the skeleton does not belong to this sidecar (SHA-256 mismatch).",
        )
    out = np.zeros(header.restored_size, np.uint8)  # calloc: untouched pages cost nothing
    skel = np.frombuffer(skeleton, np.uint8)
    s = r = 0
    for entry in header.entries:
        gap = entry.offset - r
        out[r : entry.offset] = skel[s : s + gap]
        s += gap
        _decode_into(data, entry, out[entry.offset : entry.offset + entry.size])
        r = entry.offset + entry.size
    out[r:] = skel[s:]
    if hashlib.sha256(out).digest() != header.restored_sha256:
        raise FormatError(48, "restored_sha256", "the restored file's SHA-256 does not match.")
    return out.tobytes()


def inspect(sidecar):
    """Header fields and per-segment statistics of a sidecar (for `keras-dc inspect`).

    Verifies the sidecar's own checksums and decodes every stream (the skeleton is not
    needed, so the SHA-256 checks of `restore` are not made).

    Returns:
        A dict with `version`, `restored_size`, `skeleton_size`, `payload_size`,
        `sidecar_size`, `segment_count`, `restored_sha256` and `skeleton_sha256` (hex),
        and `segments`: one dict per segment with the keys of `build_bundle`'s stats.
    """
    data, header = _parse_header(sidecar, MAX_RESTORED_SIZE)
    segments = []
    for entry in header.entries:
        payload = _check_payload_crc(data, entry)
        stats = _base_stats(entry.name, entry.offset, entry.size, entry.dtype, entry.channels)
        stats.update(encoding=_ENCODING_NAMES[entry.encoding], payload_bytes=entry.payload_size)
        if entry.encoding == RAW:
            if entry.payload_size != entry.size:
                raise FormatError(
                    entry.table_offset + _E_PAYLOAD_SIZE,
                    entry.field("payload_size"),
                    f"RAW payload must be {entry.size} bytes.",
                )
            stats["nonzeros"] = _count_nonzero(np.frombuffer(payload, _UINT[entry.esize]), entry.dtype)
        elif entry.encoding == ZLIB:
            stats["nonzeros"] = _count_nonzero(
                np.frombuffer(_inflate(payload, entry), _UINT[entry.esize]),
                entry.dtype,
            )
        else:
            parsed = _read_clustered(data, entry)
            _stream_stats(stats, parsed.indices, parsed.gaps, parsed.entry_counts, parsed.escape_run)
            book_start = np.concatenate([[0], np.cumsum(parsed.entry_counts)[:-1]])
            symbols = parsed.indices.symbols.astype(np.int64)
            if parsed.channel_of is not None:
                symbols = symbols + book_start[parsed.channel_of]
            nonzeros = _count_nonzero(parsed.entries[symbols], entry.dtype)
            if entry.encoding == CLUSTERED_SPARSE and stats["elements"]:  # plus the background
                n_books = parsed.background.size
                per_book = stats["elements"] // n_books
                emitted = np.bincount(parsed.positions // per_book, minlength=n_books)
                nonzeros += int(np.dot(per_book - emitted, _nonzero_mask(parsed.background, entry.dtype)))
            stats["nonzeros"] = nonzeros
        segments.append(stats)
    return {
        "version": f"{VERSION_MAJOR}.{header.version_minor}",
        "restored_size": header.restored_size,
        "skeleton_size": header.skeleton_size,
        "payload_size": header.payload_size,
        "sidecar_size": len(data),
        "segment_count": header.segment_count,
        "restored_sha256": header.restored_sha256.hex(),
        "skeleton_sha256": header.skeleton_sha256.hex(),
        "segments": segments,
    }


# =========================================================================== writing


def _base_stats(name, offset, size, dtype, channels):
    esize = DTYPES[dtype][1]
    return {
        "name": name,
        "offset": offset,
        "dtype": dtype,
        "channels": channels,
        "encoding": "RAW",
        "codebooks": 0,
        "elements": size // esize,
        "nonzeros": 0,
        "codebook_entries": 0,
        "escape_run": 0,
        "index_count": 0,
        "index_bits": 0,
        "index_entropy_bits": 0.0,
        "gap_count": 0,
        "gap_bits": 0,
        "gap_entropy_bits": 0.0,
        "payload_bytes": size,
        "raw_bytes": size,
    }


def _stream_stats(stats, indices, gaps, entry_counts, escape_run):
    stats.update(
        codebooks=int(entry_counts.size),
        codebook_entries=int(entry_counts.sum()),
        escape_run=int(escape_run),
        index_count=indices.count,
        index_bits=indices.nbits,
        index_entropy_bits=huffman.entropy_bits(indices.hist),
    )
    if gaps is not None:
        stats.update(
            gap_count=gaps.count,
            gap_bits=gaps.nbits,
            gap_entropy_bits=huffman.entropy_bits(gaps.hist),
        )


_SIGN_BIT = {"float32": np.uint32(0x80000000), "float16": np.uint16(0x8000)}


def _nonzero_mask(patterns, dtype):
    """Which bit patterns are non-zero values (for floats, ±0.0 are both zero)."""
    sign = _SIGN_BIT.get(dtype)
    return (patterns & ~sign) != 0 if sign is not None else patterns != 0


def _count_nonzero(patterns, dtype):
    return int(np.count_nonzero(_nonzero_mask(patterns, dtype)))


def _check_segments(restored, segments):
    if not isinstance(segments, (list, tuple)):
        raise TypeError(f"segments must be a list of Segment, got {type(segments).__name__}.")
    end = 0
    for i, seg in enumerate(segments):
        if not isinstance(seg, Segment):
            raise TypeError(f"segments[{i}] must be a Segment, got {type(seg).__name__}.")
        if seg.dtype not in DTYPES:
            raise ValueError(f"segments[{i}].dtype {seg.dtype!r} is not one of {sorted(DTYPES)}.")
        for attr in ("offset", "size", "channels"):
            value = getattr(seg, attr)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"segments[{i}].{attr} must be a non-negative int, got {value!r}.")
        if seg.channels < 1 or seg.channels > 2**32 - 1:
            raise ValueError(f"segments[{i}].channels must be in 1..2^32−1, got {seg.channels}.")
        if not isinstance(seg.name, str):
            raise TypeError(f"segments[{i}].name must be a str, got {type(seg.name).__name__}.")
        esize = DTYPES[seg.dtype][1]
        if seg.size % (seg.channels * esize):
            raise ValueError(
                f"segments[{i}] ({seg.name!r}): size {seg.size} is not a multiple of "
                f"channels × element size = {seg.channels} × {esize}."
            )
        if seg.offset < end:
            raise ValueError(
                f"segments[{i}] ({seg.name!r}) at offset {seg.offset} overlaps or precedes the previous "
                f"segment, which ends at {end}; pass segments sorted by offset and non-overlapping."
            )
        if seg.offset + seg.size > len(restored):
            raise ValueError(
                f"segments[{i}] ({seg.name!r}) [{seg.offset}, {seg.offset + seg.size}) exceeds the "
                f"restored file's "
                f"{len(restored)} bytes."
            )
        end = seg.offset + seg.size


def _sort_order(values, book, n_books, equal_slices):
    """An order sorting the elements by (book, value), `book` being non-decreasing.

    Ties may come in any order (the grouping does not depend on it), but NumPy's stable
    sort is the faster one here: pruned weights hold long runs of one value.
    """
    if n_books == 1:
        return np.argsort(values, kind="stable")
    if equal_slices:  # element i is in book i // per_book: sort each row
        per_book = values.size // n_books
        order = np.argsort(values.reshape(n_books, per_book), axis=1, kind="stable")
        order += (np.arange(n_books) * per_book)[:, None]
        return order.ravel()
    if values.dtype.itemsize <= 4:
        key = (book.astype(np.uint64) << np.uint64(32)) | values.astype(np.uint64)
        return np.argsort(key, kind="stable")
    return np.lexsort((values, book))


def _groups(values, book, n_books, equal_slices=False):
    """Group equal (book, value) pairs: per-element group id, and per group its value,
    book and count. Groups are numbered by book, then by value. `equal_slices`: book
    of element i is i // (values.size // n_books)."""
    order = _sort_order(values, book, n_books, equal_slices)
    sorted_values = values[order]
    new = np.ones(values.size, bool)
    new[1:] = sorted_values[1:] != sorted_values[:-1]
    if n_books > 1:
        sorted_books = book[order]
        new[1:] |= sorted_books[1:] != sorted_books[:-1]
        group_book = sorted_books[new]
    else:
        group_book = np.zeros(int(new.sum()), np.int64)
    group_sorted = np.cumsum(new) - 1
    group = np.empty(values.size, np.int64)
    group[order] = group_sorted
    return group, sorted_values[new], group_book, np.bincount(group_sorted)


def _by_use(group_value, group_book, group_count):
    """Group order by book, then decreasing count, then increasing value."""
    return np.lexsort((group_value, -group_count, group_book))


def _cluster(values, n_books, sparse):
    """Codebooks of `values` split into `n_books` equal slices, or None if > 256 each.

    Returns (entry_counts, entries, symbols, kept, background): each codebook ordered by
    decreasing use, ties by value; `symbols` indexes the element's own codebook. With
    `sparse`, each slice's most frequent value (ties: smallest) is its background, left
    out of the codebook; `kept` are the positions of the other elements.
    """
    per_book = values.size // n_books
    book = None if n_books == 1 else np.arange(values.size) // per_book
    kept = background = None
    if sparse:
        zero = values == 0
        zeros_per_book = zero.reshape(n_books, per_book).sum(axis=1)
        if (2 * zeros_per_book > per_book).all():  # zero is a majority: no sort needed
            background = np.zeros(n_books, values.dtype)
            kept = np.flatnonzero(~zero)
        else:
            group, group_value, group_book, group_count = _groups(values, book, n_books, True)
            ranked = _by_use(group_value, group_book, group_count)
            first = np.ones(ranked.size, bool)
            first[1:] = group_book[ranked][1:] != group_book[ranked][:-1]
            background_groups = ranked[first]  # one per book, in book order
            background = group_value[background_groups]
            is_background = np.zeros(group_value.size, bool)
            is_background[background_groups] = True
            kept = np.flatnonzero(~is_background[group])
        values = values[kept]
        book = None if n_books == 1 else kept // per_book
    if not values.size:
        return np.zeros(n_books, np.int64), values[:0], np.zeros(0, np.int64), kept, background
    group, group_value, group_book, group_count = _groups(values, book, n_books, not sparse)
    entry_counts = np.bincount(group_book, minlength=n_books)
    if entry_counts.max() > MAX_CODEBOOK:
        return None
    ranked = _by_use(group_value, group_book, group_count)
    book_start = np.concatenate([[0], np.cumsum(entry_counts)[:-1]])
    rank = np.empty(group_value.size, np.int64)
    rank[ranked] = np.arange(group_value.size) - book_start[group_book[ranked]]
    return entry_counts, group_value[ranked], rank[group], kept, background


def _stream_bytes(symbols):
    """HuffmanStream bytes for `symbols` (section 6), plus (nbits, entropy)."""
    if not symbols.size:
        return struct.pack("<QQH", 0, 0, 0), 0, 0.0
    hist = np.bincount(symbols)
    lengths = huffman.code_lengths(hist, reserve=True)
    data, nbits = huffman.encode(symbols, lengths)
    padded = np.zeros(lengths.size + lengths.size % 2, np.uint8)
    padded[: lengths.size] = lengths
    packed = (padded[0::2] | (padded[1::2] << 4)).astype(np.uint8)
    return (
        struct.pack("<QQH", symbols.size, nbits, lengths.size) + packed.tobytes() + data,
        nbits,
        huffman.entropy_bits(hist),
    )


def _stream_cost_bits(hist):
    """Size in bits of a HuffmanStream with this histogram (for choosing parameters).

    Uses the unlimited Huffman code with the reserved leaf (a heap over the used
    symbols): exact unless the 15-bit limit binds, which only matters for the choice.
    """
    used = np.flatnonzero(hist)
    if not used.size:
        return 8 * _STREAM_FIXED
    heap = [0] + sorted(int(c) for c in hist[used])  # 0: the reserved codeword
    bits = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        bits += merged
        heapq.heappush(heap, merged)
    return 8 * (_STREAM_FIXED + (int(used[-1]) + 2) // 2) + 8 * ((bits + 7) // 8)


def _gap_histogram(run_values, run_counts, escape_run):
    hist = np.bincount(run_values % escape_run + 1, weights=run_counts, minlength=escape_run + 1).astype(
        np.int64,
    )
    hist[0] = int(np.dot(run_values // escape_run, run_counts))
    return hist


_ESCAPE_RUN_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 255)


def _choose_escape_run(runs):
    """The escape run E in 1..255 giving the smallest gap stream.

    Exact HuffmanStream sizes on a coarse grid, then a hill climb in steps of 1 from
    the best grid point (ties go to the larger E: fewer symbols to decode).
    """
    run_values, run_counts = np.unique(runs, return_counts=True)
    costs = {}

    def cost(e):
        if e not in costs:
            costs[e] = _stream_cost_bits(_gap_histogram(run_values, run_counts, e))
        return costs[e]

    best = min(_ESCAPE_RUN_GRID, key=lambda e: (cost(e), -e))
    for direction in (1, -1):
        e = best
        while 1 <= e + direction <= MAX_ESCAPE_RUN and cost(e + direction) <= cost(e):
            e += direction
        if (cost(e), -e) < (cost(best), -best):
            best = e
    return best


def _gap_symbols(runs, escape_run):
    escapes = runs // escape_run
    last = (runs % escape_run + 1).astype(np.int64)
    if not escapes.any():
        return last
    total = runs.size + int(escapes.sum())
    symbols = np.zeros(total, np.int64)
    ends = np.cumsum(escapes + 1) - 1  # each run's final symbol; escapes (0) precede it
    symbols[ends] = last
    return symbols


def _clustered_payload(values, esize, n_books, sparse):
    clustered = _cluster(values, n_books, sparse)
    if clustered is None:
        return None
    entry_counts, entries, symbols, kept, background = clustered
    parts = [
        struct.pack("<H", n_books),
        entry_counts.astype("<u2").tobytes(),
        entries.astype(_UINT[esize]).tobytes(),
    ]
    gap = (b"", 0, 0.0)
    escape_run = 0
    if sparse:
        parts.append(background.astype(_UINT[esize]).tobytes())
        runs = np.diff(kept, prepend=-1) - 1
        escape_run = _choose_escape_run(runs) if runs.size else 1
        gap = _stream_bytes(_gap_symbols(runs, escape_run))
        parts.append(struct.pack("<B", escape_run))
        parts.append(gap[0])
    index = _stream_bytes(symbols)
    parts.append(index[0])
    stats = {
        "codebooks": n_books,
        "codebook_entries": int(entry_counts.sum()),
        "escape_run": escape_run,
        "index_count": int(symbols.size),
        "index_bits": index[1],
        "index_entropy_bits": index[2],
    }
    if sparse:
        stats.update(
            gap_count=int((runs // escape_run).sum() + runs.size),
            gap_bits=gap[1],
            gap_entropy_bits=gap[2],
        )
    return b"".join(parts), stats


# ZLIB is tried exactly on segments up to this size. Above it, a sample of evenly
# spaced chunks estimates zlib's size first (zlib's window is 32 KiB, so 64 KiB chunks
# see nearly what the whole stream sees), and the full compression is skipped when a
# clustered payload is already `_ZLIB_SKIP_MARGIN` times smaller than the estimate
# (the sample's estimate was within a few % on ResNet50's kernels). zlib -9 of every
# large buffer was half of the encoding time of ResNet50 (BENCHMARKS.md, section 5).
_ZLIB_SAMPLE_CHUNK = 1 << 16
_ZLIB_SAMPLE_CHUNKS = 16
_ZLIB_SKIP_MARGIN = 1.25


def _zlib_estimate(raw, level):
    """Estimated zlib size of `raw` from evenly spaced chunks, or None if it is small."""
    n = len(raw)
    sampled = _ZLIB_SAMPLE_CHUNK * _ZLIB_SAMPLE_CHUNKS
    if n <= 2 * sampled:
        return None
    starts = np.linspace(0, n - _ZLIB_SAMPLE_CHUNK, _ZLIB_SAMPLE_CHUNKS).astype(np.int64)
    packed = sum(len(zlib.compress(raw[s : s + _ZLIB_SAMPLE_CHUNK], level)) for s in starts)
    return packed * n / sampled


def _encode_segment(raw, seg, allowed, per_channel, zlib_level, zlib_estimate):
    """Smallest payload among the allowed, applicable encodings (ties: lower code).

    With `zlib_estimate`, ZLIB is skipped on a large segment whose best clustered
    payload is `_ZLIB_SKIP_MARGIN` times smaller than zlib's estimated size.
    """
    esize = DTYPES[seg.dtype][1]
    values = np.frombuffer(raw, _UINT[esize])
    candidates = [(len(raw), RAW, 0, raw, {})]
    books = [1]
    if per_channel and 1 < seg.channels <= 65535:
        books.append(seg.channels)
    too_many = set()  # codebook counts for which a slice has > 256 values besides its background
    for encoding in (CLUSTERED_SPARSE, CLUSTERED_DENSE):
        if encoding not in allowed or not values.size:
            continue
        for n_books in books:
            if n_books in too_many:  # then that slice has > 256 values in all: no dense codebook
                continue
            result = _clustered_payload(values, esize, n_books, encoding == CLUSTERED_SPARSE)
            if result is not None:
                candidates.append((len(result[0]), encoding, n_books, result[0], result[1]))
            elif encoding == CLUSTERED_SPARSE:
                too_many.add(n_books)
    if ZLIB in allowed:
        best = min(c[0] for c in candidates)
        estimate = _zlib_estimate(raw, zlib_level) if zlib_estimate else None
        if estimate is None or _ZLIB_SKIP_MARGIN * best >= estimate:
            packed = zlib.compress(raw, zlib_level)
            candidates.append((len(packed), ZLIB, 0, packed, {}))
    size, encoding, n_books, payload, extra = min(candidates, key=lambda c: c[:3])
    stats = _base_stats(seg.name, seg.offset, seg.size, seg.dtype, seg.channels)
    stats.update(extra)
    stats.update(
        encoding=_ENCODING_NAMES[encoding],
        nonzeros=_count_nonzero(values, seg.dtype),
        payload_bytes=size,
    )
    return encoding, payload, stats


def build_bundle(restored, segments, *, encodings=None, per_channel=True, zlib_level=9,
                 zlib_estimate=True):
    """Split `restored` into a skeleton and a compressed sidecar.

    Each segment gets the smallest payload among the applicable encodings
    (`docs/bundle-format.md` section 7): CLUSTERED_SPARSE / CLUSTERED_DENSE when it has
    at most 256 distinct values (compared as bit patterns; per channel when
    `per_channel` and one codebook would be too large or larger), ZLIB, and RAW. Same
    input, same bytes.

    Args:
        restored: bytes-like, the runnable file R (at most 2^31 − 1 bytes).
        segments: list of `Segment`, sorted by offset and non-overlapping.
        encodings: names from `ENCODINGS` the encoder may choose among; RAW is always
            allowed. Defaults to all of them.
        per_channel: also try one codebook per channel for segments with
            `channels > 1`. Defaults to `True`.
        zlib_level: zlib compression level of the ZLIB encoding, 0..9. Defaults to `9`.
        zlib_estimate: on segments over 2 MiB, estimate zlib's size from a 1 MiB
            sample and skip the full compression when a clustered payload is at
            least 1.25 times smaller than the estimate (ZLIB could then win only
            on data whose sample misrepresents it). `False` always compresses fully,
            as before (for comparisons). Defaults to `True`.

    Returns:
        `(skeleton, sidecar, stats)`: two `bytes` objects and one stats dict per
        segment (name, offset, dtype, channels, encoding, codebooks, elements,
        nonzeros, codebook_entries, escape_run, index_count, index_bits,
        index_entropy_bits, gap_count, gap_bits, gap_entropy_bits, payload_bytes,
        raw_bytes).

    Raises:
        ValueError, TypeError: invalid arguments (the message says which segment).
    """
    restored = memoryview(restored).cast("B")
    if len(restored) > MAX_RESTORED_SIZE:
        raise ValueError(
            f"restored file has {len(restored)} bytes; the format allows at most {MAX_RESTORED_SIZE}.",
        )
    _check_segments(restored, segments)
    if encodings is None:
        allowed = set(ENCODINGS.values())
    else:
        unknown = [e for e in encodings if e not in ENCODINGS]
        if unknown:
            raise ValueError(f"unknown encodings {unknown}; choose from {sorted(ENCODINGS)}.")
        allowed = {ENCODINGS[e] for e in encodings} | {RAW}
    if not isinstance(zlib_level, int) or not 0 <= zlib_level <= 9:
        raise ValueError(f"zlib_level must be an int in 0..9, got {zlib_level!r}.")

    skeleton_parts, entries, payloads, names, stats = [], [], [], [], []
    cursor = name_cursor = 0
    for seg in segments:
        skeleton_parts.append(restored[cursor : seg.offset])
        raw = restored[seg.offset : seg.offset + seg.size]
        encoding, payload, seg_stats = _encode_segment(raw, seg, allowed, per_channel, zlib_level,
                                                       zlib_estimate)
        name = seg.name.encode("utf-8")
        entries.append(
            struct.pack(
                "<QQQIIIIBB6x",
                seg.offset,
                seg.size,
                len(payload),
                zlib.crc32(payload),
                seg.channels,
                name_cursor,
                len(name),
                DTYPES[seg.dtype][0],
                encoding,
            )
        )
        names.append(name)
        name_cursor += len(name)
        payloads.append(payload)
        stats.append(seg_stats)
        cursor = seg.offset + seg.size
    skeleton_parts.append(restored[cursor:])
    skeleton = b"".join(skeleton_parts)
    table = b"".join(entries) + b"".join(names)
    payload_area = b"".join(payloads)
    header = struct.pack(
        "<4sHHIIIIQQQ32s32sI",
        MAGIC,
        VERSION_MAJOR,
        VERSION_MINOR,
        HEADER_SIZE,
        len(segments),
        ENTRY_SIZE,
        name_cursor,
        len(payload_area),
        len(restored),
        len(skeleton),
        hashlib.sha256(restored).digest(),
        hashlib.sha256(skeleton).digest(),
        zlib.crc32(table),
    )
    header += struct.pack("<I", zlib.crc32(header))
    return skeleton, header + table + payload_area, stats
