"""Byte layout of the keras-dc sidecar: the one place that knows where each field lies.

Mirrors `docs/bundle-format.md` version 1.6: every fixed structure is written here once,
as the list of its fields (name and struct code) in the order of the spec's table, and
the offsets, sizes and struct strings that the decoder and the encoder use are derived
from that list:

- section 2: little-endian integers, no padding (section 11, "No alignment"), and the
  minimal LEB128 varints of PACKED payloads (`Varint`);
- section 4: `HEADER` (fixed fields) and `HEADER_CRC` (the header's last 4 bytes);
- section 5: `ENTRY` (one segment-table entry) and the `DTYPES` table;
- section 6: `STREAM` (the fixed part of a HuffmanStream) and its nibble-packed
  `lengths` (`pack_lengths`, `unpack_lengths`); 6.5: `COMPACT_STREAM`, the varint header
  of a stream inside a PACKED part;
- section 4.1: `VERSION_MINOR` and the minor version each encoding needs
  (`ENCODING_MINOR`, `minor_version_for`);
- section 7: the `ENCODINGS` codes and the payload fields (`CODEBOOK_COUNT`,
  `ENTRY_COUNT`, `ESCAPE_RUN`, `SLICE_COUNT`, `INNER_ENCODING`, `element_dtype`; PACKED's
  `PART_COUNT` and `PART` descriptor), and which codes are clustered (`CLUSTERED_CODES`),
  sparse (`SPARSE_CODES`), grouped (`GROUPED_CODES`), a DELTA payload's inner code
  (`INNER_CODES`) or a PACKED part's (`PART_CODES`); 7.11: ZLIB_DICT's preset dictionary
  (`skeleton_dict`, named by `SKELETON_DICT_SIZE` and `SKELETON_DICT_SHA256`) and the zlib
  header fields a reader checks (`ZLIB_FLG`, `ZLIB_FDICT`, `ZLIB_DICTID`); 7.12: MASKED's
  inner codes (`MASKED_INNER_CODES`) and mask sizes (`mask_size`);
- section 10: `FormatError` and the limits that bound every allocation.

Nothing here reads or writes a whole sidecar: `converters.decoder` reads one,
`converters.encoder` writes one, both through these definitions.
"""

import collections
import dataclasses
import functools
import hashlib
import os
import struct
import zlib

import numpy as np

__all__ = [
    "CLUSTERED_CODES",
    "CLUSTERED_DENSE",
    "CLUSTERED_SPARSE",
    "CODEBOOK_COUNT",
    "COMPACT_STREAM",
    "DELTA",
    "DTYPES",
    "DTYPE_BY_CODE",
    "ENCODINGS",
    "ENCODING_MINOR",
    "ENCODING_NAMES",
    "ENTRY",
    "ENTRY_COUNT",
    "ENTRY_SIZE",
    "ESCAPE_RUN",
    "HEADER",
    "HEADER_CRC",
    "HEADER_SIZE",
    "INNER_CODES",
    "INNER_ENCODING",
    "MAGIC",
    "MASKED",
    "MASKED_INNER_CODES",
    "MAX_ALPHABET",
    "MAX_CHANNELS",
    "MAX_CODEBOOK",
    "MAX_CODEBOOK_COUNT",
    "MAX_ENTRY_SIZE",
    "MAX_ESCAPE_RUN",
    "MAX_GROUPS",
    "MAX_HEADER_SIZE",
    "MAX_RESTORED_SIZE",
    "MAX_VARINT_SIZE",
    "MIN_PART_SIZE",
    "PACKED",
    "PART",
    "PART_CHANNELS",
    "PART_CODES",
    "PART_COUNT",
    "PART_DTYPE",
    "PART_ENCODING",
    "PART_PAYLOAD_SIZE",
    "PART_SIZE",
    "RAW",
    "SKELETON_DICT_SHA256",
    "SKELETON_DICT_SIZE",
    "SLICE_COUNT",
    "SPARSE_CODES",
    "SPARSE_RAW",
    "STREAM",
    "VERSION_MAJOR",
    "VERSION_MINOR",
    "ZLIB",
    "ZLIB_DICT",
    "ZLIB_DICTID",
    "ZLIB_FDICT",
    "ZLIB_FLG",
    "Field",
    "FormatError",
    "GROUPED_CODES",
    "GROUPED_DENSE",
    "GROUPED_SPARSE",
    "Layout",
    "Varint",
    "element_dtype",
    "lengths_size",
    "mask_size",
    "minor_version_for",
    "pack_lengths",
    "skeleton_dict",
    "unpack_lengths",
]


class FormatError(ValueError):
    """A malformed bundle: names the sidecar byte `offset` and the `field` (section 10).

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
class Field:
    """One fixed-size little-endian field of a spec table.

    Attributes:
        name: the field's name in `docs/bundle-format.md`.
        code: its `struct` format code without byte order: `"B"`, `"H"`, `"I"`, `"Q"`
            for u8 … u64, `"32s"` for 32 bytes, `"6x"` for reserved bytes.
        offset: byte offset of the field in its structure. Defaults to `0` (a field
            read or written on its own, at a position only known at run time).
    """

    name: str
    code: str
    offset: int = 0

    @functools.cached_property
    def struct(self):
        return struct.Struct("<" + self.code)

    @property
    def size(self):
        return self.struct.size

    @property
    def end(self):
        """Offset of the first byte after the field in its structure."""
        return self.offset + self.size

    @property
    def dtype(self):
        """The NumPy dtype of an array of this (integer) field, e.g. `u16[C]`."""
        return np.dtype("<" + self.code)

    def pack(self, value):
        return self.struct.pack(value)

    def unpack_from(self, data, base=0):
        """The field's value in `data`, the structure starting at `base`."""
        return self.struct.unpack_from(data, base + self.offset)[0]

    def pack_into(self, buffer, base, value):
        """Write `value` into `buffer`, the structure starting at `base`."""
        self.struct.pack_into(buffer, base + self.offset, value)

    def error(self, message, base=0, prefix=""):
        """A `FormatError` naming this field, its structure starting at file offset `base`."""
        return FormatError(base + self.offset, prefix + self.name, message)


class Layout:
    """A structure of consecutive fields, packed without padding (one table of the spec).

    `layout["name"]` is the `Field` with its offset; `pack` and `unpack_from` move the
    whole structure (reserved bytes are written as zeros and not returned).
    """

    def __init__(self, title, fields):
        self.title = title
        offset = 0
        placed = []
        for name, code in fields:
            placed.append(Field(name, code, offset))
            offset = placed[-1].end
        self.fields = tuple(placed)
        self._by_name = {f.name: f for f in placed}
        self.struct = struct.Struct("<" + "".join(code for _, code in fields))
        self.size = self.struct.size
        self.Values = collections.namedtuple(
            title, [f.name for f in placed if not f.code.endswith("x")]
        )

    def __getitem__(self, name):
        return self._by_name[name]

    def pack(self, *args, **kwargs):
        """The structure's bytes; every field but the reserved ones must be given."""
        return self.struct.pack(*self.Values(*args, **kwargs))

    def unpack_from(self, data, base=0):
        """The fields' values (a namedtuple) of the structure at `base` of `data`."""
        return self.Values._make(self.struct.unpack_from(data, base))

    def error(self, name, message, base=0, prefix=""):
        """A `FormatError` naming field `name`, the structure starting at file offset `base`."""
        return self[name].error(message, base, prefix)


MAX_VARINT_SIZE = 9  # bytes: values up to 2^63 − 1 (section 2)


@dataclasses.dataclass(frozen=True)
class Varint:
    """One minimal unsigned LEB128 field (section 2, since 1.4: PACKED payloads only).

    Seven bits per byte, least significant group first, the high bit set when another
    byte follows; at most `MAX_VARINT_SIZE` bytes, and no final 0x00 byte after the
    first, so every value has one byte form.

    Attributes:
        name: the field's name in `docs/bundle-format.md`.
    """

    name: str

    @staticmethod
    def pack(value):
        """The varint's bytes for `value` in 0 … 2^63 − 1."""
        value = int(value)
        if not 0 <= value < 1 << (7 * MAX_VARINT_SIZE):
            raise ValueError(f"a varint holds 0 … 2^63 − 1, not {value}.")
        out = bytearray()
        while value > 0x7F:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)
        return bytes(out)

    @staticmethod
    def size_of(value):
        """Bytes of the varint of `value`."""
        return max(1, (int(value).bit_length() + 6) // 7)

    def read(self, data, pos, end, prefix=""):
        """(value, position after it) of the varint at `data[pos]`, which must end by `end`.

        Raises:
            FormatError: at `pos`, naming `prefix + name`, when the varint runs past
                `end`, is longer than 9 bytes or is not minimal.
        """
        value = shift = 0
        at = pos
        while True:
            if pos >= end:
                raise self.error(f"the varint runs past the {end - at} bytes left.", at, prefix)
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if pos - at == MAX_VARINT_SIZE:
                raise self.error(f"a varint is at most {MAX_VARINT_SIZE} bytes long.", at, prefix)
        if byte == 0 and pos - at > 1:
            raise self.error("the varint is not minimal (its last byte is 0x00).", at, prefix)
        return value, pos

    def error(self, message, at, prefix=""):
        """A `FormatError` naming this field, which starts at file offset `at`."""
        return FormatError(at, prefix + self.name, message)


# --------------------------------------------------------------------------- section 4

MAGIC = b"KDCW"
VERSION_MAJOR = 1
VERSION_MINOR = 6  # the newest minor version this implementation writes (section 4.1)

# The header's fields at fixed offsets; a newer minor version may add fields after
# them (section 4.1), before the CRC.
HEADER = Layout(
    "Header",
    [
        ("magic", "4s"),
        ("version_major", "H"),
        ("version_minor", "H"),
        ("header_size", "I"),
        ("segment_count", "I"),
        ("entry_size", "I"),
        ("names_size", "I"),
        ("payload_size", "Q"),
        ("restored_size", "Q"),
        ("skeleton_size", "Q"),
        ("restored_sha256", "32s"),
        ("skeleton_sha256", "32s"),
        ("table_crc32", "I"),
    ],
)
# Always the last four bytes of the header: at file offset `header_size − 4`.
HEADER_CRC = Field("header_crc32", "I")
HEADER_SIZE = HEADER.size + HEADER_CRC.size  # 120 in v1.0
MAX_HEADER_SIZE = 65536
MAX_RESTORED_SIZE = 2**31 - 1

# --------------------------------------------------------------------------- section 5

ENTRY = Layout(
    "Entry",
    [
        ("offset", "Q"),
        ("size", "Q"),
        ("payload_size", "Q"),
        ("payload_crc32", "I"),
        ("channels", "I"),
        ("name_offset", "I"),
        ("name_size", "I"),
        ("dtype", "B"),
        ("encoding", "B"),
        ("reserved", "6x"),
    ],
)
ENTRY_SIZE = ENTRY.size  # 48 in v1.0
MAX_ENTRY_SIZE = 65536
MAX_CHANNELS = 2**32 - 1  # channels is a u32

# dtype name -> (code, element size `esize` in bytes)
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
DTYPE_BY_CODE = {code: (name, size) for name, (code, size) in DTYPES.items()}

# --------------------------------------------------------------------------- section 6

STREAM = Layout(
    "HuffmanStream",
    [  # fixed part; `lengths` and `data` follow
        ("count", "Q"),
        ("nbits", "Q"),
        ("alphabet", "H"),
    ],
)
MAX_ALPHABET = 256
# 6.5: the header of a stream inside a PACKED part (7.10), then `lengths` and `data`.
COMPACT_STREAM = (Varint("count"), Varint("nbits"), Varint("alphabet"))


def lengths_size(alphabet):
    """Bytes of the `lengths` field of a stream with `alphabet` code lengths (two per byte)."""
    return (alphabet + 1) // 2


_NIBBLES = np.stack([np.arange(256) & 15, np.arange(256) >> 4], axis=1).astype(
    np.uint8
)  # byte -> (low, high)


def unpack_lengths(packed):
    """Both nibbles of each `lengths` byte, low nibble (the even symbol) first."""
    return _NIBBLES[np.frombuffer(packed, np.uint8)].ravel()


def pack_lengths(lengths):
    """The `lengths` field's bytes: symbol 2k in the low nibble of byte k, 2k+1 in the high."""
    padded = np.zeros(lengths.size + lengths.size % 2, np.uint8)
    padded[: lengths.size] = lengths
    return (padded[0::2] | (padded[1::2] << 4)).astype(np.uint8).tobytes()


# --------------------------------------------------------------------------- section 7

RAW, ZLIB, CLUSTERED_SPARSE, CLUSTERED_DENSE, SPARSE_RAW = 0, 1, 2, 3, 4
GROUPED_SPARSE, GROUPED_DENSE = 5, 6
DELTA = 7
PACKED = 8
ZLIB_DICT = 9
MASKED = 10
ENCODINGS = {
    "RAW": RAW,
    "ZLIB": ZLIB,
    "CLUSTERED_SPARSE": CLUSTERED_SPARSE,
    "CLUSTERED_DENSE": CLUSTERED_DENSE,
    "SPARSE_RAW": SPARSE_RAW,
    "GROUPED_SPARSE": GROUPED_SPARSE,
    "GROUPED_DENSE": GROUPED_DENSE,
    "DELTA": DELTA,
    "PACKED": PACKED,
    "ZLIB_DICT": ZLIB_DICT,
    "MASKED": MASKED,
}
ENCODING_NAMES = {code: name for name, code in ENCODINGS.items()}
# The minor version that introduced each encoding code (section 4.1, "Changes from 1.x").
ENCODING_MINOR = {
    RAW: 0,
    ZLIB: 0,
    CLUSTERED_SPARSE: 0,
    CLUSTERED_DENSE: 0,
    SPARSE_RAW: 1,
    GROUPED_SPARSE: 2,
    GROUPED_DENSE: 2,
    DELTA: 3,
    PACKED: 4,
    ZLIB_DICT: 5,
    MASKED: 6,
}
# Codes whose payload starts with codebooks (7.3, 7.8); of them, those with a background
# and gap stream (7.4, 7.8); and those with a codebook map (7.8).
CLUSTERED_CODES = frozenset({CLUSTERED_SPARSE, CLUSTERED_DENSE, GROUPED_SPARSE, GROUPED_DENSE})
SPARSE_CODES = frozenset({CLUSTERED_SPARSE, GROUPED_SPARSE})
GROUPED_CODES = frozenset({GROUPED_SPARSE, GROUPED_DENSE})
# The codes a PACKED part may use (7.10), and the inner code of a DELTA payload (7.9) and of
# a MASKED payload (7.12): neither wraps DELTA, PACKED or MASKED.
PART_CODES = frozenset(ENCODINGS.values()) - {PACKED}
INNER_CODES = PART_CODES - {DELTA, MASKED}
MASKED_INNER_CODES = INNER_CODES


def minor_version_for(encodings):
    """The `version_minor` a writer stores for a file using these encoding codes.

    The lowest minor version that defines them all (the codes inside DELTA and PACKED
    segments included): 0 unless a newer code is used, so a file that an older writer could have
    written keeps its older bytes.
    """
    return max((ENCODING_MINOR[e] for e in encodings), default=0)


# Clustered payloads (7.3, 7.4): fields at offsets that depend on the payload.
CODEBOOK_COUNT = Field("codebook_count", "H")
ENTRY_COUNT = Field("entry_count", "H")  # u16[codebook_count]
ESCAPE_RUN = Field("escape_run", "B")
# SPARSE_RAW payloads (7.6): the number of background slices, then as 7.4 without codebooks.
SLICE_COUNT = Field("slice_count", "H")
MAX_CODEBOOK_COUNT = 65535  # codebook_count is a u16
MAX_CODEBOOK = 256  # entries per codebook
MAX_GROUPS = 256  # codebooks of a grouped payload (7.8): the codebook map's alphabet
# DELTA payloads (7.9): the code of the encoding of the differences, then its payload.
INNER_ENCODING = Field("inner_encoding", "B")
MAX_ESCAPE_RUN = 255


def mask_size(count):
    """Bytes of a MASKED payload's `row_mask` or `column_mask` of `count` bits (7.12)."""
    return (count + 7) // 8


# PACKED payloads (7.10): the number of parts, then one descriptor per part (varints and
# u8s, in this order), then the parts' payloads.
PART_COUNT = Varint("part_count")
PART_SIZE = Varint("size")
PART_DTYPE = Field("dtype", "B")
PART_ENCODING = Field("encoding", "B")
PART_CHANNELS = Varint("channels")
PART_PAYLOAD_SIZE = Varint("payload_size")
PART = (PART_SIZE, PART_DTYPE, PART_ENCODING, PART_CHANNELS, PART_PAYLOAD_SIZE)
MIN_PART_SIZE = 5  # bytes of the shortest descriptor: five one-byte fields

_ELEMENT_DTYPES = {size: np.dtype(f"<u{size}") for size in (1, 2, 4, 8)}


def element_dtype(esize):
    """NumPy dtype of an element's bit pattern (codebook entries, background values)."""
    return _ELEMENT_DTYPES[esize]


# ZLIB_DICT payloads (7.11): a zlib stream (RFC 1950) whose header sets FDICT and names the
# preset dictionary by its Adler-32 (DICTID, stored big-endian as RFC 1950 says).
ZLIB_FLG = 1  # offset of the FLG byte in the stream
ZLIB_FDICT = 0x20  # FLG bit: a DICTID follows the two header bytes
ZLIB_DICTID = Field("DICTID", "4s", 2)
# The preset dictionary: `converters/skeleton.zdict` (the Java reader's copy is the
# resource dev/kerasdc/bundle/skeleton.zdict), named by its size and SHA-256.
SKELETON_DICT_SIZE = 4096
SKELETON_DICT_SHA256 = "23678f2540e6f68278c8a65fd98bfc4713cd83e2cf1cbd4d349cdaa46ce20d72"
_SKELETON_DICT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "skeleton.zdict")


@functools.cache
def skeleton_dict():
    """`(dictionary bytes, its Adler-32)`: ZLIB_DICT's preset dictionary (7.11).

    Raises:
        RuntimeError: the installed file is missing or is not the dictionary the spec
            names (another size or SHA-256): an installation error, not a bundle's.
    """
    try:
        with open(_SKELETON_DICT_PATH, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise RuntimeError(f"the ZLIB_DICT dictionary cannot be read: {exc}") from None
    if len(data) != SKELETON_DICT_SIZE or hashlib.sha256(data).hexdigest() != SKELETON_DICT_SHA256:
        raise RuntimeError(
            f"{_SKELETON_DICT_PATH} is not the ZLIB_DICT dictionary of docs/bundle-format.md "
            f"7.11 ({SKELETON_DICT_SIZE} bytes, SHA-256 {SKELETON_DICT_SHA256})."
        )
    return data, zlib.adler32(data)
