"""Format version 1.2: GROUPED_SPARSE and GROUPED_DENSE (docs/bundle-format.md 7.8), their
malformed-input rules (section 10), the minor-version rule (4.1) and the encoder's choice
(section 13), in the encoder and the decoder."""

import numpy as np
import pytest
from sidecar_testing import expect_error, golden, payloads_of, rebuild

from converters import decoder, encoder
from converters.encoder import Segment
from converters.format import (
    CODEBOOK_COUNT,
    ENTRY_COUNT,
    ESCAPE_RUN,
    HEADER,
    STREAM,
    lengths_size,
)

HEAD = b"\x05\x06"
V11 = ["RAW", "ZLIB", "CLUSTERED_SPARSE", "CLUSTERED_DENSE", "SPARSE_RAW"]
CENTROIDS = np.array([-0.9, -0.4, -0.2, -0.08, 0.05, 0.15, 0.3, 0.7])


def _int8_kernel(channels=60, inputs=200, density=0.1, seed=0, centroids=CENTROIDS):
    """A kernel clustered to shared centroids, quantized per channel like TFLite's
    full-integer converter (scale = max |w| / 127, zero point 0)."""
    rng = np.random.default_rng(seed)
    use = np.exp(-np.abs(centroids) / 0.25)  # large centroids are rare, as in a real layer
    weights = rng.choice(centroids, (channels, inputs), p=use / use.sum())
    weights[rng.random((channels, inputs)) >= density] = 0
    peak = np.abs(weights).max(axis=1, keepdims=True)
    return np.round(weights * 127 / np.where(peak > 0, peak, 1)).astype(np.int8)


def _one(values, channels, **kwargs):
    restored = HEAD + values.tobytes() + b"\x09"
    segment = Segment(len(HEAD), values.nbytes, values.dtype.name, channels, "k")
    kwargs.setdefault("packed", False)  # the 1.2 layout (format 1.4 packs: test_format_v14)
    return (restored, *encoder.build_bundle(restored, [segment], **kwargs))


def _payload_start(side):
    h = HEADER.unpack_from(side)
    return h.header_size + h.segment_count * h.entry_size + h.names_size


def _stream_end(payload, at):
    s = STREAM.unpack_from(payload, at)
    return at + STREAM.size + lengths_size(s.alphabet) + (s.nbits + 7) // 8


# ------------------------------------------------------------------------- the encoder


def test_int8_channels_share_codebooks_by_group():
    kernel = _int8_kernel()
    restored, skeleton, side, stats = _one(kernel, 60)
    assert stats[0].encoding == "GROUPED_SPARSE"
    assert decoder.restore_bytes(skeleton, side) == restored
    assert HEADER.unpack_from(side).version_minor == 2
    # One group per largest-magnitude centroid a channel uses (at most one per centroid), each
    # codebook holding at most the 8 centroids' values.
    assert 1 < stats[0].codebooks <= CENTROIDS.size
    assert stats[0].codebook_entries <= 8 * stats[0].codebooks
    # Smaller than the best a 1.1 writer can do (one codebook of all scaled values, or
    # one codebook per channel).
    _, _, old_side, old = _one(kernel, 60, encodings=V11)
    assert old[0].encoding == "CLUSTERED_SPARSE"
    assert stats[0].payload_bytes < old[0].payload_bytes
    assert HEADER.unpack_from(old_side).version_minor == 0
    info = decoder.inspect(side)["segments"][0]
    assert info["encoding"] == "GROUPED_SPARSE" and info["nonzeros"] == np.count_nonzero(kernel)
    assert info["map_bits"] == stats[0].map_bits > 0


def test_unpruned_int8_kernel_is_grouped_dense():
    kernel = _int8_kernel(channels=32, inputs=16, density=1.0, seed=3)
    restored, skeleton, side, stats = _one(kernel, 32)
    assert stats[0].encoding == "GROUPED_DENSE"
    assert decoder.restore_bytes(skeleton, side) == restored


def test_grouping_is_not_tried_where_it_cannot_win():
    # Per-layer clustered float: one codebook holds every channel's values already.
    rng = np.random.default_rng(4)
    weights = CENTROIDS.astype(np.float32)[rng.integers(0, 8, (20, 50))]
    weights[rng.random((20, 50)) < 0.8] = 0
    _, _, side, stats = _one(weights, 20)
    assert stats[0].encoding == "CLUSTERED_SPARSE" and stats[0].codebooks == 1
    assert HEADER.unpack_from(side).version_minor == 0
    # Every channel its own values (BatchNorm folding): per-channel codebooks need no map.
    folded = weights * rng.uniform(0.5, 2.0, (20, 1)).astype(np.float32)
    _, _, side, stats = _one(folded, 20)
    assert stats[0].encoding == "CLUSTERED_SPARSE" and stats[0].codebooks == 20
    assert HEADER.unpack_from(side).version_minor == 0


def test_channels_join_only_groups_of_their_background():
    # Two value sets × two backgrounds (+0.0 and -0.0): four groups, never fewer.
    rng = np.random.default_rng(5)
    rows = []
    for c in range(16):
        codebook = np.float32([0.25, 0.5, -0.75]) * (2 if c % 4 < 2 else 1)
        row = codebook[rng.integers(0, 3, 300)]
        row[rng.random(300) < 0.85] = -0.0 if c % 2 else 0.0
        rows.append(row)
    kernel = np.array(rows, np.float32)
    restored, skeleton, side, stats = _one(kernel, 16)
    assert stats[0].encoding == "GROUPED_SPARSE" and stats[0].codebooks == 4
    assert decoder.restore_bytes(skeleton, side) == restored
    payload = payloads_of(side)[0]
    entries_end = CODEBOOK_COUNT.size + 4 * ENTRY_COUNT.size + 4 * 3 * 4
    background_at = _stream_end(payload, entries_end)
    background = np.frombuffer(payload[background_at : background_at + 16], np.uint32)
    assert sorted(background.tolist()) == [0, 0, 0x80000000, 0x80000000]


def test_grouped_round_trips_on_many_shapes():
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        channels = int(rng.integers(2, 40))
        kernel = _int8_kernel(
            channels, int(rng.integers(1, 90)), float(rng.uniform(0.02, 1.0)), seed
        )
        kernel[rng.random(channels) < 0.2] = 0  # some channels pruned away
        restored, skeleton, side, stats = _one(kernel, channels)
        assert decoder.restore_bytes(skeleton, side) == restored, (seed, stats[0].encoding)


# ------------------------------------------------------------------------ the layout


def _grouped_side(dense=False):
    kernel = _int8_kernel(
        channels=12 if dense else 16, inputs=16 if dense else 80, density=1.0 if dense else 0.2
    )
    restored, skeleton, side, stats = _one(kernel, kernel.shape[0])
    assert stats[0].encoding == ("GROUPED_DENSE" if dense else "GROUPED_SPARSE")
    return kernel, skeleton, side, stats[0], payloads_of(side)[0], _payload_start(side)


def test_grouped_layout_is_the_spec():
    kernel, skeleton, side, stats, payload, _ = _grouped_side()
    groups = CODEBOOK_COUNT.unpack_from(payload)
    counts = np.frombuffer(payload[2 : 2 + 2 * groups], "<u2")
    at = 2 + 2 * groups + int(counts.sum())  # int8 entries: 1 byte each
    book_map = STREAM.unpack_from(payload, at)
    assert book_map.count == kernel.shape[0] and book_map.alphabet <= groups
    at = _stream_end(payload, at)
    assert payload[at : at + groups] == bytes(groups)  # backgrounds: int8 0
    assert ESCAPE_RUN.unpack_from(payload, at + groups) == stats.escape_run
    gaps_end = _stream_end(payload, at + groups + 1)
    indices = STREAM.unpack_from(payload, gaps_end)
    assert indices.count == np.count_nonzero(kernel)
    assert _stream_end(payload, gaps_end) == len(payload)  # nothing after the indices
    assert groups == stats.codebooks and int(counts.sum()) == stats.codebook_entries


# ------------------------------------------------------------------- malformed input


def _with_codebook_count(payload, count):
    return CODEBOOK_COUNT.pack(count) + payload[CODEBOOK_COUNT.size :]


@pytest.mark.parametrize("dense", [False, True])
def test_codebook_count_must_be_1_to_channels(dense):
    kernel, skeleton, side, _, payload, start = _grouped_side(dense)
    for bad in (0, kernel.shape[0] + 1, 300):
        expect_error(
            skeleton,
            rebuild(side, [_with_codebook_count(payload, bad)]),
            "segment[0].codebook_count",
            start,
        )


def test_codebook_map_count_must_be_channels_and_alphabet_at_most_g():
    _, skeleton, side, _, payload, start = _grouped_side()
    groups = CODEBOOK_COUNT.unpack_from(payload)
    counts = np.frombuffer(payload[2 : 2 + 2 * groups], "<u2")
    map_at = 2 + 2 * groups + int(counts.sum())
    fixed = STREAM.unpack_from(payload, map_at)
    for field, value in (("count", fixed.count + 1), ("count", fixed.count - 1)):
        bad = bytearray(payload)
        STREAM[field].pack_into(bad, map_at, value)
        expect_error(skeleton, rebuild(side, [bytes(bad)]), f"segment[0].codebook_map.{field}")
    # One codebook fewer than the map's alphabet: drop the last codebook's entries.
    assert fixed.alphabet == groups
    last = int(counts[-1])
    bad = (
        CODEBOOK_COUNT.pack(groups - 1)
        + counts[:-1].tobytes()
        + payload[2 + 2 * groups : map_at - last]
        + payload[map_at:]
    )
    expect_error(
        skeleton,
        rebuild(side, [bad]),
        "segment[0].codebook_map.alphabet",
        start + 2 + 2 * (groups - 1) + int(counts[:-1].sum()) + STREAM["alphabet"].offset,
    )


def test_index_must_be_within_its_groups_codebook():
    _, skeleton, side, _, payload, _ = _grouped_side()
    groups = CODEBOOK_COUNT.unpack_from(payload)
    counts = np.frombuffer(payload[2 : 2 + 2 * groups], "<u2").copy()
    # Shrink the codebook of channel 0's group by its last entry: some index of that
    # group now points past it (the entries are ordered by use, the last is still used).
    sizes = counts.copy()
    for g in range(groups):
        sizes[g] -= 1
        cut_at = 2 + 2 * groups + int(counts[: g + 1].sum()) - 1
        bad = (
            CODEBOOK_COUNT.pack(groups)
            + sizes.astype("<u2").tobytes()
            + payload[2 + 2 * groups : cut_at]
            + payload[cut_at + 1 :]
        )
        expect_error(skeleton, rebuild(side, [bad]), "segment[0].indices.data")
        sizes[g] += 1


def test_grouped_payload_must_end_with_the_indices():
    _, skeleton, side, _, payload, _ = _grouped_side(dense=True)
    expect_error(skeleton, rebuild(side, [payload + b"\x00"]), "segment[0].payload_size")
    expect_error(skeleton, rebuild(side, [payload[:-1]]))


def test_grouped_golden_is_v1_2_and_older_goldens_keep_their_versions():
    skeleton, side, restored = golden("grouped")
    assert decoder.restore_bytes(skeleton, side) == restored
    info = decoder.inspect(side)
    assert info["version"] == "1.2"
    assert [s["encoding"] for s in info["segments"]] == [
        "GROUPED_SPARSE",
        "RAW",
        "GROUPED_DENSE",
        "GROUPED_SPARSE",
    ]
    for name, minor in (("int8", 0), ("sparse_raw", 1), ("background", 0)):
        assert HEADER.unpack_from(golden(name)[1]).version_minor == minor, name
