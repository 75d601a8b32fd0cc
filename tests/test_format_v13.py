"""Format version 1.3: DELTA (docs/bundle-format.md 7.9), its malformed-input rules
(section 10), the minor-version rule (4.1) and the encoder's choice (section 13)."""

import hashlib

import numpy as np
import pytest
from sidecar_testing import expect_error, golden, payloads_of, rebuild, with_entry, with_header

from converters import decoder, encoder
from converters.encoder import Segment
from converters.format import DELTA, ENCODINGS, HEADER, INNER_ENCODING, RAW

HEAD = b"\x01\x02\x03"
V12 = [name for name in ENCODINGS if name != "DELTA"]


def _one(values, dtype=None, **kwargs):
    restored = HEAD + values.tobytes() + b"\x04"
    segment = Segment(len(HEAD), values.nbytes, dtype or values.dtype.name, 1, "idx")
    return (restored, *encoder.build_bundle(restored, [segment], **kwargs))


def _sorted_rows(rows=200, columns=196, density=0.07, seed=0):
    """array_indices of a block-sparse tensor: each row's kept columns, increasing."""
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [np.flatnonzero(rng.random(columns) < density) for _ in range(rows)]
    ).astype(np.uint8)


def test_sorted_indices_are_coded_by_their_differences():
    indices = _sorted_rows()
    restored, skeleton, side, stats = _one(indices)
    assert stats[0].encoding == "DELTA" and stats[0].inner_encoding
    assert decoder.restore_bytes(skeleton, side) == restored
    assert HEADER.unpack_from(side).version_minor == 3
    _, _, old_side, old = _one(indices, encodings=V12)
    assert stats[0].payload_bytes < old[0].payload_bytes
    assert HEADER.unpack_from(old_side).version_minor < 3
    info = decoder.inspect(side)["segments"][0]
    assert info["encoding"] == "DELTA" and info["inner_encoding"] == stats[0].inner_encoding
    assert info["nonzeros"] == stats[0].nonzeros == np.count_nonzero(indices)
    assert info["payload_bytes"] == stats[0].payload_bytes


@pytest.mark.parametrize("dtype", ["uint16", "int32", "int64"])
def test_row_starts_of_every_width_round_trip(dtype):
    counts = np.random.default_rng(1).integers(0, 30, 500)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(dtype)
    restored, skeleton, side, stats = _one(starts, "int16" if dtype == "uint16" else dtype)
    assert stats[0].encoding == "DELTA"
    assert decoder.restore_bytes(skeleton, side) == restored


def test_delta_is_not_tried_on_unsorted_or_float_data():
    rng = np.random.default_rng(2)
    shuffled = rng.permutation(np.arange(2000) % 250).astype(np.uint8)
    assert _one(shuffled)[3][0].encoding != "DELTA"
    ramp = np.arange(2000, dtype=np.float32)  # increasing, but floats
    assert _one(ramp)[3][0].encoding != "DELTA"
    _, _, side, _ = _one(ramp)
    assert HEADER.unpack_from(side).version_minor < 3


def _delta_side(values, dtype=None):
    """A DELTA segment over `values`, written by hand: RAW differences (7.9)."""
    differences = np.diff(values, prepend=values.dtype.type(0))
    restored, skeleton, side, stats = _one(differences, dtype, encodings=["RAW"])
    payload = INNER_ENCODING.pack(RAW) + payloads_of(side)[0]
    side = with_entry(rebuild(side, [payload]), 0, "encoding", DELTA)
    restored = HEAD + values.tobytes() + b"\x04"
    return (
        restored,
        skeleton,
        with_header(side, "restored_sha256", hashlib.sha256(restored).digest()),
    )


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64"])
def test_running_sums_wrap_modulo_the_element_width(dtype):
    top = np.iinfo(dtype).max
    values = np.array([200, top - 5, 3, 0, top, 7], dtype)  # steps down wrap around
    restored, skeleton, side = _delta_side(values, {"uint16": "int16"}.get(dtype, dtype[1:]))
    assert decoder.restore_bytes(skeleton, side) == restored


def test_delta_field_rules():
    values = np.array([1, 5, 9, 9, 30], np.uint8)
    restored, skeleton, side = _delta_side(values)
    assert decoder.restore_bytes(skeleton, side) == restored
    payload = payloads_of(side)[0]
    for bad in (DELTA, 200):
        expect_error(
            skeleton,
            rebuild(side, [INNER_ENCODING.pack(bad) + payload[1:]]),
            "segment[0].inner_encoding",
        )
    expect_error(skeleton, rebuild(side, [b""]), "segment[0].payload_size")
    expect_error(skeleton, rebuild(side, [payload[:-1]]), "segment[0].payload_size")  # RAW size
    # The inner payload is checked by its own encoding's rules (here: a ZLIB stream).
    expect_error(skeleton, rebuild(side, [bytes([1]) + b"not zlib"]), "segment[0].payload")


def test_delta_golden_is_v1_3():
    skeleton, side, restored = golden("delta")
    assert decoder.restore_bytes(skeleton, side) == restored
    info = decoder.inspect(side)
    assert info["version"] == "1.3"
    assert [s["encoding"] for s in info["segments"]] == ["DELTA", "DELTA", "DELTA", "RAW"]
    assert [s["inner_encoding"] for s in info["segments"]][:3] == [
        "ZLIB",
        "ZLIB",
        "CLUSTERED_DENSE",
    ]
