"""Canonical, length-limited Huffman coding in NumPy.

The bit conventions are those of `docs/bundle-format.md` section 6, which are DEFLATE's
(RFC 1951): bits are packed into bytes starting at the least significant bit, and each
codeword is emitted most significant bit first. Codewords are assigned canonically
(RFC 1951 §3.2.2) from the code lengths alone, so only the lengths are stored.

Code lengths come from package-merge (Larmore & Hirschberg 1990), which is optimal
under the length limit. With `reserve=True` the code leaves exactly one codeword unused
(Kraft sum 1 − 2^−L, L the longest length): the bundle format reserves it so that a
stream is also the body of a literal-only DEFLATE block, which lets `decode` run zlib's
C decoder instead of a Python loop.

Everything on the hot path is vectorised: `encode` expands codewords to bits with
`np.repeat`; `decode` uses zlib when the code allows it and otherwise a NumPy decoder
that tabulates the codeword at every bit position and follows the chain of symbol
starts by pointer doubling.
"""

import functools
import zlib

import numpy as np

MAX_CODE_LENGTH = 15

__all__ = [
    "HuffmanDecodeError",
    "MAX_CODE_LENGTH",
    "canonical_codes",
    "code_lengths",
    "decode",
    "decode_counted",
    "encode",
    "entropy_bits",
    "kraft_deficit",
]


class HuffmanDecodeError(ValueError):
    """The bits do not decode under the given code lengths.

    Attributes:
        bit: bit position (relative to the start of the stream) where decoding
            failed, or -1 when it is not known.
    """

    def __init__(self, message, bit=-1):
        super().__init__(message)
        self.bit = bit


# --------------------------------------------------------------------------- lengths


def _check_counts(counts):
    counts = np.asarray(counts)
    if counts.ndim != 1:
        raise ValueError(f"counts must be 1-D, got shape {counts.shape}.")
    if counts.size and not np.issubdtype(counts.dtype, np.integer):
        if not np.all(np.equal(np.mod(counts, 1), 0)):
            raise ValueError("counts must be whole numbers.")
    counts = counts.astype(np.int64)
    if counts.size and counts.min() < 0:
        raise ValueError(f"counts must be non-negative, got minimum {counts.min()}.")
    return counts


def code_lengths(counts, max_length=MAX_CODE_LENGTH, *, reserve=False):
    """Optimal code lengths for symbol `counts`, each at most `max_length`.

    Package-merge: the optimal prefix code under a length limit is the cheapest choice
    of 2n − 2 "coins" from n symbols × `max_length` denominations. Ties are broken by
    symbol number, so the result is deterministic.

    Args:
        counts: 1-D array of non-negative symbol counts (frequencies).
        max_length: longest allowed code length, 1 … 15. Defaults to `15`.
        reserve: when true, leave one codeword of the longest length unused (the
            bundle format's reserved codeword, `docs/bundle-format.md` §6.1). Defaults
            to `False`.

    Returns:
        `np.uint8` array of `len(counts)` code lengths, 0 for unused symbols. With
        `reserve=False` and at least two used symbols the code is complete (Kraft sum
        1); a single used symbol gets length 1. With `reserve=True` the Kraft sum is
        exactly 1 − 2^−L for L = the longest length (a single used symbol gets
        length 1).

    Raises:
        ValueError: bad counts, or more symbols than `max_length` bits can code.
    """
    counts = _check_counts(counts)
    if not 1 <= int(max_length) <= MAX_CODE_LENGTH:
        raise ValueError(f"max_length must be in 1..{MAX_CODE_LENGTH}, got {max_length}.")
    max_length = int(max_length)
    lengths = np.zeros(counts.size, np.uint8)
    used = np.flatnonzero(counts)
    n_items = used.size + (1 if reserve else 0)
    if used.size == 0:
        return lengths
    if n_items == 1:
        lengths[used] = 1
        return lengths
    if n_items > (1 << max_length):
        raise ValueError(
            f"{n_items} symbols need codes longer than max_length={max_length}; "
            f"at most {1 << max_length} fit."
        )
    weights = counts[used]
    if reserve:  # the reserved pseudo-symbol has weight 0: it sorts first, goes deepest
        weights = np.concatenate([[0], weights])
    order = np.argsort(weights, kind="stable")
    leaves = weights[order]

    # A code for n items is at most n − 1 deep, so deeper levels change nothing.
    levels = min(max_length, n_items - 1)
    # Lists from the deepest level up to level 1, each sorted by weight; a package goes
    # after leaves of equal weight. Only each list's "is a package" flags are kept.
    is_package = [np.zeros(n_items, bool)]
    current = leaves
    for _ in range(levels - 1):
        half = current.size // 2
        packages = current[0 : 2 * half : 2] + current[1 : 2 * half : 2]
        slots = np.searchsorted(leaves, packages, side="right") + np.arange(half)
        flags = np.zeros(n_items + half, bool)
        flags[slots] = True
        merged = np.empty(n_items + half, leaves.dtype)
        merged[slots] = packages
        merged[~flags] = leaves
        current = merged
        is_package.append(flags)
    # Select the 2n − 2 cheapest items of level 1; a selected package at one level
    # selects the first 2p items of the level below. Selected leaves are always the
    # lightest ones (a prefix of `leaves`), and each selection adds 1 to their length.
    depth = np.zeros(n_items, np.int64)
    take = 2 * n_items - 2
    for flags in reversed(is_package):
        n_packages = int(np.count_nonzero(flags[:take]))
        depth[: take - n_packages] += 1
        take = 2 * n_packages
    item_lengths = np.empty(n_items, np.int64)
    item_lengths[order] = depth
    if reserve:
        item_lengths = item_lengths[1:]
    lengths[used] = item_lengths
    return lengths


def _check_lengths(lengths):
    if isinstance(lengths, np.ndarray) and lengths.dtype == np.uint8 and lengths.ndim == 1:
        if lengths.size and lengths.max() > MAX_CODE_LENGTH:
            raise ValueError(f"code lengths must be in 0..{MAX_CODE_LENGTH}.")
        return lengths
    lengths = np.asarray(lengths)
    if lengths.ndim != 1:
        raise ValueError(f"lengths must be 1-D, got shape {lengths.shape}.")
    if lengths.size and (lengths.min() < 0 or lengths.max() > MAX_CODE_LENGTH):
        raise ValueError(f"code lengths must be in 0..{MAX_CODE_LENGTH}.")
    return lengths.astype(np.uint8)


def kraft_deficit(lengths):
    """Unused code space of `lengths`, in codewords of the longest length.

    Returns `2^L − Σ 2^(L − len)` over used symbols, L the longest length (0 when no
    symbol is used): 0 for a complete code, 1 for the bundle format's codes with one
    reserved codeword, negative for an over-subscribed (invalid) set of lengths.
    """
    return _deficit(_check_lengths(lengths))


_UNITS = 1 << (MAX_CODE_LENGTH - np.arange(MAX_CODE_LENGTH + 1, dtype=np.int64))  # 2^(15 − l)
_UNITS[0] = 0


def _deficit(lengths):
    if not lengths.size:
        return 0
    top = int(lengths.max())
    if top == 0:
        return 0
    used_units = int(np.dot(np.bincount(lengths, minlength=MAX_CODE_LENGTH + 1), _UNITS))
    return ((1 << MAX_CODE_LENGTH) - used_units) >> (MAX_CODE_LENGTH - top)


def canonical_codes(lengths):
    """Canonical codewords (RFC 1951 §3.2.2) for `lengths`, as `np.uint32` values.

    Unused symbols (length 0) get code 0. Raises `ValueError` if the lengths are
    over-subscribed (Kraft sum > 1).
    """
    lengths = _check_lengths(lengths)
    if kraft_deficit(lengths) < 0:
        raise ValueError("code lengths are over-subscribed (Kraft sum > 1).")
    bl_count = np.bincount(lengths, minlength=MAX_CODE_LENGTH + 1).astype(np.int64)
    bl_count[0] = 0
    next_code = np.zeros(MAX_CODE_LENGTH + 1, np.int64)
    code = 0
    for bits in range(1, MAX_CODE_LENGTH + 1):
        code = (code + int(bl_count[bits - 1])) << 1
        next_code[bits] = code
    codes = np.zeros(lengths.size, np.uint32)
    used = np.flatnonzero(lengths)
    if used.size:
        order = used[np.argsort(lengths[used], kind="stable")]  # by (length, symbol)
        sorted_lengths = lengths[order].astype(np.int64)
        first_of_length = np.searchsorted(sorted_lengths, sorted_lengths, side="left")
        rank = np.arange(order.size) - first_of_length
        codes[order] = (next_code[sorted_lengths] + rank).astype(np.uint32)
    return codes


_REV8 = np.array([int(f"{v:08b}"[::-1], 2) for v in range(256)], np.uint32)


def _reverse_bits(values, widths):
    """Reverse the low `widths` bits (≤ 15) of each value."""
    values = values.astype(np.uint32)
    reversed16 = (_REV8[values & 0xFF] << 8) | _REV8[(values >> 8) & 0xFF]
    return (reversed16 >> (16 - widths.astype(np.uint32))).astype(np.uint32)


def entropy_bits(counts):
    """Zero-order entropy of a stream with these symbol `counts`, in total bits.

    `Σ c · log2(N / c)` over symbols with c > 0, N = Σ c: the lower bound for any
    symbol-by-symbol code of the stream.
    """
    counts = _check_counts(counts)
    counts = counts[counts > 0].astype(np.float64)
    if not counts.size:
        return 0.0
    total = counts.sum()
    return float(np.sum(counts * (np.log2(total) - np.log2(counts))))


# --------------------------------------------------------------------------- encode

_ENCODE_CHUNK = 1 << 20  # symbols per vectorised block (bounds temporary memory)


def _pack_lsb(values, widths):
    """Pack `widths[i]` (≤ 15) low bits of `values[i]`, LSB first, into bytes.

    Each value, shifted to its bit position within its first byte, spans at most three
    bytes; the codes do not overlap, so summing each byte's parts (bincount) is OR-ing
    them. Works in blocks of `_ENCODE_CHUNK` symbols to bound temporary memory.
    """
    widths = widths.astype(np.int64)
    nbits = int(widths.sum())
    if nbits == 0:
        return b"", 0
    out = np.zeros((nbits + 7) // 8 + 2, np.uint8)
    bit = 0
    for start in range(0, values.size, _ENCODE_CHUNK):
        v = values[start : start + _ENCODE_CHUNK].astype(np.uint32)
        w = widths[start : start + _ENCODE_CHUNK]
        pos = np.cumsum(w)
        pos -= w
        pos += bit
        bit = int(pos[-1] + w[-1])
        shifted = v << (pos & 7).astype(np.uint32)  # < 2^22: three bytes
        byte = pos >> 3
        base = int(byte[0])
        byte -= base
        span = int(byte[-1]) + 3
        acc = np.bincount(byte, weights=shifted & 0xFF, minlength=span)
        acc[1:] += np.bincount(byte, weights=(shifted >> 8) & 0xFF, minlength=span)[:-1]
        acc[2:] += np.bincount(byte, weights=shifted >> 16, minlength=span)[:-2]
        out[base : base + span] += acc.astype(np.uint8)
    return out[: (nbits + 7) // 8].tobytes(), nbits


def encode(symbols, lengths):
    """Huffman-code `symbols` with the canonical code of `lengths`.

    Args:
        symbols: 1-D array of non-negative integer symbols; every symbol must have a
            non-zero code length.
        lengths: code lengths, as from `code_lengths`.

    Returns:
        `(data, nbits)`: the bits packed LSB-first (codewords MSB-first), and the
        number of bits used. The padding bits of the last byte are zero.
    """
    lengths = _check_lengths(lengths)
    symbols = np.asarray(symbols)
    if symbols.ndim != 1:
        raise ValueError(f"symbols must be 1-D, got shape {symbols.shape}.")
    if not symbols.size:
        return b"", 0
    if symbols.min() < 0 or symbols.max() >= lengths.size:
        raise ValueError(f"symbols must be in 0..{lengths.size - 1}.")
    widths = lengths[symbols]
    if not widths.all():
        missing = int(symbols[np.flatnonzero(widths == 0)[0]])
        raise ValueError(f"symbol {missing} has code length 0 and cannot be coded.")
    codes = canonical_codes(lengths)
    reversed_codes = _reverse_bits(codes, lengths)
    return _pack_lsb(reversed_codes[symbols], widths)


# --------------------------------------------------------------------------- decode


def decode(data, lengths, count, bit_offset=0):
    """Decode `count` symbols from `data` under the canonical code of `lengths`.

    Args:
        data: bytes-like; the stream starts at bit `bit_offset` (LSB-first order).
        lengths: code lengths (at most 15 each, Kraft sum ≤ 1).
        count: number of symbols to decode.
        bit_offset: first bit of the stream in `data`. Defaults to `0`.

    Returns:
        1-D array of `count` symbols: `np.uint8` when `len(lengths) ≤ 256`, else
        `np.uint16`. The bits consumed are `lengths[result].sum()`.

    Raises:
        HuffmanDecodeError: the bits run out, or hold a codeword the lengths do not
            assign (e.g. the reserved codeword).
        ValueError: invalid lengths or arguments.
    """
    symbols, _ = decode_counted(data, lengths, count, bit_offset)
    return symbols


def decode_counted(data, lengths, count, bit_offset=0):
    """`decode`, also returning the histogram of the decoded symbols.

    Returns:
        `(symbols, counts)`: `counts` has `len(lengths)` entries, so the bits consumed
        are `counts @ lengths`.
    """
    lengths = _check_lengths(lengths)
    count = int(count)
    bit_offset = int(bit_offset)
    if count < 0 or bit_offset < 0:
        raise ValueError("count and bit_offset must be non-negative.")
    out_dtype = np.uint8 if lengths.size <= 256 else np.uint16
    if count == 0:
        return np.zeros(0, out_dtype), np.zeros(lengths.size, np.int64)
    view = memoryview(data).cast("B")
    available = len(view) * 8 - bit_offset
    if available < count:  # every codeword takes at least one bit
        raise HuffmanDecodeError(
            f"{count} symbols need at least {count} bits; {max(available, 0)} present.",
            bit=max(available, 0),
        )
    top = int(lengths.max()) if lengths.size else 0
    if top == 0:
        raise HuffmanDecodeError("no symbol has a code; cannot decode.", bit=0)
    deficit = _deficit(lengths)
    if deficit < 0:
        raise ValueError("code lengths are over-subscribed (Kraft sum > 1).")
    if 1 <= deficit <= 30 and (lengths.size <= 256 or not lengths[256:].any()):
        symbols = _decode_zlib(view, lengths, count, bit_offset, deficit)
    else:
        symbols = _decode_numpy(view, lengths, count, bit_offset)
    hist = np.bincount(symbols, minlength=lengths.size)
    consumed = int(np.dot(hist, lengths))
    if consumed > available:
        raise HuffmanDecodeError(
            f"stream truncated: {count} symbols need {consumed} bits, {available} present.",
            bit=available,
        )
    return symbols.astype(out_dtype, copy=False), hist


# The DEFLATE prefix used by `_decode_zlib`. Three empty non-final fixed-Huffman blocks
# (BFINAL=0, BTYPE=01, end-of-block code 0000000: 10 bits each) pad the dynamic-block
# header so that its fixed part ends on a byte boundary: 30 + 17 + 19·3 = 104 bits.
_EMPTY_FIXED_BLOCK = [0, 1, 0] + [0] * 7
# Code-length code: symbols 0..15 all get length 4 (a complete code), 16/17/18 unused.
# In DEFLATE's permuted order 16,17,18,0,8,7,9,6,10,5,11,4,12,3,13,2,14,1,15 that is
# 0, 0, 0, then sixteen 4s. Symbol v's codeword is then v itself, sent MSB-first, which
# is the nibble v with its bits reversed in LSB-first packing.
_CLEN_LENGTHS = [0, 0, 0] + [4] * 16
_REV4 = np.array([int(f"{v:04b}"[::-1], 2) for v in range(16)], np.uint8)


def _bits(value, width):
    return [(value >> i) & 1 for i in range(width)]


@functools.lru_cache(maxsize=64)
def _deflate_head(n_lit, n_dist):
    """The 13 fixed bytes of the prefix for `n_lit` literal/length and `n_dist` codes."""
    bits = (
        _EMPTY_FIXED_BLOCK * 3
        + _bits(1, 1)  # BFINAL
        + _bits(2, 2)  # BTYPE = dynamic Huffman
        + _bits(n_lit - 257, 5)  # HLIT
        + _bits(n_dist - 1, 5)  # HDIST
        + _bits(19 - 4, 4)  # HCLEN: all 19 code-length code lengths
        + [b for v in _CLEN_LENGTHS for b in _bits(v, 3)]
    )
    return np.packbits(np.array(bits, np.uint8), bitorder="little").tobytes()


def _deflate_prefix(lengths, deficit):
    """Bytes that turn the stream that follows them into a literal-only DEFLATE block.

    The literal/length code is `lengths` for literals 0..255 plus `deficit` filler
    symbols 256, 257, … at the longest length L: canonically they take exactly the
    unused codewords, so the stream's codewords are unchanged, and 256 is end-of-block.
    The distance codes (one or two, all of length 0: no matches) are chosen so that the
    prefix is a whole number of bytes.
    """
    n_lit = 256 + deficit
    n_dist = 1 if (n_lit + 1) % 2 == 0 else 2
    table = np.zeros(n_lit + n_dist, np.uint8)
    table[: min(lengths.size, 256)] = lengths[:256]
    table[256:n_lit] = lengths.max()
    nibbles = _REV4[table]
    return _deflate_head(n_lit, n_dist) + (nibbles[0::2] | (nibbles[1::2] << 4)).tobytes()


def _decode_zlib(view, lengths, count, bit_offset, deficit):
    """Decode with zlib's C inflater: put a dynamic-block header in front of the stream."""
    first_byte, drop = divmod(bit_offset, 8)
    prefix = _deflate_prefix(lengths, deficit)
    if drop == 0:
        stream = b"".join([prefix, view[first_byte:], bytes(8)])
    else:  # the stream starts inside a byte: shift its bits after the prefix
        bits = np.unpackbits(np.frombuffer(view, np.uint8)[first_byte:], bitorder="little")[drop:]
        prefix_bits = np.unpackbits(np.frombuffer(prefix, np.uint8), bitorder="little")
        bits = np.concatenate([prefix_bits, bits, np.zeros(64, np.uint8)])
        stream = np.packbits(bits, bitorder="little").tobytes()
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(stream, count)
    except zlib.error as exc:
        raise HuffmanDecodeError(f"invalid codeword in stream ({exc}).") from None
    if len(out) < count:
        decoded = np.bincount(np.frombuffer(out, np.uint8), minlength=256)[: lengths.size]
        raise HuffmanDecodeError(
            f"decoded {len(out)} of {count} symbols: the stream ends early or holds the reserved codeword.",
            bit=int(np.dot(decoded, lengths[: decoded.size])),
        )
    return np.frombuffer(out, np.uint8)


_DOUBLING_LEVELS = 8  # symbols per block walked in Python = 2^8


def _decode_numpy(view, lengths, count, bit_offset):
    """Pure-NumPy decoder: table lookup at every bit position + pointer doubling."""
    top = int(lengths.max())
    codes = canonical_codes(lengths)
    used = np.flatnonzero(lengths)
    # Lookup table indexed by the next `top` stream bits read LSB-first: a codeword c of
    # length l occupies the low l bits as reverse(c), any high bits.
    rev = _reverse_bits(codes[used], lengths[used]).astype(np.int64)
    fill = 1 << (top - lengths[used].astype(np.int64))
    owner = np.repeat(np.arange(used.size), fill)
    high = np.arange(owner.size) - np.repeat(np.cumsum(fill) - fill, fill)
    slots = rev[owner] | (high << lengths[used].astype(np.int64)[owner])
    lut_len = np.zeros(1 << top, np.int64)
    lut_sym = np.zeros(1 << top, np.uint16)
    lut_len[slots] = lengths[used][owner]
    lut_sym[slots] = used[owner]

    n = min(len(view) * 8 - bit_offset, MAX_CODE_LENGTH * count)
    first_byte = bit_offset // 8
    last_byte = (bit_offset + n + 7) // 8
    raw = np.zeros(last_byte - first_byte + 3, np.uint32)
    raw[: last_byte - first_byte] = np.frombuffer(view, np.uint8)[first_byte:last_byte]
    words = raw[:-2] | (raw[1:-1] << 8) | (raw[2:] << 16)  # 24 bits from each byte
    mask = np.uint32((1 << top) - 1)
    windows = ((words[:, None] >> np.arange(8, dtype=np.uint32)) & mask).ravel()
    windows = windows[bit_offset % 8 : bit_offset % 8 + n]
    step = lut_len[windows]
    # jump[p]: start of the next symbol, n = "ended exactly at the end", n + 1 = error.
    jump = np.arange(n, dtype=np.int64) + step
    jump[(step == 0) | (jump > n)] = n + 1
    jump = np.concatenate([jump, [n + 1, n + 1]])
    levels = min(_DOUBLING_LEVELS, max(1, int(count - 1).bit_length()))
    tables = [jump]
    for _ in range(levels):
        tables.append(tables[-1][tables[-1]])
    block = 1 << levels
    coarse = tables[-1]
    starts = np.empty((count + block - 1) // block, np.int64)
    position = 0
    coarse_view = memoryview(coarse)
    for i in range(starts.size):
        starts[i] = position
        position = coarse_view[min(position, n + 1)]
    positions = starts
    for level in range(levels - 1, -1, -1):
        positions = np.stack([positions, tables[level][positions]], axis=1).ravel()
    positions = positions[:count]
    end = tables[0][positions[-1]]
    if end > n or positions.max() >= n:
        bad = int(np.argmax(positions >= n)) if positions.max() >= n else count - 1
        raise HuffmanDecodeError(
            f"decoding failed at symbol {bad}: the stream ends early or holds an unassigned codeword.",
            bit=int(positions[bad - 1]) if bad else 0,
        )
    return lut_sym[windows[positions]].astype(np.uint16)
