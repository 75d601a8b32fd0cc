"""Keras model → mobile bundle (TFLite skeleton + Huffman-coded sidecar), and back.

A bundle is a directory::

    NAME.skeleton.tflite   the converted flatbuffer without its weight bytes
    NAME.dcw               the sidecar: the weights, clustered + Huffman-coded
    report.json            per-buffer and total figures (also report.txt, report.png)

`restore` turns the two files back into the runnable ``.tflite`` — byte for byte
the flatbuffer that `convert` verified in LiteRT — with plain byte copying and
decoding at offsets recorded in the sidecar (docs/bundle-format.md).
"""

import dataclasses
import json
import os
import tempfile
import time

import numpy as np

from converters import sidecar as sidecar_lib
from converters import tflite as tflite_lib

__all__ = ["convert", "restore", "verify", "BundleResult", "bundle_paths", "load_bundle"]

SKELETON_SUFFIX = ".skeleton.tflite"
_UMASK = os.umask(0)
os.umask(_UMASK)
SIDECAR_SUFFIX = ".dcw"


@dataclasses.dataclass
class BundleResult:
    """What `convert` wrote and measured.

    Attributes:
        directory: The bundle directory.
        skeleton_path, sidecar_path: The two files a phone downloads.
        report: The report dict (also written as report.json).
        max_abs_diff: Largest |LiteRT − Keras| over the verification inputs.
        max_scaled_diff: Largest |LiteRT − Keras| / (1 + |Keras|), the figure held
            to the tolerance (1e-5 float32, 1e-2 float16).
        delegate_problems: Problems found by the static delegate check (empty = compatible).
    """

    directory: str
    skeleton_path: str
    sidecar_path: str
    report: dict
    max_abs_diff: float
    delegate_problems: list
    max_scaled_diff: float = None

    @property
    def bundle_bytes(self):
        return self.report["totals"]["bundle_bytes"]


def bundle_paths(directory, name=None):
    """Finds ``(skeleton_path, sidecar_path)`` in a bundle directory."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"bundle directory {directory!r} does not exist.")
    if name is None:
        names = sorted(f[: -len(SIDECAR_SUFFIX)] for f in os.listdir(directory) if f.endswith(SIDECAR_SUFFIX))
        if len(names) != 1:
            raise ValueError(
                f"{directory!r} holds {len(names)} sidecars (*{SIDECAR_SUFFIX}); "
                "expected exactly one, or pass name=.")
        name = names[0]
    skeleton = os.path.join(directory, name + SKELETON_SUFFIX)
    sidecar = os.path.join(directory, name + SIDECAR_SUFFIX)
    for path in (skeleton, sidecar):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"bundle file {path!r} is missing.")
    return skeleton, sidecar


def load_bundle(directory, name=None):
    """Reads ``(skeleton bytes, sidecar bytes)`` of a bundle directory."""
    skeleton_path, sidecar_path = bundle_paths(directory, name)
    with open(skeleton_path, "rb") as f:
        skeleton = f.read()
    with open(sidecar_path, "rb") as f:
        sidecar = f.read()
    return skeleton, sidecar


def restore(directory, output_path=None, name=None):
    """Restores a bundle to the runnable ``.tflite`` bytes (and optionally a file).

    Raises `converters.FormatError` (naming the byte offset and field) when the
    skeleton or sidecar is corrupt, truncated, of another version, or the two
    do not belong together.

    Example:
        >>> model_bytes = converters.restore("out/")
        >>> interpreter = ai_edge_litert.interpreter.Interpreter(model_content=model_bytes)
    """
    skeleton, sidecar = load_bundle(directory, name)
    restored = sidecar_lib.restore(skeleton, sidecar)
    if output_path is not None:
        _write_atomic({output_path: restored})
    return restored


def _write_atomic(files):
    """Writes ``{path: bytes}``: all or nothing (temp files, then renames)."""
    temps = []
    try:
        for path, data in files.items():
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
            temps.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_UMASK)
        for tmp, path in temps:
            os.replace(tmp, path)
        temps = []
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.remove(tmp)


# --- running models ---------------------------------------------------------


def _interpreter(model_bytes):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    interpreter.allocate_tensors()
    return interpreter


def _keras_input_names(model):
    try:
        return [str(getattr(t, "name", "")).split(":")[0] for t in (model.inputs or [])]
    except (AttributeError, ValueError):
        return []


def _input_order(details, names):
    """For each flatbuffer input, the index of the matching Keras input.

    The converter may reorder inputs; its tensors are named after the Keras
    inputs (``serving_default_<name>:0``). Falls back to positional order.
    """
    if len(details) <= 1 or len(names) != len(details):
        return list(range(len(details)))
    order = []
    for d in details:
        tensor = d["name"].split(":")[0]
        hits = [i for i, n in enumerate(names) if n and (tensor == n or tensor.endswith("_" + n))]
        if len(hits) != 1 or hits[0] in order:
            return list(range(len(details)))
        order.append(hits[0])
    return order


def sample_inputs_for(model_bytes, count=8, seed=0, names=()):
    """Random inputs for a flatbuffer, as batches of arrays in the Keras model's input order."""
    rng = np.random.default_rng(seed)
    details = _interpreter(model_bytes).get_input_details()
    order = _input_order(details, list(names))
    batches = []
    for _ in range(count):
        batch = [None] * len(details)
        for d, k in zip(details, order):
            shape, dtype = tuple(d["shape"]), np.dtype(d["dtype"])
            if np.issubdtype(dtype, np.floating):
                batch[k] = rng.normal(size=shape).astype(dtype)
            else:
                batch[k] = rng.integers(0, 2, size=shape).astype(dtype)
        batches.append(batch)
    return batches


def run_litert(model_bytes, batches, names=()):
    """Runs each batch (arrays in the Keras model's input order) and returns the outputs."""
    interpreter = _interpreter(model_bytes)
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    order = _input_order(inputs, list(names))
    if batches and len(batches[0]) != len(inputs):
        raise ValueError(f"each sample batch needs {len(inputs)} arrays (one per model input), "
                         f"received {len(batches[0])}.")
    results = []
    for batch in batches:
        for d, k in zip(inputs, order):
            interpreter.set_tensor(d["index"], np.asarray(batch[k], dtype=d["dtype"]).reshape(d["shape"]))
        interpreter.invoke()
        results.append([interpreter.get_tensor(d["index"]).copy() for d in outputs])
    return results


def _keras_outputs(model, batches):
    results = []
    for batch in batches:
        out = model(batch[0] if len(batch) == 1 else list(batch), training=False)
        if isinstance(out, dict):
            out = [out[k] for k in sorted(out)]
        elif not isinstance(out, (list, tuple)):
            out = [out]
        results.append([np.asarray(o) for o in out])
    return results


def _compare(a_list, b_list):
    """``(max |a − b|, max |a − b| / (1 + |b|))`` over all outputs of all batches."""
    worst_abs = worst_rel = 0.0
    for a_batch, b_batch in zip(a_list, b_list):
        if len(a_batch) != len(b_batch):
            raise ValueError(f"LiteRT returned {len(a_batch)} outputs, Keras {len(b_batch)}.")
        # Output order may differ between Keras and the flatbuffer: match by shape.
        remaining = list(b_batch)
        for a in a_batch:
            candidates = [i for i, b in enumerate(remaining) if np.shape(b) == np.shape(a)]
            if not candidates:
                raise ValueError(f"no Keras output matches the LiteRT output of shape {np.shape(a)}.")
            diffs = []
            for i in candidates:
                ref = remaining[i].astype(np.float64)
                err = np.abs(a.astype(np.float64) - ref)
                diffs.append((float(np.max(err, initial=0.0)),
                              float(np.max(err / (1.0 + np.abs(ref)), initial=0.0))))
            best = int(np.argmin([d[0] for d in diffs]))
            worst_abs = max(worst_abs, diffs[best][0])
            worst_rel = max(worst_rel, diffs[best][1])
            remaining.pop(candidates[best])
    return worst_abs, worst_rel


# --- convert ----------------------------------------------------------------


def _tolerance(float16):
    """Allowed |LiteRT − Keras| / (1 + |Keras|): 1e-5 for float32 (so ≤ 1e-5 absolute
    for outputs below 1), 1e-2 for float16 weights."""
    return 1e-2 if float16 else 1e-5


def convert(model_or_path, directory, *, name="model", float16=False, layout="offset",
            sample_inputs=None, num_samples=8, seed=0, batch_size=1, strict_delegate=False,
            picture=True, keep_tflite=False, compare_codecs=None, verbose=1):
    """Converts a Keras model into a verified mobile bundle.

    Steps: convert with the real TFLite converter (builtin ops only, static
    shapes) → move the weight buffers out of the flatbuffer (``layout``) →
    encode each buffer into the sidecar (clustered buffers as codebook +
    Huffman-coded indices and gaps; others raw or zlib) → restore the bundle
    from the encoded bytes, check it is byte-identical, run it in the LiteRT
    interpreter and compare with the Keras model (float32: every output within
    1e-5 × (1 + |Keras output|); float16 weights: 1e-2) → check delegate
    compatibility → write the files atomically with a report.

    Args:
        model_or_path: An in-memory Keras 3 model, a ``.keras`` path, or a tf_keras
            model (tfmot-pruned/clustered models after ``strip_*``).
        directory: Output directory (created; existing bundle files are replaced).
        name: File name stem. Defaults to `"model"`.
        float16: Store weights as float16 (the GPU delegate folds the
            DEQUANTIZE ops). Defaults to `False` (float32).
        layout: "offset" (weights behind the flatbuffer via ``Buffer.offset``, a
            skeleton of a few KB that fails loudly if run unrestored) or "inline"
            (weights at their usual places, for runtimes that ignore
            ``Buffer.offset``, e.g. TFLite Micro). Defaults to `"offset"`.
        sample_inputs: Inputs to compare LiteRT with Keras: a list of batches, each
            a list of arrays in input order (batch size as converted). Defaults
            to `num_samples` random batches.
        num_samples: Random verification batches when ``sample_inputs`` is None.
        seed: Seed of the random verification inputs.
        batch_size: Static batch size of the converted model. Defaults to `1`.
        strict_delegate: Raise instead of warn when the delegate check finds
            problems. Defaults to `False`.
        picture: Also write report.png (needs matplotlib). Defaults to `True`.
        keep_tflite: Also write the restored NAME.tflite. Defaults to `False`.
        compare_codecs: Also report gzip -9 and zstd -19 sizes of the restored
            ``.tflite`` (the peers' way of measuring). Defaults to `None`: only
            for restored files up to 16 MiB (zstd -19 of 100 MB takes minutes).
        verbose: 0 silent, 1 progress and the report table. Defaults to `1`.

    Returns:
        A `BundleResult`.

    Example:
        >>> result = converters.convert(model, "out/")
        >>> result.bundle_bytes, result.report["totals"]["ratio_vs_dense"]
    """
    if layout not in ("offset", "inline"):
        raise ValueError(f"layout must be 'offset' or 'inline', received {layout!r}.")
    say = (lambda msg: print(msg, flush=True)) if verbose else (lambda msg: None)
    t0 = time.perf_counter()
    model = tflite_lib.load_model(model_or_path)
    say("keras-dc: converting with the TFLite converter (builtin ops only)...")
    flat = tflite_lib.convert(model, float16=float16, batch_size=batch_size)
    dense_bytes = len(flat) if not float16 else len(tflite_lib.convert(model, float16=False, batch_size=batch_size))
    t_convert = time.perf_counter() - t0

    problems = tflite_lib.check_delegate_compatibility(flat)
    if problems:
        message = "delegate check: " + "; ".join(problems)
        if strict_delegate:
            raise ValueError(message)
        say("keras-dc: WARNING " + message)

    t1 = time.perf_counter()
    restored, buffers = tflite_lib.layout(flat, mode=layout)
    del flat  # the model's size again: not needed after the layout
    t_layout = time.perf_counter() - t1
    segments = [
        sidecar_lib.Segment(offset=b.offset, size=b.size, dtype=b.dtype, channels=b.channels,
                            name=(b.tensor_names[0] if b.tensor_names else f"buffer_{b.buffer_index}"))
        for b in buffers if b.size > 0
    ]
    say(f"keras-dc: encoding {len(segments)} weight buffers...")
    t1 = time.perf_counter()
    skeleton, sidecar, stats = sidecar_lib.build_bundle(restored, segments)
    t_encode = time.perf_counter() - t1

    say("keras-dc: restoring the bundle and running it in LiteRT...")
    t2 = time.perf_counter()
    again = sidecar_lib.restore(skeleton, sidecar)
    t_restore = time.perf_counter() - t2
    if again != restored:  # pragma: no cover - the sidecar's own hash check guards this
        raise RuntimeError("internal error: the restored flatbuffer differs from the encoded one.")
    del again  # byte-identical to `restored`: keep one copy
    t3 = time.perf_counter()
    names = _keras_input_names(model)
    if sample_inputs is None:
        sample_inputs = sample_inputs_for(restored, num_samples, seed, names)
    lite = run_litert(restored, sample_inputs, names)
    reference = _keras_outputs(model, sample_inputs)
    diff, scaled = _compare(lite, reference)
    distinct = np.unique(np.concatenate([np.ravel(o) for batch in reference for o in batch]))
    if distinct.size < 3:
        say("keras-dc: WARNING the model's outputs on the verification inputs take only "
            f"{distinct.size} distinct values (saturated?), so the LiteRT comparison says little; "
            "pass sample_inputs= with realistic data.")
    t_verify = time.perf_counter() - t3
    if not scaled <= _tolerance(float16):
        raise ValueError(
            f"verification failed: LiteRT output of the restored bundle differs from Keras by {diff:.3g} "
            f"(|diff| / (1 + |Keras output|) = {scaled:.3g} > tolerance {_tolerance(float16):g}).")

    from converters import report as report_lib

    report = report_lib.build_report(
        buffers=buffers, stats=stats, skeleton_bytes=len(skeleton), sidecar_bytes=len(sidecar),
        restored=restored, dense_tflite_bytes=dense_bytes, float16=float16, layout=layout,
        max_abs_diff=diff, delegate_problems=problems,
        timings={"convert_s": t_convert, "layout_s": t_layout, "encode_s": t_encode,
                 "restore_s": t_restore, "verify_s": t_verify},
        compare_codecs=compare_codecs)
    files = {
        os.path.join(directory, name + SKELETON_SUFFIX): skeleton,
        os.path.join(directory, name + SIDECAR_SUFFIX): sidecar,
        os.path.join(directory, "report.json"): json.dumps(report, indent=2).encode(),
        os.path.join(directory, "report.txt"): report_lib.format_report(report).encode(),
    }
    if keep_tflite:
        files[os.path.join(directory, name + ".tflite")] = restored
    if picture:
        png = report_lib.render_picture(report, restored, buffers)
        if png is not None:
            files[os.path.join(directory, "report.png")] = png
    _write_atomic(files)
    skeleton_path, sidecar_path = bundle_paths(directory, name)
    say(report_lib.format_report(report))
    return BundleResult(directory, skeleton_path, sidecar_path, report, diff, problems, max_scaled_diff=scaled)


def verify(directory, model_or_path=None, *, name=None, sample_inputs=None, num_samples=8,
           seed=0, verbose=1):
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
    import hashlib

    restored = restore(directory, name=name)
    model = tflite_lib.load_model(model_or_path) if model_or_path is not None else None
    names = _keras_input_names(model) if model is not None else ()
    if sample_inputs is None:
        sample_inputs = sample_inputs_for(restored, num_samples, seed, names)
    lite = run_litert(restored, sample_inputs, names)
    if not all(np.all(np.isfinite(o)) for batch in lite for o in batch if np.issubdtype(o.dtype, np.floating)):
        raise ValueError("the restored model produced non-finite outputs.")
    diff = scaled = None
    if model is not None:
        diff, scaled = _compare(lite, _keras_outputs(model, sample_inputs))
    problems = tflite_lib.check_delegate_compatibility(restored)
    result = {"restored_bytes": len(restored), "sha256": hashlib.sha256(restored).hexdigest(),
              "max_abs_diff": diff, "max_scaled_diff": scaled, "delegate_problems": problems}
    if verbose:
        print(json.dumps(result, indent=2), flush=True)
    return result
