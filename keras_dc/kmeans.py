"""One-dimensional k-means for weight sharing (Deep Compression, stage 2).

Han et al. (ICLR 2016, arXiv 1510.00149) share weights within a layer by
clustering its surviving (non-zero) weights with 1-D k-means and replacing every
weight by its cluster centroid. This module holds that math in plain NumPy:

* `kmeans_1d` runs Lloyd's algorithm on a 1-D array of values.
* `assign_nearest` maps values to the nearest of a sorted set of centroids.
* `cluster_weights` clusters a weight tensor's non-zero values, zeros apart
  (or, for biases, all its values).

Two options go past the paper. ``init="linear_gap"`` spreads the linear grid
over the occupied ranges only, so after magnitude pruning no initial centroid
falls in the empty gap (-t, t). ``rate_weight > 0`` turns k-means into
entropy-constrained scalar quantization (Chou, Lookabaugh, Gray 1989): every
value pays the code length of its cluster's index on top of the squared
error, which favours large clusters and lowers the entropy of the indices (so
their Huffman code is shorter) at a small cost in distortion.

In one dimension the clusters of a k-means partition are contiguous intervals
of the sorted values, split at the midpoints between neighbouring centroids.
`kmeans_1d` therefore sorts the values once and then, per iteration, finds the
k - 1 split positions with a binary search and the cluster sums from prefix
sums: O(n log n) once, then O(k log n) per iteration, with no Python loop over
values.

"Nearest" is exact: a value x goes to centroid j when |x - c_j| <= |x - c_i|
for every i in real arithmetic, ties to the lower index. Both functions use the
same rule, so `kmeans_1d`'s assignments always equal
`assign_nearest(values, centroids)` (for ``rate_weight = 0``, the default).
"""

import bisect

import numpy as np

from keras_dc._validate import as_choice, as_float, as_int, as_real_array

__all__ = ["kmeans_1d", "assign_nearest", "cluster_weights"]

INITS = ("linear", "density", "random", "kmeans++", "linear_gap")

# Largest magnitude for which the sum of two centroids, and k-means' float64
# sums of n values, cannot overflow.
_MAX_MAGNITUDE = 2.0**1021
# Values processed per chunk when assigning (bounds temporary memory).
_CHUNK = 1 << 20
# Block length of the two-level prefix sums (keeps their rounding error near
# the float64 resolution of the running total instead of growing with n).
_PREFIX_BLOCK = 4096
# Block length of the k-means++ sampling tree.
_SAMPLE_BLOCK = 1 << 14


def kmeans_1d(values, num_clusters, init="linear", seed=0, max_iter=50, tol=1e-7, rate_weight=0.0):
    """Clusters 1-D values with k-means (Lloyd's algorithm), optionally entropy-constrained.

    Seeks a local minimum of the inertia sum_i (x_i - c_{a_i})^2 over
    centroids c and assignments a. Each iteration assigns every value to its nearest centroid
    (a contiguous run of the sorted values, split at the midpoints
    (c_j + c_{j+1}) / 2) and moves every centroid to the mean of its run,
    clipped to the run's [min, max] against rounding. A cluster left empty
    keeps its previous centroid (it stays in the result with no member), so
    the centroids stay sorted and an iteration never increases the inertia.

    Iteration stops after `max_iter` updates, when an update leaves the
    partition unchanged (an exact fixed point), or when no centroid moved more
    than `tol * (max(values) - min(values))`.

    Initialisations (Han et al. 2016, Sec. 3.2, found "linear" best):

    * ``"linear"``: ``num_clusters`` points evenly spaced on [min, max].
    * ``"density"``: the values at the quantiles (2i + 1) / (2 num_clusters),
      i = 0 .. num_clusters - 1 (evenly spaced in the CDF).
    * ``"random"`` (Forgy): ``num_clusters`` distinct values drawn uniformly
      without replacement with `seed`.
    * ``"kmeans++"``: Arthur & Vassilvitskii 2007: the first centroid is a
      value drawn uniformly, each next one a value drawn with probability
      proportional to its squared distance to the nearest chosen centroid.
    * ``"linear_gap"`` (not in the paper): "linear" over the occupied ranges
      only. The negative values span [a, b] (b < 0) and the others [c, d]
      (c >= 0); after magnitude pruning (-t, t) between them is empty, and
      "linear" would waste the centroids it puts there. With values on both
      sides and ``num_clusters = k >= 2``, the negative part gets
      k_neg = min(max(floor(k (b - a) / ((b - a) + (d - c)) + 1/2), 1), k - 1)
      centroids (k_neg = floor(k / 2 + 1/2) when both spans are 0) and the
      other part k - k_neg; a part with m >= 2 centroids gets m points evenly
      spaced on its range, ends included, a part with 1 its range's midpoint.
      Values on one side only (or k = 1) give exactly "linear".

    Entropy-constrained clustering (``rate_weight = λ > 0``; Chou, Lookabaugh,
    Gray, "Entropy-constrained vector quantization", IEEE Trans. ASSP 1989, in
    1-D): the assignment step puts each value x in the cluster j minimising

        (x - c_j)^2 + λ σ^2 (-log2 p_j),

    where σ^2 is the variance of the values (so λ is scale-free) and p_j the
    fraction of the values in cluster j after the previous step (the first
    step uses equal p_j, i.e. nearest centroid). The update step moves each
    centroid to the mean of its members, as above. The costs are parabolas of
    x with the same curvature, so each cluster again takes a contiguous run of
    the sorted values; the boundary between neighbouring clusters i < j is
    the midpoint shifted towards the less probable one,
    (c_i + c_j) / 2 + λ σ^2 (log2 p_i - log2 p_j) / (2 (c_j - c_i)), and a
    cluster that no value prefers loses every member. A cluster without
    members would cost infinitely much, so it is dropped for good: the result
    may hold fewer centroids than "linear" would give, and those left all
    have members. Each step lowers (or keeps) the average cost
    distortion + λ σ^2 · entropy. Iteration stops as for plain k-means (an
    unchanged partition, `tol`, or `max_iter`); the returned assignments are
    then computed once more from the final centroids and probabilities, so
    every value is assigned by the rule above. ``rate_weight = 0`` runs plain
    k-means, bit for bit.

    Duplicate initial centroids (possible for "linear" on a very narrow range
    and for "density" on repeated values) are merged, so the result may hold
    fewer than ``num_clusters`` centroids. When the values take at most
    ``num_clusters`` distinct values, the result is exactly those distinct
    values (inertia 0) and no iteration runs.

    Args:
        values: 1-D array of finite real numbers (for weight sharing: only the
            non-zero weights). Empty input gives empty results.
        num_clusters: Maximum number of clusters, an int >= 1.
        init: ``"linear"``, ``"density"``, ``"random"``, ``"kmeans++"`` or
            ``"linear_gap"``. Defaults to `"linear"`.
        seed: Seed (int >= 0) for the "random" and "kmeans++" draws; the
            result is deterministic for a given seed. Defaults to `0`.
        max_iter: Maximum number of centroid updates, an int >= 0 (0 returns
            the initial centroids). Defaults to `50`.
        tol: Relative shift tolerance (see above), a float >= 0. Defaults to
            `1e-7`.
        rate_weight: λ >= 0, the weight of the index code length against the
            squared error (see above). Against σ^2, the squared error of 16–32
            clusters is small, so useful values are small too: about
            0.0005–0.005 (larger ones merge clusters away). Defaults to `0.0`
            (plain k-means).

    Returns:
        ``(centroids, assignments)``: ``centroids`` a float64 array of at most
        ``num_clusters`` strictly increasing values; ``assignments`` an int32
        array with the shape of `values`, the index of each value's nearest
        centroid (ties to the lower index), or for ``rate_weight > 0`` of its
        cheapest centroid (ties to the lower index).

    Raises:
        TypeError: `values` is not real-valued, or an argument has the wrong
            type.
        ValueError: `values` is not 1-D or holds NaN, infinity or magnitudes
            too large to sum in float64; an argument is out of range.

    Example:
        >>> values = np.array([0.9, 1.0, 1.1, 4.9, 5.0, 5.1])
        >>> centroids, assignments = kmeans_1d(values, 2)
        >>> centroids
        array([1., 5.])
        >>> assignments
        array([0, 0, 0, 1, 1, 1], dtype=int32)

        Entropy-constrained, on values whose large cluster is worth favouring:

        >>> values = np.concatenate([np.linspace(-1, 1, 90), np.linspace(2, 3, 10)])
        >>> len(kmeans_1d(values, 4)[0]), len(kmeans_1d(values, 4, rate_weight=0.5)[0])
        (4, 2)
    """
    x = as_real_array(values, "values")
    if x.ndim != 1:
        raise ValueError(
            f"values must be a 1-D array, received shape {x.shape}. "
            "Pass the weights to cluster flattened, e.g. weights[weights != 0]."
        )
    k = as_int(num_clusters, "num_clusters", minimum=1)
    as_choice(init, "init", INITS)
    seed = as_int(seed, "seed", minimum=0)
    max_iter = as_int(max_iter, "max_iter", minimum=0)
    tol = as_float(tol, "tol", minimum=0.0)
    rate_weight = as_float(
        rate_weight, "rate_weight", minimum=0.0, hint=" Use 0 for plain k-means, e.g. 0.05."
    )

    n = x.size
    if n == 0:
        return np.empty(0, np.float64), np.empty(0, np.int32)

    # NaN sorts last and infinities to the ends, so the ends tell all.
    xs = np.sort(x).astype(np.float64, copy=False)
    if not (np.isfinite(xs[0]) and np.isfinite(xs[-1])):
        raise ValueError(
            "values must be finite, but they contain NaN or infinity "
            f"(sorted ends: {xs[0]!r}, {xs[-1]!r})."
        )
    magnitude = max(abs(xs[0]), abs(xs[-1]))
    if magnitude * n > _MAX_MAGNITUDE:
        raise ValueError(
            f"values are too large to sum in float64: max |value| = {magnitude!r} "
            f"over {n} values exceeds 2**1021 in total. Rescale them first."
        )

    is_first = np.empty(n, dtype=bool)
    is_first[0] = True
    np.not_equal(xs[1:], xs[:-1], out=is_first[1:])
    if np.count_nonzero(is_first) <= k:
        centroids = xs[is_first]
    else:
        rng = np.random.default_rng(seed)
        if init == "linear":
            start = np.linspace(xs[0], xs[-1], k)
        elif init == "linear_gap":
            start = _linear_gap(xs, k)
        elif init == "density":
            start = xs[((2 * np.arange(k, dtype=np.int64) + 1) * n) // (2 * k)]
        elif init == "random":
            distinct = xs[is_first]
            start = distinct[rng.choice(distinct.size, size=k, replace=False)]
        else:
            start = _kmeanspp(xs, k, rng)
        del is_first
        if rate_weight > 0:
            return _entropy_constrained(x, xs, np.unique(start), rate_weight, max_iter, tol)
        centroids = _lloyd(xs, np.unique(start), max_iter, tol)
    del xs
    return centroids, _assign(x, centroids)


def assign_nearest(values, centroids):
    """Returns the index of the nearest centroid for every value.

    a(x) = argmin_j |x - c_j|, computed exactly (not from rounded distances),
    ties to the lower index. For strictly increasing centroids that is the
    number of midpoints m_j = (c_j + c_{j+1}) / 2 with m_j < x. Repeated
    centroids map to their first occurrence.

    Args:
        values: Array of finite real numbers, any shape.
        centroids: 1-D array of finite centroids sorted ascending, with
            magnitudes below 2**1021. May be empty only if `values` is.

    Returns:
        An int32 array with the shape of `values`.

    Raises:
        TypeError: `values` or `centroids` is not real-valued.
        ValueError: `centroids` is not 1-D, empty, unsorted, non-finite or too
            large; `values` holds NaN or infinity.

    Example:
        >>> assign_nearest(np.array([-1.0, 0.5, 0.6, 3.0]), np.array([0.0, 1.0]))
        array([0, 0, 1, 1], dtype=int32)
    """
    x = as_real_array(values, "values")
    c = as_real_array(centroids, "centroids").astype(np.float64, copy=False)
    if c.ndim != 1:
        raise ValueError(f"centroids must be a 1-D array, received shape {c.shape}.")
    if x.size == 0:
        return np.zeros(x.shape, np.int32)
    if c.size == 0:
        raise ValueError(f"centroids is empty; cannot assign {x.size} values to no centroid.")
    if not np.all(np.isfinite(c)):
        raise ValueError(f"centroids must be finite, received {c!r}.")
    if np.any(c[1:] < c[:-1]):
        raise ValueError(
            f"centroids must be sorted ascending (as kmeans_1d returns them), received {c!r}."
        )
    if np.max(np.abs(c)) > _MAX_MAGNITUDE:
        raise ValueError(f"centroids must have magnitudes below 2**1021, received {c!r}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite, but they contain NaN or infinity.")
    unique, first = np.unique(c, return_index=True)
    indices = _assign(x, unique)
    if unique.size != c.size:
        indices = first.astype(np.int32)[indices]
    return indices


def cluster_weights(weights, bits, init="linear", seed=0, rate_weight=0.0, zeros_apart=True):
    """Clusters a weight tensor's non-zero values; zeros get index 0.

    When the values to cluster already take at most ``2**bits`` distinct values
    (a clustered checkpoint), those values are the centroids and no k-means runs.

    With ``zeros_apart=False`` (biases: zero is an ordinary value there) every
    value, zeros included, is clustered into at most ``2**bits`` centroids
    numbered from 1, and index 0 stays an empty slot holding zero. The layout
    is the same either way, so one centroid update serves both (it never moves
    centroid 0, which here has no member).

    Args:
        weights: NumPy array.
        bits: Index bits, so at most ``2**bits`` centroids besides the zero.
        init: k-means initialisation (see `keras_dc.kmeans.kmeans_1d`).
        seed: Seed for random initialisations.
        rate_weight: λ >= 0 for entropy-constrained clustering (see
            `keras_dc.kmeans.kmeans_1d`); 0 is plain k-means. Defaults to `0.0`.
        zeros_apart: Keep zeros out of k-means, in cluster 0 (pruned weights).
            Defaults to `True`.

    Returns:
        ``(centroids, indices)``: ``centroids[0] == 0`` then the sorted
        centroids of the clustered values (non-zero ones when ``zeros_apart``);
        ``indices`` has the weights' shape, ``centroids[indices]`` is the
        clustered tensor.

    Example:
        >>> c, i = cluster_weights(np.array([0., 1., 1.1, 5.]), bits=1)
        >>> c[i]
        array([0.  , 1.05, 1.05, 5.  ])
        >>> c, i = cluster_weights(np.array([0., 0.1, 1., 1.1]), bits=1, zeros_apart=False)
        >>> c, c[i]
        (array([0.  , 0.05, 1.05]), array([0.05, 0.05, 1.05, 1.05]))
    """
    flat = np.asarray(weights, dtype=np.float64).ravel()
    members = flat != 0 if zeros_apart else np.ones(flat.shape, dtype=bool)
    values = flat[members]
    k = 2 ** int(bits)
    distinct = np.unique(values)
    if distinct.size <= k:
        centers = distinct
        assignment = np.searchsorted(distinct, values).astype(np.int64)
    else:
        centers, assignment = kmeans_1d(values, k, init=init, seed=seed, rate_weight=rate_weight)
    centroids = np.concatenate([[0.0], np.asarray(centers, dtype=np.float64)])
    indices = np.zeros(flat.shape, dtype=np.int32)
    indices[members] = np.asarray(assignment, dtype=np.int32) + 1
    return centroids, indices.reshape(np.shape(weights))


# --- internals ---------------------------------------------------------------


def _split_points(centroids):
    """Largest float t_j <= (c_j + c_{j+1}) / 2 for strictly increasing c.

    x belongs to a cluster <= j exactly when x <= t_j. The midpoint is exact:
    s + e = c_j + c_{j+1} (TwoSum), and s / 2 is exact unless s is subnormal.
    """
    a, b = centroids[:-1], centroids[1:]
    s = a + b
    bv = s - a
    e = (a - (s - bv)) + (b - bv)
    h = s * 0.5
    below = np.nextafter(h, -np.inf)
    halved_exactly = h * 2.0 == s
    # Exact half: the midpoint is h + e/2, below h only when e < 0. Inexact
    # half (subnormal s, where e == 0): h is s/2 rounded up or down.
    keep_h = np.where(halved_exactly, e >= 0, h * 2.0 < s)
    return np.where(keep_h, h, below)


def _assign(x, centroids):
    """Nearest-centroid indices (int32, shape of x) for strictly increasing centroids.

    Index = number of split points t_j with t_j < x. A binary search per value
    is slow on unsorted input (mispredicted branches), so a uniform grid over
    [t_0, t_last] proposes an index (the splits below the value's grid cell,
    plus one if the value passes the next split); every proposal is then
    checked exactly, t_{i-1} < x <= t_i, and the few that fail (cells holding
    several splits) fall back to the binary search.
    """
    flat = x.reshape(-1)
    out = np.zeros(flat.size, np.int32)
    if centroids.size == 1:
        return out.reshape(x.shape)
    splits = _split_points(centroids)
    m = splits.size
    if m == 1:
        np.greater(flat, splits[0], out=out, casting="unsafe")
        return out.reshape(x.shape)
    bins = 16 * m
    lo, hi = splits[0], splits[-1]
    with np.errstate(over="ignore", divide="ignore"):
        scale = bins / (hi - lo)
    if not np.isfinite(scale):  # splits within a few subnormals of each other
        for start in range(0, flat.size, _CHUNK):
            chunk = flat[start : start + _CHUNK]
            out[start : start + chunk.size] = np.searchsorted(splits, chunk, side="left")
        return out.reshape(x.shape)
    # Cell g + 1 covers [lo + g / scale, lo + (g + 1) / scale); cell 0 is below lo.
    edges = lo + np.arange(bins) / scale
    base = np.empty(bins + 2, np.int64)
    base[0] = 0
    base[1:-1] = np.minimum(np.searchsorted(splits, edges, side="left"), m - 1)
    base[-1] = m - 1
    padded = np.concatenate([[-np.inf], splits, [np.inf]])
    for start in range(0, flat.size, _CHUNK):
        chunk = flat[start : start + _CHUNK].astype(np.float64, copy=False)
        cell = chunk - lo
        cell *= scale
        cell += 1.0
        np.clip(cell, 0.0, bins + 1.0, out=cell)
        index = base[cell.astype(np.int64)]
        index += chunk > splits[index]
        ok = padded[index] < chunk
        ok &= chunk <= padded[index + 1]
        bad = np.flatnonzero(~ok)
        if bad.size:
            index[bad] = np.searchsorted(splits, chunk[bad], side="left")
        out[start : start + chunk.size] = index
    return out.reshape(x.shape)


def _lloyd(xs, centroids, max_iter, tol):
    """Lloyd iterations on sorted float64 values from strictly increasing centroids."""
    n, k = xs.size, centroids.size
    if max_iter == 0:
        return centroids
    if k == 1:
        return np.array([np.clip(np.mean(xs), xs[0], xs[-1])])
    inner, outer = _block_prefix_sums(xs)
    block = _PREFIX_BLOCK

    def prefix(positions):
        blk, rem = np.divmod(positions, block)
        within = np.where(rem > 0, inner[np.maximum(positions - 1, 0)], 0.0)
        return outer[blk] + within

    limit = tol * (xs[-1] - xs[0])
    bounds = np.empty(k + 1, np.int64)
    bounds[0], bounds[-1] = 0, n
    previous = None
    for _ in range(max_iter):
        bounds[1:-1] = np.searchsorted(xs, _split_points(centroids), side="right")
        if previous is not None and np.array_equal(bounds, previous):
            break
        previous = bounds.copy()
        counts = np.diff(bounds)
        sums = np.diff(prefix(bounds))
        filled = counts > 0
        starts, ends = bounds[:-1][filled], bounds[1:][filled]
        updated = centroids.copy()
        updated[filled] = np.clip(sums[filled] / counts[filled], xs[starts], xs[ends - 1])
        shift = np.max(np.abs(updated - centroids))
        centroids = updated
        if shift <= limit:
            break
    return centroids


def _linear_gap(xs, k):
    """The "linear_gap" initial centroids of sorted values (see `kmeans_1d`)."""
    first_nonneg = int(np.searchsorted(xs, 0.0, side="left"))
    if k == 1 or first_nonneg in (0, xs.size):
        return np.linspace(xs[0], xs[-1], k)
    neg_span = xs[first_nonneg - 1] - xs[0]
    pos_span = xs[-1] - xs[first_nonneg]
    total = neg_span + pos_span
    share = 0.5 if total == 0 else neg_span / total
    k_neg = min(max(int(np.floor(k * share + 0.5)), 1), k - 1)

    def grid(lo, hi, m):
        return np.array([0.5 * (lo + hi)]) if m == 1 else np.linspace(lo, hi, m)

    return np.concatenate(
        [grid(xs[0], xs[first_nonneg - 1], k_neg), grid(xs[first_nonneg], xs[-1], k - k_neg)]
    )


def _ecsq_splits(centroids, penalties):
    """Cluster boundaries for the cost (x - c_j)^2 + penalties[j], c strictly increasing.

    Up to a term in x alone, cost j is the line f_j(x) = -2 c_j x + c_j^2 +
    penalties[j]; their lower envelope, left to right, visits the clusters in
    increasing j, skipping those that are nowhere cheapest. Returns
    ``(kept, splits)``: the indices of the clusters on the envelope and the
    x where cost moves from one to the next (x == split goes to the lower).
    """

    def crossing(i, j):
        return 0.5 * (centroids[i] + centroids[j]) + (penalties[j] - penalties[i]) / (
            2.0 * (centroids[j] - centroids[i])
        )

    kept, splits = [0], []
    for j in range(1, centroids.size):
        while True:
            t = crossing(kept[-1], j)
            if splits and t <= splits[-1]:
                kept.pop()
                splits.pop()
            else:
                break
        kept.append(j)
        splits.append(t)
    return np.array(kept, np.int64), np.array(splits, np.float64)


def _entropy_constrained(x, xs, centroids, rate_weight, max_iter, tol):
    """Entropy-constrained k-means on sorted float64 values ``xs`` (see `kmeans_1d`).

    Returns ``(centroids, assignments)`` with the assignments of ``x`` (the
    unsorted values); every returned centroid has members.
    """
    n = xs.size
    scale = rate_weight * float(np.var(xs))
    penalties = np.zeros(centroids.size)
    limit = tol * (xs[-1] - xs[0])
    inner, outer = _block_prefix_sums(xs)
    block = _PREFIX_BLOCK

    def prefix(positions):
        blk, rem = np.divmod(positions, block)
        within = np.where(rem > 0, inner[np.maximum(positions - 1, 0)], 0.0)
        return outer[blk] + within

    previous = None
    for _ in range(max_iter):
        kept, splits = _ecsq_splits(centroids, penalties)
        bounds = np.concatenate([[0], np.searchsorted(xs, splits, side="right"), [n]])
        counts = np.diff(bounds)
        filled = counts > 0
        kept, counts = kept[filled], counts[filled]
        bounds = np.concatenate([bounds[:-1][filled], [n]])
        if previous is not None and np.array_equal(bounds, previous):
            break
        previous = bounds
        sums = np.diff(prefix(bounds))
        updated = np.clip(sums / counts, xs[bounds[:-1]], xs[bounds[1:] - 1])
        shift = np.max(np.abs(updated - centroids[kept]))
        centroids = updated
        penalties = scale * -np.log2(counts / n)
        if shift <= limit:
            break
    kept, splits = _ecsq_splits(centroids, penalties)
    centroids = centroids[kept]
    assignments = np.searchsorted(splits, x.reshape(-1), side="left")
    counts = np.bincount(assignments, minlength=kept.size)
    if np.any(counts == 0):
        renumber = np.cumsum(counts > 0) - 1
        centroids = centroids[counts > 0]
        assignments = renumber[assignments]
    return centroids, assignments.astype(np.int32).reshape(x.shape)


def _block_prefix_sums(xs):
    """Two-level prefix sums: within-block cumulative sums and block offsets."""
    n, block = xs.size, _PREFIX_BLOCK
    blocks = -(-n // block)
    inner = np.zeros(blocks * block, np.float64)
    inner[:n] = xs
    rows = inner.reshape(blocks, block)
    np.cumsum(rows, axis=1, out=rows)
    outer = np.zeros(blocks + 1, np.float64)
    np.cumsum(rows[:, -1], out=outer[1:])
    return inner, outer


def _kmeanspp(xs, k, rng):
    """k-means++ seeding on sorted values, sampling through block sums.

    Keeps D(x)^2 (squared distance to the nearest chosen centre) per value and
    its per-block totals; a draw picks a block by its total, then a value in
    the block. Adding a centre only lowers D^2 within its Voronoi cell, a
    contiguous run of the sorted values, so only that run is updated.
    Distances are scaled by a power of two (exactly) so that their squares
    neither overflow nor vanish.
    """
    n, block = xs.size, _SAMPLE_BLOCK
    block_starts = np.arange(0, n, block)
    exponent = -int(np.frexp(max(abs(xs[0]), abs(xs[-1])))[1])
    halves = (exponent // 2, exponent - exponent // 2) if abs(exponent) > 1000 else (exponent,)
    factors = [float(np.ldexp(1.0, e)) for e in halves]

    def scaled_square(values, centre):
        d = values - centre
        for factor in factors:
            d *= factor
        return np.square(d, out=d)

    first = xs[int(rng.integers(n))]
    centres = [float(first)]
    d2 = scaled_square(xs, first)
    mass = np.add.reduceat(d2, block_starts)
    for _ in range(k - 1):
        cumulative = np.cumsum(mass)
        total = cumulative[-1]
        if not total > 0:
            break
        u = rng.random() * total
        b = min(int(np.searchsorted(cumulative, u, side="right")), mass.size - 1)
        lo, hi = b * block, min((b + 1) * block, n)
        within = np.cumsum(d2[lo:hi])
        r = u - (cumulative[b - 1] if b else 0.0)
        i = lo + min(int(np.searchsorted(within, r, side="right")), hi - lo - 1)
        if not d2[i] > 0:  # rounding landed on a zero-mass value
            i = lo + int(np.argmax(d2[lo:hi]))
            if not d2[i] > 0:
                i = int(np.argmax(d2))
                if not d2[i] > 0:
                    break
        centre = float(xs[i])
        pos = bisect.bisect_left(centres, centre)
        left = centres[pos - 1] if pos > 0 else None
        right = centres[pos] if pos < len(centres) else None
        centres.insert(pos, centre)
        # The new centre's cell, widened by one value each side against rounding.
        start = 0 if left is None else int(np.searchsorted(xs, 0.5 * (left + centre), "left"))
        stop = n if right is None else int(np.searchsorted(xs, 0.5 * (centre + right), "right"))
        start, stop = max(start - 1, 0), min(stop + 1, n)
        np.minimum(d2[start:stop], scaled_square(xs[start:stop], centre), out=d2[start:stop])
        b0, b1 = start // block, (stop - 1) // block + 1
        offsets = block_starts[b0:b1] - b0 * block
        mass[b0:b1] = np.add.reduceat(d2[b0 * block : min(b1 * block, n)], offsets)
    return np.array(centres)
