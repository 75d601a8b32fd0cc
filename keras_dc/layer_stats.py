"""Per-layer report of what compression achieved on a model's weights."""

import math

import numpy as np

from keras_dc._keras_glue import read
from keras_dc.selection import compressible_variables, layer_biases, variable_path

__all__ = ["layer_report", "format_layer_report"]


def _entropy_bits_per_symbol(counts):
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[counts > 0]
    if counts.size <= 1:
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def layer_report(model, min_size=256):
    """Describes every compressible variable as it is now.

    Args:
        model: A built Keras model.
        min_size: As for the callbacks. Defaults to `256`.

    Returns:
        A list of dicts, one per variable: ``path``, ``shape``, ``weights``,
        ``nonzero``, ``kept`` (fraction), ``distinct`` (distinct non-zero
        values), ``index_bits`` (fixed-width bits a cluster index needs,
        ``ceil(log2(distinct))``) and ``index_entropy`` (zero-order entropy of
        the non-zero weights' values, bits per non-zero), ``bias_distinct``
        (distinct values of the bias of the variable's layer, all of them,
        zero included; ``None`` without one, or for the layer's later kernels:
        see `keras_dc.selection.layer_biases`).

    Example:
        >>> print(format_layer_report(layer_report(model)))
    """
    rows = []
    for variable, biases in layer_biases(model, compressible_variables(model, min_size)):
        w = read(variable).ravel()
        nz = w[w != 0]
        _, counts = np.unique(nz, return_counts=True)
        rows.append(
            {
                "path": variable_path(variable),
                "shape": tuple(int(d) for d in variable.shape),
                "weights": int(w.size),
                "nonzero": int(nz.size),
                "kept": float(nz.size / w.size) if w.size else 0.0,
                "distinct": int(counts.size),
                "index_bits": int(math.ceil(math.log2(counts.size))) if counts.size > 1 else 0,
                "index_entropy": _entropy_bits_per_symbol(counts),
                "bias_distinct": (sum(np.unique(read(b)).size for b in biases) if biases else None),
            }
        )
    return rows


def _bias_values(n):
    return "-" if n is None else str(n) if n <= 4096 else ">4096"


def format_layer_report(rows):
    """Formats `layer_report` rows as a text table with a total line.

    The last column, ``bias``, is the number of distinct values of the layer's bias
    (``-`` without one): a handful once `WeightClustering` shares biases (``bias_bits``).
    """
    header = (
        f"{'variable':<40s} {'shape':>14s} {'weights':>9s} {'kept':>7s} {'values':>7s} "
        f"{'bits':>5s} {'H':>6s} {'bias':>5s}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        shape = "x".join(str(d) for d in r["shape"])
        values = str(r["distinct"]) if r["distinct"] <= 4096 else ">4096"
        lines.append(
            f"{r['path'][-40:]:<40s} {shape:>14s} {r['weights']:>9d} {100 * r['kept']:>6.2f}% "
            f"{values:>7s} {r['index_bits'] if r['distinct'] <= 4096 else '-':>5} {r['index_entropy']:>6.2f} "
            f"{_bias_values(r.get('bias_distinct')):>5s}"
        )
    total = sum(r["weights"] for r in rows)
    kept = sum(r["nonzero"] for r in rows)
    lines.append("-" * len(header))
    lines.append(f"{'total':<40s} {'':>14s} {total:>9d} {100 * kept / max(total, 1):>6.2f}%")
    return "\n".join(lines)
