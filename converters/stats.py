"""Per-segment statistics of a sidecar: what the encoder chose, what the decoder read.

`SegmentStats` is the one record both halves fill in: `converters.encoder.build_bundle`
returns one per segment, `converters.decoder.inspect` reads the same figures back from
a sidecar, and `converters.report` turns them into report.json / report.txt. The
figures follow `docs/bundle-format.md`: segment-table fields (section 5), codebooks
(section 7.3), the escape run (7.4) and the two HuffmanStreams (section 6).

Entropies here are totals over a stream, in bits (`huffman.entropy_bits`); the
per-symbol figures of the report divide them by the stream's symbol count.
"""

import dataclasses

import numpy as np

from converters.format import DTYPES

__all__ = ["SKELETON_NAME", "SegmentStats", "count_nonzero", "nonzero_mask"]

# The name the reference encoder gives the ZLIB segments that hold parts of the
# skeleton (`build_bundle(compact_skeleton=True)`, docs/bundle-format.md section 13).
SKELETON_NAME = "(skeleton)"

# Field names that differ from the keys of `to_dict` (kept for report.json and
# `keras-dc inspect --json`, whose consumers read these keys).
_DICT_KEYS = {
    "index_entropy_bits_total": "index_entropy_bits",
    "gap_entropy_bits_total": "gap_entropy_bits",
}


@dataclasses.dataclass(frozen=True)
class SegmentStats:
    """Figures of one segment of a sidecar.

    Attributes:
        name: tensor name (the segment's name in the name table).
        offset: byte offset of the segment in the restored file.
        dtype: element type, a key of `converters.format.DTYPES`.
        channels: channel slices of the segment.
        encoding: name of the chosen encoding, a key of `converters.format.ENCODINGS`.
            Defaults to `"RAW"`.
        codebooks: number of codebooks (0 unless clustered). Defaults to `0`.
        elements: number of elements. Defaults to `0`.
        nonzeros: elements whose value is not zero (±0.0 both count as zero).
            Defaults to `0`.
        codebook_entries: entries of all codebooks together. Defaults to `0`.
        escape_run: E of a sparse segment (0 otherwise). Defaults to `0`.
        index_count: symbols of the index stream. Defaults to `0`.
        index_bits: coded bits of the index stream. Defaults to `0`.
        index_entropy_bits_total: zero-order entropy of the index stream, total bits
            over all its symbols. Defaults to `0.0`.
        gap_count: symbols of the gap stream (escapes included). Defaults to `0`.
        gap_bits: coded bits of the gap stream. Defaults to `0`.
        gap_entropy_bits_total: zero-order entropy of the gap stream, total bits.
            Defaults to `0.0`.
        map_bits: coded bits of the codebook map of a grouped segment (section 7.8).
            Defaults to `0`.
        inner_encoding: the encoding of a DELTA segment's differences (section 7.9) or
            of a MASKED segment's kept submatrix (7.12), whose figures the others are; ""
            for other encodings. Defaults to `""`.
        payload_bytes: bytes of the segment's payload. Defaults to `0`.
        raw_bytes: bytes of the segment in the restored file. Defaults to `0`.
    """

    name: str
    offset: int
    dtype: str
    channels: int
    encoding: str = "RAW"
    codebooks: int = 0
    elements: int = 0
    nonzeros: int = 0
    codebook_entries: int = 0
    escape_run: int = 0
    index_count: int = 0
    index_bits: int = 0
    index_entropy_bits_total: float = 0.0
    gap_count: int = 0
    gap_bits: int = 0
    gap_entropy_bits_total: float = 0.0
    map_bits: int = 0
    inner_encoding: str = ""
    payload_bytes: int = 0
    raw_bytes: int = 0

    @classmethod
    def of_segment(cls, name, offset, size, dtype, channels, **figures):
        """Stats of a segment of `size` bytes: `elements` and `raw_bytes` follow from it.

        `payload_bytes` defaults to `size` (a RAW payload); `figures` sets any other
        attribute.
        """
        figures.setdefault("payload_bytes", size)
        return cls(
            name=name,
            offset=offset,
            dtype=dtype,
            channels=channels,
            elements=size // DTYPES[dtype][1],
            raw_bytes=size,
            **figures,
        )

    @property
    def is_skeleton(self):
        """Whether the segment holds skeleton bytes (a compacted gap), not a weight buffer."""
        return self.name == SKELETON_NAME and self.dtype == "bytes"

    def to_dict(self):
        """The stats as a flat dict with the keys of report.json and `inspect` (in field order)."""
        return {
            _DICT_KEYS.get(f.name, f.name): getattr(self, f.name) for f in dataclasses.fields(self)
        }


_SIGN_BIT = {"float32": np.uint32(0x80000000), "float16": np.uint16(0x8000)}


def nonzero_mask(patterns, dtype):
    """Which element bit patterns are non-zero values (for floats, ±0.0 are both zero)."""
    sign = _SIGN_BIT.get(dtype)
    return (patterns & ~sign) != 0 if sign is not None else patterns != 0


def count_nonzero(patterns, dtype):
    """Number of non-zero values among the element bit patterns `patterns`."""
    return int(np.count_nonzero(nonzero_mask(patterns, dtype)))
