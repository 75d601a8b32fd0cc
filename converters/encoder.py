"""Writer of the keras-dc bundle: splits a restored file into skeleton and sidecar.

The reference encoder of `docs/bundle-format.md` (its choices: section 13). A restored
file R is described by sorted, non-overlapping byte ranges (`Segment`s) holding weight
buffers; the skeleton is R with those ranges cut out (section 1), and the sidecar holds
each range as the smallest of its candidate payloads (section 7): the values grouped
into codebooks (7.3), a background and escape run for the sparse encoding (7.4), the
gap and index symbols as HuffmanStreams (section 6, coded by `converters.huffman`),
codebooks shared by groups of channels with a map of each channel's (7.8), the background, gaps and raw values of pruned unclustered data (SPARSE_RAW, 7.6), or
zlib (7.2), or the raw bytes (7.1). The skeleton's gaps that zlib shrinks enough
become ZLIB segments of their own (`compact_skeleton`, section 13), or ZLIB_DICT ones
where zlib with the preset dictionary of flatbuffer material is smaller (7.11,
`skeleton_dict`). Offsets, struct layouts and codes come from
`converters.format`; the figures of each choice are a `converters.stats.SegmentStats`.

    skeleton, sidecar, stats = build_bundle(tflite_bytes, segments)
    assert converters.decoder.restore_bytes(skeleton, sidecar) == tflite_bytes
"""

import dataclasses
import hashlib
import heapq
import zlib

import numpy as np

from converters import huffman
from converters.format import (
    CLUSTERED_DENSE,
    CLUSTERED_SPARSE,
    CODEBOOK_COUNT,
    COMPACT_STREAM,
    DELTA,
    DTYPES,
    ENCODING_NAMES,
    ENCODINGS,
    ENTRY,
    ENTRY_COUNT,
    ENTRY_SIZE,
    ESCAPE_RUN,
    GROUPED_DENSE,
    GROUPED_SPARSE,
    HEADER,
    HEADER_CRC,
    HEADER_SIZE,
    INNER_CODES,
    INNER_ENCODING,
    MAGIC,
    MASKED,
    MASKED_INNER_CODES,
    MAX_CHANNELS,
    MAX_CODEBOOK,
    MAX_CODEBOOK_COUNT,
    MAX_ESCAPE_RUN,
    MAX_GROUPS,
    MAX_RESTORED_SIZE,
    PACKED,
    PART,
    PART_COUNT,
    RAW,
    SLICE_COUNT,
    SPARSE_RAW,
    STREAM,
    VERSION_MAJOR,
    ZLIB,
    ZLIB_DICT,
    element_dtype,
    lengths_size,
    minor_version_for,
    pack_lengths,
    skeleton_dict,
)
from converters.stats import SKELETON_NAME, SegmentStats, count_nonzero

__all__ = ["Segment", "build_bundle"]


@dataclasses.dataclass(frozen=True)
class Segment:
    """One weight buffer of the restored file (the encoder's input).

    Attributes:
        offset: byte offset of the buffer in the restored file R.
        size: byte length.
        dtype: element type: one of `format.DTYPES` ("float32", "float16", "int8",
            "uint8", "int16", "int32", "int64", or "bytes" for opaque data).
        channels: > 1 when the data splits into `channels` equal contiguous slices
            (output channels) that may each get their own codebook. Defaults to `1`.
        name: tensor name, stored for reports. Defaults to `""`.
    """

    offset: int
    size: int
    dtype: str
    channels: int = 1
    name: str = ""


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
        if seg.channels < 1 or seg.channels > MAX_CHANNELS:
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


def _split_background(values, n_books):
    """Each of the `n_books` equal slices' background: its most frequent value (ties:
    smallest bit pattern). Returns (kept, background): the positions of the other
    elements, increasing, and one background value per slice (sections 7.4, 7.6)."""
    per_book = values.size // n_books
    zero = values == 0
    zeros_per_book = zero.reshape(n_books, per_book).sum(axis=1)
    if (2 * zeros_per_book > per_book).all():  # zero is a majority: no sort needed
        return np.flatnonzero(~zero), np.zeros(n_books, values.dtype)
    book = None if n_books == 1 else np.arange(values.size) // per_book
    group, group_value, group_book, group_count = _groups(values, book, n_books, True)
    ranked = _by_use(group_value, group_book, group_count)
    first = np.ones(ranked.size, bool)
    first[1:] = group_book[ranked][1:] != group_book[ranked][:-1]
    background_groups = ranked[first]  # one per book, in book order
    is_background = np.zeros(group_value.size, bool)
    is_background[background_groups] = True
    return np.flatnonzero(~is_background[group]), group_value[background_groups]


def _cluster(values, n_books, sparse, split=None):
    """Codebooks of `values` split into `n_books` equal slices, or None if > 256 each.

    Returns (entry_counts, entries, symbols, kept, background): each codebook ordered by
    decreasing use, ties by value; `symbols` indexes the element's own codebook. With
    `sparse`, each slice's most frequent value (ties: smallest) is its background, left
    out of the codebook; `kept` are the positions of the other elements. `split`:
    `_split_background(values, n_books)` if already known.
    """
    per_book = values.size // n_books
    book = None if n_books == 1 else np.arange(values.size) // per_book
    kept = background = None
    if sparse:
        kept, background = split or _split_background(values, n_books)
        values = values[kept]
        book = None if n_books == 1 else kept // per_book
    if not values.size:
        return np.zeros(n_books, np.int64), values[:0], np.zeros(0, np.int64), kept, background
    books = _codebooks(values, book, n_books, not sparse)
    return None if books is None else (*books, kept, background)


def _codebooks(values, book, n_books, equal_slices=False):
    """`n_books` codebooks of `values`, element i going to book `book[i]` (None: book 0;
    `equal_slices`: book i // (values.size // n_books)).

    Returns (entry_counts, entries, symbols), or None if a codebook would hold more than
    256 entries: each codebook ordered by decreasing use, ties by value, the books' entries
    back to back; `symbols` indexes each element's own codebook.
    """
    group, group_value, group_book, group_count = _groups(values, book, n_books, equal_slices)
    entry_counts = np.bincount(group_book, minlength=n_books)
    if entry_counts.max() > MAX_CODEBOOK:
        return None
    ranked = _by_use(group_value, group_book, group_count)
    book_start = np.concatenate([[0], np.cumsum(entry_counts)[:-1]])
    rank = np.empty(group_value.size, np.int64)
    rank[ranked] = np.arange(group_value.size) - book_start[group_book[ranked]]
    return entry_counts, group_value[ranked], rank[group]


@dataclasses.dataclass(frozen=True)
class _Stream:
    """A coded HuffmanStream whose header is written last: the fixed one of section 6, or
    the compact one of 6.5 (inside a PACKED part)."""

    count: int
    nbits: int
    alphabet: int
    body: bytes  # `lengths` and `data`

    def header(self, compact):
        if not compact:
            return STREAM.pack(count=self.count, nbits=self.nbits, alphabet=self.alphabet)
        return b"".join(f.pack(v) for f, v in zip(COMPACT_STREAM, self._fields()))

    def size(self, compact):
        if not compact:
            return STREAM.size + len(self.body)
        return sum(f.size_of(v) for f, v in zip(COMPACT_STREAM, self._fields())) + len(self.body)

    def _fields(self):
        return self.count, self.nbits, self.alphabet


class _Payload:
    """A candidate payload: bytes and `_Stream`s (and `_Payload`s, flattened), whose
    size and bytes depend on the streams' header (`compact`)."""

    def __init__(self, *pieces):
        self.pieces = tuple(
            q for p in pieces for q in (p.pieces if isinstance(p, _Payload) else (p,))
        )

    def size(self, compact):
        return sum(p.size(compact) if isinstance(p, _Stream) else len(p) for p in self.pieces)

    def render(self, compact):
        return b"".join(
            p.header(compact) + p.body if isinstance(p, _Stream) else p for p in self.pieces
        )


def _stream_bytes(symbols):
    """The `_Stream` of `symbols` (section 6), plus its nbits and total entropy in bits."""
    if not symbols.size:
        return _Stream(0, 0, 0, b""), 0, 0.0
    hist = np.bincount(symbols)
    lengths = huffman.code_lengths(hist, reserve=True)
    data, nbits = huffman.encode(symbols, lengths)
    return (
        _Stream(int(symbols.size), nbits, int(lengths.size), pack_lengths(lengths) + data),
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
        return 8 * STREAM.size
    heap = [0] + sorted(int(c) for c in hist[used])  # 0: the reserved codeword
    bits = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        bits += merged
        heapq.heappush(heap, merged)
    return 8 * (STREAM.size + lengths_size(int(used[-1]) + 1)) + 8 * ((bits + 7) // 8)


def _gap_histogram(run_values, run_counts, escape_run):
    hist = np.bincount(
        run_values % escape_run + 1, weights=run_counts, minlength=escape_run + 1
    ).astype(
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


def _gaps(kept):
    """`escape_run` and gap stream of the emitted positions `kept` (section 7.4).

    Returns (the `_Payload` of `escape_run` and `gaps`, their `SegmentStats` figures).
    """
    runs = np.diff(kept, prepend=-1) - 1
    escape_run = _choose_escape_run(runs) if runs.size else 1
    gap = _stream_bytes(_gap_symbols(runs, escape_run))
    figures = {
        "escape_run": escape_run,
        "gap_count": int((runs // escape_run).sum() + runs.size),
        "gap_bits": gap[1],
        "gap_entropy_bits_total": gap[2],
    }
    return _Payload(ESCAPE_RUN.pack(escape_run), gap[0]), figures


def _clustered_payload(values, esize, n_books, sparse, split=None, gaps=None):
    """A clustered payload (7.3–7.5) and its figures, or None if a codebook would be too large.

    `split` and `gaps(n_books)`: the background split and gap fields, if cached."""
    clustered = _cluster(values, n_books, sparse, split)
    if clustered is None:
        return None
    entry_counts, entries, symbols, kept, background = clustered
    sparse_fields = None
    if sparse:
        sparse_fields = background, (gaps(n_books) if gaps else _gaps(kept))
    return _codebook_payload(esize, entry_counts, entries, symbols, sparse_fields)


def _codebook_payload(esize, entry_counts, entries, symbols, sparse_fields=None, book_map=None):
    """The `_Payload` of a clustered (7.3–7.5) or grouped (7.8) encoding, and its figures.

    `sparse_fields`: (one background per codebook, the `_gaps` bytes and figures) for
    the sparse encodings; `book_map`: each channel's codebook, for the grouped ones.
    """
    parts = [
        CODEBOOK_COUNT.pack(entry_counts.size),
        entry_counts.astype(ENTRY_COUNT.dtype).tobytes(),
        entries.astype(element_dtype(esize)).tobytes(),
    ]
    figures = {"escape_run": 0}
    if book_map is not None:
        map_bytes, figures["map_bits"], _ = _stream_bytes(book_map)
        parts.append(map_bytes)
    if sparse_fields is not None:
        background, (gap_bytes, gap_figures) = sparse_fields
        parts += [background.astype(element_dtype(esize)).tobytes(), gap_bytes]
        figures.update(gap_figures)
    index = _stream_bytes(symbols)
    parts.append(index[0])
    figures.update(
        codebooks=int(entry_counts.size),
        codebook_entries=int(entry_counts.sum()),
        index_count=int(symbols.size),
        index_bits=index[1],
        index_entropy_bits_total=index[2],
    )
    return _Payload(*parts), figures


# Grouped codebooks (7.8): the greedy grouping below tries these thresholds (entries a
# channel may add to a group's codebook when it joins it) and keeps the smallest payload.
_GROUP_THRESHOLDS = (0, 1, 2, 4, 8, MAX_CODEBOOK)
# Grouping is not tried when the segment has more distinct values than this (besides
# the background): the membership matrix is channels × values.
_GROUP_MAX_VALUES = 4096


def _channel_values(values, channels, sparse, split):
    """Per channel, its distinct values (besides its background when `sparse`).

    Returns (elements, channel, sets, background) or None when grouping cannot beat one
    codebook or per-channel codebooks: `elements` are the element positions the codebooks
    cover (`kept` when sparse), `channel` their channel, `sets` a channels × values boolean
    matrix (which of the segment's distinct values each channel has), `background` one
    value per channel (sparse only).
    """
    per_channel = values.size // channels
    background = None
    if sparse:
        elements, background = split
    else:
        elements = np.arange(values.size)
    kept = values[elements]
    if not kept.size:
        return None
    distinct, value_id = np.unique(kept, return_inverse=True)
    if distinct.size > _GROUP_MAX_VALUES:
        return None
    channel = elements // per_channel
    sets = np.zeros((channels, distinct.size), bool)
    sets[channel, value_id] = True
    widest = int(sets.sum(axis=1).max())
    if widest > MAX_CODEBOOK or widest == distinct.size:  # no codebook fits, or one fits all
        return None
    return elements, channel, sets, background


def _assign_groups(sets, background, threshold):
    """Greedy channel groups: each channel, widest first, joins the group (of its own
    background) to whose codebook it adds the fewest entries if those are at most
    `threshold`, else starts a group. Returns the group of each channel, numbered in
    order of their first channel, or None if more than `MAX_GROUPS` are needed."""
    channels = sets.shape[0]
    order = np.lexsort((np.arange(channels), -sets.sum(axis=1)))
    unions = np.zeros((min(channels, MAX_GROUPS), sets.shape[1]), bool)
    sizes = np.zeros(unions.shape[0], np.int64)
    group_background = None if background is None else np.zeros(unions.shape[0], background.dtype)
    n = 0
    group = np.empty(channels, np.int64)
    for c in order:
        best = -1
        if n:
            missing = sets[c] & ~unions[:n]
            new = missing.sum(axis=1)
            fits = sizes[:n] + new <= MAX_CODEBOOK
            if background is not None:
                fits &= group_background[:n] == background[c]
            if fits.any():
                new[~fits] = MAX_CODEBOOK + 1
                best = int(np.argmin(new))
        if best < 0 or (new[best] > threshold and n < unions.shape[0]):
            if n == unions.shape[0]:
                return None
            best = n
            n += 1
            if background is not None:
                group_background[best] = background[c]
        unions[best] |= sets[c]
        sizes[best] = int(unions[best].sum())
        group[c] = best
    unions = unions[:n]
    _, first = np.unique(group, return_index=True)  # renumber by first channel
    renumber = np.empty(n, np.int64)
    renumber[np.argsort(first)] = np.arange(len(unions))
    return renumber[group]


def _grouped_payloads(values, esize, channels, sparse, split=None, gaps=None):
    """Candidate GROUPED_SPARSE / GROUPED_DENSE payloads (7.8), one per grouping threshold
    that gives a new grouping: a list of (payload, figures)."""
    found = _channel_values(values, channels, sparse, split)
    if found is None:
        return []
    elements, channel, sets, background = found
    results, seen = [], set()
    for threshold in _GROUP_THRESHOLDS:
        group_of_channel = _assign_groups(sets, background, threshold)
        if group_of_channel is None:
            continue
        key = group_of_channel.tobytes()
        n_groups = int(group_of_channel.max()) + 1
        if key in seen or n_groups == channels:  # per-channel codebooks do that without a map
            continue
        seen.add(key)
        books = _codebooks(values[elements], group_of_channel[channel], n_groups)
        sparse_fields = None
        if sparse:
            group_background = np.empty(n_groups, background.dtype)
            group_background[group_of_channel] = background  # one value within a group
            sparse_fields = group_background, gaps(channels)
        results.append(_codebook_payload(esize, *books, sparse_fields, group_of_channel))
    return results


def _sparse_raw_payload(values, n_books, split, gaps):
    """SPARSE_RAW (section 7.6): background per slice, gaps, and the emitted values' bytes.

    `split`: `_split_background(values, n_books)`; `gaps`: `_gaps` of its positions.
    """
    kept, background = split
    gap_bytes, figures = gaps
    figures = dict(figures)
    payload = _Payload(
        SLICE_COUNT.pack(n_books),
        background.astype(values.dtype).tobytes(),
        gap_bytes,
        values[kept].tobytes(),
    )
    return payload, figures


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


# DELTA (7.9) is tried on segments of these dtypes whose elements mostly increase: at
# most this share of the steps between neighbours goes down (sorted index arrays).
_DELTA_DTYPES = frozenset({"uint8", "uint16", "int16", "int32", "int64"})
_DELTA_MAX_DESCENTS = 0.25


def _masked_head(values, channels, split=None):
    """`(head, kept submatrix)` of a MASKED payload (7.12): `head` is the bytes of `fill`,
    `row_mask` and `column_mask`, the submatrix the kept rows' and columns' elements
    (channels × M, row-major). `split`: `_split_background(values, 1)` if the caller has it
    (computed here otherwise); its background, the segment's most frequent value, is the
    fill. None when `channels` < 2, or when no
    row or column holds only the fill value, or nothing else is left."""
    if channels < 2 or not values.size:
        return None
    fill = (split or _split_background(values, 1))[1][:1]
    matrix = values.reshape(channels, -1)
    other = matrix != fill[0]
    row_kept, column_kept = other.any(axis=1), other.any(axis=0)
    if not row_kept.any() or (row_kept.all() and column_kept.all()):
        return None
    head = b"".join(
        (
            fill.tobytes(),
            np.packbits(row_kept, bitorder="little").tobytes(),
            np.packbits(column_kept, bitorder="little").tobytes(),
        )
    )
    return head, np.ascontiguousarray(matrix[np.ix_(row_kept, column_kept)])


def _encode_segment(raw, seg, allowed, per_channel, zlib_level, zlib_estimate, modes):
    """Smallest payload among the allowed, applicable encodings (ties: lower code).

    With `zlib_estimate`, ZLIB is skipped on a large segment whose best clustered
    payload is `_ZLIB_SKIP_MARGIN` times smaller than zlib's estimated size. DELTA
    (7.9) codes the differences with the best other encoding, and MASKED (7.12) the kept
    submatrix; each wins only when strictly smaller. The candidates are made once and
    measured for each of `modes`: `False` for a segment of its own (stream headers of
    section 6), `True` for a part of a PACKED segment (compact stream headers, 6.5).

    Returns:
        `{mode: (encoding code, payload bytes, SegmentStats)}`.
    """
    esize = DTYPES[seg.dtype][1]
    values = np.frombuffer(raw, element_dtype(esize))
    splits = {}  # _split_background by codebook count, shared by the candidates and MASKED
    own = _candidates(raw, seg, allowed, per_channel, zlib_level, zlib_estimate, splits)
    inner = None
    if (
        DELTA in allowed
        and seg.dtype in _DELTA_DTYPES
        and values.size > 1
        and np.count_nonzero(values[1:] < values[:-1]) <= _DELTA_MAX_DESCENTS * values.size
    ):
        differences = np.diff(values, prepend=values.dtype.type(0))  # unsigned: wraps
        inner = _candidates(
            differences.tobytes(),
            seg,
            allowed & INNER_CODES,
            per_channel,
            zlib_level,
            zlib_estimate,
        )
    masked = None
    if MASKED in allowed and seg.channels > 1 and values.size:
        if 1 not in splits:
            splits[1] = _split_background(values, 1)
        masked = _masked_head(values, seg.channels, splits[1])
    if masked is not None:  # the kept submatrix, one channel per kept row (7.12)
        head, kept = masked
        kept_seg = dataclasses.replace(seg, size=kept.nbytes, channels=kept.shape[0])
        masked = (
            head,
            _candidates(
                kept.tobytes(),
                kept_seg,
                allowed & MASKED_INNER_CODES,
                per_channel,
                zlib_level,
                zlib_estimate,
            ),
        )
    nonzeros = count_nonzero(values, seg.dtype)
    chosen = {}
    for compact in modes:
        payload, encoding, n_books, extra = _smallest(own, compact)
        size = payload.size(compact)
        if inner is not None:
            inner_payload, code, inner_books, figures = _smallest(inner, compact)
            delta_size = INNER_ENCODING.size + inner_payload.size(compact)
            if (delta_size, DELTA, inner_books) < (size, encoding, n_books):
                size, encoding = delta_size, DELTA
                payload = _Payload(INNER_ENCODING.pack(code), inner_payload)
                extra = dict(figures, inner_encoding=ENCODING_NAMES[code])
        if masked is not None:
            head, kept_candidates = masked
            inner_payload, code, inner_books, figures = _smallest(kept_candidates, compact)
            masked_size = len(head) + INNER_ENCODING.size + inner_payload.size(compact)
            if (masked_size, MASKED, inner_books) < (size, encoding, n_books):
                size, encoding = masked_size, MASKED
                payload = _Payload(head, INNER_ENCODING.pack(code), inner_payload)
                extra = dict(figures, inner_encoding=ENCODING_NAMES[code])
        stats = SegmentStats.of_segment(
            seg.name,
            seg.offset,
            seg.size,
            seg.dtype,
            seg.channels,
            encoding=ENCODING_NAMES[encoding],
            nonzeros=nonzeros,
            payload_bytes=size,
            **extra,
        )
        chosen[compact] = encoding, payload.render(compact), stats
    return chosen


def _smallest(candidates, compact):
    """The smallest candidate with the streams' headers of `compact` (ties: lower code,
    then fewer codebooks)."""
    return min(candidates, key=lambda c: (c[0].size(compact), c[1], c[2]))


def _candidates(raw, seg, allowed, per_channel, zlib_level, zlib_estimate, splits=None):
    """The (payload, code, codebooks, figures) of the allowed, applicable encodings but
    DELTA; `payload` is a `_Payload`. The SPARSE_RAW shortcut and the ZLIB estimate
    compare sizes with the headers of section 6 (a compact header is never larger).
    `splits`: the caller's cache of `_split_background(values, n)` by n, filled here as
    needed (`_encode_segment` shares it with MASKED)."""
    esize = DTYPES[seg.dtype][1]
    values = np.frombuffer(raw, element_dtype(esize))
    candidates = [(_Payload(raw), RAW, 0, {})]
    books = [1]
    if per_channel and 1 < seg.channels <= MAX_CODEBOOK_COUNT:
        books.append(seg.channels)
    splits = {} if splits is None else splits  # by n_books: _split_background, computed once
    gap_fields = {}  # by n_books: _gaps of the split

    def split(n_books):
        if n_books not in splits:
            splits[n_books] = _split_background(values, n_books)
        return splits[n_books]

    def gaps(n_books):
        if n_books not in gap_fields:
            gap_fields[n_books] = _gaps(split(n_books)[0])
        return gap_fields[n_books]

    def best_size():
        return min(c[0].size(False) for c in candidates)

    too_many = set()  # codebook counts for which a slice has > 256 values besides its background
    for encoding in (CLUSTERED_SPARSE, CLUSTERED_DENSE):
        if encoding not in allowed or not values.size:
            continue
        for n_books in books:
            if n_books in too_many:  # then that slice has > 256 values in all: no dense codebook
                continue
            sparse = encoding == CLUSTERED_SPARSE
            result = _clustered_payload(
                values, esize, n_books, sparse, *((split(n_books), gaps) if sparse else ())
            )
            if result is not None:
                candidates.append((result[0], encoding, n_books, result[1]))
            elif sparse:
                too_many.add(n_books)
    for encoding in (GROUPED_SPARSE, GROUPED_DENSE):  # codebooks shared by channel groups
        if encoding not in allowed or not values.size or seg.channels not in books[1:]:
            continue
        sparse = encoding == GROUPED_SPARSE
        if sparse and seg.channels in too_many:
            continue
        found = _grouped_payloads(
            values, esize, seg.channels, sparse, *((split(seg.channels), gaps) if sparse else ())
        )
        for payload, figures in found:
            candidates.append((payload, encoding, figures["codebooks"], figures))
    if SPARSE_RAW in allowed and values.size:  # pruned values that are not clustered
        for n_books in books:
            kept, _ = split(n_books)
            if kept.size * esize >= best_size():  # its values alone lose
                continue
            payload, figures = _sparse_raw_payload(values, n_books, split(n_books), gaps(n_books))
            candidates.append((payload, SPARSE_RAW, n_books, figures))
    if ZLIB in allowed:
        best = best_size()
        estimate = _zlib_estimate(raw, zlib_level) if zlib_estimate else None
        if estimate is None or _ZLIB_SKIP_MARGIN * best >= estimate:
            candidates.append((_Payload(zlib.compress(raw, zlib_level)), ZLIB, 0, {}))
    return candidates


def _zlib_dict(data, level):
    """A ZLIB_DICT payload (7.11): `zlib.compress(data, level)` with the preset dictionary."""
    dictionary, _ = skeleton_dict()
    compressor = zlib.compressobj(
        level,
        zlib.DEFLATED,
        zlib.MAX_WBITS,
        zlib.DEF_MEM_LEVEL,
        zlib.Z_DEFAULT_STRATEGY,
        dictionary,
    )
    return compressor.compress(data) + compressor.flush()


def _gap_zlib(data, allowed, level):
    """`(encoding, payload)`: the smaller zlib stream of a gap of R among the allowed ZLIB
    and ZLIB_DICT (ties: ZLIB, the lower code), or None when neither is allowed."""
    found = []
    if ZLIB in allowed:
        found.append((ZLIB, zlib.compress(data, level)))
    if ZLIB_DICT in allowed:
        found.append((ZLIB_DICT, _zlib_dict(data, level)))
    return min(found, key=lambda c: (len(c[1]), c[0]), default=None)


def _skeleton_segments(restored, segments, allowed, zlib_level):
    """ZLIB or ZLIB_DICT segments of dtype `bytes` for the skeleton's gaps worth coding
    (section 13).

    A gap of R becomes a segment when its smaller zlib payload (`_gap_zlib`) plus its
    table entry (and, for the first one, the name they all share) is smaller than the
    gap. Returns `{gap offset: (Segment, encoding, payload)}`.
    """
    covered = {}
    name_bytes = len(SKELETON_NAME.encode("utf-8"))
    cursor = 0
    for start, end in [(s.offset, s.offset + s.size) for s in segments] + [(len(restored),) * 2]:
        size = start - cursor
        if size > ENTRY_SIZE:  # a smaller gap cannot even pay for its entry
            encoding, payload = _gap_zlib(restored[cursor:start], allowed, zlib_level)
            cost = len(payload) + ENTRY_SIZE + (0 if covered else name_bytes)
            if cost < size:
                gap = Segment(cursor, size, "bytes", 1, SKELETON_NAME)
                covered[cursor] = (gap, encoding, payload)
        cursor = end
    return covered


def _separate_file(restored, digest, segments, chosen, covered):
    """The file of the 1.0–1.3 encoder: one entry per segment and per compacted gap
    (`covered`, from `_skeleton_segments`); `chosen`: each segment's (encoding, payload,
    stats); `digest`: R's SHA-256. Returns (skeleton, sidecar, stats in table order)."""
    skeleton_parts, entries, payloads, names, stats = [], [], [], [], []
    name_cursor = 0
    skeleton_name_at = None  # the skeleton segments share one name (section 5)

    def add(seg, encoding, payload, seg_stats):
        nonlocal name_cursor, skeleton_name_at
        name = seg.name.encode("utf-8")
        name_offset = name_cursor
        if seg_stats.is_skeleton and skeleton_name_at is not None:
            name_offset = skeleton_name_at
        else:
            if seg_stats.is_skeleton:
                skeleton_name_at = name_cursor
            names.append(name)
            name_cursor += len(name)
        entries.append(_entry(seg, encoding, payload, name_offset, len(name)))
        payloads.append(payload)
        stats.append(seg_stats)

    def add_gap(start, end):
        if start in covered:
            gap, encoding, payload = covered[start]
            add(gap, encoding, payload, _gap_stats(restored, gap, encoding, payload))
        else:
            skeleton_parts.append(restored[start:end])

    cursor = 0
    for seg, choice in zip(segments, chosen):
        add_gap(cursor, seg.offset)
        add(seg, *choice)
        cursor = seg.offset + seg.size
    add_gap(cursor, len(restored))
    skeleton = b"".join(skeleton_parts)
    sidecar = _sidecar(restored, digest, skeleton, entries, b"".join(names), payloads, stats)
    return skeleton, sidecar, stats


def _entry(seg, encoding, payload, name_offset, name_size):
    """The segment-table entry (section 5) of `seg` coded as `payload`."""
    return ENTRY.pack(
        offset=seg.offset,
        size=seg.size,
        payload_size=len(payload),
        payload_crc32=zlib.crc32(payload),
        channels=seg.channels,
        name_offset=name_offset,
        name_size=name_size,
        dtype=DTYPES[seg.dtype][0],
        encoding=encoding,
    )


def _gap_stats(restored, gap, encoding, payload):
    """The `SegmentStats` of a gap of R (a `Segment` named `SKELETON_NAME`) coded as `payload`."""
    gap_bytes = np.frombuffer(restored[gap.offset : gap.offset + gap.size], np.uint8)
    return SegmentStats.of_segment(
        gap.name,
        gap.offset,
        gap.size,
        gap.dtype,
        gap.channels,
        encoding=ENCODING_NAMES[encoding],
        nonzeros=count_nonzero(gap_bytes, gap.dtype),
        payload_bytes=len(payload),
    )


def _sidecar(restored, digest, skeleton, entries, names, payloads, stats, packed=False):
    """Header (section 4), segment table, name table and payloads of a sidecar; the
    version is the lowest that defines the encodings of `stats` (section 4.1), and
    PACKED's when `stats` are those of the parts of a PACKED segment."""
    table = b"".join(entries) + names
    payload_area = b"".join(payloads)
    used = {ENCODINGS[s.encoding] for s in stats} | ({PACKED} if packed else set())
    used |= {ENCODINGS[s.inner_encoding] for s in stats if s.inner_encoding}
    header = HEADER.pack(
        magic=MAGIC,
        version_major=VERSION_MAJOR,
        version_minor=minor_version_for(used),
        header_size=HEADER_SIZE,
        segment_count=len(entries),
        entry_size=ENTRY_SIZE,
        names_size=len(names),
        payload_size=len(payload_area),
        restored_size=len(restored),
        skeleton_size=len(skeleton),
        restored_sha256=digest,
        skeleton_sha256=hashlib.sha256(skeleton).digest(),
        table_crc32=zlib.crc32(table),
    )
    header += HEADER_CRC.pack(zlib.crc32(header))  # the last field: CRC of all before it
    return header + table + payload_area


def _descriptor(seg, encoding, payload):
    """The part descriptor (7.10) of `seg` coded as `payload`."""
    values = (seg.size, DTYPES[seg.dtype][0], encoding, seg.channels, len(payload))
    return b"".join(field.pack(value) for field, value in zip(PART, values))


def _gap_part(restored, start, end, allowed, zlib_level, edge=False):
    """The part of the gap `[start, end)` of R (section 13), as a list of 0 or 1
    (Segment, encoding, payload, stats): ZLIB or ZLIB_DICT (`_gap_zlib`) when its zlib
    stream is smaller than the gap, else RAW; none for an empty gap, nor for a gap at an
    `edge` of the PACKED segment (the skeleton may keep it) unless its zlib part is
    smaller than the gap."""
    size = end - start
    if not size:
        return []
    gap = Segment(start, size, "bytes", 1, SKELETON_NAME)
    encoding, payload = RAW, bytes(restored[start:end])
    found = _gap_zlib(payload, allowed, zlib_level)
    if found is not None and len(found[1]) < size:
        encoding, payload = found
    if edge and (
        encoding == RAW or len(payload) + len(_descriptor(gap, encoding, payload)) >= size
    ):
        return []
    return [(gap, encoding, payload, _gap_stats(restored, gap, encoding, payload))]


def _packed_file(restored, digest, segments, chosen, allowed, zlib_level, widen):
    """The version 1.4 candidate (section 13): one PACKED segment (7.10) whose parts are
    the segments, coded as `chosen` (each one's (encoding, payload, stats) with compact
    stream headers), and the gaps between them; with `widen`, also the gap before the
    first and after the last segment where that pays. Returns (skeleton, sidecar, stats
    of the parts), or None when there is nothing to pack."""
    n = len(restored)
    first = segments[0].offset if segments else n
    last = segments[-1].offset + segments[-1].size if segments else n
    lead = _gap_part(restored, 0, first, allowed, zlib_level, edge=True) if widen else []
    parts = list(lead)
    cursor = first
    for seg, choice in zip(segments, chosen):
        parts += _gap_part(restored, cursor, seg.offset, allowed, zlib_level)
        parts.append((seg, *choice))
        cursor = seg.offset + seg.size
    trail = []
    if widen and segments:
        trail = _gap_part(restored, last, n, allowed, zlib_level, edge=True)
    parts += trail
    if not parts:
        return None
    start, end = (0 if lead else first), (n if trail else last)
    payload = b"".join(
        [PART_COUNT.pack(len(parts))]
        + [_descriptor(seg, encoding, data) for seg, encoding, data, _ in parts]
        + [data for _, _, data, _ in parts]
    )
    span = Segment(start, end - start, "bytes", 1, "")
    skeleton = bytes(restored[:start]) + bytes(restored[end:])
    stats = [part_stats for *_, part_stats in parts]
    entry = _entry(span, PACKED, payload, 0, 0)
    sidecar = _sidecar(restored, digest, skeleton, [entry], b"", [payload], stats, packed=True)
    return skeleton, sidecar, stats


def build_bundle(
    restored,
    segments,
    *,
    encodings=None,
    per_channel=True,
    zlib_level=9,
    zlib_estimate=True,
    compact_skeleton=True,
    packed=True,
    skeleton_dict=True,
    masked=True,
):
    """Split `restored` into a skeleton and a compressed sidecar.

    Each segment gets the smallest payload among the applicable encodings
    (`docs/bundle-format.md` section 7): CLUSTERED_SPARSE / CLUSTERED_DENSE when it has
    at most 256 distinct values (compared as bit patterns; per channel when
    `per_channel` and one codebook would be too large or larger), else SPARSE_RAW when
    its background dominates, ZLIB, and RAW. With `compact_skeleton`, gaps between the
    segments that zlib shrinks by more than a table entry become ZLIB segments of their
    own (named `stats.SKELETON_NAME`), and the skeleton keeps the rest. With `packed`,
    a version 1.4 file with one PACKED segment (section 7.10) whose parts are the
    segments and the gaps between them is written instead when it is strictly smaller
    (section 13). With `skeleton_dict`, a gap is coded ZLIB_DICT (format 1.5, section
    7.11) where that is strictly smaller than ZLIB. With `masked`, a segment with
    `channels` > 1 whose rows or columns hold only its most frequent value is coded MASKED
    (format 1.6, section 7.12: masks and the kept submatrix) where that is strictly
    smaller. Same input, same bytes.

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
        compact_skeleton: move the gaps worth compressing out of the skeleton into
            ZLIB segments (valid v1.0; needs ZLIB among `encodings`), or ZLIB_DICT ones
            with `skeleton_dict`, or with `packed` into such parts. The skeleton may then
            be empty. `False` keeps the gaps before the first and after the last segment
            in the skeleton (a PACKED segment still holds those between segments).
            Defaults to `True`.
        packed: also write the file as one PACKED segment (format 1.4; needs PACKED
            among `encodings`) and keep it when its skeleton plus sidecar is strictly
            smaller than the file written without it, which `packed=False` writes
            byte for byte. Defaults to `True`.
        skeleton_dict: code the skeleton's gaps (segments or parts) with zlib and the
            preset dictionary (ZLIB_DICT, format 1.5; needs ZLIB_DICT among
            `encodings`) where that is strictly smaller than plain zlib. `False` writes
            the bytes of the 1.4 encoder. Defaults to `True`.
        masked: also try MASKED (format 1.6; needs MASKED among `encodings`) on
            segments with `channels` > 1, and keep it where strictly smaller. `False`
            writes the bytes of the 1.5 encoder. Defaults to `True`.

    Returns:
        `(skeleton, sidecar, stats)`: two `bytes` objects and one
        `converters.stats.SegmentStats` per segment of the sidecar, in table order:
        the given segments, and the skeleton's ZLIB segments where compacted (their
        `is_skeleton` is true); for a PACKED file, one per part, in the order of R:
        the given segments and the gaps coded as parts (`is_skeleton` true).

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
    for flag, value in (
        ("compact_skeleton", compact_skeleton),
        ("packed", packed),
        ("skeleton_dict", skeleton_dict),
        ("masked", masked),
    ):
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be a bool, got {value!r}.")
    if not skeleton_dict:
        allowed.discard(ZLIB_DICT)
    if not masked:
        allowed.discard(MASKED)

    modes = (False, True) if packed and PACKED in allowed else (False,)
    chosen = [
        _encode_segment(
            restored[seg.offset : seg.offset + seg.size],
            seg,
            allowed,
            per_channel,
            zlib_level,
            zlib_estimate,
            modes,
        )
        for seg in segments
    ]
    covered = {}
    if compact_skeleton and allowed & {ZLIB, ZLIB_DICT}:
        covered = _skeleton_segments(restored, segments, allowed, zlib_level)
    digest = hashlib.sha256(restored).digest()
    bundle = _separate_file(restored, digest, segments, [c[False] for c in chosen], covered)
    if True in modes:
        candidate = _packed_file(
            restored,
            digest,
            segments,
            [c[True] for c in chosen],
            allowed,
            zlib_level,
            widen=compact_skeleton,
        )
        if candidate is not None and len(candidate[0]) + len(candidate[1]) < len(bundle[0]) + len(
            bundle[1]
        ):
            return candidate
    return bundle
