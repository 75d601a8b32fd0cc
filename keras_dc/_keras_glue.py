"""What the callbacks do to a Keras model during fit: constraints, state, steps.

A compression callback installs a constraint on each selected variable (the
optimizer applies it after every update), keeps its masks or centroids in
non-trainable variables beside the model, makes the train function retrace so
the constraints take effect, and counts optimizer steps. Works with Keras 3
(TensorFlow backend) and with tf_keras.
"""

import numpy as np
import tensorflow as tf

__all__ = [
    "check_model",
    "install",
    "uninstall",
    "make_state_variable",
    "read",
    "retrace",
    "optimizer_step",
    "keras_of",
    "steps_per_epoch",
    "execution_steps",
]


def keras_of(model):
    """The Keras package `model` belongs to: Keras 3, or tf_keras for a legacy model."""
    if type(model).__module__.startswith("tf_keras"):
        import tf_keras

        return tf_keras
    import keras

    return keras


def check_model(model, who):
    """Raises a clear error when ``model`` cannot be compressed during fit."""
    if model is None:
        raise ValueError(
            f"{who} was not attached to a model; pass it to model.fit(callbacks=[...])."
        )
    if not getattr(model, "built", False):
        raise ValueError(
            f"{who}: the model {model.name!r} is not built, so its weights do not exist yet. "
            "Build it first: give it a `keras.Input(shape=...)`, call `model.build(input_shape)`, "
            "or call it once on a batch of data."
        )
    if getattr(model, "optimizer", None) is None:
        raise ValueError(
            f"{who}: the model {model.name!r} is not compiled; call model.compile() first."
        )


# A constraint installed here has an ``inner`` attribute: the constraint that was
# on the variable before it, applied first. Uninstalling unlinks it from that chain.


def _set_constraint(variable, constraint):
    if hasattr(variable, "path") and hasattr(variable, "_value"):  # a Keras 3 variable
        variable.constraint = constraint
    else:  # tf.Variable (tf_keras): read-only property backed by _constraint
        variable._constraint = constraint


def install(variable, constraint):
    """Installs ``constraint`` on top of the variable's current constraint."""
    constraint.inner = variable.constraint
    _set_constraint(variable, constraint)


def uninstall(variable, constraint):
    """Removes ``constraint`` from the variable's constraint chain, wherever it is."""
    current = variable.constraint
    if current is constraint:
        _set_constraint(variable, constraint.inner)
        return
    node = current
    while node is not None and hasattr(node, "inner"):
        if node.inner is constraint:
            node.inner = constraint.inner
            return
        node = node.inner


def make_state_variable(model, value, dtype, name):
    """A non-trainable tf.Variable living beside the model (mirrored under a strategy)."""
    strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    with strategy.scope():
        return tf.Variable(
            tf.constant(value, dtype=dtype),
            trainable=False,
            name=name,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )


def read(variable):
    """The variable's value as a NumPy array."""
    return np.asarray(variable.numpy())


def retrace(model):
    """Makes the next train step retrace, so newly installed constraints take effect."""
    maker = getattr(model, "make_train_function", None)
    if maker is not None:
        maker(force=True)


def optimizer_step(model):
    """The optimizer's iteration count (the global step)."""
    return int(np.asarray(model.optimizer.iterations.numpy()))


def steps_per_epoch(params):
    """Steps per epoch from the callback params, or None when unknown."""
    steps = (params or {}).get("steps")
    return int(steps) if steps else None


def execution_steps(model):
    """Optimizer steps run per train-function call (``steps_per_execution``)."""
    spe = getattr(model, "steps_per_execution", None)
    if spe is None:
        spe = getattr(model, "_steps_per_execution", None)  # tf_keras keeps a tf.Variable
    if spe is None:
        return 1
    try:
        return max(1, int(np.asarray(spe.numpy() if hasattr(spe, "numpy") else spe)))
    except (TypeError, ValueError):
        return 1
