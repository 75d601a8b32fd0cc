"""Tests of converters.stats: the SegmentStats record and its JSON form."""

import dataclasses

import numpy as np
import pytest

from converters.stats import SegmentStats, count_nonzero, nonzero_mask

# The keys of report.json's / `keras-dc inspect --json`'s per-segment dicts, in order.
JSON_KEYS = [
    "name",
    "offset",
    "dtype",
    "channels",
    "encoding",
    "codebooks",
    "elements",
    "nonzeros",
    "codebook_entries",
    "escape_run",
    "index_count",
    "index_bits",
    "index_entropy_bits",
    "gap_count",
    "gap_bits",
    "gap_entropy_bits",
    "map_bits",  # format 1.2: grouped codebooks' map
    "inner_encoding",  # format 1.3: DELTA's inner encoding
    "payload_bytes",
    "raw_bytes",
]


def test_to_dict_keeps_the_json_keys_and_values():
    stats = SegmentStats.of_segment(
        "conv",
        64,
        400,
        "float32",
        2,
        encoding="CLUSTERED_SPARSE",
        codebooks=2,
        index_entropy_bits_total=12.5,
        gap_entropy_bits_total=3.25,
        payload_bytes=90,
    )
    d = stats.to_dict()
    assert list(d) == JSON_KEYS
    assert d["index_entropy_bits"] == 12.5 and d["gap_entropy_bits"] == 3.25
    assert (d["elements"], d["raw_bytes"], d["payload_bytes"]) == (100, 400, 90)
    assert d["name"] == "conv" and d["encoding"] == "CLUSTERED_SPARSE" and d["codebooks"] == 2


def test_of_segment_defaults_to_a_raw_payload():
    stats = SegmentStats.of_segment("b", 0, 6, "int16", 1)
    assert (stats.encoding, stats.elements, stats.payload_bytes, stats.raw_bytes) == (
        "RAW",
        3,
        6,
        6,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.nonzeros = 1


def test_nonzero_counts_treat_both_float_zeros_as_zero():
    patterns = np.array([0.0, -0.0, 1.0, -2.0], np.float32).view(np.uint32)
    assert nonzero_mask(patterns, "float32").tolist() == [False, False, True, True]
    assert count_nonzero(patterns, "float32") == 2
    assert count_nonzero(patterns, "int32") == 3  # 0x80000000 is a non-zero int32
    halves = np.array([0.0, -0.0, 0.5], np.float16).view(np.uint16)
    assert count_nonzero(halves, "float16") == 1
