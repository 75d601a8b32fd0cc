"""Magnitude-pruning math (Deep Compression, stage 1).

Han et al. (NIPS 2015, arXiv 1506.02626; ICLR 2016) prune every connection
whose magnitude |w| falls below a threshold, retrain the survivors and iterate.
This module computes the masks and thresholds in plain NumPy. A mask is a
bool array shaped like the weights: True keeps the weight, False prunes it.

Every mask function takes an optional ``previous_mask``: entries it prunes stay
pruned, so masks only ever shrink as pruning proceeds.

`mask_for_block_sparsity` prunes whole blocks of a 2-D kernel instead of single
weights: the structure LiteRT's sparse FULLY_CONNECTED kernel runs faster than
dense (see its docstring).
"""

import numbers

import numpy as np

from keras_dc._validate import as_float, as_fraction, as_int, as_mask, as_real_array

__all__ = [
    "mask_for_sparsity",
    "mask_for_block_sparsity",
    "mask_for_threshold",
    "std_threshold",
    "global_threshold",
    "sparsity",
]


def mask_for_sparsity(weights, sparsity, previous_mask=None):
    """Prunes the smallest-magnitude weights to reach a target sparsity.

    Prunes exactly m = round(sparsity * n) of the n entries (Python's `round`,
    halves to even): the entries already pruned by `previous_mask` count
    toward m, and the rest are the kept entries of smallest |w|, ties broken
    by flat (C-order) index, lower first. If `previous_mask` already prunes m
    or more entries, it is returned unchanged (as a new array).

    Args:
        weights: Array of finite real numbers, any shape.
        sparsity: Target fraction of pruned entries, a number in [0, 1).
        previous_mask: Optional mask (bool, or 0/1 numbers) of the weights'
            shape; its False entries stay pruned. Defaults to `None` (nothing
            pruned yet).

    Returns:
        A bool array of the weights' shape, True where the weight is kept.

    Raises:
        TypeError: `weights` or `previous_mask` is not numeric, or `sparsity`
            is not a number.
        ValueError: `sparsity` is outside [0, 1), `weights` holds NaN or
            infinity, or `previous_mask` has another shape or values other
            than 0/1.

    Example:
        >>> mask_for_sparsity(np.array([0.5, -0.1, 0.3, 0.1]), 0.5)
        array([ True, False,  True, False])
    """
    w = as_real_array(weights, "weights", finite=True)
    sparsity = as_fraction(sparsity, "sparsity")
    previous = as_mask(previous_mask, w.shape)
    n = w.size
    target = round(sparsity * n)
    if previous is None:
        previous = np.ones(w.shape, dtype=bool)
    already = n - int(np.count_nonzero(previous))
    if already >= target:
        return previous.copy()
    keep = previous.reshape(-1).copy()
    candidates = np.flatnonzero(keep)
    magnitude = np.abs(w.reshape(-1)[candidates])
    extra = target - already
    # The extra-th smallest magnitude among the kept entries: prune everything
    # strictly below it, then the lowest-index entries equal to it.
    cut = np.partition(magnitude, extra - 1)[extra - 1]
    below = magnitude < cut
    keep[candidates[below]] = False
    ties = candidates[magnitude == cut]
    keep[ties[: extra - int(np.count_nonzero(below))]] = False
    return keep.reshape(w.shape)


LITERT_BLOCK_ROWS = 4
"""Rows of a Keras ``[in, out]`` Dense kernel that LiteRT's sparse FC kernel takes as one block.

LiteRT's FULLY_CONNECTED kernel (``tensorflow/lite/kernels/fully_connected.cc``)
has a truly sparse float path for weights sparsified in 1x4 blocks, 4 consecutive
inputs of one output in TFLite's ``[out, in]`` weight (``tensor_utils``'
``SparseMatrixBatchVectorMultiplyAccumulate1x4``); in the Keras ``[in, out]``
kernel that is 4 consecutive rows of one column. Other sparsity patterns are
densified at load (docs: deployment facts, "Delegate compatibility").
"""


def mask_for_block_sparsity(weights, sparsity, previous_mask=None, block_rows=LITERT_BLOCK_ROWS):
    """Prunes whole blocks of ``block_rows`` consecutive rows of one column of a 2-D kernel.

    The kernel ``w`` has shape ``[in, out]`` (Keras Dense layout). Column ``j``
    is cut into blocks ``w[r:r + block_rows, j]`` for ``r = 0, block_rows, ...``;
    when ``in % block_rows != 0`` the last block of each column is the shorter
    tail ``w[in - in % block_rows:, j]``, pruned or kept as one block too. A
    block's score is its mean magnitude, mean(|w|) over its entries (so a
    short tail competes fairly), computed with the entries `previous_mask`
    prunes counted as 0.

    Blocks whose entries `previous_mask` prunes all stay pruned and count
    toward the target. With m = round(sparsity * n) (n = in * out), further
    blocks are pruned in order of increasing score, ties broken by block index
    (column-major over ``(column, row block)``: lower first), choosing the number
    of blocks k that brings the count of pruned entries closest to m (the
    smallest such k); so the result is within half a block of m. A block that
    `previous_mask` prunes only in part keeps its pruned entries pruned. If
    `previous_mask` already prunes m or more entries, it is returned
    unchanged (as a new array).

    Args:
        weights: 2-D array of finite real numbers, shape ``[in, out]``.
        sparsity: Target fraction of pruned entries, a number in [0, 1).
        previous_mask: Optional mask (bool, or 0/1 numbers) of the weights'
            shape; its False entries stay pruned. Defaults to `None`.
        block_rows: Rows per block, an int >= 1. Defaults to `4` (LiteRT's
            1x4 blocks, `LITERT_BLOCK_ROWS`).

    Returns:
        A bool array of the weights' shape, True where the weight is kept.

    Raises:
        TypeError: `weights` or `previous_mask` is not numeric, `sparsity` is
            not a number or `block_rows` is not an int.
        ValueError: `weights` is not 2-D or holds NaN or infinity, `sparsity`
            is outside [0, 1), `block_rows` < 1, or `previous_mask` has another
            shape or values other than 0/1.

    Example:
        >>> w = np.array([[0.1], [0.1], [0.5], [0.4]])
        >>> mask_for_block_sparsity(w, 0.5, block_rows=2)[:, 0]
        array([False, False,  True,  True])
    """
    w = as_real_array(weights, "weights", finite=True)
    if w.ndim != 2:
        raise ValueError(
            f"weights must be a 2-D kernel [in, out] for block pruning, received shape {w.shape}."
        )
    sparsity = as_fraction(sparsity, "sparsity")
    block_rows = as_int(block_rows, "block_rows", 1)
    previous = as_mask(previous_mask, w.shape)
    if previous is None:
        previous = np.ones(w.shape, dtype=bool)
    rows, cols = w.shape
    n = w.size
    target = round(sparsity * n)
    already = n - int(np.count_nonzero(previous))
    if already >= target:
        return previous.copy()
    # Block b of column j covers rows starts[b]:starts[b] + block_rows.
    starts = np.arange(0, rows, block_rows)
    magnitude = np.abs(w.astype(np.float64)) * previous
    kept = previous.astype(np.int64)
    # score[b, j]: mean magnitude of block b of column j.
    score = np.add.reduceat(magnitude, starts, axis=0)
    sizes = np.diff(np.append(starts, rows))
    score = score / sizes[:, None]
    kept_count = np.add.reduceat(kept, starts, axis=0)
    # Column-major block order: index = j * len(starts) + b.
    score = score.T.reshape(-1)
    kept_count = kept_count.T.reshape(-1)
    candidates = np.flatnonzero(kept_count > 0)
    order = candidates[np.lexsort((candidates, score[candidates]))]
    pruned = already + np.concatenate([[0], np.cumsum(kept_count[order])])
    k = int(np.argmin(np.abs(pruned - target)))
    keep = previous.copy()
    for index in order[:k]:
        j, b = divmod(int(index), len(starts))
        keep[starts[b] : starts[b] + block_rows, j] = False
    return keep


def mask_for_threshold(weights, threshold, previous_mask=None):
    """Keeps the weights with |w| > threshold that `previous_mask` keeps.

    mask = (|w| > threshold) & previous_mask. A negative threshold (including
    `-inf`, which `global_threshold` returns for sparsity 0) keeps every entry
    the previous mask keeps, zeros included.

    Args:
        weights: Array of finite real numbers, any shape.
        threshold: Magnitude threshold, a real number (not NaN).
        previous_mask: Optional mask (bool, or 0/1 numbers) of the weights'
            shape; its False entries stay pruned. Defaults to `None`.

    Returns:
        A bool array of the weights' shape, True where the weight is kept.

    Raises:
        TypeError: `weights` or `previous_mask` is not numeric, or `threshold`
            is not a number.
        ValueError: `threshold` is NaN, `weights` holds NaN or infinity, or
            `previous_mask` has another shape or values other than 0/1.

    Example:
        >>> mask_for_threshold(np.array([0.5, -0.1, 0.3, 0.1]), 0.1)
        array([ True, False,  True, False])
    """
    w = as_real_array(weights, "weights", finite=True)
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(
            f"threshold must be a real number, received {threshold!r} ({type(threshold).__name__})."
        )
    threshold = float(threshold)
    if threshold != threshold:
        raise ValueError("threshold must be a number, received NaN.")
    previous = as_mask(previous_mask, w.shape)
    keep = np.abs(w) > threshold
    if previous is not None:
        keep &= previous
    return keep


def std_threshold(weights, quality):
    """The paper's per-layer threshold: quality times the weights' standard deviation.

    threshold = quality * sigma, sigma = sqrt(mean((w - mean(w))^2)), taken
    over the whole tensor with zeros (already pruned weights) included and no
    Bessel correction. For Gaussian weights, pruning |w| <= s * sigma removes
    erf(s / sqrt(2)) of them: s = 1.75 removes about 92% (Han et al. 2015).

    Counting the zeros makes repetition harmless for zero-mean weights:
    pruning only replaces values by 0, so sigma can only shrink and the same
    quality prunes nothing new. (With a mean far from 0, sigma can grow.)

    Args:
        weights: Non-empty array of finite real numbers, any shape.
        quality: The quality parameter s, a finite number >= 0.

    Returns:
        The threshold, a float >= 0; use it with `mask_for_threshold`.

    Raises:
        TypeError: `weights` is not numeric or `quality` is not a number.
        ValueError: `weights` is empty or holds NaN or infinity, or `quality`
            is negative or not finite.

    Example:
        >>> std_threshold(np.array([1.0, -1.0, 1.0, -1.0]), 1.5)
        1.5
    """
    w = as_real_array(weights, "weights", finite=True)
    if w.size == 0:
        raise ValueError("weights is empty; the standard deviation needs at least one entry.")
    quality = as_float(quality, "quality", 0)
    return quality * float(np.std(w, dtype=np.float64))


def global_threshold(weights, sparsity):
    """One magnitude threshold over several arrays for an overall sparsity.

    With N the total number of entries and m = round(sparsity * N) (Python's
    `round`), returns the m-th smallest |w| over all arrays (counting from 1),
    so that at least m entries, and exactly m when no other entry has that
    magnitude, satisfy |w| <= threshold and are pruned by
    `mask_for_threshold`. Zeros count as the smallest magnitudes, so already
    pruned weights (passed as zeros) count toward m. For m = 0 returns `-inf`,
    which prunes nothing.

    Args:
        weights: A non-empty list or tuple of arrays of finite real numbers
            (any shapes) with at least one entry in total.
        sparsity: Target overall fraction of pruned entries, in [0, 1).

    Returns:
        The threshold, a float.

    Raises:
        TypeError: `weights` is not a list or tuple of numeric arrays, or
            `sparsity` is not a number.
        ValueError: `weights` holds no entry, NaN or infinity, or `sparsity`
            is outside [0, 1).

    Example:
        >>> global_threshold([np.array([0.5, -0.1]), np.array([0.3, 0.2])], 0.5)
        0.2
    """
    if not isinstance(weights, (list, tuple)):
        raise TypeError(
            "weights must be a list or tuple of arrays (one per variable), "
            f"received {type(weights).__name__}."
        )
    arrays = [as_real_array(w, f"weights[{i}]", finite=True) for i, w in enumerate(weights)]
    sparsity = as_fraction(sparsity, "sparsity")
    total = sum(a.size for a in arrays)
    if total == 0:
        raise ValueError(
            f"weights holds no entry ({len(arrays)} arrays, all empty); "
            "a global threshold needs at least one weight."
        )
    m = round(sparsity * total)
    if m == 0:
        return float("-inf")
    magnitude = np.concatenate([np.abs(a.reshape(-1)).astype(np.float64) for a in arrays])
    return float(np.partition(magnitude, m - 1)[m - 1])


def sparsity(weights):
    """The fraction of entries that are exactly zero: count(w == 0) / n.

    Args:
        weights: Non-empty numeric array, any shape.

    Returns:
        A float in [0, 1].

    Raises:
        TypeError: `weights` is not numeric.
        ValueError: `weights` is empty.

    Example:
        >>> sparsity(np.array([[0.0, 1.5], [0.0, -2.0]]))
        0.5
    """
    w = as_real_array(weights, "weights")
    if w.size == 0:
        raise ValueError("weights is empty; its sparsity is undefined.")
    return float(np.count_nonzero(w == 0) / w.size)
