"""Trained quantization (weight sharing) during ``model.fit`` (Han et al. 2016, §3)."""

import numpy as np
import tensorflow as tf

from keras_dc import _distributed
from keras_dc import kmeans as kmeans_lib
from keras_dc import variables as vlib
from keras_dc._callback import CompressionCallback

__all__ = ["WeightClustering", "default_bits"]

_INITS = ("linear", "density", "random", "kmeans++")
_UPDATES = ("auto", "sum", "mean")


def default_bits(variable):
    """The paper's default: 8 bits for conv kernels (≥ 3-D), 5 for the rest."""
    return 8 if len(variable.shape) >= 3 else 5


def _check_bits(value, what="bits"):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an integer from 1 to 8, received {value!r}.")
    if not 1 <= int(value) <= 8:
        raise ValueError(
            f"{what} must be from 1 to 8 (a layer keeps at most 2**bits distinct "
            f"non-zero values), received {value!r}.")
    return int(value)


class _ClusterConstraint:
    """Centroid fine-tuning as a variable constraint (the paper's Eq. 3).

    After the optimizer has updated the weights, each weight's change from its
    centroid is summed per cluster (or averaged); the centroid moves by that sum
    and every member takes the new centroid value. Cluster 0 is the pruned zero
    and never moves. With plain SGD the summed change is exactly
    ``-lr · Σ ∂L/∂w_i`` (Eq. 3); with momentum it is momentum on the summed
    gradient, since the update is linear.

    For a sparse layer only the non-zero positions are touched (gathered,
    summed per cluster and scattered back into zeros), so the cost per step
    follows the number of surviving weights, not the layer's size.
    """

    _SPARSE_BELOW = 0.5  # use the sparse path when fewer than half the entries are non-zero

    def __init__(self, model, name, centroids, indices, mean):
        flat = indices.reshape(-1).astype(np.int32)
        counts = np.bincount(flat, minlength=centroids.size).astype(np.float32)
        self.shape = tuple(indices.shape)
        self.size = flat.size
        self.mean = mean
        self.inner = None
        self.centroids = vlib.make_state_variable(model, centroids.astype(np.float32), tf.float32,
                                                  f"{name}_centroids")
        positions = np.flatnonzero(flat)
        self.sparse = positions.size < self._SPARSE_BELOW * flat.size
        if self.sparse:
            # Members only: cluster k ≥ 1 becomes k − 1 over the non-zero centroids.
            self.positions = vlib.make_state_variable(
                model, positions.astype(np.int32).reshape(-1, 1), tf.int32, f"{name}_positions")
            self.members = vlib.make_state_variable(model, flat[positions] - 1, tf.int32, f"{name}_members")
            self.counts = vlib.make_state_variable(model, counts[1:], tf.float32, f"{name}_counts")
        else:
            self.indices = vlib.make_state_variable(model, flat, tf.int32, f"{name}_indices")
            self.counts = vlib.make_state_variable(model, counts, tf.float32, f"{name}_counts")

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        w = tf.convert_to_tensor(w)
        c = tf.convert_to_tensor(self.centroids)
        counts = tf.convert_to_tensor(self.counts)
        if self.sparse:
            new_c, out = _sparse_step(w, c, tf.convert_to_tensor(self.positions),
                                      tf.convert_to_tensor(self.members), counts, self.mean)
        else:
            new_c, out = _dense_step(w, c, tf.convert_to_tensor(self.indices), counts, self.mean)
        self.centroids.assign(new_c)
        return out


def _move(c, delta, ids, counts, mean):
    update = tf.math.unsorted_segment_sum(delta, ids, tf.shape(c)[0])
    if mean:
        update = update / tf.maximum(counts, 1.0)
    return c + update


# The per-step centroid update, compiled with XLA (it fuses the gathers, the
# segment sum and the scatter: about half the cost of the plain graph ops).
@tf.function(jit_compile=True, autograph=False)
def _sparse_step(w, c, positions, members, counts, mean):
    flat = tf.reshape(w, [-1])
    c_nz = c[1:]
    delta = tf.gather(flat, positions[:, 0]) - tf.gather(c_nz, members)
    new_nz = _move(c_nz, delta, members, counts, mean)
    out = tf.scatter_nd(positions, tf.gather(new_nz, members), tf.shape(flat))
    return tf.concat([c[:1], new_nz], 0), tf.reshape(out, tf.shape(w))


@tf.function(jit_compile=True, autograph=False)
def _dense_step(w, c, indices, counts, mean):
    flat = tf.reshape(w, [-1])
    new_c = _move(c, flat - tf.gather(c, indices), indices, counts, mean)
    new_c = tf.concat([c[:1], new_c[1:]], 0)  # the zero cluster never moves
    return new_c, tf.reshape(tf.gather(new_c, indices), tf.shape(w))


class WeightClustering(CompressionCallback):
    """Shares weights through per-layer k-means and retrains the centroids during fit.

    When clustering starts (at step ``begin``), each selected variable's non-zero
    weights are clustered by 1-D k-means into at most ``2**bits`` centroids;
    every weight is replaced by its centroid and zeros stay zero (the pruned
    weights are their own cluster that never moves). From then on the
    assignments are fixed and the centroids train: after every optimizer step
    each centroid moves by the summed (or mean) update of its members and every
    member takes the centroid's value, so after every step each layer holds at
    most ``2**bits`` distinct non-zero values. Works with SGD, momentum and
    adaptive optimizers: with SGD (with or without momentum) the summed update
    is exactly the paper's Eq. 3; adaptive optimizers (Adam, RMSprop, ...)
    normalise each weight's step to about the learning rate whatever its
    gradient, so summing n members' steps would move a centroid n times too
    far — for them the default takes the mean, which is the size of step the
    optimizer would take on the centroid's summed gradient.

    Use it after `MagnitudePruning` (in a later ``fit``, or in the same one with
    ``begin`` after the pruning schedule ends), or alone. A model whose layers
    already hold few enough distinct values (a clustered checkpoint) keeps its
    clusters: the run resumes with the same assignments.

    Reference: Han, Mao, Dally, "Deep Compression", ICLR 2016, §3 (Eq. 3).

    Args:
        bits: Bits per cluster index for every selected layer (1–8), so
            ``2**bits`` centroids. Defaults to `None`: 8 for conv kernels
            (≥ 3-D), 5 for dense kernels and embeddings, as in the paper.
        overrides: Per-layer bits, ``{layer or variable or layer name: bits}``;
            ``None`` as a value leaves that layer unclustered. Defaults to `None`.
        init: Centroid initialisation: "linear" (the paper's best), "density",
            "random" or "kmeans++". Defaults to `"linear"`.
        centroid_update: "sum" (Eq. 3), "mean" of the members' updates, or
            "auto": "sum" for `keras.optimizers.SGD` (momentum included), "mean"
            for every other optimizer. Defaults to `"auto"`.
        begin: Optimizer step (or epoch, see ``unit``) at which clustering
            starts. Defaults to `0` (at the start of fit).
        unit: "step" or "epoch" for ``begin``. Defaults to `"step"`.
        min_size: Smallest variable (in entries) that is clustered. Defaults to `256`.
        seed: Seed for the "random" and "kmeans++" initialisations. Defaults to `0`.
        verbose: 0 silent, 1 prints the selected variables and a summary.
            Defaults to `1`.

    Example:
        >>> model.fit(x, y, epochs=3, callbacks=[keras_dc.WeightClustering(bits=5)])
        >>> len(np.unique(model.layers[0].kernel.numpy()))  # ≤ 2**5 + 1 (zero)
    """

    def __init__(self, bits=None, overrides=None, init="linear", centroid_update="auto",
                 begin=0, unit="step", min_size=256, seed=0, verbose=1):
        super().__init__()
        self.bits = _check_bits(bits)
        for _, value in vlib.override_items(overrides, "WeightClustering"):
            _check_bits(value, "override bits")
        if init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, received {init!r}.")
        if centroid_update not in _UPDATES:
            raise ValueError(f"centroid_update must be one of {_UPDATES}, received {centroid_update!r}.")
        if unit not in ("step", "epoch"):
            raise ValueError(f"unit must be 'step' or 'epoch', received {unit!r}.")
        if isinstance(begin, bool) or not isinstance(begin, (int, np.integer)) or begin < 0:
            raise ValueError(f"begin must be an integer ≥ 0, received {begin!r}.")
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, received {verbose!r}.")
        self.overrides = overrides
        self.init = init
        self.centroid_update = centroid_update
        self.begin = int(begin)
        self.unit = unit
        self.min_size = min_size
        self.seed = seed
        self.verbose = verbose
        self.selected = []
        self._entries = []
        self._active = False

    # --- lifecycle ---------------------------------------------------------

    def on_train_begin(self, logs=None):
        model = self.model
        vlib.check_model(model, "WeightClustering")
        variables = vlib.compressible_variables(model, self.min_size)
        if not variables:
            raise ValueError(
                f"WeightClustering: no compressible variable found in model {model.name!r}: "
                f"it needs trainable float kernels or embeddings with at least min_size="
                f"{self.min_size} entries. Lower min_size or check the model.")
        resolved = vlib.resolve_overrides(
            model, variables, self.overrides, lambda v: _check_bits(v, "override bits"),
            "WeightClustering")
        self._plan = []
        for variable in variables:
            if id(variable) in resolved:
                bits = resolved[id(variable)]
            else:
                bits = self.bits if self.bits is not None else default_bits(variable)
            if bits is not None:
                self._plan.append((variable, bits))
        if not self._plan:
            raise ValueError("WeightClustering: every compressible variable was excluded by overrides.")
        self._entries, self.selected, self._active = [], [], False
        spe = vlib.steps_per_epoch(self.params)
        if self.unit == "epoch":
            if spe is None:
                raise ValueError(
                    "WeightClustering: begin is in epochs but the number of steps per epoch "
                    "is unknown; pass steps_per_epoch to fit or give begin in steps.")
            self._begin_step = self.begin * spe
        else:
            self._begin_step = self.begin
        self._mean = self.centroid_update == "mean" or (
            self.centroid_update == "auto" and type(model.optimizer).__name__ != "SGD")
        self._step = vlib.optimizer_step(model)
        if self._step >= self._begin_step:
            self._activate()
            vlib.retrace(model)

    def on_train_batch_begin(self, batch, logs=None):
        if not self._active and self._step + vlib.execution_steps(self.model) > self._begin_step:
            self._activate()
            vlib.retrace(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self._step += vlib.execution_steps(self.model)

    def on_epoch_end(self, epoch, logs=None):
        if self._active and logs is not None:
            for path, c in self.centroids().items():
                logs[f"clusters/{path}"] = float(np.count_nonzero(c))

    def on_train_end(self, logs=None):
        for variable, _, constraint in self._entries:
            vlib.uninstall(variable, constraint)
        vlib.retrace(self.model)
        if self.verbose and self._active:
            lines = ["WeightClustering: done; distinct non-zero values per variable:"]
            for (variable, bits, _) in self._entries:
                w = vlib.read(variable)
                n = np.unique(w[w != 0]).size
                lines.append(f"  {vlib.variable_path(variable):<48s} {n:4d} (≤ {2 ** bits})")
            self._print("\n".join(lines))

    # --- helpers -----------------------------------------------------------

    def _activate(self):
        model = self.model
        clusters = [cluster_weights(vlib.read(v), bits, self.init, self.seed) for v, bits in self._plan]
        # With several workers, every worker takes the chief's clusters.
        flat = _distributed.chief_values(model, [array for pair in clusters for array in pair])
        for index, (variable, bits) in enumerate(self._plan):
            centroids, indices = flat[2 * index], flat[2 * index + 1]
            w = vlib.read(variable)
            variable.assign(centroids[indices].astype(w.dtype))
            constraint = _ClusterConstraint(model, f"keras_dc_{index}", centroids, indices, self._mean)
            vlib.install(variable, constraint)
            self._entries.append((variable, bits, constraint))
            self.selected.append({
                "path": vlib.variable_path(variable),
                "shape": tuple(int(d) for d in variable.shape),
                "bits": bits,
                "clusters": int(np.count_nonzero(centroids)),
            })
        self._active = True
        if self.verbose:
            lines = [f"WeightClustering: clustering {len(self.selected)} variables "
                     f"(init {self.init}, centroid update {'mean' if self._mean else 'sum'}):"]
            for item in self.selected:
                shape = "x".join(str(d) for d in item["shape"])
                lines.append(f"  {item['path']:<48s} {shape:>16s}  {item['bits']} bits, "
                             f"{item['clusters']} clusters")
            self._print("\n".join(lines))

    def centroids(self):
        """Current centroids of every clustered variable (index 0 is the zero).

        Returns:
            ``{variable path: np.ndarray}``; empty before clustering starts.
        """
        return {vlib.variable_path(v): vlib.read(c.centroids) for v, _, c in self._entries}


def cluster_weights(weights, bits, init="linear", seed=0):
    """Clusters a weight tensor's non-zero values; zeros get index 0.

    When the non-zero weights already take at most ``2**bits`` distinct values
    (a clustered checkpoint), those values are the centroids and no k-means runs.

    Args:
        weights: NumPy array.
        bits: Index bits, so at most ``2**bits`` non-zero centroids.
        init: k-means initialisation (see `keras_dc.kmeans.kmeans_1d`).
        seed: Seed for random initialisations.

    Returns:
        ``(centroids, indices)``: ``centroids[0] == 0`` then the sorted non-zero
        centroids; ``indices`` has the weights' shape, ``centroids[indices]``
        is the clustered tensor.

    Example:
        >>> c, i = cluster_weights(np.array([0., 1., 1.1, 5.]), bits=1)
        >>> c[i]
        array([0.  , 1.05, 1.05, 5.  ])
    """
    flat = np.asarray(weights, dtype=np.float64).ravel()
    nonzero = flat != 0
    values = flat[nonzero]
    k = 2 ** int(bits)
    distinct = np.unique(values)
    if distinct.size <= k:
        centers = distinct
        assignment = np.searchsorted(distinct, values).astype(np.int64)
    else:
        centers, assignment = kmeans_lib.kmeans_1d(values, k, init=init, seed=seed)
    centroids = np.concatenate([[0.0], np.asarray(centers, dtype=np.float64)])
    indices = np.zeros(flat.shape, dtype=np.int32)
    indices[nonzero] = np.asarray(assignment, dtype=np.int32) + 1
    return centroids, indices.reshape(np.shape(weights))
