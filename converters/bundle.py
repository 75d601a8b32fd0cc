"""Keras model → mobile bundle (TFLite skeleton + Huffman-coded sidecar), and back.

A bundle is a directory::

    NAME.skeleton.tflite   the converted flatbuffer without its weight bytes (and, with
                           compact_skeleton or packed, without the parts the sidecar
                           codes; possibly empty)
    NAME.dcw               the sidecar: the weights, clustered + Huffman-coded
    NAME.report.json       per-buffer and total figures (also NAME.report.txt, .png)

Only the first two files go to the phone.

`convert` runs the pipeline as named steps (export → delegate check → layout →
encode → restore → verify → report → write); `restore` turns the two files
back into the runnable ``.tflite`` — byte for byte the flatbuffer that
`convert` verified in LiteRT — with plain byte copying and decoding at offsets
recorded in the sidecar (docs/bundle-format.md); `verify` runs a restored
bundle in LiteRT.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import time

import numpy as np

from converters import decoder as decoder_lib
from converters import delegate, export, files, flatbuffer, keras_names, litert, quantized
from converters import encoder as encoder_lib
from converters import layout as layout_lib
from converters import report as report_lib

__all__ = ["convert", "restore", "verify", "BundleResult"]


@dataclasses.dataclass
class BundleResult:
    """What `convert` wrote and measured.

    Attributes:
        directory: The bundle directory.
        skeleton_path, sidecar_path: The two files a phone downloads.
        report: The report dict (also written as NAME.report.json).
        max_abs_diff: Largest |LiteRT − Keras| over the verification inputs.
        max_scaled_diff: Largest |LiteRT − Keras| / (1 + |Keras|), the figure held
            to the tolerance (1e-5 float32, 1e-2 float16); for int8 bundles
            |LiteRT − Keras| / (range of the Keras outputs), held to
            `converters.quantized.TOLERANCE`.
        delegate_problems: Problems found by the static delegate check of the profile that
            fits the bundle (GPU for float, int8 accelerators for `int8`; empty = compatible).
        max_scaled_diff: See ``max_abs_diff``.
        sparse_tensors: The FULLY_CONNECTED weights stored as TFLite sparse
            tensors (`converters.flatbuffer.SparseWeight`; ``convert(sparse=True)``).
        int8_weights: For ``convert(int8=True)``, one `converters.quantized.Int8Weight`
            per int8 weight tensor matched to a Keras kernel (zeros, distinct values
            per channel).
    """

    directory: str
    skeleton_path: str
    sidecar_path: str
    report: dict
    max_abs_diff: float
    delegate_problems: list
    max_scaled_diff: float = None
    sparse_tensors: list = dataclasses.field(default_factory=list)
    int8_weights: list = dataclasses.field(default_factory=list)

    @property
    def bundle_bytes(self):
        return self.report["totals"]["bundle_bytes"]


@dataclasses.dataclass(frozen=True)
class _ExportOptions:
    """How the model becomes a flatbuffer (see `convert` for the arguments)."""

    float16: bool = False
    sparse: bool = False
    batch_size: int = 1
    layout: str = "offset"
    int8: bool = False
    int8_io: bool = False

    def __post_init__(self):
        if self.layout not in layout_lib.MODES:
            raise ValueError(f"layout must be 'offset' or 'inline', received {self.layout!r}.")

    @property
    def tolerance(self):
        """Allowed |LiteRT − Keras| / (1 + |Keras|): 1e-5 for float32 (so ≤ 1e-5 absolute
        for outputs below 1), 1e-2 for float16 weights; for int8, |LiteRT − Keras| /
        (range of the Keras outputs) ≤ `converters.quantized.TOLERANCE`."""
        if self.int8:
            return quantized.TOLERANCE
        return 1e-2 if self.float16 else 1e-5


@dataclasses.dataclass(frozen=True)
class _Samples:
    """The verification inputs: the given batches, or `count` random ones drawn from `seed`."""

    given: list | None = None
    count: int = 8
    seed: int = 0
    representative: object = None

    def batches_for(self, model_bytes, names):
        """The given batches, else the first `count` representative ones, else random ones."""
        if self.given is not None:
            return self.given
        if self.representative is not None:
            (example,) = litert.sample_inputs_for(model_bytes, 1, self.seed, names)
            shapes = [np.shape(a) for a in example]
            return export.representative_batches(self.representative, shapes, self.count)
        return litert.sample_inputs_for(model_bytes, self.count, self.seed, names)


class _Stopwatch:
    """Wall seconds per named step, in the order the steps ran."""

    def __init__(self):
        self.seconds = {}

    @contextlib.contextmanager
    def step(self, key):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - start


def _printer(verbose):
    return (lambda msg: print(msg, flush=True)) if verbose else (lambda msg: None)


def _export(model_or_path, options, representative_data, say):
    """Loads the model and converts it: ``(model, flatbuffer, dense float32 size)``."""
    model = export.load_model(model_or_path)
    say(
        "keras-dc: converting with the TFLite converter (builtin ops only"
        + (", full-integer int8)..." if options.int8 else ")...")
    )
    flat = export.to_tflite(
        model,
        float16=options.float16,
        sparse=options.sparse,
        int8=options.int8,
        representative_data=representative_data,
        int8_io=options.int8_io,
        batch_size=options.batch_size,
    )
    if options.float16 or options.sparse or options.int8:
        dense_bytes = len(export.to_tflite(model, float16=False, batch_size=options.batch_size))
    else:
        dense_bytes = len(flat)
    return model, flat, dense_bytes


def _check_delegate(flat, strict, say, profile="gpu"):
    """The static delegate check of `profile`: warns, or raises when `strict`."""
    problems = delegate.check_delegate_compatibility(flat, profile=profile)
    if problems:
        label = "delegate check" if profile == "gpu" else f"delegate check ({profile} profile)"
        message = f"{label}: " + "; ".join(problems)
        if strict:
            raise ValueError(message)
        say("keras-dc: WARNING " + message)
    return problems


def _segment_name(buffer, keras):
    """The Keras variable(s) a buffer holds, else its TFLite tensor name."""
    if buffer.offset in keras:
        return keras[buffer.offset].label
    return buffer.tensor_names[0] if buffer.tensor_names else f"buffer_{buffer.buffer_index}"


def _encode(
    restored,
    buffers,
    keras,
    say,
    index_arrays=(),
    compact_skeleton=True,
    packed=True,
    skeleton_dict=True,
    masked=True,
):
    """Encodes the weight buffers, and the index vectors of sparse tensors
    (`flatbuffer.sparse_index_arrays`), into ``(skeleton, sidecar, stats)``; segments
    carry Keras names."""
    segments = [
        encoder_lib.Segment(
            offset=b.offset,
            size=b.size,
            dtype=b.dtype,
            channels=b.channels,
            name=_segment_name(b, keras),
        )
        for b in buffers
        if b.size > 0
    ]
    by_index = {b.buffer_index: b for b in buffers}
    for array in index_arrays:  # sorted indices: DELTA (7.9)
        owner = by_index.get(array.buffer_index)
        label = _segment_name(owner, keras) if owner else f"buffer_{array.buffer_index}"
        dtype = "int16" if array.dtype == "uint16" else array.dtype  # the format's 2-byte type
        segments.append(
            encoder_lib.Segment(array.offset, array.size, dtype, 1, f"{label} {array.field}")
        )
    segments.sort(key=lambda seg: seg.offset)
    say(f"keras-dc: encoding {len(segments)} weight buffers...")
    return encoder_lib.build_bundle(
        restored,
        segments,
        compact_skeleton=compact_skeleton,
        packed=packed,
        skeleton_dict=skeleton_dict,
        masked=masked,
    )


def _kernel_labels(tree, buffers, keras):
    """``[(flatbuffer.WeightKernel, layer label)]``: each weight-reading op of the
    restored file (`tree`, its `flatbuffer.unpack`), named by the Keras variable its
    weight buffer holds."""
    by_index = {b.buffer_index: b for b in buffers}
    found = []
    for k in flatbuffer.weight_kernels(tree):
        owner = by_index.get(k.buffer_index)
        found.append((k, _segment_name(owner, keras) if owner else ""))
    return found


def _check_restores(skeleton, sidecar, restored):
    """Restores the encoded bundle and checks it is `restored`, byte for byte."""
    again = decoder_lib.restore_bytes(skeleton, sidecar)
    if again != restored:  # pragma: no cover - the sidecar's own hash check guards this
        raise RuntimeError("internal error: the restored flatbuffer differs from the encoded one.")


def _compare_with_keras(model, restored, samples, say, int8=False):
    """Runs `restored` in LiteRT and the model in Keras: ``(max |diff|, max scaled |diff|)``.

    Scaled by ``1 + |Keras|``, or for `int8` by the range of the Keras outputs
    (`converters.quantized.output_error`)."""
    names = litert.keras_input_names(model)
    batches = samples.batches_for(restored, names)
    reference = litert.keras_outputs(model, batches)
    if int8:
        diff, scaled = quantized.output_error(quantized.run(restored, batches, names), reference)
    else:
        diff, scaled = litert.compare_outputs(litert.run(restored, batches, names), reference)
    distinct = np.unique(np.concatenate([np.ravel(o) for batch in reference for o in batch]))
    if distinct.size < 3:
        say(
            "keras-dc: WARNING the model's outputs on the verification inputs take only "
            f"{distinct.size} distinct values (saturated?), so the LiteRT comparison says little; "
            "pass sample_inputs= with realistic data."
        )
    return diff, scaled


def _int8_section(options, int8_tflite_bytes, scaled, int8_weights):
    """The report's ``int8`` section (None for float bundles)."""
    if not options.int8:
        return None
    return {
        "int8_io": options.int8_io,
        "int8_tflite_bytes": int8_tflite_bytes,
        "max_diff_over_output_range": float(scaled),
        "tolerance": options.tolerance,
        "weights": [w.as_dict() for w in int8_weights],
    }


def _bundle_files(
    directory, name, skeleton, sidecar, report, restored, buffers, *, picture, keep_tflite
):
    """``{path: bytes}`` of every file of the bundle directory."""
    skeleton_path, sidecar_path = files.paths_for(directory, name)
    reports = files.report_paths(directory, name)
    out = {
        skeleton_path: skeleton,
        sidecar_path: sidecar,
        reports["json"]: json.dumps(report, indent=2).encode(),
        reports["txt"]: report_lib.format_report(report).encode(),
    }
    if keep_tflite:
        out[os.path.join(directory, name + ".tflite")] = restored
    if picture:
        png = report_lib.render_picture(report, restored, buffers)
        if png is not None:
            out[reports["png"]] = png
    return out


def convert(
    model_or_path,
    directory,
    *,
    name="model",
    float16=False,
    sparse=False,
    int8=False,
    representative_data=None,
    int8_io=False,
    layout="offset",
    sample_inputs=None,
    num_samples=8,
    seed=0,
    batch_size=1,
    strict_delegate=False,
    picture=True,
    keep_tflite=False,
    compare_codecs=None,
    compact_skeleton=True,
    packed=True,
    skeleton_dict=True,
    masked=True,
    strip_names=True,
    strip_metadata=True,
    verbose=1,
):
    """Converts a Keras model into a verified mobile bundle.

    Steps: convert with the real TFLite converter (builtin ops only, static
    shapes) → check delegate compatibility → move the weight buffers out of
    the flatbuffer (``layout``) → encode each buffer into the sidecar
    (clustered buffers as codebook + Huffman-coded indices and gaps; others
    raw or zlib) → restore the bundle from the encoded bytes and check it is
    byte-identical → run it in the LiteRT interpreter and compare with the
    Keras model (float32: every output within 1e-5 × (1 + |Keras output|);
    float16 weights: 1e-2; int8: within `converters.quantized.TOLERANCE` (5%) of
    the range of the Keras outputs) → write the files atomically with a report.

    Args:
        model_or_path: An in-memory Keras 3 model, a ``.keras`` path, or a tf_keras
            model (tfmot-pruned/clustered models after ``strip_*``).
        directory: Output directory (created; existing bundle files are replaced).
        name: File name stem. Defaults to `"model"`.
        float16: Store weights as float16 (the GPU delegate folds the
            DEQUANTIZE ops). Defaults to `False` (float32).
        sparse: Convert with `Optimize.EXPERIMENTAL_SPARSITY`, so that weights
            with enough zeros become TFLite sparse tensors (their non-zero
            values in the buffer, the index arrays in the flatbuffer). Dense
            kernels block-pruned with ``keras_dc.MagnitudePruning(block="litert")``
            then run LiteRT's sparse FULLY_CONNECTED kernel on the CPU; the
            report lists the sparse weights (``sparse_tensors``). The GPU
            delegate densifies sparse tensors, so the delegate check flags them.
            Defaults to `False`.
        int8: Full-integer int8 post-training quantization (docs/int8.md): int8
            weights per output channel with zero point 0 (pruned zeros stay 0,
            clustered channels keep at most 2^bits non-zero values), int32 biases,
            int8 activations calibrated on `representative_data`. The report gains
            an ``int8`` section (zeros and distinct values per channel of each
            weight). Not with `float16` or `sparse`. Defaults to `False`.
        representative_data: Required with `int8`: real inputs (an array with
            samples first, or a list of arrays in input order for several inputs).
            The first 100 batches of `batch_size` samples calibrate the activations;
            the first `num_samples` batches also verify the bundle when
            `sample_inputs` is None. Defaults to `None`.
        int8_io: With `int8`, int8 inputs and outputs as well (quantize with the
            input tensor's scale and zero point). Defaults to `False`: float32
            inputs and outputs.
        layout: "offset" (weights behind the flatbuffer via ``Buffer.offset``, a
            skeleton of a few KB that fails loudly if run unrestored) or "inline"
            (weights at their usual places, for runtimes that ignore
            ``Buffer.offset``, e.g. TFLite Micro). Defaults to `"offset"`.
        sample_inputs: Inputs to compare LiteRT with Keras: a list of batches, each
            a list of arrays in input order (batch size as converted). Defaults
            to `num_samples` random batches.
        num_samples: Verification batches when ``sample_inputs`` is None (random,
            or the first ones of `representative_data` for `int8`).
        seed: Seed of the random verification inputs.
        batch_size: Static batch size of the converted model. Defaults to `1`.
        strict_delegate: Raise instead of warn when the delegate check finds
            problems (the GPU profile; the int8 accelerator profile for `int8`).
            Defaults to `False`.
        picture: Also write NAME.report.png (needs matplotlib). Defaults to `True`.
        keep_tflite: Also write the restored NAME.tflite. Defaults to `False`.
        compare_codecs: Also report gzip -9 and zstd -19 sizes of the restored
            ``.tflite`` (the peers' way of measuring). Defaults to `None`: only
            for restored files up to 16 MiB (zstd -19 of 100 MB takes minutes).
        compact_skeleton: Move the parts of the skeleton that zlib shrinks by more than
            a segment entry into ZLIB segments of the sidecar (docs/bundle-format.md
            section 13; readable by every v1.0 reader). The skeleton file may then be
            empty. The report lists them as ``skeleton_segments``. Defaults to `True`.
        packed: Write the sidecar as one PACKED segment (format 1.4, docs/bundle-format.md
            section 7.10) whose parts are the weight buffers and the flatbuffer bytes
            between them, when that makes the bundle smaller: no segment-table entry
            or name per buffer, 3–6-byte stream headers. A 1.4 reader is needed (the
            Java restorer of this version). The sidecar then holds no names: the
            report, which has them, lists the parts by Keras variable, and the
            flatbuffer ranges as ``skeleton_segments``; with ``compact_skeleton=False``
            the flatbuffer head stays in the skeleton file. `False` writes the 1.0–1.3
            file. Defaults to `True`.
        skeleton_dict: Code the flatbuffer ranges of the sidecar with zlib and the
            format's preset dictionary of flatbuffer material (ZLIB_DICT, format 1.5,
            docs/bundle-format.md section 7.11) where that is smaller than plain zlib:
            ~250 B less for a LeNet. A 1.5 reader is needed (the Java restorer of this
            version). `False` writes the bytes of the 1.4 encoder. Defaults to `True`.
        masked: Code a weight buffer whose dead units leave whole rows or columns
            empty as MASKED (format 1.6, docs/bundle-format.md section 7.12: a row and
            a column mask, then the kept submatrix) where that is smaller: ~0.5 kB less
            for a LeNet-5 whose pruning emptied half of ip1's units. A 1.6 reader is
            needed (the Java restorer of this version). `False` writes the bytes of
            the 1.5 encoder. Defaults to `True`.
        strip_names: Blank the names of the flatbuffer's inner tensors (the
            converter's ``"model/ip1/MatMul;model/ip1/Relu;..."``; inputs, outputs
            and signatures keep theirs): runtimes never read them, and they are a
            large part of a small model's skeleton. The restored ``.tflite`` has the
            same size and runs the same; the report still names each buffer's
            tensor as converted. Defaults to `True`.
        strip_metadata: Drop what no runtime reads from the flatbuffer: the
            converter's description, its informational metadata
            (``min_runtime_version``, ``CONVERSION_METADATA``; other metadata
            stays) and the empty quantization tables of float tensors
            (`flatbuffer.drop_informational`). ~110 of the ~740 skeleton bytes of
            a compressed LeNet-300-100. With ``layout="offset"`` only (the inline
            layout keeps the converter's bytes). Defaults to `True`.
        verbose: 0 silent, 1 progress and the report table. Defaults to `1`.

    Returns:
        A `BundleResult`.

    Example:
        >>> result = converters.convert(model, "out/")
        >>> result.bundle_bytes, result.report["totals"]["ratio_vs_dense"]
    """
    options = _ExportOptions(
        float16=float16,
        sparse=sparse,
        batch_size=batch_size,
        layout=layout,
        int8=int8,
        int8_io=int8_io,
    )
    export.check_weight_options(
        float16=float16,
        sparse=sparse,
        int8=int8,
        int8_io=int8_io,
        representative_data=representative_data,
    )
    for flag, value in (
        ("strip_names", strip_names),
        ("strip_metadata", strip_metadata),
        ("packed", packed),
        ("skeleton_dict", skeleton_dict),
        ("masked", masked),
    ):
        if not isinstance(value, bool):
            raise TypeError(f"`{flag}` must be True or False, got {value!r}.")
    samples = _Samples(sample_inputs, num_samples, seed, representative_data if int8 else None)
    say = _printer(verbose)
    clock = _Stopwatch()

    with clock.step("convert_s"):
        model, flat, dense_bytes = _export(model_or_path, options, representative_data, say)
    int8_tflite_bytes = len(flat)
    profile = "int8" if int8 else "gpu"  # the profile that fits the bundle (docs/int8.md)
    problems = _check_delegate(flat, strict_delegate, say, profile)
    op_checks = delegate.check_ops(flat)
    with clock.step("layout_s"):
        restored, buffers = layout_lib.lay_out(
            flat, mode=layout, drop_informational=strip_metadata and layout == "offset"
        )
    del flat  # the model's size again: not needed after the layout
    tree = flatbuffer.unpack(restored)  # unpacked once: names are blanked below, not ops/shapes
    sparse_tensors = flatbuffer.sparse_weights(tree)
    with clock.step("encode_s"):
        variables = keras_names.model_variables(model)
        keras = keras_names.match_buffers(variables, buffers, restored)
        int8_weights = (
            quantized.weight_structure(buffers, keras, variables, restored) if int8 else []
        )
        if strip_names:
            restored = flatbuffer.strip_names(restored)
        index_arrays = flatbuffer.sparse_index_arrays(restored)
        skeleton, sidecar, stats = _encode(
            restored,
            buffers,
            keras,
            say,
            index_arrays,
            compact_skeleton,
            packed,
            skeleton_dict,
            masked,
        )
    say("keras-dc: restoring the bundle and running it in LiteRT...")
    with clock.step("restore_s"):
        _check_restores(skeleton, sidecar, restored)
    with clock.step("verify_s"):
        diff, scaled = _compare_with_keras(model, restored, samples, say, int8)
    if not scaled <= options.tolerance:
        measure = "the range of the Keras outputs" if int8 else "(1 + |Keras output|)"
        raise ValueError(
            f"verification failed: LiteRT output of the restored bundle differs from Keras by {diff:.3g} "
            f"(|diff| / {measure} = {scaled:.3g} > tolerance {options.tolerance:g})."
        )

    report = report_lib.build_report(
        buffers=buffers,
        stats=stats,
        keras_names=keras,
        skeleton_bytes=len(skeleton),
        sidecar_bytes=len(sidecar),
        restored=restored,
        dense_tflite_bytes=dense_bytes,
        float16=float16,
        layout=layout,
        max_abs_diff=diff,
        delegate_problems=problems,
        delegate_profile=profile,
        delegate_ops=op_checks,
        timings=clock.seconds,
        compare_codecs=compare_codecs,
        sparse_weights=sparse_tensors,
        sparse_index_offsets=[a.offset for a in index_arrays],
        weight_kernels=_kernel_labels(tree, buffers, keras) if sparse else (),
        int8=_int8_section(options, int8_tflite_bytes, scaled, int8_weights),
    )
    files.write_atomic(
        _bundle_files(
            directory,
            name,
            skeleton,
            sidecar,
            report,
            restored,
            buffers,
            picture=picture,
            keep_tflite=keep_tflite,
        )
    )
    skeleton_path, sidecar_path = files.bundle_paths(directory, name)
    say(report_lib.format_report(report))
    return BundleResult(
        directory,
        skeleton_path,
        sidecar_path,
        report,
        diff,
        problems,
        max_scaled_diff=scaled,
        sparse_tensors=sparse_tensors,
        int8_weights=int8_weights,
    )


def restore(directory, output_path=None, name=None):
    """Restores a bundle to the runnable ``.tflite`` bytes (and optionally a file).

    Raises `converters.FormatError` (naming the byte offset and field) when the
    skeleton or sidecar is corrupt, truncated, of another version, or the two
    do not belong together.

    Example:
        >>> model_bytes = converters.restore("out/")
        >>> interpreter = ai_edge_litert.interpreter.Interpreter(model_content=model_bytes)
    """
    skeleton, sidecar = files.load_bundle(directory, name)
    restored = decoder_lib.restore_bytes(skeleton, sidecar)
    if output_path is not None:
        files.write_atomic({output_path: restored})
    return restored


def verify(
    directory,
    model_or_path=None,
    *,
    name=None,
    sample_inputs=None,
    num_samples=8,
    seed=0,
    verbose=1,
):
    """Restores a bundle, runs it in LiteRT, and compares with the Keras model.

    Without a model, checks that the bundle restores (all checksums and the
    hash of the flatbuffer), that LiteRT loads and runs it, and that its
    outputs are finite.

    Returns:
        A dict: ``restored_bytes``, ``sha256``, ``max_abs_diff`` and
        ``max_scaled_diff`` (``|diff| / (1 + |Keras output|)``; both None without
        a model), ``delegate_problems``.

    Example:
        >>> converters.verify("out/", "model.keras")["max_abs_diff"] <= 1e-5
    """
    samples = _Samples(sample_inputs, num_samples, seed)
    restored = restore(directory, name=name)
    model = export.load_model(model_or_path) if model_or_path is not None else None
    names = litert.keras_input_names(model) if model is not None else ()
    if model is not None:
        mismatch = litert.signature_mismatch(model, restored)
        if mismatch:
            raise ValueError(
                f"the model does not fit this bundle ({mismatch}); "
                "it is not the model the bundle was converted from."
            )
    batches = samples.batches_for(restored, names)
    lite = litert.run(restored, batches, names)
    if not all(
        np.all(np.isfinite(o))
        for batch in lite
        for o in batch
        if np.issubdtype(o.dtype, np.floating)
    ):
        raise ValueError("the restored model produced non-finite outputs.")
    diff = scaled = None
    if model is not None:
        diff, scaled = litert.compare_outputs(lite, litert.keras_outputs(model, batches))
    problems = delegate.check_delegate_compatibility(restored)
    result = {
        "restored_bytes": len(restored),
        "sha256": hashlib.sha256(restored).hexdigest(),
        "max_abs_diff": diff,
        "max_scaled_diff": scaled,
        "delegate_problems": problems,
    }
    if verbose:
        print(json.dumps(result, indent=2), flush=True)
    return result
