"""Tests of converters.huffman: optimal length-limited canonical Huffman coding."""

import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from converters import huffman


def kraft(lengths):
    return sum(Fraction(1, 2 ** int(n)) for n in lengths if n)


def brute_force_cost(counts, max_length):
    """Cheapest Σ count·length over all prefix codes with lengths ≤ max_length."""
    best = None
    for lengths in itertools.product(range(1, max_length + 1), repeat=len(counts)):
        if kraft(lengths) <= 1:
            cost = sum(c * n for c, n in zip(counts, lengths))
            best = cost if best is None else min(best, cost)
    return best


counts_strategy = st.lists(st.integers(0, 10_000), min_size=1, max_size=300)


# ----------------------------------------------------------------- code lengths


def test_code_lengths_textbook_example():
    # Counts 1, 1, 2, 4: Huffman merges (1,1)→2, (2,2)→4, (4,4) → lengths 3, 3, 2, 1.
    np.testing.assert_array_equal(huffman.code_lengths([1, 1, 2, 4]), [3, 3, 2, 1])


def test_code_lengths_uniform_is_fixed_width():
    np.testing.assert_array_equal(huffman.code_lengths([7] * 8), [3] * 8)


def test_code_lengths_zero_and_one_used_symbol():
    np.testing.assert_array_equal(huffman.code_lengths([0, 0, 0]), [0, 0, 0])
    np.testing.assert_array_equal(huffman.code_lengths([]), [])
    np.testing.assert_array_equal(huffman.code_lengths([0, 9, 0]), [0, 1, 0])
    np.testing.assert_array_equal(huffman.code_lengths([0, 9, 0], reserve=True), [0, 1, 0])


def test_code_lengths_unused_symbols_get_zero():
    lengths = huffman.code_lengths([5, 0, 3, 0, 1])
    assert lengths[1] == 0 and lengths[3] == 0
    assert kraft(lengths) == 1


def test_code_lengths_limit_respected_on_fibonacci_counts():
    # Fibonacci counts make unconstrained Huffman codes as deep as the alphabet is long.
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])
    unlimited = huffman.code_lengths(fib, max_length=15)
    assert unlimited.max() == 15 and kraft(unlimited) == 1
    for limit in (5, 7, 10):
        lengths = huffman.code_lengths(fib, max_length=limit)
        assert lengths.max() <= limit
        assert kraft(lengths) == 1


def test_code_lengths_limited_optimum_hand_checked():
    # Counts 1,1,1,1,8 unlimited: 8→1 bit, the four 1s → 3 bits: cost 8 + 12 = 20.
    np.testing.assert_array_equal(huffman.code_lengths([1, 1, 1, 1, 8]), [3, 3, 3, 3, 1])
    # Four symbols limited to 2 bits: only the fixed-width code fits (unlimited it
    # would be 3, 3, 2, 1). Five symbols cannot be coded in 2 bits at all.
    np.testing.assert_array_equal(huffman.code_lengths([1, 1, 2, 8], max_length=2), [2, 2, 2, 2])
    with pytest.raises(ValueError, match="max_length"):
        huffman.code_lengths([1, 1, 1, 1, 8], max_length=2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=2, max_size=5), st.integers(1, 6))
def test_code_lengths_optimal_against_brute_force(counts, max_length):
    if len(counts) > 2**max_length:
        with pytest.raises(ValueError):
            huffman.code_lengths(counts, max_length)
        return
    lengths = huffman.code_lengths(counts, max_length)
    assert lengths.max() <= max_length
    assert int(np.dot(counts, lengths)) == brute_force_cost(counts, max_length)


@settings(max_examples=100, deadline=None)
@given(counts_strategy)
def test_kraft_sum_is_one(counts):
    lengths = huffman.code_lengths(counts)
    used = sum(1 for c in counts if c)
    assert lengths.dtype == np.uint8 and lengths.shape == (len(counts),)
    assert all((n > 0) == (c > 0) for n, c in zip(lengths, counts))
    if used >= 2:
        assert kraft(lengths) == 1
        assert huffman.kraft_deficit(lengths) == 0


@settings(max_examples=100, deadline=None)
@given(counts_strategy)
def test_reserved_codeword_leaves_exactly_one_longest_code(counts):
    lengths = huffman.code_lengths(counts, reserve=True)
    if any(counts):
        top = int(lengths.max())
        assert kraft(lengths) == 1 - Fraction(1, 2**top)
        assert huffman.kraft_deficit(lengths) == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=2, max_size=40))
def test_huffman_within_one_bit_of_entropy(counts):
    lengths = huffman.code_lengths(counts)
    total = sum(counts)
    if sum(1 for c in counts if c) >= 2:
        entropy = huffman.entropy_bits(counts)
        assert entropy - 1e-9 <= np.dot(counts, lengths) < entropy + total


def test_reserve_costs_at_most_the_rarest_count():
    counts = [50, 30, 10, 7, 3]
    plain = np.dot(counts, huffman.code_lengths(counts))
    reserved = np.dot(counts, huffman.code_lengths(counts, reserve=True))
    assert plain <= reserved <= plain + min(counts)


def test_code_lengths_deterministic_with_ties():
    counts = [4, 4, 4, 2, 2, 2, 1, 1, 1, 1]
    first = huffman.code_lengths(counts)
    for _ in range(3):
        np.testing.assert_array_equal(huffman.code_lengths(counts), first)


def test_code_lengths_rejects_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        huffman.code_lengths([1, -1])
    with pytest.raises(ValueError, match="1-D"):
        huffman.code_lengths([[1, 2]])
    with pytest.raises(ValueError, match="max_length"):
        huffman.code_lengths([1, 2], max_length=16)


def test_entropy_bits():
    assert huffman.entropy_bits([1, 1]) == pytest.approx(2.0)
    assert huffman.entropy_bits([2, 1, 1]) == pytest.approx(6.0)  # 4 × 1.5 bits
    assert huffman.entropy_bits([5]) == 0.0
    assert huffman.entropy_bits([0, 0]) == 0.0


# ----------------------------------------------------------------- canonical codes


def test_canonical_codes_rfc1951_example():
    # RFC 1951 §3.2.2: lengths (3,3,3,3,3,2,4,4) give 010 011 100 101 110 00 1110 1111.
    codes = huffman.canonical_codes([3, 3, 3, 3, 3, 2, 4, 4])
    assert [int(c) for c in codes] == [0b010, 0b011, 0b100, 0b101, 0b110, 0b00, 0b1110, 0b1111]


def test_canonical_codes_reject_oversubscribed():
    with pytest.raises(ValueError, match="over-subscribed"):
        huffman.canonical_codes([1, 1, 1])


# ----------------------------------------------------------------- bit order


def test_encode_bit_order_hand_computed():
    # lengths sym0=1 ("0"), sym1=2 ("10"), reserved "11". Symbols 1,1,0,1: codewords
    # 10 10 0 10 → stream bits b0..b6 = 1,0,1,0,0,1,0 → LSB-first byte 0b0100101 = 0x25.
    data, nbits = huffman.encode([1, 1, 0, 1], [1, 2])
    assert (data, nbits) == (b"\x25", 7)
    np.testing.assert_array_equal(huffman.decode(b"\x25", [1, 2], 4), [1, 1, 0, 1])


def test_encode_codeword_msb_first_across_bytes():
    # One 15-bit codeword: lengths [1, 15, 15 ...]: symbol 1's code is 1000...0 (15 bits).
    lengths = [1] + [15] * 16383 + [0]  # complete minus one reserved 15-bit codeword
    assert huffman.kraft_deficit(lengths) == 1
    codes = huffman.canonical_codes(lengths)
    assert int(codes[1]) == 0b100000000000000
    data, nbits = huffman.encode([1], lengths)
    assert nbits == 15 and data == b"\x01\x00"  # first bit 1 in b0, then fourteen zeros
    np.testing.assert_array_equal(huffman.decode(data, lengths, 1), [1])


# ----------------------------------------------------------------- round trips


@st.composite
def streams(draw):
    alphabet = draw(st.integers(1, 300))
    n = draw(st.integers(0, 400))
    weights = draw(st.lists(st.integers(0, 50), min_size=alphabet, max_size=alphabet))
    if not any(weights):
        weights[0] = 1
    p = np.asarray(weights, float) / sum(weights)
    seed = draw(st.integers(0, 2**32 - 1))
    symbols = np.random.default_rng(seed).choice(alphabet, n, p=p)
    reserve = draw(st.booleans())
    return symbols, alphabet, reserve


@settings(max_examples=100, deadline=None)
@given(streams(), st.integers(0, 20))
def test_round_trip(stream, bit_offset):
    symbols, alphabet, reserve = stream
    counts = np.bincount(symbols, minlength=alphabet)
    if not counts.any():
        counts[0] = 1
    lengths = huffman.code_lengths(counts, reserve=reserve)
    data, nbits = huffman.encode(symbols, lengths)
    assert nbits == int(np.dot(np.bincount(symbols, minlength=alphabet), lengths))
    assert len(data) == (nbits + 7) // 8
    # Prefix `bit_offset` junk bits (ones) to exercise unaligned starts.
    bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")[:nbits]
    shifted = np.packbits(
        np.concatenate([np.ones(bit_offset, np.uint8), bits]), bitorder="little"
    ).tobytes()
    decoded = huffman.decode(shifted, lengths, symbols.size, bit_offset)
    np.testing.assert_array_equal(decoded, symbols)
    assert decoded.dtype == (np.uint8 if alphabet <= 256 else np.uint16)
    if symbols.size:  # the pure-NumPy decoder agrees with the zlib one
        numpy_path = huffman._decode_numpy(memoryview(shifted), lengths, symbols.size, bit_offset)
        np.testing.assert_array_equal(numpy_path, symbols)


def test_round_trip_large_stream_both_paths():
    rng = np.random.default_rng(3)
    symbols = rng.choice(64, 200_000, p=rng.dirichlet(np.ones(64) * 0.3))
    lengths = huffman.code_lengths(np.bincount(symbols, minlength=64), reserve=True)
    data, nbits = huffman.encode(symbols, lengths)
    np.testing.assert_array_equal(huffman.decode(data, lengths, symbols.size), symbols)
    np.testing.assert_array_equal(
        huffman._decode_numpy(memoryview(data), lengths, symbols.size, 0), symbols
    )
    symbols_out, counts = huffman.decode_counted(data, lengths, symbols.size)
    assert int(np.dot(counts, lengths)) == nbits


def test_encode_deterministic():
    rng = np.random.default_rng(0)
    symbols = rng.integers(0, 20, 5000)
    lengths = huffman.code_lengths(np.bincount(symbols), reserve=True)
    assert huffman.encode(symbols, lengths) == huffman.encode(symbols.copy(), lengths.copy())


def test_encode_rejects_uncoded_symbol():
    with pytest.raises(ValueError, match="code length 0"):
        huffman.encode([0, 2], [1, 1, 0])
    with pytest.raises(ValueError, match="symbols must be in"):
        huffman.encode([5], [1, 1])


# ----------------------------------------------------------------- decode errors


@pytest.mark.parametrize("numpy_path", [False, True])
def test_decode_truncated_stream(numpy_path):
    symbols = np.arange(10) % 3
    lengths = huffman.code_lengths(np.bincount(symbols), reserve=True)
    data, nbits = huffman.encode(symbols, lengths)
    decode = (
        (lambda d, c: huffman._decode_numpy(memoryview(d), lengths, c, 0))
        if numpy_path
        else (lambda d, c: huffman.decode(d, lengths, c))
    )
    with pytest.raises(huffman.HuffmanDecodeError):
        decode(data[:1], 10)
    with pytest.raises(huffman.HuffmanDecodeError):
        decode(b"", 1)


@pytest.mark.parametrize("numpy_path", [False, True])
def test_decode_rejects_reserved_codeword(numpy_path):
    # lengths [1, 2]: "0", "10"; "11" is reserved. Byte 0xFF is all reserved codewords.
    lengths = np.array([1, 2], np.uint8)
    with pytest.raises(huffman.HuffmanDecodeError):
        if numpy_path:
            huffman._decode_numpy(memoryview(b"\xff\xff"), lengths, 3, 0)
        else:
            huffman.decode(b"\xff\xff", lengths, 3)


def test_decode_rejects_bad_lengths():
    with pytest.raises(ValueError, match="over-subscribed"):
        huffman.decode(b"\x00", [1, 1, 1], 1)
    with pytest.raises(ValueError):
        huffman.decode(b"\x00", [16, 1], 1)
    with pytest.raises(huffman.HuffmanDecodeError):
        huffman.decode(b"\x00", [0, 0], 1)
    assert huffman.decode(b"", [1, 1], 0).size == 0
