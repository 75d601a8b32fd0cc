"""The paper's per-layer table and pictures for the MNIST examples and the paper benchmark.

`paper_table` reads the restored flatbuffer (the exact bytes a phone runs) and
the bundle report and prints Han, Mao & Dally's Table 2/3 layout: per weight
buffer, the weights, the share kept, the bits per weight and per index with
fixed widths (P+Q: ``ceil(log2 codebook)`` bits per cluster index; relative
indices of 5 bits for fully connected layers and 8 bits for convolutions, with a
filler entry per gap that does not fit, as in the paper) and after Huffman coding
(P+Q+H: the sidecar's real streams), the zero-order entropies, and the
compression rate of each buffer both ways.

`save_figure` draws what a reader would rather look at: the largest layer's
weights before and after pruning, the codebook over the pruned distribution,
and the bits per layer before and after Huffman coding.

    >>> rows = paper_rows(restored_bytes, result.report)
    >>> print(format_paper_table(rows))
    >>> save_figure("lenet5.png", "LeNet-5", stages, rows)

The examples keep the largest layer's weights at each stage in ``stages.npz``
beside the bundle, so the table and the picture can be made again later:

    python -m examples.paper_figures out/lenet5 --title=LeNet-5
"""

import math

import numpy as np

from converters.report import coded_encoding

# The paper's fixed relative-index widths: 8 bits for conv layers, 5 for fully connected.
INDEX_BITS = {"CONV_2D": 8, "DEPTHWISE_CONV_2D": 8, "TRANSPOSE_CONV": 8, "CONV_3D": 8}
FC_INDEX_BITS = 5


def _entries_with_fillers(flat, index_bits):
    """Stored entries of a relative-index sparse layout: one per non-zero, plus a
    filler (a zero weight) for every gap longer than ``2**index_bits``."""
    positions = np.flatnonzero(flat)
    gaps = np.diff(np.concatenate([[-1], positions]))
    return int(np.sum(np.maximum(1, -(-gaps // (2**index_bits)))))


def paper_rows(restored, report):
    """One dict per clustered weight buffer of the restored flatbuffer, plus a ``total`` dict.

    Args:
        restored: The restored ``.tflite`` bytes (``converters.restore``).
        report: The bundle report (``BundleResult.report``).

    Returns:
        ``(rows, total)``. Each row: ``name``, ``op``, ``weights``, ``kept``,
        ``weight_bits_fixed``, ``weight_bits_huffman``, ``weight_entropy``,
        ``index_bits_fixed``, ``index_bits_huffman``, ``index_entropy``,
        ``rate_fixed``, ``rate_huffman`` (float32 bytes / compressed bytes).
        Index bits are per non-zero weight; fillers are counted in the fixed width.
    """
    rows = []
    for r in report["buffers"]:
        encoding = coded_encoding(r)  # a MASKED kernel: its kept submatrix's encoding
        if not encoding.startswith("CLUSTERED"):
            continue
        # The report gives each buffer's offset in the restored file and its element count.
        w = np.frombuffer(bytes(restored), np.dtype(r["dtype"]), r["weights"], r["offset"])
        nonzeros = max(1, r["nonzeros"])
        sparse = encoding == "CLUSTERED_SPARSE"
        entries = max(1, r["codebook_entries"])
        wbits = max(1, math.ceil(math.log2(entries)))
        ibits = INDEX_BITS.get(r["op"], FC_INDEX_BITS) if sparse else 0
        stored = _entries_with_fillers(w, ibits) if sparse else w.size
        fixed_bits = stored * (wbits + ibits) + 32 * entries
        coded_bits = 8 * r["payload_bytes"]
        raw_bits = 32 * r["weights"]
        rows.append(
            {
                "name": r["name"],
                "op": r["op"],
                "weights": r["weights"],
                "kept": r["kept"],
                "weight_bits_fixed": wbits,
                "weight_bits_huffman": r["index_bits_per_symbol"],
                "weight_entropy": r["index_entropy_per_symbol"],
                "index_bits_fixed": stored * ibits / nonzeros if sparse else 0.0,
                "index_bits_huffman": r["gap_bits_per_nonzero"],
                "index_entropy": r["gap_entropy_per_nonzero"],
                "fixed_bits": fixed_bits,
                "coded_bits": coded_bits,
                "rate_fixed": raw_bits / fixed_bits,
                "rate_huffman": raw_bits / max(1, coded_bits),
            }
        )
    weights = sum(r["weights"] for r in rows)
    total = {
        "weights": weights,
        "kept": sum(r["kept"] * r["weights"] for r in rows) / max(1, weights),
        "rate_fixed": 32 * weights / max(1, sum(r["fixed_bits"] for r in rows)),
        "rate_huffman": 32 * weights / max(1, sum(r["coded_bits"] for r in rows)),
    }
    return rows, total


def _short(name):
    """A readable layer name from a segment's Keras name ('ip1/kernel' -> 'ip1',
    'ip1/bias' -> 'ip1 bias')."""
    parts = [p for p in name.split("/") if p]
    if len(parts) >= 2:
        return parts[-2] + (" bias" if parts[-1] == "bias" else "")
    return parts[0] if parts else name


def format_paper_table(rows_total):
    """The paper's table layout as text (columns P+Q = pruned + quantized, +H = Huffman coded)."""
    rows, total = rows_total
    head = (
        f"{'layer':<10s} {'#weights':>9s} {'kept':>6s} {'w bits':>6s} {'w bits':>6s} {'H(w)':>5s} "
        f"{'idx bits':>8s} {'idx bits':>8s} {'H(idx)':>6s} {'rate':>7s} {'rate':>7s}"
    )
    sub = (
        f"{'':<10s} {'':>9s} {'(P)':>6s} {'P+Q':>6s} {'P+Q+H':>6s} {'':>5s} "
        f"{'P+Q':>8s} {'P+Q+H':>8s} {'':>6s} {'P+Q':>7s} {'P+Q+H':>7s}"
    )
    lines = [head, sub, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{_short(r['name'])[:10]:<10s} {r['weights']:>9,d} {100 * r['kept']:>5.1f}% "
            f"{r['weight_bits_fixed']:>6d} {r['weight_bits_huffman']:>6.2f} {r['weight_entropy']:>5.2f} "
            f"{r['index_bits_fixed']:>8.2f} {r['index_bits_huffman']:>8.2f} {r['index_entropy']:>6.2f} "
            f"{r['rate_fixed']:>6.1f}x {r['rate_huffman']:>6.1f}x"
        )
    lines.append("-" * len(head))
    lines.append(
        f"{'total':<10s} {total['weights']:>9,d} {100 * total['kept']:>5.1f}% {'':>6s} {'':>6s} {'':>5s} "
        f"{'':>8s} {'':>8s} {'':>6s} {total['rate_fixed']:>6.1f}x {total['rate_huffman']:>6.1f}x"
    )
    lines.append(
        "bits per non-zero weight; rates are float32 bytes over the weight buffer's compressed "
        "bytes (codebook included; biases and the flatbuffer are not in these rates, they are in the "
        "bundle total)"
    )
    return "\n".join(lines)


def save_figure(path, title, stages, rows_total):
    """Writes a PNG: the largest layer's weights dense vs pruned, its codebook over
    the pruned distribution, and bits per weight per layer (fixed vs Huffman).

    Args:
        path: Output PNG path.
        title: Figure title.
        stages: ``{"dense": array, "pruned": array, "clustered": array}`` of the
            largest layer's kernel at each stage (Keras variables).
        rows_total: What `paper_rows` returned.

    Returns:
        `path`, or None when matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows, _ = rows_total
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    dense, pruned, clustered = (
        np.asarray(stages[k]).ravel() for k in ("dense", "pruned", "clustered")
    )

    ax = axes[0]
    bins = np.linspace(min(dense.min(), pruned.min()), max(dense.max(), pruned.max()), 161)
    ax.hist(dense, bins=bins, color="#8da0cb", label=f"dense ({dense.size:,})")
    ax.hist(
        pruned[pruned != 0],
        bins=bins,
        color="#e78ac3",
        alpha=0.85,
        label=f"pruned + retrained ({np.count_nonzero(pruned):,} kept)",
    )
    ax.set_yscale("log")
    ax.set_xlabel("weight value")
    ax.set_ylabel("count (log)")
    ax.set_title(f"{stages.get('layer', 'largest layer')}: before / after pruning")
    ax.legend(fontsize=8)

    ax = axes[1]
    nz = pruned[pruned != 0]
    ax.hist(nz, bins=160, color="#e78ac3", alpha=0.6, label="pruned weights")
    values, counts = np.unique(clustered[clustered != 0], return_counts=True)
    ax2 = ax.twinx()
    ax2.vlines(values, 0, counts, color="#1b9e77", lw=2, label="shared values after retraining")
    ax2.set_ylabel("weights per shared value", color="#1b9e77")
    ax.set_xlabel("weight value")
    ax.set_ylabel("count")
    ax.set_title(f"codebook: {values.size} shared values over the pruned distribution")
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="upper right", fontsize=8)

    ax = axes[2]
    x = np.arange(len(rows))
    width = 0.2
    ax.bar(
        x - 1.5 * width,
        [r["weight_bits_fixed"] for r in rows],
        width,
        color="#66c2a5",
        label="weight bits P+Q",
    )
    ax.bar(
        x - 0.5 * width,
        [r["weight_bits_huffman"] for r in rows],
        width,
        color="#1b9e77",
        label="weight bits +H",
    )
    ax.bar(
        x + 0.5 * width,
        [r["index_bits_fixed"] for r in rows],
        width,
        color="#fc8d62",
        label="index bits P+Q",
    )
    ax.bar(
        x + 1.5 * width,
        [r["index_bits_huffman"] for r in rows],
        width,
        color="#d95f02",
        label="index bits +H",
    )
    ax.set_xticks(x, [_short(r["name"]) for r in rows])
    ax.set_ylabel("bits per non-zero weight")
    ax.set_title("bits per layer, fixed width vs Huffman")
    top = max([r["weight_bits_fixed"] for r in rows] + [r["index_bits_fixed"] for r in rows] + [1])
    ax.set_ylim(0, top * 1.45)
    ax.legend(fontsize=8, ncol=2, loc="upper center")

    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


STAGES_FILE = "stages.npz"


def save_stages(directory, stages):
    """Keeps the largest layer's weights at each stage beside the bundle (for `regenerate`)."""
    import os

    np.savez_compressed(
        os.path.join(directory, STAGES_FILE),
        layer=np.array(stages.get("layer", "")),
        **{k: v for k, v in stages.items() if k != "layer"},
    )


def regenerate(directory, title):
    """The paper's table (returned as text) and ``paper.png`` again, from a bundle directory
    written by an example (bundle, ``model.report.json`` and ``stages.npz``)."""
    import json
    import os

    import converters

    with open(os.path.join(directory, "model.report.json")) as f:
        report = json.load(f)
    rows = paper_rows(converters.restore(directory), report)
    with np.load(os.path.join(directory, STAGES_FILE)) as f:
        stages = {k: (str(f[k]) if k == "layer" else f[k]) for k in f.files}
    save_figure(os.path.join(directory, "paper.png"), title, stages, rows)
    return format_paper_table(rows)


if __name__ == "__main__":
    import os

    from absl import app, flags

    _TITLE = flags.DEFINE_string("title", "Deep Compression with keras-dc", "Figure title.")

    def _main(argv):
        if len(argv) != 2:
            raise app.UsageError(
                "usage: python -m examples.paper_figures BUNDLE_DIRECTORY [--title=...]"
            )
        print(regenerate(argv[1], _TITLE.value))
        print(f"pictures written to {os.path.join(argv[1], 'paper.png')}")

    app.run(_main)
