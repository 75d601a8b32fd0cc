"""Sparse variational dropout: training that finds which weights a network can lose.

Magnitude pruning removes the smallest weights and retrains the rest; it never asks
which weights the network could do without. Sparse variational dropout (Molchanov,
Ashukha and Vetrov, ICML 2017) learns it: every kernel weight ``w`` gets a Gaussian
``N(theta, alpha * theta^2)`` whose noise level ``alpha`` is trained together with
``theta``, and a KL term (the log-uniform prior's, approximated as in the paper)
rewards large noise. A weight the loss does not need drifts to a large ``alpha``
(``log alpha > threshold``, 3 by default: noise far larger than the weight); those
are zeros. On LeNet-5 from a trained dense model it keeps far fewer weights at the
same validation error than the gradual magnitude schedule (BENCHMARKS.md,
"Variational sparsification").

`variational_sparsify` trains a copy of the model in which the kernels of `Dense`
and `Conv1D`/`Conv2D`/`Conv3D` layers (groups 1, channels last, not causal) are
variational, with the local reparameterisation trick (the noise is drawn per
output, not per weight: lower-variance gradients), and writes
``theta * (log alpha < threshold)`` back into the model's kernels; every other
weight (biases, BatchNorm, other layers) is copied back as trained. Other kernels
keep training as plain weights. The copy is a `clone_model` of a Sequential or
functional model, built under the model's `tf.distribute` strategy.

`compress_to_budget(variational_epochs=N)` runs it as the first pruning stage and
picks the threshold on validation data.
"""

import contextlib
import dataclasses

import numpy as np

from keras_dc import _data as data
from keras_dc import _keras_glue as glue
from keras_dc._validate import as_float, as_int
from keras_dc.selection import compressible_variables, variable_path

__all__ = ["variational_sparsify", "VariationalResult"]

# The KL approximation of Molchanov et al. (2017), eq. 14.
_K1, _K2, _K3 = 0.63576, 1.87320, 1.48695
_LOG_SIGMA2_INIT = -10.0
_CONVS = {"Conv1D": 1, "Conv2D": 2, "Conv3D": 3}


@dataclasses.dataclass
class VariationalResult:
    """What `variational_sparsify` learned: per kernel (by `variable_path`) the trained
    ``theta`` and ``log_alpha``; `apply` writes a threshold's zeros into the model."""

    model: object
    variables: list
    theta: dict
    log_alpha: dict
    threshold: float

    def density(self, threshold=None):
        """Fraction of the variational kernels' weights kept at ``threshold``."""
        t = self.threshold if threshold is None else threshold
        kept = sum(int(np.sum(a < t)) for a in self.log_alpha.values())
        return kept / max(1, sum(a.size for a in self.log_alpha.values()))

    def apply(self, threshold=None):
        """Writes ``theta * (log_alpha < threshold)`` into the model's kernels."""
        t = self.threshold if threshold is None else threshold
        for v in self.variables:
            key = variable_path(v)
            if key in self.theta:
                mask = self.log_alpha[key] < t
                v.assign(np.where(mask, self.theta[key], 0.0).astype(self.theta[key].dtype))


def _supported(layer):
    """``("dense", None)`` or ``("conv", rank)`` for a layer whose kernel can be
    variational, else `None`."""
    kind = type(layer).__name__
    config = layer.get_config()
    if kind == "Dense":
        return ("dense", None)
    if kind in _CONVS:
        if config.get("groups", 1) != 1 or config.get("padding") == "causal":
            return None
        if config.get("data_format", "channels_last") != "channels_last":
            return None
        return ("conv", _CONVS[kind])
    return None


def _variational_layer_class(k):
    """A layer class for Keras package ``k`` (Keras 3 or tf_keras)."""
    import tensorflow as tf

    class VariationalKernel(k.layers.Layer):
        """Dense or convolution whose kernel is ``N(theta, alpha theta^2)``."""

        def __init__(self, kind, rank, config, kernel, bias, kl_scale, kl_weight, **kw):
            super().__init__(name=config["name"], **kw)
            self.kind, self.rank, self.config_ = kind, rank, config
            self.activation = k.activations.get(config.get("activation"))
            self._kernel0, self._bias0 = kernel, bias
            self.kl_scale, self.kl_weight = kl_scale, kl_weight

        def build(self, input_shape):
            self.theta = self.add_weight(
                name="theta",
                shape=self._kernel0.shape,
                initializer=k.initializers.Constant(self._kernel0),
            )
            self.log_sigma2 = self.add_weight(
                name="log_sigma2",
                shape=self._kernel0.shape,
                initializer=k.initializers.Constant(_LOG_SIGMA2_INIT),
            )
            self.bias = None
            if self._bias0 is not None:
                self.bias = self.add_weight(
                    name="bias",
                    shape=self._bias0.shape,
                    initializer=k.initializers.Constant(self._bias0),
                )
            self.built = True

        def log_alpha(self):
            return tf.clip_by_value(
                self.log_sigma2 - tf.math.log(tf.square(self.theta) + 1e-8), -10.0, 10.0
            )

        def _op(self, x, w):
            if self.kind == "dense":
                return tf.tensordot(x, w, [[len(x.shape) - 1], [0]])
            c = self.config_
            return tf.nn.convolution(
                x,
                w,
                strides=c["strides"],
                padding=c["padding"].upper(),
                dilations=c["dilation_rate"],
            )

        def call(self, x, training=False):
            x = tf.convert_to_tensor(x)
            if training:
                mean = self._op(x, self.theta)
                var = self._op(tf.square(x), tf.exp(self.log_sigma2))
                y = mean + tf.sqrt(var + 1e-8) * tf.random.normal(tf.shape(mean))
                la = self.log_alpha()
                neg_kl = _K1 * tf.sigmoid(_K2 + _K3 * la) - 0.5 * tf.math.log1p(tf.exp(-la)) - _K1
                self.add_loss(-self.kl_weight * self.kl_scale * tf.reduce_sum(neg_kl))
            else:
                w = self.theta * tf.cast(self.log_alpha() < 3.0, self.theta.dtype)
                y = self._op(x, w)
            if self.bias is not None:
                y = y + self.bias
            return self.activation(y) if self.activation is not None else y

    return VariationalKernel


def check_clonable(model, who):
    """Raises a clear ValueError for a model `clone_model` cannot rebuild (subclassed)."""
    if type(model).__name__ not in ("Sequential", "Functional") and not hasattr(
        model, "_nodes_by_depth"
    ):
        raise ValueError(
            f"{who}: model {model.name!r} is a subclassed model; only Sequential and "
            "functional models can be cloned with variational kernels."
        )


def _dataset(train, batch_size, steps_per_epoch, seed):
    """``(dataset, steps per epoch, training samples)``."""
    if isinstance(train, (tuple, list)):
        if len(train) != 2:
            raise ValueError("train must be (x, y) or a tf.data.Dataset of (x, y) batches.")
        x, y = (np.asarray(a) for a in train)
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"train: x has {len(x)} samples and y has {len(y)}.")
        return (*data.array_batches(x, y, batch_size, seed), len(x))
    dataset, steps = data.dataset_steps(
        train,
        steps_per_epoch,
        "train is a tf.data.Dataset of unknown or infinite length; pass steps_per_epoch.",
    )
    return dataset, steps, data.samples_per_epoch(dataset, steps)


def variational_sparsify(
    model,
    train,
    *,
    epochs=10.0,
    learning_rate=1e-3,
    loss=None,
    batch_size=128,
    steps_per_epoch=None,
    samples=None,
    kl_weight=1.0,
    kl_ramp=0.2,
    threshold=3.0,
    min_size=256,
    seed=0,
    verbose=1,
    _prepared=None,
):
    """Sparse variational dropout training; writes the zeros it finds into ``model``.

    Args:
        model: A trained, built Sequential or functional Keras model (Keras 3 or
            tf_keras), compiled or with ``loss`` given. Changed in place.
        train: ``(x, y)`` arrays, or a batched `tf.data.Dataset` of ``(x, y)``.
        epochs: Training epochs (fractions allowed). Defaults to `10.0`.
        learning_rate: Adam's rate, cosine-decayed to 0. Defaults to `1e-3`.
        loss: Defaults to the model's compiled loss.
        batch_size: For array data. Defaults to `128`.
        steps_per_epoch: Batches per epoch of a dataset of unknown length.
        samples: Training samples the KL term is divided by (the ELBO per sample).
            Defaults to the training set's size.
        kl_weight: Weight of the KL term (1: the ELBO per sample). Below 1 the network
            keeps more weights and more accuracy. Defaults to `1.0`.
        kl_ramp: Share of the training over which the KL term's weight rises from 0
            to 1 (a trained network is not shaken at once). Defaults to `0.2`.
        threshold: Weights with ``log alpha`` at or above it are zeros. Defaults to `3.0`.
        min_size: Kernels with fewer entries stay plain (as for the callbacks).
        seed: Shuffling seed for array data. Defaults to `0`.
        verbose: 0 silent, 1 a line per epoch (validation-free: kept share, loss).

    Returns:
        A `VariationalResult` (``theta`` and ``log_alpha`` per kernel; ``apply(t)``
        writes another threshold's zeros).

    Example:
        >>> result = keras_dc.variational_sparsify(model, (x_train, y_train), epochs=30)
        >>> print(f"{result.density():.2%} of the kernels' weights kept")
        >>> keras_dc.compress_to_budget(model, (x_train, y_train), (x_val, y_val))
    """
    k = glue.keras_of(model)
    epochs = as_float(epochs, "epochs", 0.0)
    if epochs <= 0:
        raise ValueError(f"epochs must be > 0, received {epochs!r}.")
    learning_rate = as_float(learning_rate, "learning_rate", 0.0)
    kl_ramp = as_float(kl_ramp, "kl_ramp", 0.0)
    kl_weight = as_float(kl_weight, "kl_weight", 0.0)
    threshold = as_float(threshold, "threshold", -10.0)
    check_clonable(model, "variational_sparsify")
    if loss is None:
        loss = getattr(model, "loss", None)
        if loss is None:
            raise ValueError("variational_sparsify: the model is not compiled; pass loss=...")
    if _prepared is not None:
        dataset, steps_per, n = _prepared
    else:
        dataset, steps_per, n = _dataset(
            train, as_int(batch_size, "batch_size", 1), steps_per_epoch, seed
        )
    if samples is not None:
        n = as_int(samples, "samples", 1)
    import tensorflow as tf

    chosen = {id(v) for v in compressible_variables(model, min_size)}
    targets = {}
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and id(kernel) in chosen and _supported(layer):
            targets[layer.name] = layer
    if not targets:
        raise ValueError(
            f"variational_sparsify: model {model.name!r} has no Dense or Conv kernel with at "
            f"least min_size={min_size} entries to sparsify."
        )
    strategy = getattr(model, "distribute_strategy", None)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    layer_class = _variational_layer_class(k)
    total = max(1, int(round(epochs * steps_per)))
    with scope:
        kl_now = tf.Variable(0.0, trainable=False, dtype=tf.float32)

        def clone(layer):
            if layer.name in targets:
                kind, rank = _supported(layer)
                weights = layer.get_weights()
                bias = weights[1] if len(weights) > 1 else None
                return layer_class(
                    kind, rank, layer.get_config(), weights[0], bias, 1.0 / n, kl_now
                )
            return layer.__class__.from_config(layer.get_config())

        twin = k.models.clone_model(model, clone_function=clone)
        for layer in twin.layers:
            if layer.name not in targets and layer.weights:
                layer.set_weights(model.get_layer(layer.name).get_weights())
        schedule = k.optimizers.schedules.CosineDecay(learning_rate, decay_steps=total)
        twin.compile(optimizer=k.optimizers.Adam(schedule), loss=loss, metrics=[])
    ramp_steps = max(1.0, kl_ramp * total)
    say = print if verbose else (lambda *a, **kw: None)

    class _Ramp(k.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            kl_now.assign(kl_weight * min(1.0, (batch + 1) / ramp_steps))

        def on_train_batch_end(self, batch, logs=None):
            if (batch + 1) % steps_per and batch + 1 != total:
                return
            kept = _kept(twin, targets, threshold)
            say(
                f"variational_sparsify: epoch {(batch + 1) / steps_per:.3g}/{total / steps_per:.3g}, "
                f"loss {(logs or {}).get('loss', float('nan')):.4f}, {kept:.2%} of the "
                f"variational kernels kept (log alpha < {threshold:g})",
                flush=True,
            )

    # One fit of all steps: one optimizer, one cosine schedule, fractions of an epoch allowed.
    twin.fit(
        dataset,
        epochs=1,
        steps_per_epoch=total,
        shuffle=False,
        verbose=2 if verbose == 2 else 0,
        callbacks=[_Ramp()],
    )
    theta, log_alpha = {}, {}
    for layer in twin.layers:
        if layer.name in targets:
            original = targets[layer.name]
            key = variable_path(original.kernel)
            theta[key] = np.asarray(layer.theta.numpy())
            log_alpha[key] = np.asarray(layer.log_alpha().numpy())
            if layer.bias is not None:
                original.bias.assign(layer.bias.numpy())
        elif layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    result = VariationalResult(
        model=model,
        variables=[t.kernel for t in targets.values()],
        theta=theta,
        log_alpha=log_alpha,
        threshold=threshold,
    )
    result.apply()
    return result


def _kept(twin, targets, threshold):
    kept = total = 0
    for layer in twin.layers:
        if layer.name in targets:
            a = layer.log_alpha().numpy()
            kept += int(np.sum(a < threshold))
            total += a.size
    return kept / max(1, total)
