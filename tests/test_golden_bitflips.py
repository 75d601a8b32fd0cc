"""Every single bit flip of every golden bundle is rejected (tests/golden/README.md).

The README says every decoder MUST reject every truncation and every bit flip of
``NAME.skeleton`` and ``NAME.dcw``. The Java restorer checks all of them
(GoldenTest.everySingleBitFlipIsRejected); this is the same check for the Python
decoder: each flip, one at a time, must raise the format error and nothing
else — a flip that restores (to any bytes) or raises another exception fails.
"""

import pathlib

import pytest

from converters import FormatError
from converters import decoder as decoder_lib  # restore on bytes (the public one reads a directory)

GOLDEN = pathlib.Path(__file__).parent / "golden"
NAMES = sorted(p.name[: -len(".dcw")] for p in GOLDEN.glob("*.dcw"))


def _flip_every_bit(data, restore_with):
    """Calls ``restore_with(flipped)`` for each single bit flip of ``data``.

    Returns:
        ``(rejected, accepted)``: the number of flips that raised `FormatError`
        and the list of bit positions whose flip restored.
    """
    flipped = bytearray(data)
    rejected, accepted = 0, []
    for bit in range(8 * len(flipped)):
        flipped[bit >> 3] ^= 1 << (bit & 7)
        try:
            restore_with(bytes(flipped))
        except FormatError:
            rejected += 1
        else:
            accepted.append(bit)
        finally:
            flipped[bit >> 3] ^= 1 << (bit & 7)
    return rejected, accepted


def test_goldens_are_all_here():
    # The README's table: twenty-one cases, `hand`, the v1.1 ones, `int8`, v1.2's
    # `grouped`, v1.3's `delta`, v1.4's `packed`, v1.5's `zdict` and `zdict_segments` and
    # v1.6's `masked` and `masked_segments`.
    assert len(NAMES) == 21, NAMES
    new = {
        "hand",
        "sparse_raw",
        "compact_skeleton",
        "compact_empty",
        "int8",
        "grouped",
        "delta",
        "packed",
        "zdict",
        "zdict_segments",
        "masked",
        "masked_segments",
    }
    assert new <= set(NAMES), NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_single_bit_flip_of_the_sidecar_is_rejected(name):
    skeleton = (GOLDEN / f"{name}.skeleton").read_bytes()
    side = (GOLDEN / f"{name}.dcw").read_bytes()
    assert decoder_lib.restore_bytes(skeleton, side) == (GOLDEN / f"{name}.restored").read_bytes()
    rejected, accepted = _flip_every_bit(
        side, lambda flipped: decoder_lib.restore_bytes(skeleton, flipped)
    )
    assert accepted == [], f"{name}.dcw: flipping bits {accepted[:10]} still restored"
    assert rejected == 8 * len(side)


@pytest.mark.parametrize("name", NAMES)
def test_every_single_bit_flip_of_the_skeleton_is_rejected(name):
    skeleton = (GOLDEN / f"{name}.skeleton").read_bytes()
    side = (GOLDEN / f"{name}.dcw").read_bytes()
    rejected, accepted = _flip_every_bit(
        skeleton, lambda flipped: decoder_lib.restore_bytes(flipped, side)
    )
    assert accepted == [], f"{name}.skeleton: flipping bits {accepted[:10]} still restored"
    assert rejected == 8 * len(skeleton)
    # An empty skeleton (compact_empty) has no bit to flip: a byte added must be rejected.
    for grown in (skeleton + b"\x00", b"\x00" + skeleton):
        with pytest.raises(FormatError):
            decoder_lib.restore_bytes(grown, side)
