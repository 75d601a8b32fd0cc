"""Which variables the callbacks compress, and which per-layer override applies to each.

A variable is *compressible* when it is trainable, floating point, has at least
two dimensions (kernels of Dense/Conv/EinsumDense/RNN layers, embeddings), at
least ``min_size`` entries, and is not a bias. Biases are recognised by their
name (``bias``), whatever their rank: GRU's ``(2, 3 * units)`` bias and the
multi-axis biases of EinsumDense (inside MultiHeadAttention too) are 2-D.
Normalisation parameters are 1-D. No layer registry is involved: what counts is
what the variable is.

Per-layer overrides are keyed by objects: a layer (applies to every compressible
variable inside it, nested layers included), a variable, or a layer's exact
name. The most specific key wins: variable, then the innermost layer.

The biases of the layers whose kernels are compressed (`layer_biases`) are found
the same way: the variables named ``bias`` of the innermost layer holding each
kernel.

Only reads the model (Keras 3 or tf_keras); nothing here changes it.
"""

import numpy as np

from keras_dc._validate import as_int

__all__ = [
    "compressible_variables",
    "layer_biases",
    "variable_path",
    "override_items",
    "resolve_overrides",
]


def variable_path(variable):
    """A readable, unique-ish name of a variable (``dense_1/kernel``)."""
    path = getattr(variable, "path", None)
    if path:
        return path
    name = variable.name
    return name[:-2] if name.endswith(":0") else name


def _is_bias(variable):
    """True for a variable named ``bias`` (Keras 3 ``.../bias``, tf_keras ``.../bias:0``)."""
    return variable_path(variable).rsplit("/", 1)[-1] == "bias"


def _is_floating(dtype):
    """True for a floating-point dtype, given as Keras 3 names it (a string) or a tf.DType."""
    name = str(getattr(dtype, "name", dtype))
    return name.startswith(("float", "bfloat"))


def _walk_layers(layer, seen=None):
    """Yields ``layer`` and every layer nested in it, each once."""
    seen = set() if seen is None else seen
    if id(layer) in seen:
        return
    seen.add(id(layer))
    yield layer
    children = []
    for attr in ("_layers", "layers"):
        try:
            value = getattr(layer, attr, None)
        except Exception:  # some properties raise on unbuilt models
            value = None
        if value:
            children = list(value)
            break
    for child in children:
        if hasattr(child, "trainable_weights"):
            yield from _walk_layers(child, seen)


def compressible_variables(model, min_size=256):
    """Lists the model's variables that the callbacks compress.

    Args:
        model: A built Keras model (Keras 3 or tf_keras).
        min_size: Smallest number of entries a variable must have. Defaults to `256`.

    Returns:
        A list of variables in the model's order, without duplicates (a layer
        shared by two branches of a functional model appears once).

    Example:
        >>> model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(300)])
        >>> [variable_path(v) for v in compressible_variables(model)]
        ['sequential/dense/kernel']
    """
    min_size = as_int(min_size, "min_size", 1)
    seen = set()
    selected = []
    for variable in model.trainable_weights:
        if id(variable) in seen:
            continue
        seen.add(id(variable))
        shape = tuple(variable.shape)
        if not _is_floating(variable.dtype) or len(shape) < 2 or _is_bias(variable):
            continue
        if int(np.prod(shape)) < min_size:
            continue
        selected.append(variable)
    return selected


def layer_biases(model, kernels):
    """The biases of the layers that hold ``kernels``.

    A kernel's layer is the innermost layer whose trainable weights include it
    (the ``EinsumDense`` inside a ``MultiHeadAttention``, the cell of an RNN);
    its biases are its trainable floating-point variables named ``bias``,
    whatever their rank.

    Args:
        model: A built Keras model (Keras 3 or tf_keras).
        kernels: Variables of the model, e.g. from `compressible_variables`.

    Returns:
        ``[(kernel, [bias, ...]), ...]`` in the order of ``kernels``; each bias
        is listed once, with the first kernel of its layer (later kernels of the
        same layer, such as an RNN cell's recurrent kernel, get ``[]``).

    Example:
        >>> model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(300)])
        >>> [[variable_path(b) for b in biases]
        ...  for _, biases in layer_biases(model, compressible_variables(model))]
        [['sequential/dense/bias']]
    """
    innermost = {}  # id(kernel) -> (number of trainable weights, layer)
    wanted = {id(k) for k in kernels}
    for layer in _walk_layers(model):
        weights = layer.trainable_weights
        for w in weights:
            if id(w) in wanted and (id(w) not in innermost or len(weights) < innermost[id(w)][0]):
                innermost[id(w)] = (len(weights), layer)
    seen = set()
    pairs = []
    for kernel in kernels:
        biases = []
        if id(kernel) in innermost:
            for w in innermost[id(kernel)][1].trainable_weights:
                if id(w) not in seen and _is_bias(w) and _is_floating(w.dtype):
                    seen.add(id(w))
                    biases.append(w)
        pairs.append((kernel, biases))
    return pairs


def override_items(overrides, who):
    """``(key, value)`` pairs of overrides given as a dict or a list of pairs.

    Keras variables are not hashable, so overrides keyed by variables come as a
    list of ``(variable, value)`` pairs.

    Args:
        overrides: ``None``, a dict, or a list of ``(key, value)`` pairs.
        who: Callback name for error messages.

    Returns:
        A list of ``(key, value)`` pairs (empty for ``None``).
    """
    if overrides is None:
        return []
    if isinstance(overrides, dict):
        return list(overrides.items())
    if isinstance(overrides, (list, tuple)) and all(
        isinstance(item, (list, tuple)) and len(item) == 2 for item in overrides
    ):
        return [tuple(item) for item in overrides]
    raise TypeError(
        f"{who}: overrides must be a dict {{layer or layer name: value}} or a list of "
        f"(layer or variable, value) pairs, received {type(overrides).__name__}."
    )


def _layer_name_index(model):
    index = {}
    for layer in _walk_layers(model):
        index.setdefault(layer.name, layer)
    return index


def resolve_overrides(model, variables, overrides, convert, who):
    """Maps every selected variable to its per-layer override, if any.

    Args:
        model: The model being trained.
        variables: The selected variables.
        overrides: ``None`` or a dict ``{layer | variable | layer name: value}``
            (or a list of such pairs).
        convert: Validates/converts an override value (``value -> value``).
        who: Callback name for error messages.

    Returns:
        ``{id(variable): converted value}`` for variables that have an override.
        Values may be ``None`` (meaning: leave this variable alone).
    """
    if not overrides:
        return {}
    items = override_items(overrides, who)
    names = _layer_name_index(model)
    model_var_ids = {id(v) for v in model.weights}
    selected_ids = {id(v) for v in variables}
    var_level, layer_level = {}, []
    for key, value in items:
        value = convert(value)
        if isinstance(key, str):
            if key not in names:
                close = sorted(names)[:20]
                raise ValueError(
                    f"{who}: overrides name a layer {key!r} that does not exist in model "
                    f"{model.name!r}. Layer names are: {close}."
                )
            key = names[key]
        if hasattr(key, "trainable_weights") and hasattr(key, "name"):  # a layer
            if key is not model and id(key) not in {id(layer) for layer in _walk_layers(model)}:
                raise ValueError(
                    f"{who}: the layer {key.name!r} given in overrides is not part of model "
                    f"{model.name!r}. Pass layers of the model being trained."
                )
            weights = [w for w in key.trainable_weights if id(w) in selected_ids]
            if not weights:
                raise ValueError(
                    f"{who}: the layer {key.name!r} given in overrides has no compressible "
                    "weights (kernels/embeddings with at least min_size entries)."
                )
            layer_level.append((len(key.trainable_weights), [id(w) for w in weights], value))
        elif hasattr(key, "shape") and hasattr(key, "assign"):  # a variable
            if id(key) not in model_var_ids:
                raise ValueError(
                    f"{who}: the variable {variable_path(key)!r} given in overrides is not a "
                    f"weight of model {model.name!r}."
                )
            if id(key) not in selected_ids:
                raise ValueError(
                    f"{who}: the variable {variable_path(key)!r} given in overrides is not "
                    "compressible (it must be a trainable float kernel/embedding with at least "
                    "min_size entries)."
                )
            var_level[id(key)] = value
        else:
            raise TypeError(
                f"{who}: override keys must be layers, variables or layer names, "
                f"received {key!r} of type {type(key).__name__}."
            )
    resolved = {}
    # Outer layers first so inner (smaller) layers overwrite them.
    for _, ids, value in sorted(layer_level, key=lambda item: -item[0]):
        for vid in ids:
            resolved[vid] = value
    resolved.update(var_level)
    return resolved
