"""Tests for keras_dc.kmeans: 1-D k-means and nearest-centroid assignment."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_dc import kmeans
from keras_dc.kmeans import assign_nearest, kmeans_1d

INITS = ("linear", "density", "random", "kmeans++", "linear_gap")


def inertia(values, centroids, assignments):
    values = np.asarray(values, dtype=np.float64)
    return math.fsum(((values - centroids[assignments]) ** 2).tolist())


def exact_nearest(values, centroids):
    """Brute force in exact rational arithmetic, ties to the lower index."""
    cs = [Fraction(float(c)) for c in centroids]
    out = []
    for v in values:
        x = Fraction(float(v))
        distances = [abs(x - c) for c in cs]
        out.append(distances.index(min(distances)))
    return np.array(out)


# --- hand-worked cases -------------------------------------------------------


@pytest.mark.parametrize("init", INITS)
def test_obvious_clusters_found_by_every_init(init):
    rng = np.random.default_rng(0)
    centres = np.array([-1.0, 0.5, 3.0])
    labels = np.repeat([0, 1, 2], 200)
    values = centres[labels] + rng.uniform(-0.05, 0.05, labels.size)
    perm = rng.permutation(labels.size)
    values, labels = values[perm], labels[perm]

    centroids, assignments = kmeans_1d(values, 3, init=init, seed=1)

    expected = [values[labels == j].mean() for j in range(3)]
    np.testing.assert_allclose(centroids, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(assignments, labels)
    assert centroids.dtype == np.float64 and assignments.dtype == np.int32


def test_two_groups_worked_by_hand():
    # Linear init [0, 12] splits at 6: {0, 1, 2} -> 1, {10, 11, 12} -> 11.
    centroids, assignments = kmeans_1d(np.array([12.0, 0, 11, 1, 10, 2]), 2)
    np.testing.assert_array_equal(centroids, [1.0, 11.0])
    np.testing.assert_array_equal(assignments, [1, 0, 1, 0, 1, 0])


def test_lloyd_moves_a_centroid_worked_by_hand():
    # Linear init [0, 5, 10]: splits 2.5 and 7.5 -> {0, 1, 2}, {3, 4}, {10}
    # -> means 1, 3.5, 10 -> splits 2.25, 6.75: same partition, converged.
    values = np.array([0.0, 1, 2, 3, 4, 10])
    centroids, assignments = kmeans_1d(values, 3)
    np.testing.assert_array_equal(centroids, [1.0, 3.5, 10.0])
    np.testing.assert_array_equal(assignments, [0, 0, 0, 1, 1, 2])


def test_empty_cluster_keeps_its_previous_centroid():
    # Linear init [0, 50, 100]: nothing lies within 25 of 50, so that cluster
    # stays empty and keeps 50; the others move to the means 1 and 99.
    values = np.array([0.0, 1, 2, 98, 99, 100])
    centroids, assignments = kmeans_1d(values, 3)
    np.testing.assert_array_equal(centroids, [1.0, 50.0, 99.0])
    np.testing.assert_array_equal(assignments, [0, 0, 0, 2, 2, 2])


def test_density_init_takes_the_quantiles():
    # 10 values, 2 clusters: quantiles 1/4 and 3/4 -> sorted positions 2 and 7.
    values = np.arange(10.0)[::-1] ** 2
    centroids, _ = kmeans_1d(values, 2, init="density", max_iter=0)
    np.testing.assert_array_equal(centroids, [4.0, 49.0])


def test_linear_init_is_evenly_spaced():
    values = np.array([-2.0, -1.5, 0.0, 0.1, 0.2, 2.0])
    centroids, assignments = kmeans_1d(values, 5, init="linear", max_iter=0)
    np.testing.assert_allclose(centroids, [-2.0, -1.0, 0.0, 1.0, 2.0], atol=1e-15)
    # -1.5 is equidistant from -2 and -1: the tie goes to the lower index.
    np.testing.assert_array_equal(assignments, [0, 0, 2, 2, 2, 4])


def test_symmetric_gaussian_two_clusters_at_conditional_means():
    # For N(0, 1) and k = 2 the optimum is +-E[X | X > 0] = +-sqrt(2 / pi).
    values = np.random.default_rng(3).standard_normal(200_000)
    centroids, _ = kmeans_1d(values, 2)
    half_normal_mean = math.sqrt(2 / math.pi)
    np.testing.assert_allclose(centroids, [-half_normal_mean, half_normal_mean], atol=0.01)


def test_fewer_distinct_values_than_clusters_returns_them_exactly():
    values = np.array([0.3, -0.7, 0.3, 0.3, 1e-30, -0.7], dtype=np.float32)
    centroids, assignments = kmeans_1d(values, 8)
    np.testing.assert_array_equal(centroids, np.array([-0.7, 1e-30, 0.3], dtype=np.float32))
    np.testing.assert_array_equal(assignments, [2, 0, 2, 2, 1, 0])


def test_empty_input_gives_empty_arrays():
    centroids, assignments = kmeans_1d(np.array([], dtype=np.float32), 4)
    assert centroids.shape == (0,) and centroids.dtype == np.float64
    assert assignments.shape == (0,) and assignments.dtype == np.int32


@pytest.mark.parametrize("init", ["random", "kmeans++"])
def test_seeded_inits_are_deterministic(init):
    values = np.random.default_rng(5).standard_normal(5000)
    first = kmeans_1d(values, 16, init=init, seed=7)
    second = kmeans_1d(values, 16, init=init, seed=7)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


@pytest.mark.parametrize("init", INITS)
def test_many_values_assigned_to_nearest(init):
    # Enough values for the grid-accelerated assignment to matter.
    values = (np.random.default_rng(11).standard_normal(100_000) * 0.05).astype(np.float32)
    centroids, assignments = kmeans_1d(values, 32, init=init)
    brute = np.argmin(np.abs(values.astype(np.float64)[:, None] - centroids[None, :]), axis=1)
    np.testing.assert_array_equal(assignments, brute)
    assert 1 <= centroids.size <= 32


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(values=[[1.0, 2.0]], num_clusters=2), ValueError, "1-D"),
        (dict(values=[1.0, np.nan], num_clusters=2), ValueError, "finite"),
        (dict(values=[1.0, np.inf], num_clusters=2), ValueError, "finite"),
        (dict(values=[1.0, 2.0, 1e307], num_clusters=2), ValueError, "too large"),
        (dict(values=[True, False], num_clusters=2), TypeError, "real numbers"),
        (dict(values=[1j, 2j], num_clusters=2), TypeError, "real numbers"),
        (dict(values=[1.0], num_clusters=0), ValueError, "num_clusters must be >= 1"),
        (dict(values=[1.0], num_clusters=2.0), TypeError, "num_clusters must be an int"),
        (dict(values=[1.0], num_clusters=True), TypeError, "num_clusters must be an int"),
        (dict(values=[1.0], num_clusters=2, init="uniform"), ValueError, "init must be one of"),
        (dict(values=[1.0], num_clusters=2, seed=-1), ValueError, "seed"),
        (dict(values=[1.0], num_clusters=2, max_iter=-1), ValueError, "max_iter"),
        (dict(values=[1.0], num_clusters=2, tol=-1e-3), ValueError, "tol"),
    ],
)
def test_kmeans_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        kmeans_1d(**kwargs)


def test_assign_nearest_ties_go_to_the_lower_index():
    centroids = np.array([0.0, 1.0, 3.0])
    values = np.array([[0.5, 2.0, -5.0], [10.0, 1.9, 2.1]])
    np.testing.assert_array_equal(assign_nearest(values, centroids), [[0, 1, 0], [2, 1, 2]])


def test_assign_nearest_uses_the_exact_midpoint():
    # fl((a + b) / 2) == x although the exact midpoint lies below x, so x is
    # nearer to b: a rounded midpoint would pick a.
    a, b, x = 0.4858353588317891, 0.8894878343490003, 0.6876615965903947
    assert (a + b) / 2 == x
    assert abs(Fraction(x) - Fraction(b)) < abs(Fraction(x) - Fraction(a))
    assert assign_nearest(np.array([x]), np.array([a, b]))[0] == 1


def test_assign_nearest_repeated_centroids_map_to_first():
    centroids = np.array([0.0, 1.0, 1.0, 2.0])
    np.testing.assert_array_equal(assign_nearest([1.0, 1.4, 1.5, 1.6], centroids), [1, 1, 1, 3])


def test_assign_nearest_empty_values_keep_shape():
    out = assign_nearest(np.zeros((0, 3)), np.array([1.0]))
    assert out.shape == (0, 3) and out.dtype == np.int32


@pytest.mark.parametrize(
    "values, centroids, error, match",
    [
        ([1.0], [1.0, 0.0], ValueError, "sorted ascending"),
        ([1.0], [], ValueError, "empty"),
        ([1.0], [[0.0, 1.0]], ValueError, "1-D"),
        ([1.0], [0.0, np.nan], ValueError, "finite"),
        ([np.nan], [0.0, 1.0], ValueError, "finite"),
        ([1.0], [0.0, 1e308], ValueError, "2\\*\\*1021"),
        (["a"], [0.0], TypeError, "real numbers"),
    ],
)
def test_assign_nearest_rejects_bad_input(values, centroids, error, match):
    with pytest.raises(error, match=match):
        assign_nearest(values, centroids)


# --- properties --------------------------------------------------------------

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
value_lists = st.lists(
    st.one_of(
        finite,
        st.floats(min_value=-2, max_value=2, width=32),
        st.sampled_from([-1.0, -0.5, 0.25, 1.0, 3.0]),  # repeats and ties
    ),
    min_size=1,
    max_size=60,
)
clusters = st.integers(min_value=1, max_value=8)
inits = st.sampled_from(INITS)
seeds = st.integers(min_value=0, max_value=3)


def slack(values):
    # Rounding allowance for inertia comparisons.
    return 1e-12 * len(values) * max(abs(v) for v in values) ** 2


@settings(max_examples=150, deadline=None)
@given(value_lists, clusters, inits, seeds)
def test_kmeans_properties(values, k, init, seed):
    values = np.array(values)
    centroids, assignments = kmeans_1d(values, k, init=init, seed=seed)

    distinct = np.unique(values)
    assert 1 <= centroids.size <= min(k, distinct.size)
    assert np.all(np.diff(centroids) > 0)
    assert assignments.dtype == np.int32 and assignments.shape == values.shape
    np.testing.assert_array_equal(assignments, exact_nearest(values, centroids))
    np.testing.assert_array_equal(assignments, assign_nearest(values, centroids))
    if distinct.size <= k:
        np.testing.assert_array_equal(centroids, distinct)
    assert centroids.min() >= values.min() and centroids.max() <= values.max()


@settings(max_examples=100, deadline=None)
@given(value_lists, clusters, inits, seeds, st.integers(min_value=0, max_value=6))
def test_lloyd_never_increases_inertia(values, k, init, seed, iterations):
    values = np.array(values)
    before = inertia(values, *kmeans_1d(values, k, init=init, seed=seed, max_iter=iterations))
    after = inertia(values, *kmeans_1d(values, k, init=init, seed=seed, max_iter=iterations + 1))
    final = inertia(values, *kmeans_1d(values, k, init=init, seed=seed))
    start = inertia(values, *kmeans_1d(values, k, init=init, seed=seed, max_iter=0))
    assert after <= before * (1 + 1e-12) + slack(values)
    assert final <= start * (1 + 1e-12) + slack(values)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(finite, min_size=1, max_size=8, unique=True),
    st.lists(finite, min_size=0, max_size=30),
    st.data(),
)
def test_assign_nearest_matches_exact_brute_force(centroids, values, data):
    centroids = np.sort(np.array(centroids))
    # Add values sitting on (rounded) midpoints, where ties and rounding bite.
    pairs = data.draw(st.lists(st.integers(0, max(centroids.size - 2, 0)), max_size=5))
    mids = [(centroids[i] + centroids[min(i + 1, centroids.size - 1)]) / 2 for i in pairs]
    values = np.array(values + mids + [np.nextafter(m, np.inf) for m in mids], dtype=np.float64)
    out = assign_nearest(values, centroids)
    assert out.dtype == np.int32 and out.shape == values.shape
    np.testing.assert_array_equal(out, exact_nearest(values, centroids))


def test_module_lists_its_inits():
    assert kmeans.INITS == INITS
