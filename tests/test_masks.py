"""Tests for keras_dc.masks: magnitude-pruning masks and thresholds."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from keras_dc.masks import (
    global_threshold,
    mask_for_sparsity,
    mask_for_threshold,
    sparsity,
    std_threshold,
)

# --- mask_for_sparsity ---------------------------------------------------------


def test_sparsity_prunes_the_smallest_magnitudes():
    mask = mask_for_sparsity(np.array([0.5, -0.1, 0.3, 0.1]), 0.5)
    np.testing.assert_array_equal(mask, [True, False, True, False])
    assert mask.dtype == bool


def test_sparsity_ties_broken_by_flat_index():
    # Three entries tie at 0.1 and two must go: the two lowest flat indices.
    w = np.array([0.2, 0.1, -0.1, 0.1, 0.3])
    np.testing.assert_array_equal(mask_for_sparsity(w, 0.4), [True, False, False, True, True])
    w2 = np.array([[0.1, 0.5], [0.1, -0.1]])
    np.testing.assert_array_equal(mask_for_sparsity(w2, 0.5), [[False, True], [False, True]])


def test_sparsity_previous_pruned_count_toward_target():
    # Index 0 is large but already pruned: it stays pruned and counts, so only
    # one more entry (the smallest kept one) goes.
    w = np.array([0.9, 0.1, 0.2, 0.3])
    mask = mask_for_sparsity(w, 0.5, previous_mask=np.array([False, True, True, True]))
    np.testing.assert_array_equal(mask, [False, False, True, True])


def test_sparsity_more_already_pruned_than_target_keeps_previous():
    previous = np.array([False, False, False, True])
    mask = mask_for_sparsity(np.array([0.9, 0.1, 0.2, 0.3]), 0.25, previous_mask=previous)
    np.testing.assert_array_equal(mask, previous)
    assert mask is not previous


def test_sparsity_count_uses_python_round():
    w = np.arange(1.0, 11.0)
    assert np.count_nonzero(~mask_for_sparsity(w, 0.25)) == 2  # round(2.5) == 2
    assert np.count_nonzero(~mask_for_sparsity(w[:6], 0.25)) == 2  # round(1.5) == 2
    assert np.count_nonzero(~mask_for_sparsity(w, 0.26)) == 3  # round(2.6) == 3


def test_sparsity_zero_keeps_everything_even_zeros():
    np.testing.assert_array_equal(mask_for_sparsity(np.array([0.0, 1.0]), 0.0), [True, True])


def test_sparsity_accepts_a_0_1_float_mask():
    previous = np.array([1.0, 1.0, 0.0])
    mask = mask_for_sparsity(np.array([3.0, 1.0, 2.0]), 0.3, previous_mask=previous)
    np.testing.assert_array_equal(mask, [True, True, False])


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((np.ones(4), 1.0), ValueError, r"\[0, 1\)"),
        ((np.ones(4), -0.1), ValueError, r"\[0, 1\)"),
        ((np.ones(4), float("nan")), ValueError, r"\[0, 1\)"),
        ((np.ones(4), True), TypeError, "number"),
        ((np.ones(4), "0.5"), TypeError, "number"),
        ((np.array([1.0, np.nan]), 0.5), ValueError, "finite"),
        ((np.array(["a"]), 0.5), TypeError, "real numbers"),
        ((np.ones(4), 0.5, np.ones(3, bool)), ValueError, "shape"),
        ((np.ones(4), 0.5, np.array([0, 1, 2, 1])), ValueError, "0/1"),
        ((np.ones(4), 0.5, np.array(list("abcd"))), TypeError, "bool or 0/1"),
    ],
)
def test_sparsity_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        mask_for_sparsity(*args)


# --- mask_for_threshold --------------------------------------------------------


def test_threshold_keeps_strictly_larger_magnitudes():
    w = np.array([0.5, -0.1, 0.3, 0.1, -0.7])
    np.testing.assert_array_equal(mask_for_threshold(w, 0.1), [True, False, True, False, True])
    previous = np.array([True, True, False, True, True])
    np.testing.assert_array_equal(
        mask_for_threshold(w, 0.1, previous), [True, False, False, False, True]
    )


def test_negative_threshold_keeps_everything_previous_keeps():
    w = np.array([0.0, 1.0, -2.0])
    np.testing.assert_array_equal(mask_for_threshold(w, float("-inf")), [True, True, True])
    np.testing.assert_array_equal(mask_for_threshold(w, -1.0, [1, 0, 1]), [True, False, True])


@pytest.mark.parametrize(
    "threshold, error",
    [(float("nan"), ValueError), ("0.1", TypeError), (None, TypeError), (False, TypeError)],
)
def test_threshold_rejects_bad_threshold(threshold, error):
    with pytest.raises(error, match="threshold"):
        mask_for_threshold(np.ones(3), threshold)


# --- std_threshold ---------------------------------------------------------------


def test_std_threshold_worked_by_hand():
    assert std_threshold(np.array([1.0, -1.0, 1.0, -1.0]), 1.5) == 1.5
    # Zeros count: mean 0, variance (4 + 4) / 4 = 2.
    assert std_threshold(np.array([[2.0, 0.0], [0.0, -2.0]]), 1.0) == pytest.approx(math.sqrt(2))
    # No Bessel correction: std of [0, 2] is 1.
    assert std_threshold(np.array([0.0, 2.0]), 2.0) == pytest.approx(2.0)


def test_std_rule_prunes_erf_fraction_of_a_gaussian():
    # Han et al. (2015): s = 1.75 removes erf(1.75 / sqrt 2) ~ 92% of Gaussian weights.
    w = np.random.default_rng(0).normal(0.0, 0.05, size=1_000_000)
    mask = mask_for_threshold(w, std_threshold(w, 1.75))
    expected = math.erf(1.75 / math.sqrt(2))
    assert expected == pytest.approx(0.9199, abs=1e-4)
    assert 1 - mask.mean() == pytest.approx(expected, abs=0.003)


def test_std_rule_is_a_fixed_point_for_zero_mean_weights():
    w = np.random.default_rng(1).normal(0.0, 1.0, size=(300, 200))
    w -= w.mean()
    first = mask_for_threshold(w, std_threshold(w, 1.0))
    pruned = w * first
    again = mask_for_threshold(pruned, std_threshold(pruned, 1.0), first)
    np.testing.assert_array_equal(again, first)


@pytest.mark.parametrize(
    "weights, quality, error, match",
    [
        (np.ones(3), -0.5, ValueError, ">= 0"),
        (np.ones(3), float("inf"), ValueError, ">= 0"),
        (np.ones(3), "1", TypeError, "quality"),
        (np.ones(0), 1.0, ValueError, "empty"),
        (np.array([np.inf, 1.0]), 1.0, ValueError, "finite"),
    ],
)
def test_std_threshold_rejects_bad_input(weights, quality, error, match):
    with pytest.raises(error, match=match):
        std_threshold(weights, quality)


# --- global_threshold --------------------------------------------------------------


def test_global_threshold_is_the_mth_smallest_magnitude():
    arrays = [np.array([0.5, -0.1]), np.array([[0.3], [0.2]])]
    t = global_threshold(arrays, 0.5)  # N = 4, m = 2: sorted |w| = 0.1, 0.2, 0.3, 0.5
    assert t == 0.2
    pruned = sum(np.count_nonzero(~mask_for_threshold(a, t)) for a in arrays)
    assert pruned == 2


def test_global_threshold_counts_zeros_and_ties():
    arrays = [np.array([0.0, 0.0, 0.4]), np.array([0.1, 0.1, 0.1, 0.9, 0.8])]
    # N = 8, sorted |w| = 0, 0, 0.1, 0.1, 0.1, 0.4, 0.8, 0.9.
    assert global_threshold(arrays, 0.25) == 0.0  # m = 2: the two zeros
    t = global_threshold(arrays, 0.375)  # m = 3: 0.1, which three entries share
    assert t == 0.1
    pruned = sum(np.count_nonzero(~mask_for_threshold(a, t)) for a in arrays)
    assert pruned == 5  # at least m: every entry tied at the threshold goes


def test_global_threshold_sparsity_zero_prunes_nothing():
    arrays = [np.array([0.0, 1.0]), np.array([2.0])]
    t = global_threshold(arrays, 0.0)
    assert t == float("-inf")
    assert all(mask_for_threshold(a, t).all() for a in arrays)


@pytest.mark.parametrize(
    "weights, value, error, match",
    [
        (np.ones(3), 0.5, TypeError, "list or tuple"),
        ([], 0.5, ValueError, "no entry"),
        ([np.ones(0), np.ones((0, 2))], 0.5, ValueError, "no entry"),
        ([np.ones(2), np.array([np.nan])], 0.5, ValueError, r"weights\[1\]"),
        ([np.ones(2)], 1.0, ValueError, r"\[0, 1\)"),
    ],
)
def test_global_threshold_rejects_bad_input(weights, value, error, match):
    with pytest.raises(error, match=match):
        global_threshold(weights, value)


# --- sparsity ------------------------------------------------------------------------


def test_sparsity_counts_exact_zeros():
    assert sparsity(np.array([[0.0, 1.5], [-0.0, -2.0]])) == 0.5
    assert sparsity(np.array([1e-30, 1.0])) == 0.0
    assert sparsity(np.zeros(7, np.int32)) == 1.0


def test_sparsity_rejects_empty_and_non_numeric():
    with pytest.raises(ValueError, match="empty"):
        sparsity(np.ones(0))
    with pytest.raises(TypeError, match="real numbers"):
        sparsity(np.array(["x"]))


# --- properties ----------------------------------------------------------------------

# Few distinct magnitudes so that ties are common.
entries = st.one_of(
    st.sampled_from([0.0, -0.0, 0.1, -0.1, 0.5, -0.5, 2.0]),
    st.floats(min_value=-3, max_value=3, allow_nan=False),
)
weights_arrays = hnp.arrays(
    np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=entries
)
fractions = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


def reference_sparsity_mask(w, s, previous):
    """Independent reference: sort the kept entries by (|w|, flat index)."""
    flat, prev = w.reshape(-1), previous.reshape(-1)
    target = round(s * flat.size)
    already = int(np.sum(~prev))
    keep = prev.copy()
    if already < target:
        order = sorted(np.flatnonzero(prev), key=lambda i: (abs(flat[i]), i))
        keep[order[: target - already]] = False
    return keep.reshape(w.shape)


@settings(max_examples=120, deadline=None)
@given(weights_arrays, fractions, st.data())
def test_sparsity_mask_matches_reference(w, s, data):
    previous = data.draw(hnp.arrays(bool, w.shape))
    mask = mask_for_sparsity(w, s, previous)
    assert mask.dtype == bool and mask.shape == w.shape
    assert not np.any(mask & ~previous), "a previously pruned entry came back"
    assert np.count_nonzero(~mask) == max(round(s * w.size), np.count_nonzero(~previous))
    np.testing.assert_array_equal(mask, reference_sparsity_mask(w, s, previous))


@settings(max_examples=100, deadline=None)
@given(weights_arrays, fractions)
def test_sparsity_mask_without_previous_prunes_exact_count(w, s):
    mask = mask_for_sparsity(w, s)
    assert np.count_nonzero(~mask) == round(s * w.size)
    if mask.any() and (~mask).any():
        assert np.abs(w[~mask]).max() <= np.abs(w[mask]).min()


@settings(max_examples=100, deadline=None)
@given(weights_arrays, st.floats(min_value=-1, max_value=3), st.data())
def test_threshold_mask_properties(w, t, data):
    previous = data.draw(hnp.arrays(bool, w.shape))
    mask = mask_for_threshold(w, t, previous)
    np.testing.assert_array_equal(mask, (np.abs(w) > t) & previous)


@settings(max_examples=100, deadline=None)
@given(st.lists(weights_arrays, min_size=1, max_size=4), fractions)
def test_global_threshold_is_an_order_statistic(arrays, s):
    t = global_threshold(arrays, s)
    magnitudes = np.concatenate([np.abs(a).ravel() for a in arrays])
    m = round(s * magnitudes.size)
    assert np.count_nonzero(magnitudes <= t) >= m
    assert np.count_nonzero(magnitudes < t) <= max(m - 1, 0)
    pruned = sum(np.count_nonzero(~mask_for_threshold(a, t)) for a in arrays)
    assert pruned == np.count_nonzero(magnitudes <= t)
