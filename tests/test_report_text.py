"""Wording of the report's summary line."""

from converters.report import _ratio_words


def test_a_bundle_that_did_not_shrink_is_called_larger():
    assert (
        _ratio_words(3_126, 3_004) == "1.04x larger (nothing to compress: prune or cluster first)"
    )
    assert _ratio_words(24_463, 1_068_340) == "43.7x smaller"
    assert _ratio_words(1_000, 1_000) == "1.0x smaller"
