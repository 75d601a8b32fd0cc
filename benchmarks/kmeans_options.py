"""The k-means options beyond the paper on LeNet-ip1-like weights (pure NumPy).

A Gaussian weight matrix of `--size` entries (784 × 300 = 235,200, LeNet-300-100's
ip1) is pruned by magnitude to `--sparsity`; its non-zero values are clustered with
`keras_dc.kmeans.kmeans_1d` into 16 and 32 clusters. For "linear" vs "linear_gap"
init, and for entropy-constrained clustering (from "linear_gap") at each
`--rate_weights`, it prints the clusters that have members, the quantization MSE
(also relative to the variance of the values) and the zero-order entropy of the
cluster indices in bits per non-zero weight (what a Huffman code approaches).

    python -m benchmarks.kmeans_options          # a few seconds
"""

import time

import numpy as np
from absl import app, flags

from keras_dc.kmeans import kmeans_1d

_SIZE = flags.DEFINE_integer("size", 784 * 300, "Weights in the layer before pruning.")
_SPARSITY = flags.DEFINE_float("sparsity", 0.92, "Fraction pruned by magnitude.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the Gaussian weights.")
_CLUSTERS = flags.DEFINE_list("clusters", ["16", "32"], "Numbers of clusters.")
_RATE_WEIGHTS = flags.DEFINE_list(
    "rate_weights",
    ["0", "0.0005", "0.001", "0.002", "0.005", "0.02", "0.05", "0.1", "0.2"],
    "rate_weight values of the entropy-constrained rows.",
)


def index_entropy(assignments):
    """Zero-order entropy of the indices, bits per index."""
    counts = np.bincount(assignments)
    p = counts[counts > 0] / assignments.size
    return float(-np.sum(p * np.log2(p)))


def row(label, values, k, **options):
    start = time.perf_counter()
    centroids, assignments = kmeans_1d(values, k, **options)
    seconds = time.perf_counter() - start
    used = int(np.count_nonzero(np.bincount(assignments, minlength=centroids.size)))
    error = float(np.mean((values - centroids[assignments]) ** 2))
    return (
        f"{k:>4d}  {label:<32s} {used:>8d}  {error:11.4e}  {error / np.var(values):9.2e}"
        f"  {index_entropy(assignments):8.3f}  {seconds * 1e3:7.1f}"
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    rng = np.random.default_rng(_SEED.value)
    weights = rng.standard_normal(_SIZE.value) * 0.05
    threshold = np.quantile(np.abs(weights), _SPARSITY.value)
    values = weights[np.abs(weights) > threshold]
    print(
        f"{values.size} non-zero weights of {weights.size} (sparsity {_SPARSITY.value}, "
        f"|w| > {threshold:.4g}, σ_w = 0.05, variance of the values {np.var(values):.4e})"
    )
    print(
        f"{'k':>4s}  {'method':<32s} {'clusters':>8s}  {'MSE':>11s}  {'MSE / σ²':>9s}"
        f"  {'bits/idx':>8s}  {'ms':>7s}"
    )
    for k in (int(c) for c in _CLUSTERS.value):
        print(row("linear", values, k, init="linear"))
        print(row("linear_gap", values, k, init="linear_gap"))
        for rate_weight in (float(r) for r in _RATE_WEIGHTS.value):
            label = f"linear_gap, rate_weight {rate_weight:g}"
            print(row(label, values, k, init="linear_gap", rate_weight=rate_weight))


if __name__ == "__main__":
    app.run(main)
