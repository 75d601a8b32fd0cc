"""The bundle report: per buffer and total, like Table 2 of the Deep Compression paper.

Per weight buffer (as stored in the converted flatbuffer): weights, % kept,
bits per cluster index and per gap after Huffman with the zero-order entropy of
each stream beside it, bytes, and the ratio against its raw float bytes. Totals
count every byte a phone receives (skeleton + sidecar) against the dense float32
``.tflite`` the standard converter writes, and against generic codecs applied to
the restored (clustered) ``.tflite`` — the peers' way of measuring size.
"""

import gzip
import io

import numpy as np

__all__ = ["build_report", "coded_encoding", "format_report", "format_inspect", "render_picture"]


def coded_encoding(row):
    """The encoding whose figures a report row (of `report["buffers"]`) gives: a MASKED
    buffer's kept submatrix encoding (format 1.6), else the buffer's own encoding."""
    if row["encoding"] == "MASKED" and row.get("inner_encoding"):
        return row["inner_encoding"]
    return row["encoding"]


def _fit(text, width):
    """`text` padded to `width`, or cut at the right end with an ellipsis."""
    return f"{text:<{width}s}" if len(text) <= width else text[: width - 1] + "…"


def _ratio_words(bundle_bytes, dense_bytes):
    """ "12.3x smaller", or "1.04x larger" when the bundle did not shrink the model."""
    if bundle_bytes <= dense_bytes:
        return f"{dense_bytes / max(bundle_bytes, 1):.1f}x smaller"
    return f"{bundle_bytes / max(dense_bytes, 1):.2f}x larger (nothing to compress: prune or cluster first)"


def _per(bits, count):
    return float(bits) / count if count else 0.0


# gzip -9 / zstd -19 of the restored file are reported for comparison; on a
# 100 MB model they take minutes, so above this size they are skipped unless asked.
CODEC_SIZE_LIMIT = 16 * 2**20


def _codec_sizes(data, compare_codecs=None):
    if compare_codecs is None:
        compare_codecs = len(data) <= CODEC_SIZE_LIMIT
    if not compare_codecs:
        return {"gzip9_bytes": None, "zstd19_bytes": None}
    sizes = {"gzip9_bytes": len(gzip.compress(data, compresslevel=9, mtime=0))}
    try:
        import zstandard

        sizes["zstd19_bytes"] = len(zstandard.ZstdCompressor(level=19).compress(data))
    except ImportError:  # optional: installed with the [test]/[examples] extras
        sizes["zstd19_bytes"] = None
    return sizes


def build_report(
    *,
    buffers,
    stats,
    skeleton_bytes,
    sidecar_bytes,
    restored,
    dense_tflite_bytes,
    float16,
    layout,
    max_abs_diff,
    delegate_problems,
    timings,
    keras_names=None,
    compare_codecs=None,
    sparse_weights=(),
    int8=None,
    delegate_profile="gpu",
    delegate_ops=(),
    sparse_index_offsets=(),
    weight_kernels=(),
):
    """Assembles the report dict (JSON-serialisable).

    Rows name each buffer by the Keras variable(s) it holds (`keras_names`, from
    `converters.keras_names.match_buffers`) with the TFLite tensor name beside it,
    in model order; buffers that match no Keras variable follow in file order.
    ``sparse_weights`` (`converters.flatbuffer.SparseWeight`) become
    ``sparse_tensors``: the FULLY_CONNECTED weights stored as sparse tensors.
    ``int8`` (a dict, for full-integer bundles) becomes the ``int8`` section: the
    int8 ``.tflite`` size, the output error over the output range, and per int8
    weight its zeros against the Keras kernel's and its distinct values per channel.
    ``delegate_problems`` are those of ``delegate_profile`` (the profile that fits the
    bundle: ``"gpu"`` or ``"int8"``); ``delegate_ops`` (`converters.delegate.OpCheck`)
    become ``delegate_ops``: per op, each profile's problems (empty = accepted).

    Segments that hold skeleton bytes (`SegmentStats.is_skeleton`, from
    ``build_bundle(compact_skeleton=True)``, or the parts of a PACKED segment that hold
    the flatbuffer ranges between the buffers) are not weights: they are left out of the
    rows and the weight totals and summed in ``totals["skeleton_segments"]`` (their
    bytes are part of ``sidecar_bytes``; ``skeleton_bytes`` is the skeleton file's size).
    Likewise the segments at ``sparse_index_offsets`` (the index vectors of sparse
    tensors, `converters.flatbuffer.sparse_index_arrays`) are summed in
    ``totals["sparse_index_segments"]``. ``weight_kernels`` (`converters.flatbuffer.
    WeightKernel`, given for ``convert(sparse=True)``, each with a ``layer`` label)
    become ``kernels``: per weight-reading op, how the weight is stored and which
    LiteRT kernel runs it.
    """
    by_offset = {b.offset: b for b in buffers}
    keras_names = keras_names or {}
    rows = []
    skeleton_parts = [s for s in stats if s.is_skeleton]  # compacted skeleton gaps, not weights
    index_offsets = set(sparse_index_offsets)
    index_parts = [s for s in stats if s.offset in index_offsets and not s.is_skeleton]
    stats = [s for s in stats if not s.is_skeleton and s.offset not in index_offsets]

    def model_order(s):
        return (
            (0, keras_names[s.offset].order, s.offset)
            if s.offset in keras_names
            else (1, 0, s.offset)
        )

    for s in sorted(stats, key=model_order):
        b = by_offset.get(s.offset)
        nonzeros = s.nonzeros
        keras = keras_names.get(s.offset)
        rows.append(
            {
                "name": s.name,
                "keras_name": keras.label if keras else "",
                "tflite_name": b.tensor_names[0] if b is not None and b.tensor_names else "",
                "offset": s.offset,
                "op": getattr(b, "op", ""),
                "role": getattr(b, "role", ""),
                "shape": list(getattr(b, "shape", ())),
                "dtype": s.dtype,
                "encoding": s.encoding,
                "inner_encoding": s.inner_encoding,
                "weights": s.elements,
                "nonzeros": nonzeros,
                "kept": _per(nonzeros, s.elements),
                "codebooks": s.codebooks,
                "codebook_entries": s.codebook_entries,
                "index_bits_per_symbol": _per(s.index_bits, s.index_count),
                "index_entropy_per_symbol": _per(s.index_entropy_bits_total, s.index_count),
                "gap_bits_per_nonzero": _per(s.gap_bits, nonzeros) if s.gap_count else 0.0,
                "gap_entropy_per_nonzero": _per(s.gap_entropy_bits_total, nonzeros)
                if s.gap_count
                else 0.0,
                "index_bits": s.index_bits,
                "index_entropy_bits": s.index_entropy_bits_total,
                "gap_bits": s.gap_bits,
                "gap_entropy_bits": s.gap_entropy_bits_total,
                "payload_bytes": s.payload_bytes,
                "raw_bytes": s.raw_bytes,
                "size_vs_raw": _per(s.payload_bytes, s.raw_bytes),
            }
        )
    coded = sum(r["index_bits"] + r["gap_bits"] for r in rows)
    entropy = sum(r["index_entropy_bits"] + r["gap_entropy_bits"] for r in rows)
    bundle_bytes = skeleton_bytes + sidecar_bytes
    totals = {
        "weights": sum(r["weights"] for r in rows),
        "nonzeros": sum(r["nonzeros"] for r in rows),
        "huffman_bits": coded,
        "entropy_bits": entropy,
        "huffman_over_entropy": (coded / entropy - 1.0) if entropy else 0.0,
        "payload_bytes": sum(r["payload_bytes"] for r in rows),
        "raw_bytes": sum(r["raw_bytes"] for r in rows),
        "skeleton_bytes": skeleton_bytes,
        "sidecar_bytes": sidecar_bytes,
        "bundle_bytes": bundle_bytes,
        "restored_bytes": len(restored),
        "dense_tflite_bytes": dense_tflite_bytes,
        "ratio_vs_dense": dense_tflite_bytes / bundle_bytes if bundle_bytes else 0.0,
    }
    totals["kept"] = _per(totals["nonzeros"], totals["weights"])
    for key, parts in (
        ("skeleton_segments", skeleton_parts),
        ("sparse_index_segments", index_parts),
    ):
        totals[key] = {
            "count": len(parts),
            "raw_bytes": sum(s.raw_bytes for s in parts),
            "payload_bytes": sum(s.payload_bytes for s in parts),
        }
    totals["sparse_index_segments"]["encodings"] = sorted(
        {s.encoding + (f"({s.inner_encoding})" if s.inner_encoding else "") for s in index_parts}
    )
    totals["skeleton_segments"]["encodings"] = sorted({s.encoding for s in skeleton_parts})
    codecs = _codec_sizes(bytes(restored), compare_codecs)
    totals.update({f"restored_{k}": v for k, v in codecs.items()})
    return {
        "format": "keras-dc bundle report v1",
        "layout": layout,
        "float16": bool(float16),
        "int8": int8,
        "max_abs_diff": float(max_abs_diff),
        "delegate_problems": list(delegate_problems),
        "delegate_profile": delegate_profile,
        "delegate_ops": [
            {
                "subgraph": c.subgraph,
                "index": c.index,
                "op": c.op,
                "version": c.version,
                "problems": {p: list(v) for p, v in c.problems.items()},
            }
            for c in delegate_ops
        ],
        "sparse_tensors": [
            {
                "tensor": w.tensor_name,
                "shape": list(w.shape),
                "block": list(w.block) if w.block else None,
            }
            for w in sparse_weights
        ],
        "kernels": [
            {
                "op": k.op,
                "layer": label,
                "shape": list(k.shape),
                "stored": k.stored,
                "kernel": k.kernel,
                "effect": k.effect,
            }
            for k, label in weight_kernels
        ],
        "timings": {k: round(float(v), 4) for k, v in timings.items()},
        "buffers": rows,
        "totals": totals,
    }


def _int8_lines(section):
    """Text lines of the report's ``int8`` section (none for float bundles)."""
    if not section:
        return []
    lines = [
        f"int8 (full-integer, {'int8' if section['int8_io'] else 'float32'} inputs/outputs): "
        f"dense int8 .tflite {section['int8_tflite_bytes']:,} B; max |LiteRT - Keras| / output "
        f"range = {section['max_diff_over_output_range']:.3g} (tolerance {section['tolerance']:g})"
    ]
    for w in section["weights"]:
        lines.append(
            f"  {_fit(w['keras_name'], 30)} zeros {w['zeros']:,} (Keras {w['keras_zeros']:,}"
            f"{', preserved' if w['zeros_preserved'] else ', DIFFERENT'}), "
            f"<= {w['max_distinct_per_channel']} non-zero values per channel ({w['channels']} channels)"
        )
    return lines


_PROFILE_LABELS = {"gpu": "GPU", "int8": "int8 accelerators"}


def _delegate_op_lines(ops):
    """Per distinct op (name, version, profiles that take it): which delegate profiles take
    it, with the first op's reason where a profile does not."""
    if not ops:
        return []
    groups = {}
    for op in ops:
        key = (op["op"], op["version"], tuple((p, not v) for p, v in op["problems"].items()))
        groups.setdefault(key, []).append(op)
    lines = ["ops per delegate profile:"]
    for (name, version, verdicts), members in groups.items():
        first = members[0]["problems"]
        lines.append(
            f"  {name} v{version} x{len(members)}: "
            + ", ".join(
                f"{_PROFILE_LABELS.get(p, p)} "
                + ("yes" if ok else f"no ({first[p][0].split(': ', 1)[-1]})")
                for p, ok in verdicts
            )
        )
    return lines


def format_report(report):
    """The report as a readable text table."""
    head = (
        f"{'Keras variable':<30s} {'op':<16s} {'enc':<6s} {'weights':>9s} {'kept':>7s} {'cb':>4s} "
        f"{'idx b':>6s} {'H':>5s} {'gap b':>6s} {'H':>5s} {'bytes':>9s} {'vs raw':>7s}  TFLite tensor"
    )
    lines = [head, "-" * len(head)]
    short = {
        "CLUSTERED_SPARSE": "sparse",
        "CLUSTERED_DENSE": "dense",
        "RAW": "raw",
        "ZLIB": "zlib",
        "ZLIB_DICT": "zdict",
        "SPARSE_RAW": "sp-raw",
        "GROUPED_SPARSE": "g-sp",
        "GROUPED_DENSE": "g-den",
    }
    masked = {code: "m-" + name[:4] for code, name in short.items()}  # e.g. m-spar, m-dens
    for r in report["buffers"]:
        coded = coded_encoding(r)
        clustered = coded.startswith(("CLUSTERED", "GROUPED"))
        name = short.get(coded, coded)
        if r["encoding"] == "MASKED":  # masks around the kept submatrix (format 1.6)
            name = masked.get(coded, "masked")
        idx = (
            f"{r['index_bits_per_symbol']:6.2f} {r['index_entropy_per_symbol']:5.2f}"
            if clustered
            else f"{'':6s} {'':5s}"
        )
        gap = (
            f"{r['gap_bits_per_nonzero']:6.2f} {r['gap_entropy_per_nonzero']:5.2f}"
            if coded in ("CLUSTERED_SPARSE", "GROUPED_SPARSE", "SPARSE_RAW")
            else f"{'':6s} {'':5s}"
        )
        lines.append(
            f"{_fit(r.get('keras_name') or '(no Keras variable)', 30)} {r['op'][:16]:<16s} "
            f"{name:<6s} "
            f"{r['weights']:>9d} {100 * r['kept']:>6.2f}% {r['codebook_entries'] if clustered else '':>4} "
            f"{idx} {gap} {r['payload_bytes']:>9d} {100 * r['size_vs_raw']:>6.2f}%  {r.get('tflite_name', '')}"
        )
    t = report["totals"]
    indices = t.get("sparse_index_segments") or {}
    if indices.get("count"):
        lines.append(
            f"{'(sparse tensor indices)':<30s} {'':<16s} {'':<6s} {'':>9s} {'':>7s} {'':>4s} "
            f"{'':>6s} {'':>5s} {'':>6s} {'':>5s} {indices['payload_bytes']:>9d} "
            f"{100 * indices['payload_bytes'] / max(indices['raw_bytes'], 1):>6.2f}%  "
            f"{indices['count']} index vector(s), {indices['raw_bytes']:,} B, "
            f"{', '.join(indices['encodings'])}"
        )
    packed = t.get("skeleton_segments") or {}
    if packed.get("count"):
        coding = "+".join(short.get(e, e) for e in packed.get("encodings", ["ZLIB"]))
        lines.append(
            f"{'(skeleton)':<30s} {'':<16s} {coding:<6s} {'':>9s} {'':>7s} {'':>4s} "
            f"{'':>6s} {'':>5s} {'':>6s} {'':>5s} {packed['payload_bytes']:>9d} "
            f"{100 * packed['payload_bytes'] / max(packed['raw_bytes'], 1):>6.2f}%  "
            f"{packed['count']} flatbuffer range(s), {packed['raw_bytes']:,} B"
        )
    lines.append("-" * len(head))
    lines.append(
        f"{'all buffers':<30s} {'':<16s} {'':<6s} {t['weights']:>9d} {100 * t['kept']:>6.2f}% "
        f"{'':>4s} {'':>6s} {'':>5s} {'':>6s} {'':>5s} {t['payload_bytes']:>9d} "
        f"{100 * t['payload_bytes'] / max(t['raw_bytes'], 1):>6.2f}%"
    )
    lines.append("")
    lines.append(
        "idx b / gap b: bits per cluster index / per non-zero's gap after Huffman; H: zero-order entropy"
    )
    lines.append(
        f"Huffman vs entropy, all streams: {t['huffman_bits']} vs {t['entropy_bits']:.0f} bits "
        f"(+{100 * t['huffman_over_entropy']:.2f}%)"
    )
    lines.append(
        f"skeleton {t['skeleton_bytes']:,} B + sidecar {t['sidecar_bytes']:,} B"
        + (
            f" (of which {packed['payload_bytes']:,} B the skeleton's coded ranges)"
            if packed.get("count")
            else ""
        )
        + " = bundle "
        f"{t['bundle_bytes']:,} B; dense float32 .tflite {t['dense_tflite_bytes']:,} B "
        f"-> {_ratio_words(t['bundle_bytes'], t['dense_tflite_bytes'])}"
    )
    zstd = t.get("restored_zstd19_bytes")
    gz = t.get("restored_gzip9_bytes")
    lines.append(
        f"restored .tflite {t['restored_bytes']:,} B"
        + (f"; its gzip -9 {gz:,} B" if gz else "; gzip/zstd comparison skipped (large model)")
        + (f", zstd -19 {zstd:,} B" if zstd else "")
    )
    lines.append(
        f"layout {report['layout']}, "
        f"{'int8' if report.get('int8') else 'float16' if report['float16'] else 'float32'} weights, "
        f"max |LiteRT - Keras| = {report['max_abs_diff']:.2e}, delegate check"
        + (
            f" ({report['delegate_profile']} profile): "
            if report.get("delegate_profile", "gpu") != "gpu"
            else ": "
        )
        + ("OK" if not report["delegate_problems"] else "; ".join(report["delegate_problems"]))
    )
    lines.extend(_delegate_op_lines(report.get("delegate_ops")))
    lines.extend(_int8_lines(report.get("int8")))
    kernels = report.get("kernels") or []
    if kernels:
        lines.append("kernels (LiteRT, CPU):")
        for k in kernels:
            lines.append(
                f"  {k['op']:<18s} {_fit(k['layer'] or '', 30)} {str(k['shape']):<16s} "
                f"{k['stored']:<40s} {k['kernel']} kernel: {k['effect']}"
            )
    sparse = report.get("sparse_tensors") or []
    if sparse:
        blocks = [w for w in sparse if w["block"] == [1, 4]]
        lines.append(
            f"sparse tensors: {len(sparse)} FULLY_CONNECTED weights, {len(blocks)} in 1x4 blocks "
            "(LiteRT's sparse FC kernel on the CPU; the GPU delegate densifies sparse tensors): "
            + ", ".join(f"{w['tensor']} {w['block'] or 'unstructured'}" for w in sparse)
        )
    return "\n".join(lines)


def format_inspect(info):
    """A table of what `converters.decoder.inspect` returns."""
    lines = []
    header = {k: v for k, v in info.items() if not isinstance(v, (list, dict))}
    for key, value in header.items():
        lines.append(f"{key:>20s}: {value}")
    segments = info.get("segments", [])
    head = (
        f"{'dtype':<8s} {'encoding':<24s} {'elements':>9s} {'nonzeros':>9s} {'payload':>9s} "
        f"{'raw':>9s}  segment (the Keras variable, where convert knew it)"
    )
    lines += ["", head, "-" * len(head)]
    for s in segments:
        encoding = s.get("encoding", "")
        if s.get("inner_encoding"):  # DELTA and MASKED: the inner payload's encoding
            encoding += f"({s['inner_encoding']})"
        lines.append(
            f"{s.get('dtype', ''):<8s} {encoding:<24s} "
            f"{s.get('elements', 0):>9d} {s.get('nonzeros', 0):>9d} {s.get('payload_bytes', 0):>9d} "
            f"{s.get('raw_bytes', 0):>9d}  {s.get('name', '')}"
        )
    return "\n".join(lines)


def render_picture(report, restored, buffers):
    """PNG bytes: weight distribution with its codebook, and per-buffer bits. None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [r for r in report["buffers"] if coded_encoding(r).startswith(("CLUSTERED", "GROUPED"))]
    fig, (ax_hist, ax_bits) = plt.subplots(1, 2, figsize=(13, 4.5))
    by_offset = {r["offset"]: r for r in report["buffers"]}
    largest = max(
        (b for b in buffers if b.offset in by_offset and b.dtype in ("float32", "float16")),
        key=lambda b: b.size,
        default=None,
    )
    if largest is not None:
        values = np.frombuffer(
            bytes(restored[largest.offset : largest.offset + largest.size]),
            dtype=np.dtype(largest.dtype),
        ).astype(np.float64)
        nonzero = values[values != 0]
        ax_hist.hist(nonzero, bins=200, color="#4c72b0")
        codebook = np.unique(nonzero)
        if codebook.size <= 256:
            for c in codebook:
                ax_hist.axvline(c, color="#dd8452", lw=0.6, alpha=0.8)
        row = by_offset[largest.offset]
        ax_hist.set_title(
            f"{_fit(row['name'], 40).rstrip()}: {row['kept']:.1%} kept, "
            f"{codebook.size if codebook.size <= 256 else '>256'} values (orange)"
        )
        ax_hist.set_xlabel("non-zero weight value")
        ax_hist.set_ylabel("count")
    if rows:
        x = np.arange(len(rows))
        ax_bits.bar(
            x - 0.2, [r["index_bits_per_symbol"] for r in rows], 0.4, label="index bits (Huffman)"
        )
        ax_bits.bar(
            x + 0.2, [r["gap_bits_per_nonzero"] for r in rows], 0.4, label="gap bits (Huffman)"
        )
        ax_bits.plot(
            x - 0.2, [r["index_entropy_per_symbol"] for r in rows], "k_", ms=14, label="entropy"
        )
        ax_bits.plot(x + 0.2, [r["gap_entropy_per_nonzero"] for r in rows], "k_", ms=14)
        ax_bits.set_xticks(
            x,
            [_fit(r["keras_name"] or r["name"], 24).rstrip() for r in rows],
            rotation=45,
            ha="right",
            fontsize=7,
        )
        ax_bits.set_ylabel("bits per weight")
        ax_bits.legend(fontsize=8)
    t = report["totals"]
    ax_bits.set_title(
        f"bundle {t['bundle_bytes']:,} B vs dense {t['dense_tflite_bytes']:,} B "
        f"({t['ratio_vs_dense']:.1f}x)"
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
