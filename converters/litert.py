"""The LiteRT harness: runs a flatbuffer on sample inputs beside its Keras model.

`convert` and `verify` (converters.bundle) use it to check a bundle the way a
phone would run it: random inputs shaped for the flatbuffer
(`sample_inputs_for`), LiteRT's outputs for them (`run`), the Keras model's
outputs for the same inputs (`keras_outputs`), and the largest difference
between the two (`compare_outputs`). Inputs travel as batches: one list of
arrays per batch, in the Keras model's input order, which the converter may
have changed in the flatbuffer.
"""

import numpy as np

__all__ = [
    "keras_input_names",
    "signature_mismatch",
    "sample_inputs_for",
    "run",
    "keras_outputs",
    "compare_outputs",
    "median_invoke_seconds",
]


def _interpreter(model_bytes):
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top

    interpreter = Interpreter(model_content=model_bytes)
    interpreter.allocate_tensors()
    return interpreter


def keras_input_names(model):
    """The names of the Keras model's inputs, in its order ([] when unknown)."""
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


def _keras_signature(model):
    signature = []
    for t in model.inputs or []:
        shape = tuple(None if d is None else int(d) for d in t.shape)
        signature.append((shape, np.dtype(getattr(t.dtype, "name", t.dtype)).name))
    return signature


def signature_mismatch(model, model_bytes):
    """Why the Keras model's inputs do not fit the flatbuffer's, or None when they do.

    Shapes are compared dimension by dimension (a Keras ``None`` fits any size),
    with dtypes, in the Keras model's input order.

    Example:
        >>> litert.signature_mismatch(model, restored)
        "input 0: the model takes (1, 9) float32, the bundle (1, 8) float32"
    """
    try:
        keras = _keras_signature(model)
    except (AttributeError, TypeError, ValueError):
        return None  # a model without symbolic inputs (subclassed, not built): nothing to compare
    details = _interpreter(model_bytes).get_input_details()
    if len(keras) != len(details):
        return f"the model takes {len(keras)} inputs, the bundle {len(details)}"
    order = _input_order(details, keras_input_names(model))
    lite = [None] * len(details)
    for d, k in zip(details, order):
        lite[k] = (tuple(int(n) for n in d["shape"]), np.dtype(d["dtype"]).name)
    for i, ((shape, dtype), (lite_shape, lite_dtype)) in enumerate(zip(keras, lite)):
        fits = len(shape) == len(lite_shape) and all(
            a is None or a == b for a, b in zip(shape, lite_shape)
        )
        if not fits or dtype != lite_dtype:
            return (
                f"input {i}: the model takes {shape} {dtype}, the bundle {lite_shape} {lite_dtype}"
            )
    return None


def sample_inputs_for(model_bytes, count=8, seed=0, names=()):
    """Random inputs for a flatbuffer, as batches of arrays in the Keras model's input order.

    Args:
        model_bytes: The flatbuffer.
        count: Number of batches. Defaults to `8`.
        seed: Seed of the generator. Defaults to `0`.
        names: The Keras model's input names (`keras_input_names`), used to
            match the flatbuffer's inputs; `()` keeps the flatbuffer's order.

    Returns:
        `count` lists of arrays: standard normal floats, 0/1 for other types.
    """
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


def run(model_bytes, batches, names=()):
    """Runs each batch (arrays in the Keras model's input order) in LiteRT.

    Returns:
        One list of output arrays per batch, in the flatbuffer's output order.

    Raises:
        ValueError: A batch does not hold one array per model input.
    """
    interpreter = _interpreter(model_bytes)
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    order = _input_order(inputs, list(names))
    if batches and len(batches[0]) != len(inputs):
        raise ValueError(
            f"each sample batch needs {len(inputs)} arrays (one per model input), "
            f"received {len(batches[0])}."
        )
    results = []
    for batch in batches:
        for d, k in zip(inputs, order):
            interpreter.set_tensor(
                d["index"], np.asarray(batch[k], dtype=d["dtype"]).reshape(d["shape"])
            )
        interpreter.invoke()
        results.append([interpreter.get_tensor(d["index"]).copy() for d in outputs])
    return results


def keras_outputs(model, batches):
    """The Keras model's outputs (inference mode) for each batch, as lists of arrays.

    A dict output is listed in the order of its sorted keys.
    """
    results = []
    for batch in batches:
        out = model(batch[0] if len(batch) == 1 else list(batch), training=False)
        if isinstance(out, dict):
            out = [out[k] for k in sorted(out)]
        elif not isinstance(out, (list, tuple)):
            out = [out]
        results.append([np.asarray(o) for o in out])
    return results


def compare_outputs(lite, reference):
    """``(max |a − b|, max |a − b| / (1 + |b|))`` over all outputs of all batches.

    The output order of the flatbuffer may differ from the Keras model's, so
    each LiteRT output `a` is compared with the closest remaining Keras output
    `b` of the same shape.

    Args:
        lite: Outputs of `run`.
        reference: Outputs of `keras_outputs` for the same batches.

    Raises:
        ValueError: The two disagree on the number or shapes of the outputs.
    """
    worst_abs = worst_rel = 0.0
    for a_batch, b_batch in zip(lite, reference):
        if len(a_batch) != len(b_batch):
            raise ValueError(f"LiteRT returned {len(a_batch)} outputs, Keras {len(b_batch)}.")
        remaining = list(b_batch)
        for a in a_batch:
            candidates = [i for i, b in enumerate(remaining) if np.shape(b) == np.shape(a)]
            if not candidates:
                raise ValueError(
                    f"no Keras output matches the LiteRT output of shape {np.shape(a)}."
                )
            diffs = []
            for i in candidates:
                ref = remaining[i].astype(np.float64)
                err = np.abs(a.astype(np.float64) - ref)
                diffs.append(
                    (
                        float(np.max(err, initial=0.0)),
                        float(np.max(err / (1.0 + np.abs(ref)), initial=0.0)),
                    )
                )
            best = int(np.argmin([d[0] for d in diffs]))
            worst_abs = max(worst_abs, diffs[best][0])
            worst_rel = max(worst_rel, diffs[best][1])
            remaining.pop(candidates[best])
    return worst_abs, worst_rel


def median_invoke_seconds(models, repeats, threads=1, warmup=20, seed=0):
    """Median wall time of one ``invoke()`` of each flatbuffer, the models invoked in turn.

    Each model gets its own interpreter (``threads`` threads) and one random input
    (standard normal, the input's static shape) set once; after ``warmup`` invokes each,
    the models are invoked one after the other ``repeats`` times, so that the load of a
    shared machine falls on all of them alike.

    Example:
        >>> sparse_s, dense_s = litert.median_invoke_seconds([sparse, dense], repeats=300)
    """
    import time

    from ai_edge_litert.interpreter import Interpreter

    interpreters = []
    for content in models:
        interpreter = Interpreter(model_content=content, num_threads=threads)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        x = np.random.default_rng(seed).normal(size=detail["shape"]).astype(np.float32)
        interpreter.set_tensor(detail["index"], x)
        for _ in range(warmup):
            interpreter.invoke()
        interpreters.append(interpreter)
    times = [[] for _ in interpreters]
    for _ in range(repeats):
        for interpreter, bucket in zip(interpreters, times):
            start = time.perf_counter()
            interpreter.invoke()
            bucket.append(time.perf_counter() - start)
    return [float(np.median(bucket)) for bucket in times]
