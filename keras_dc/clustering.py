"""Trained quantization (weight sharing) during ``model.fit`` (Han et al. 2016, §3)."""

import numpy as np
import tensorflow as tf

from keras_dc import _distributed
from keras_dc import _keras_glue as glue
from keras_dc._callback import CompressionCallback
from keras_dc._validate import as_bits, as_choice, as_float, as_int
from keras_dc.kmeans import INITS, cluster_weights
from keras_dc.schedules import UNITS
from keras_dc.selection import layer_biases, variable_path

__all__ = ["WeightClustering", "default_bits"]

CENTROID_UPDATES = ("auto", "sum", "mean", "latent")


def default_bits(variable):
    """The paper's default: 8 bits for conv kernels (≥ 3-D), 5 for the rest."""
    return 8 if len(variable.shape) >= 3 else 5


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

    def __init__(self, model, name, centroids, indices, mean, latent=None):
        flat = indices.reshape(-1).astype(np.int32)
        counts = np.bincount(flat, minlength=centroids.size).astype(np.float32)
        self.shape = tuple(indices.shape)
        self.size = flat.size
        self.mean = mean
        self.inner = None
        self.centroids = glue.make_state_variable(
            model, centroids.astype(np.float32), tf.float32, f"{name}_centroids"
        )
        positions = np.flatnonzero(flat)
        self.sparse = positions.size < self._SPARSE_BELOW * flat.size
        self.latent = None
        if latent is not None:
            # `latent`: the weights before clustering, the members' own float values from
            # here on (the straight-through weights); a dense layer keeps one per entry,
            # its pruned ones zero and unused.
            values = latent.reshape(-1).astype(np.float32)
            values = values[positions] if self.sparse else np.where(flat != 0, values, 0.0)
            self.latent = glue.make_state_variable(model, values, tf.float32, f"{name}_latent")
            if not self.sparse:
                self.member_mask = glue.make_state_variable(
                    model, flat != 0, tf.bool, f"{name}_member_mask"
                )
        if self.sparse:
            # Members only: cluster k ≥ 1 becomes k − 1 over the non-zero centroids.
            self.positions = glue.make_state_variable(
                model, positions.astype(np.int32).reshape(-1, 1), tf.int32, f"{name}_positions"
            )
            self.members = glue.make_state_variable(
                model, flat[positions] - 1, tf.int32, f"{name}_members"
            )
            self.counts = glue.make_state_variable(model, counts[1:], tf.float32, f"{name}_counts")
        else:
            self.indices = glue.make_state_variable(model, flat, tf.int32, f"{name}_indices")
            self.counts = glue.make_state_variable(model, counts, tf.float32, f"{name}_counts")

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        w = tf.convert_to_tensor(w)
        c = tf.convert_to_tensor(self.centroids)
        if self.latent is not None:
            return self._latent_call(w, c)
        counts = tf.convert_to_tensor(self.counts)
        if self.sparse:
            new_c, out = _sparse_step(
                w,
                c,
                tf.convert_to_tensor(self.positions),
                tf.convert_to_tensor(self.members),
                counts,
                self.mean,
            )
        else:
            new_c, out = _dense_step(w, c, tf.convert_to_tensor(self.indices), counts, self.mean)
        self.centroids.assign(new_c)
        return out

    def _latent_call(self, w, c):
        flat = tf.reshape(w, [-1])
        latent = tf.convert_to_tensor(self.latent)
        if self.sparse:
            positions = tf.convert_to_tensor(self.positions)
            members = tf.convert_to_tensor(self.members)
            moved = latent + tf.gather(flat, positions[:, 0]) - tf.gather(c[1:], members)
            new_nz, ids = _lloyd_step(moved, c[1:])
            self.members.assign(ids)
            out = tf.scatter_nd(positions, tf.gather(new_nz, ids), tf.shape(flat))
        else:
            mask = tf.convert_to_tensor(self.member_mask)
            indices = tf.convert_to_tensor(self.indices)
            moved = latent + flat - tf.gather(c, indices)
            new_nz, ids = _lloyd_step(tf.boolean_mask(moved, mask), c[1:])
            # Members are re-assigned among clusters 1..K; the pruned entries stay in cluster 0.
            indices = tf.tensor_scatter_nd_update(tf.zeros_like(indices), tf.where(mask), ids + 1)
            self.indices.assign(indices)
            moved = tf.where(mask, moved, tf.zeros_like(moved))
            out = tf.gather(tf.concat([c[:1], new_nz], 0), indices)
        # (`counts` serves only the fixed-assignment update: not kept up to date here.)
        self.latent.assign(moved)
        self.centroids.assign(tf.concat([c[:1], new_nz], 0))
        return tf.reshape(out, tf.shape(w))


def _lloyd_step(values, centroids):
    """One 1-D k-means step: each value joins its nearest centroid (the centroids sorted
    first, so a binary search over their midpoints finds it), every centroid with members
    becomes their mean, one without keeps its value. Returns (centroids, ids)."""
    c = tf.sort(centroids)
    midpoints = (c[1:] + c[:-1]) / 2.0
    ids = tf.searchsorted(midpoints, values, side="left", out_type=tf.int32)
    n = tf.shape(c)[0]
    sums = tf.math.unsorted_segment_sum(values, ids, n)
    counts = tf.math.unsorted_segment_sum(tf.ones_like(values), ids, n)
    return tf.where(counts > 0, sums / tf.maximum(counts, 1.0), c), ids


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


def _values_used(weights, zeros_apart=True):
    """Number of distinct values in `weights`, zero not counted when `zeros_apart`."""
    return np.unique(weights[weights != 0] if zeros_apart else weights).size


class WeightClustering(CompressionCallback):
    """Shares weights through per-layer k-means and retrains the centroids during fit.

    When clustering starts (at step ``begin``), each selected variable's non-zero
    weights are clustered by 1-D k-means into at most ``2**bits`` centroids;
    every weight is replaced by its centroid and zeros stay zero (the pruned
    weights are their own cluster that never moves). From then on the
    assignments are fixed and the centroids train: after every optimizer step
    each centroid moves by the summed (or mean) update of its members and every
    member takes the centroid's value, so after every step each layer holds at
    most ``2**bits`` distinct non-zero values (``centroid_update="latent"``
    lets members change cluster instead, see below). Works with SGD, momentum and
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
            "random", "kmeans++" or "linear_gap" ("linear" over the occupied
            ranges only, so that no centroid starts in the pruned gap around
            zero; see `keras_dc.kmeans.kmeans_1d`). Defaults to `"linear"`.
        rate_weight: λ ≥ 0: cluster by entropy-constrained k-means, each weight
            paying λ·σ²·(−log2 p) for its cluster's share p on top of its
            squared error (σ² the variance of the layer's non-zero weights), so
            that the indices have lower entropy and Huffman-code shorter; see
            `keras_dc.kmeans.kmeans_1d`. Useful values are about 0.0005–0.005;
            clusters that end up with no member are dropped. Defaults to `0.0`
            (plain k-means, as in the paper).
        centroid_update: "sum" (Eq. 3), "mean" of the members' updates, or
            "auto": "sum" for `keras.optimizers.SGD` (momentum included), "mean"
            for every other optimizer. Beyond the paper, "latent": every member
            keeps a float weight of its own that takes the optimizer's updates
            (the straight-through estimator of quantisation-aware training); after
            every step each member joins its nearest centroid and every centroid
            becomes the mean of its members (one k-means step), so weights can
            change cluster. Pruned weights stay zero. Costs one float per member
            and a sort and binary search per step; on pruned LeNet-300-100 it
            held fewer bits within the same error than the paper's update
            (BENCHMARKS.md, "Centroid update"). Defaults to `"auto"`.
        begin: Optimizer step (or epoch, see ``unit``) at which clustering
            starts. Defaults to `0` (at the start of fit).
        unit: "step" or "epoch" for ``begin``. Defaults to `"step"`.
        min_size: Smallest variable (in entries) that is clustered. Defaults to `256`.
        seed: Seed for the "random" and "kmeans++" initialisations. Defaults to `0`.
        verbose: 0 silent, 1 prints the selected variables and a summary.
            Defaults to `1`.
        bias_bits: Also share the bias values (not in the paper): the biases
            (variables named ``bias``) of every layer whose kernel is clustered
            are clustered too, into at most ``2**bias_bits`` values (1–8), and
            their centroids train like the kernel's. Zero is an ordinary value
            here: every bias value is clustered, zeros included, by plain
            k-means (``init`` and ``seed`` as for kernels; ``rate_weight`` does
            not apply) whatever ``min_size``. The converter then codes each
            bias as a small codebook and indices of at most ``bias_bits``
            bits each instead of zlib-packed float32 (what a bundle of a few
            KB notices). A layer that ``overrides`` leaves unclustered keeps
            its bias unclustered too; there is no per-layer bias setting.
            Cluster biases that have trained (a later ``fit``, or ``begin`` >
            0): a freshly initialised all-zero bias forms a single cluster and
            stays one shared value. Defaults to `None` (biases untouched, as in
            the paper).

    Example:
        >>> model.fit(x, y, epochs=3, callbacks=[keras_dc.WeightClustering(bits=5)])
        >>> len(np.unique(model.layers[0].kernel.numpy()))  # ≤ 2**5 + 1 (zero)

        Beyond the paper: start no centroid in the pruned gap, and trade a little
        squared error for indices with lower entropy:

        >>> clustering = keras_dc.WeightClustering(bits=5, init="linear_gap", rate_weight=0.001)

        Share the biases too, in at most 2**3 = 8 values per layer:

        >>> model.fit(x, y, callbacks=[keras_dc.WeightClustering(bits=5, bias_bits=3)])
        >>> len(np.unique(model.layers[0].bias.numpy()))  # ≤ 8
    """

    name = "WeightClustering"

    def __init__(
        self,
        bits=None,
        overrides=None,
        init="linear",
        centroid_update="auto",
        begin=0,
        unit="step",
        min_size=256,
        seed=0,
        verbose=1,
        rate_weight=0.0,
        bias_bits=None,
    ):
        self.bits = None if bits is None else as_bits(bits)
        self.bias_bits = (
            None
            if bias_bits is None
            else as_bits(
                bias_bits,
                "bias_bits",
                "a clustered layer's bias keeps at most 2**bias_bits distinct values; "
                "None leaves biases unclustered",
            )
        )
        self._bias_ids = set()
        self.init = as_choice(init, "init", INITS)
        self.rate_weight = as_float(
            rate_weight,
            "rate_weight",
            minimum=0.0,
            hint=" Use 0 for plain k-means, or e.g. 0.001 for entropy-constrained clustering.",
        )
        self.centroid_update = as_choice(centroid_update, "centroid_update", CENTROID_UPDATES)
        self.unit = as_choice(unit, "unit", UNITS)
        self.begin = as_int(begin, "begin", 0)
        self.seed = seed
        super().__init__(overrides=overrides, min_size=min_size, verbose=verbose)

    # --- what clustering adds to the shared lifecycle -------------------------

    def _convert_override(self, value):
        return None if value is None else as_bits(value, "override bits")

    def _default_setting(self, variable):
        return self.bits if self.bits is not None else default_bits(variable)

    def _make_plan(self, model):
        # With bias_bits, each clustered kernel is followed by its layer's biases.
        plan = super()._make_plan(model)
        self._bias_ids = set()
        if self.bias_bits is None:
            return plan
        settings = {id(v): bits for v, bits in plan}
        with_biases = []
        for kernel, biases in layer_biases(model, [v for v, _ in plan]):
            with_biases.append((kernel, settings[id(kernel)]))
            with_biases.extend((bias, self.bias_bits) for bias in biases)
            self._bias_ids.update(id(bias) for bias in biases)
        return with_biases

    def _is_clustered_bias(self, variable):
        return id(variable) in self._bias_ids

    def _begin(self):
        self._mean = self.centroid_update == "mean" or (
            self.centroid_update == "auto" and type(self.model.optimizer).__name__ != "SGD"
        )
        if self.unit == "step":
            return self.begin
        if self._steps_per_epoch is None:
            raise ValueError(
                "WeightClustering: begin is in epochs but the number of steps per epoch "
                "is unknown; pass steps_per_epoch to fit or give begin in steps."
            )
        return self.begin * self._steps_per_epoch

    def _prepare(self, plan):
        # A bias is clustered whole (zeros_apart=False: its zeros are not pruned weights)
        # but in the kernels' layout, index 0 an empty slot at zero. So one constraint,
        # which pins centroid 0, trains every centroid of a bias too, and the chief's
        # clusters are shared the same way: no second constraint class or flag in the
        # compiled step.
        clusters = [
            cluster_weights(glue.read(v), bits, self.init, self.seed, self.rate_weight)
            if not self._is_clustered_bias(v)
            else cluster_weights(glue.read(v), bits, self.init, self.seed, zeros_apart=False)
            for v, bits in plan
        ]
        # With several workers, every worker takes the chief's clusters.
        flat = _distributed.chief_values(self.model, [array for pair in clusters for array in pair])
        prepared = list(zip(flat[0::2], flat[1::2]))
        # "latent": the members' float weights start where they are, not at their centroids.
        originals = [None] * len(plan)
        if self.centroid_update == "latent":  # the chief's, like the clusters
            originals = _distributed.chief_values(self.model, [glue.read(v) for v, _ in plan])
        for (variable, _), (centroids, indices) in zip(plan, prepared):
            variable.assign(centroids[indices].astype(glue.read(variable).dtype))
        return [(c, i, o) for (c, i), o in zip(prepared, originals)]

    def _constraint(self, index, variable, setting, prepared):
        centroids, indices, originals = prepared
        return _ClusterConstraint(
            self.model,
            f"keras_dc_{index}",
            centroids,
            indices,
            self._mean,
            latent=originals,
        )

    def _selection_fields(self, entry):
        centroids = glue.read(entry.constraint.centroids)
        if self._is_clustered_bias(entry.variable):  # every centroid but the empty zero slot
            return {"bits": entry.setting, "clusters": int(centroids.size - 1), "bias": True}
        return {"bits": entry.setting, "clusters": int(np.count_nonzero(centroids))}

    def _selection_title(self):
        rate = f", rate weight {self.rate_weight:g}" if self.rate_weight else ""
        biases = f", biases in {self.bias_bits} bits" if self.bias_bits is not None else ""
        return (
            f"clustering {len(self.selected)} variables "
            f"(init {self.init}{rate}{biases}, centroid update {self._update_name()})"
        )

    def _update_name(self):
        if self.centroid_update == "latent":
            return "latent (members re-assigned every step)"
        return "mean" if self._mean else "sum"

    def _selection_detail(self, item):
        return f"{item['bits']} bits, {item['clusters']} clusters"

    def _epoch_logs(self):
        # The distinct values the variable holds now (non-zero ones for a kernel): what the
        # bundle's codebook will store (centroids that lost every member, or coincide, are
        # not counted).
        return {
            f"clusters/{variable_path(e.variable)}": float(
                _values_used(glue.read(e.variable), not self._is_clustered_bias(e.variable))
            )
            for e in self._entries
        }

    def _summary(self):
        counted = "non-zero values (all values of a bias)" if self._bias_ids else "non-zero values"
        lines = [f"WeightClustering: done; distinct {counted} per variable:"]
        for entry in self._entries:
            w = glue.read(entry.variable)
            n = _values_used(w, not self._is_clustered_bias(entry.variable))
            lines.append(f"  {variable_path(entry.variable):<48s} {n:4d} (≤ {2**entry.setting})")
        return "\n".join(lines)

    def centroids(self):
        """Current centroids of every clustered variable (index 0 is the zero).

        For a bias (``bias_bits``) index 0 is an empty slot: its values are
        ``centroids[1:]``, zero among them possibly.

        Returns:
            ``{variable path: np.ndarray}``; empty before clustering starts.
        """
        return {variable_path(e.variable): glue.read(e.constraint.centroids) for e in self._entries}
