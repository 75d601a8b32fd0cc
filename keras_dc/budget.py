"""The smallest model within an accuracy budget: a search over per-layer sparsity and bits.

`compress_to_budget` takes a trained model and runs the Deep Compression stages
with the library's own callbacks (`MagnitudePruning`, then `WeightClustering`),
choosing every layer's sparsity and index bits itself:

0. **Calibrate** (``calibrate_lr``): retrain the model as given,
   nothing pruned, and lower the learning rates (÷3) while that alone costs more than
   half of pruning's share of the budget.
1. **Prune**: optionally first a variational stage (``variational_epochs``: sparse
   variational dropout, `variational_sparsify`, then the deepest ``log alpha``
   threshold within the budget) and a gradual stage (``gradual_epochs``); then in
   moves, each a gradual cut (``ramp_events`` steps over the first half of the move)
   followed by retraining and a look at the validation metric.
   Global moves first: one magnitude threshold over all layers (`GlobalSparsity`)
   removes a fixed share of the weights still left, so the layers with many small
   weights lose most (if the very first such move fails — BatchNorm makes layer
   scales incomparable — every layer loses the same share instead, "uniform").
   When a global move breaks the budget it is retried at half
   the step, until a half step fails too; then layer moves: the layer with the most
   weights left prunes further on its own (again with one half-step retry), then
   the next. A failed move is undone (the last accepted weights come back). The
   pruned network then retrains longer (``final_epochs``), and the weights that feed
   units nothing reads any more are zeroed (`remove_dead_units`: Dense chains of a
   Sequential model; no output changes).
2. **Cluster**: for each layer the fewest bits (``max_bits`` … ``min_bits``) whose
   one-shot k-means keeps the metric within its share of the remaining budget (the
   biases of the clustered layers too, ``bias_bits="auto"``), then retraining (the
   paper's centroid update or latent weights that may change cluster, whichever
   measures better at the first clustering: ``centroid_update="best"``). If the retrained
   model breaks the budget, the layer that lost most gets one more bit and
   clustering runs again from the pruned weights. Then **bit
   moves** (``bit_moves="best"``, the default): each round tries one bit fewer for
   every layer, clustered again from the pruned weights and retrained, and keeps the
   move within budget that saves the most bytes per unit of metric it costs
   (``bit_moves=True``: the layer with the most non-zeros first).

Pruning gets ``prune_share`` of the budget; clustering gets the rest. Every
decision uses the **validation** data only: keep the test set for the final
report. Bytes are measured with ``size_fn`` (by default the real converter:
``converters.convert`` writing a bundle to a temporary folder), after every
accepted move, so the step log shows how the real file shrinks.

With ``directory`` the search saves its state (weights of the last accepted
model and the step log) after every move; calling it again with the same
arguments resumes from there, also after an interruption (the saved weights replace
the model's; a model other than the one the search started from is refused with
``strict_resume=True``, else resumed with a warning).
"""

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
import warnings

import numpy as np

from keras_dc import _data as data
from keras_dc import _keras_glue as glue
from keras_dc._validate import as_bits, as_choice, as_float, as_int
from keras_dc.clustering import CENTROID_UPDATES, WeightClustering
from keras_dc.dead_units import remove_dead_units
from keras_dc.kmeans import INITS, cluster_weights
from keras_dc.pruning import MagnitudePruning
from keras_dc.schedules import Iterative, OneShot
from keras_dc.selection import compressible_variables, layer_biases, variable_path
from keras_dc.targets import GlobalSparsity
from keras_dc.variational import check_clonable, variational_sparsify

__all__ = ["compress_to_budget", "BudgetResult", "SearchStateError", "bundle_size"]

_STATE = "budget_state.json"
_WEIGHTS = "budget.weights.h5"
_REFINE_START = "gradual_start.weights.h5"
_STATE_VERSION = 1
# log alpha thresholds of the variational stage, deepest (fewest weights kept) first.
_VARIATIONAL_THRESHOLDS = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)


@dataclasses.dataclass
class BudgetResult:
    """What `compress_to_budget` did.

    Attributes:
        model: The compressed model (the same object that was passed in), ready
            for ``converters.convert``.
        metric: Name of the validation metric (lower is better).
        dense_metric: Its value on the model as given.
        limit: The largest value the search accepted.
        final_metric: Its value on the compressed model.
        dense_bytes: Bundle bytes of the model as given (``None`` without ``size_fn``).
        final_bytes: Bundle bytes of the compressed model.
        layers: One dict per compressed variable: ``path``, ``weights``,
            ``sparsity``, ``bits`` (``None`` when left unclustered), ``clusters``
            (distinct non-zero values it holds).
        bias_bits: Bits of the shared biases (`None`: biases left as they were).
        centroid_update: The centroid update clustering used (``"best"`` resolved
            to the one chosen; `None` when nothing was clustered).
        steps: The step log: one dict per move (``stage``, ``move``, ``layers``
            ``{path: [sparsity, bits]}``, ``metric``, ``bytes``, ``accepted``,
            ``seconds``).
    """

    model: object
    metric: str
    dense_metric: float
    limit: float
    final_metric: float
    dense_bytes: object
    final_bytes: object
    layers: list
    bias_bits: object
    steps: list
    centroid_update: object = None

    @property
    def ratio(self):
        """``dense_bytes / final_bytes`` (``None`` when bytes were not measured)."""
        if not self.dense_bytes or not self.final_bytes:
            return None
        return self.dense_bytes / self.final_bytes

    def to_dict(self):
        """Everything but the model, as JSON-ready values."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}
        out["ratio"] = self.ratio
        return out

    def save_json(self, path):
        """Writes `to_dict` to ``path`` (atomically)."""
        _write_atomic(path, json.dumps(self.to_dict(), indent=1).encode())

    def format_table(self):
        """The step log and the chosen layers as text tables."""
        lines = [
            f"{'stage':<8s} {'move':<40s} {self.metric:>9s} {'bytes':>10s} {'':3s} {'s':>6s}",
        ]
        for s in self.steps:
            size = f"{s['bytes']:>10,d}" if s.get("bytes") else f"{'':>10s}"
            mark = "ok" if s["accepted"] else "no"
            lines.append(
                f"{s['stage']:<8s} {s['move'][:40]:<40s} {s['metric']:>9.4f} {size} "
                f"{mark:3s} {s['seconds']:>6.0f}"
            )
        lines.append("")
        lines.append(
            f"{'variable':<40s} {'weights':>9s} {'sparsity':>9s} {'bits':>5s} {'values':>7s}"
        )
        for row in self.layers:
            bits = "-" if row["bits"] is None else str(row["bits"])
            lines.append(
                f"{row['path'][-40:]:<40s} {row['weights']:>9,d} {row['sparsity']:>9.2%} "
                f"{bits:>5s} {row['clusters']:>7d}"
            )
        if self.bias_bits is not None:
            lines.append(f"biases of these layers: {self.bias_bits} bits")
        ratio = f" = {self.ratio:.1f}x smaller" if self.ratio else ""
        lines.append("")
        lines.append(
            f"{self.metric}: dense {self.dense_metric:.4f}, compressed {self.final_metric:.4f} "
            f"(limit {self.limit:.4f}); bundle "
            + (
                f"{self.dense_bytes:,d} -> {self.final_bytes:,d} bytes{ratio}"
                if self.ratio
                else "n/a"
            )
        )
        return "\n".join(lines)

    def save_picture(self, path):
        """A PNG: validation metric and bundle bytes after every move. Returns False without matplotlib."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return False
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
        xs = np.arange(len(self.steps))
        colors = ["tab:green" if s["accepted"] else "tab:red" for s in self.steps]
        ax1.scatter(xs, [s["metric"] for s in self.steps], c=colors, s=18, zorder=3)
        ax1.axhline(self.limit, color="k", ls="--", lw=1, label=f"limit {self.limit:.4f}")
        ax1.axhline(self.dense_metric, color="gray", ls=":", lw=1, label="dense")
        ax1.set_ylabel(f"validation {self.metric}")
        ax1.legend(fontsize=8)
        accepted = [
            (i, s["bytes"]) for i, s in enumerate(self.steps) if s["accepted"] and s.get("bytes")
        ]
        if accepted:
            ax2.plot(*zip(*accepted), "o-", color="tab:blue", ms=4)
            ax2.set_yscale("log")
        ax2.set_ylabel("bundle bytes (accepted moves)")
        ax2.set_xticks(xs)
        ax2.set_xticklabels([f"{s['stage'][0]}{i}" for i, s in enumerate(self.steps)], fontsize=6)
        ax2.set_xlabel("move (p = prune, c = cluster; red = rejected)")
        fig.suptitle("compress_to_budget: the search, move by move", fontsize=10)
        fig.tight_layout()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return True


def bundle_size(model):
    """Bytes of the mobile bundle (skeleton + sidecar) that ``converters.convert`` writes for `model`.

    The default ``size_fn`` of `compress_to_budget`: the real converter and encoder,
    writing to a temporary folder (no picture), so the size is exactly that of the
    file a user ships. ``converters`` is imported here, when called, so that
    importing `keras_dc` never loads the TFLite side.

    Example:
        >>> keras_dc.bundle_size(model)
        7312
    """
    import converters

    with tempfile.TemporaryDirectory(prefix="keras_dc_budget_") as directory:
        return int(converters.convert(model, directory, verbose=0, picture=False).bundle_bytes)


def compress_to_budget(
    model,
    train,
    validation=None,
    *,
    max_increase=0.002,
    max_value=None,
    metric="error",
    loss=None,
    batch_size=128,
    validation_split=0.1,
    steps_per_epoch=None,
    learning_rate=1e-3,
    calibrate_lr=True,
    prune_epochs=2.0,
    start_density=0.5,
    density_step=0.7,
    prune_share=0.75,
    layer_moves=True,
    variational_epochs=0.0,
    variational_kl=1.0,
    gradual_epochs=0.0,
    gradual_events=24,
    gradual_floor=0.01,
    gradual_refine=0.0,
    final_epochs=None,
    ramp_events=4,
    cluster_epochs=2.0,
    cluster_learning_rate=3e-4,
    centroid_update="best",
    min_bits=1,
    max_bits=8,
    init="linear_gap",
    rate_weight=0.0,
    cluster_retries=3,
    bit_moves="best",
    bias_bits="auto",
    min_size=256,
    size_fn=bundle_size,
    directory=None,
    strict_resume=False,
    time_limit=None,
    seed=0,
    verbose=1,
):
    """Compresses a trained model into the smallest bundle within a validation budget.

    Prunes (global moves, then layer by layer) and clusters (fewest bits per
    layer) with `MagnitudePruning` and `WeightClustering`, retraining after every
    move, and keeps only moves whose validation metric stays within the budget
    (see the module docstring for the search). The model is changed in place.

    Args:
        model: A trained, built Keras model (Keras 3 or tf_keras). Built under a
            `tf.distribute` strategy, it trains under that strategy.
        train: Training data: ``(x, y)`` arrays, or a batched `tf.data.Dataset`
            of ``(x, y)`` (for augmentation; it should reshuffle every epoch).
        validation: ``(x, y)`` arrays the search decides on. Defaults to `None`:
            the last ``validation_split`` of ``train`` arrays (never the test set).
        max_increase: Allowed increase of the metric over the model as given
            (e.g. 0.002 = 0.2 points of error). Defaults to `0.002`.
        max_value: An absolute limit instead (e.g. 0.015 error). Defaults to `None`.
        metric: ``"error"`` (classification error: argmax of the outputs against
            integer or one-hot labels) or a callable ``(model, x, y) -> float``,
            lower is better. Defaults to `"error"`.
        loss: Training loss; defaults to the model's compiled loss.
        batch_size: For ``(x, y)`` training data. Defaults to `128`.
        validation_split: Fraction of ``train`` held out when ``validation`` is
            `None`. Defaults to `0.1`.
        steps_per_epoch: Batches in one epoch of a `tf.data.Dataset` whose
            length is unknown. Defaults to `None` (its cardinality).
        learning_rate: Adam's rate after every pruning move, decayed to 0 over
            ``prune_epochs`` (cosine). Defaults to `1e-3`.
        calibrate_lr: Before pruning, retrain the model as given (nothing pruned)
            for ``prune_epochs`` at ``learning_rate``; while that alone costs more
            than half of pruning's share of the budget, divide both learning rates
            by 3 (at most 3 times). A fresh optimizer at too high a rate knocks a
            converged network off its minimum and every move starts behind: LeNet-5
            went from 0.61% to 0.72% validation error after half an epoch at 1e-3
            (0.52% at 3.3e-4), and with calibration the search pruned further and
            wrote a smaller bundle than without (BENCHMARKS.md). A model that comes
            with zeros keeps them (its masks stay fixed). Defaults to `True`.
        prune_epochs: Retraining epochs after every pruning move; fractions are
            allowed (0.5: half an epoch of batches). Defaults to `2.0`.
        start_density: Fraction of weights kept after the first global move.
            Defaults to `0.5`.
        density_step: Each global move keeps this share of the weights still
            left (0.7 removes 30% of them). Defaults to `0.7`.
        prune_share: Share of the budget pruning may use; clustering gets the
            rest. Defaults to `0.75`.
        layer_moves: After the global moves, prune layer by layer. Defaults to `True`.
        variational_epochs: Before the moves (and before ``gradual_epochs``), train
            this many epochs with sparse variational dropout (`variational_sparsify`:
            every Dense/Conv kernel weight learns how much noise it tolerates, cosine
            decay from ``learning_rate``), then look at the validation metric with the
            weights whose ``log alpha`` is at least 0, 1, … 5 zeroed (deepest first);
            the deepest within the whole budget is retrained with its masks fixed
            (``final_epochs``) and kept if it then fits pruning's share (else the next
            deepest, three at most), and the moves go on from there. It learns which
            weights to drop instead of taking the smallest: LeNet-5 kept far fewer
            weights at the same validation error (BENCHMARKS.md, "Variational
            sparsification"). Sequential and functional models only. 0 skips it.
            Defaults to `0.0`.
        variational_kl: The KL term's weight (`variational_sparsify`'s ``kl_weight``):
            1 drops most, lower keeps more weights and more accuracy. Defaults to `1.0`.
        gradual_epochs: Before the moves, one long retraining of this many epochs
            (at ``learning_rate``, not calibrated: a long schedule anneals itself;
            cosine decay) while one global magnitude threshold rises in
            ``gradual_events`` cuts over its first three quarters, each keeping the
            same share of the weights left, from the current density down to
            ``gradual_floor``. The validation metric is measured before every cut
            and at the end (two cuts in a row over the budget in the ramp's second
            half, after some within it, end the stage early); the deepest state
            within the whole budget is retrained with its masks fixed
            (``final_epochs``) and kept if it then fits pruning's share (else the
            next deepest, three at most), and the moves
            go on from there. One long schedule prunes much deeper than short
            moves on a convolutional network (LeNet-5: BENCHMARKS.md, "Gradual
            pruning"). 0 skips it. Defaults to `0.0`.
        gradual_events: Cuts of the gradual stage. Defaults to `24`.
        gradual_floor: Density the gradual stage's threshold ramps to (the search
            keeps the deepest state within budget on the way). Defaults to `0.01`.
        gradual_refine: After the gradual stage kept a state of density d, run it
            again from the weights it started from, ramping one global threshold
            straight to ``d × gradual_refine`` over the first 60% of
            ``gradual_epochs`` and annealing at fixed masks for the rest; kept if it
            fits pruning's share, and then tried again from there (each try
            ``gradual_refine`` deeper; after a failure one last try halfway,
            ``d × sqrt(gradual_refine)``; three tries at most). The first stage's
            candidates are measured mid-schedule, at a high learning rate, so they
            are conservative; this pass measures a target at the end of a full
            schedule. 0 skips it. Defaults to `0.0`.
        ramp_events: Each pruning move cuts in this many steps spread over the first
            half of its retraining (1: all at once). Defaults to `4`.
        final_epochs: Retraining epochs of the pruned network (masks fixed)
            after the last move; 0 skips it. Defaults to `None`: 2 × ``prune_epochs``.
        cluster_epochs: Centroid retraining epochs (fractions allowed). Defaults to `2.0`.
        cluster_learning_rate: Adam's rate for the clustering stage's retraining.
            Defaults to `3e-4`.
        centroid_update: How clustering retrains. ``"best"``: at the first
            clustering, try the paper's update (``"auto"``: fixed assignments, the
            members' mean step) and ``"latent"`` (every clustered weight keeps a float
            value of its own and may change cluster, beyond the paper), and keep the
            one with the lower validation metric for the whole stage (one clustering
            more). Or name one (`WeightClustering`'s ``centroid_update``). From the
            same pruned LeNet-300-100s (three seeds) ``"latent"`` ended 2.0%, 8.1% and
            7.7% smaller than ``"auto"``; on a pruned LeNet-5 ``"auto"`` did better
            (BENCHMARKS.md, "Centroid update"). Defaults to `"best"`.
        min_bits, max_bits: Range of index bits the search chooses from (1–8).
        init: k-means initialisation (see `WeightClustering`). Defaults to `"linear_gap"`.
        rate_weight: Entropy-constrained clustering weight (see
            `WeightClustering`). Defaults to `0.0`.
        cluster_retries: Times clustering may add a bit and run again. Defaults to `3`.
        bit_moves: After the first clustering fits the budget, try fewer bits, each
            time clustering again from the pruned weights and retraining. ``"best"``:
            each round tries one bit fewer for every layer (and the biases) and keeps,
            of the moves within budget that shrink the file, the one that saves the
            most bytes per unit of metric it costs; it clusters once per layer and
            round but does not spend the budget on a small layer first. An
            interrupted round runs again on resume. `True`: one bit fewer for the
            layer with the most non-zeros first, until it fails, then the next
            (fewer clusterings). `False`: no bit moves. Defaults to ``"best"``
            (LeNet-300-100, three seeds from the same pruned models: 2.0%, 5.1% and
            0% smaller than `True`).
        bias_bits: Also share the biases of the clustered layers
            (`WeightClustering`'s ``bias_bits``): ``"auto"`` chooses the fewest
            bits the same way as for kernels, an int fixes them, `None` leaves
            biases as they are (the paper). Defaults to `"auto"`.
        min_size: As for the callbacks. Defaults to `256`.
        size_fn: ``model -> bytes``; `None` skips measuring bytes. Defaults to
            `bundle_size` (the real converter and encoder).
        directory: Folder for the resumable state. Defaults to `None` (no state).
        strict_resume: What to do when `directory` holds a search that started from
            other weights than `model`'s (the state records a SHA-256 of them): `False`
            resumes it — the saved weights replace the model's, as after an interruption
            where the model was built afresh — with a warning; `True` refuses
            (`SearchStateError`), for a script whose dense model is a fixed input. Defaults to
            `False`.
        time_limit: Seconds after which no new pruning move starts; the first
            clustering still runs, bit moves stop at 1.5 × ``time_limit``.
            Defaults to `None`.
        seed: k-means seed. Defaults to `0`.
        verbose: 0 silent, 1 a line per move, 2 also Keras' fit output. Defaults to `1`.

    Returns:
        A `BudgetResult`: the model, the chosen sparsity and bits per layer, the
        step log (`format_table`, `save_json`, `save_picture`).

    Example:
        >>> model.fit(x_train, y_train, epochs=10)  # a trained dense model
        >>> result = keras_dc.compress_to_budget(
        ...     model, (x_train, y_train), (x_val, y_val), max_increase=0.002,
        ...     directory="out/search")
        >>> print(result.format_table())
        >>> converters.convert(result.model, "out/bundle")
    """
    glue.check_model(model, "compress_to_budget")
    search = _Search(
        model=model,
        metric=metric,
        loss=loss,
        batch_size=as_int(batch_size, "batch_size", 1),
        learning_rate=as_float(learning_rate, "learning_rate", 0.0),
        calibrate_lr=bool(calibrate_lr),
        prune_epochs=_as_epochs(prune_epochs, "prune_epochs"),
        start_density=_as_open_fraction(start_density, "start_density"),
        density_step=_as_open_fraction(density_step, "density_step"),
        prune_share=_as_share(prune_share),
        layer_moves=bool(layer_moves),
        variational_epochs=0.0
        if variational_epochs == 0
        else _as_epochs(variational_epochs, "variational_epochs"),
        variational_kl=as_float(variational_kl, "variational_kl", 0.0),
        gradual_epochs=0.0 if gradual_epochs == 0 else _as_epochs(gradual_epochs, "gradual_epochs"),
        gradual_events=as_int(gradual_events, "gradual_events", 1),
        gradual_floor=_as_open_fraction(gradual_floor, "gradual_floor"),
        gradual_refine=0.0
        if gradual_refine == 0
        else _as_open_fraction(gradual_refine, "gradual_refine"),
        ramp_events=as_int(ramp_events, "ramp_events", 1),
        final_epochs=2 * float(prune_epochs)
        if final_epochs is None
        else (0.0 if final_epochs == 0 else _as_epochs(final_epochs, "final_epochs")),
        cluster_epochs=_as_epochs(cluster_epochs, "cluster_epochs"),
        cluster_learning_rate=as_float(cluster_learning_rate, "cluster_learning_rate", 0.0),
        centroid_update=as_choice(centroid_update, "centroid_update", (*CENTROID_UPDATES, "best")),
        min_bits=as_bits(min_bits, "min_bits"),
        max_bits=as_bits(max_bits, "max_bits"),
        init=init,
        rate_weight=as_float(rate_weight, "rate_weight", 0.0),
        cluster_retries=as_int(cluster_retries, "cluster_retries", 0),
        bit_moves=_as_bit_moves(bit_moves),
        bias_bits=bias_bits if bias_bits in (None, "auto") else as_bits(bias_bits, "bias_bits"),
        min_size=as_int(min_size, "min_size", 1),
        size_fn=size_fn,
        directory=directory,
        strict_resume=bool(strict_resume),
        time_limit=None if time_limit is None else as_float(time_limit, "time_limit", 0.0),
        seed=seed,
        verbose=verbose,
    )
    if search.variational_epochs:
        check_clonable(model, "compress_to_budget(variational_epochs=...)")
    if search.min_bits > search.max_bits:
        raise ValueError(f"min_bits ({min_bits}) must not exceed max_bits ({max_bits}).")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, received {init!r}.")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, received {verbose!r}.")
    if size_fn is not None and not callable(size_fn):
        raise TypeError(f"size_fn must be a callable model -> bytes or None, received {size_fn!r}.")
    search.set_data(train, validation, validation_split, steps_per_epoch)
    search.set_limit(max_increase, max_value)
    return search.run()


# --- the search ------------------------------------------------------------------


def _bit_move_score(saved_bytes, metric_cost, floor=1e-4):
    """Bytes a bit move saves per unit of metric it costs; a cost below `floor` (0.01 points
    of error) counts as `floor`, so that free moves rank by their bytes."""
    return saved_bytes / max(metric_cost, floor)


def _as_bit_moves(value):
    if isinstance(value, str) and value == "best":
        return value
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise ValueError(f'bit_moves must be True, False or "best", received {value!r}.')


def _as_open_fraction(value, name):
    value = as_float(value, name, 0.0)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), received {value!r}.")
    return value


def _as_epochs(value, name):
    value = as_float(value, name, 0.0)
    if value <= 0:
        raise ValueError(
            f"{name} must be > 0 (a fraction of an epoch is allowed), received {value!r}."
        )
    return value


def _as_share(value):
    value = as_float(value, "prune_share", 0.0)
    if value > 1.0:
        raise ValueError(f"prune_share must be in [0, 1], received {value!r}.")
    return value


class SearchStateError(ValueError):
    """`compress_to_budget`'s `directory` holds a search that this call cannot resume:
    written with other settings or for another model, or (with ``strict_resume=True``)
    started from other weights."""


def _weights_sha256(model):
    """SHA-256 of the model's weights (shapes and bytes, in `model.weights` order): the
    search's starting point, recorded in its state."""
    digest = hashlib.sha256()
    for value in model.get_weights():
        value = np.ascontiguousarray(value)
        digest.update(repr((value.shape, value.dtype.str)).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _write_atomic(path, data):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _sparsity(value):
    """A per-layer target the pruning callback accepts: below 1 even for an emptied layer
    (whose zeros stay zero anyway: masks are re-derived from the zeros)."""
    return min(float(value), float(np.nextafter(1.0, 0.0)))


def _key(variable):
    """``layer/variable`` of a variable path: the same for a model and its reloaded copy
    (a model loaded from a .keras file names its variables without the model's name)."""
    return "/".join(variable_path(variable).split("/")[-2:])


def _short(path):
    """``model/ip1/kernel`` -> ``ip1``: the layer's name, for log lines."""
    parts = path.split("/")
    return parts[-2] if len(parts) >= 2 else path


def _gradual_stops(have_candidates, over_in_a_row, cut, cuts):
    """Whether the gradual stage ends after cut number `cut` (0-based, of `cuts`): once there
    were candidates, two cuts in a row over the budget end it, but only from the ramp's
    second half on. The first cuts may be over the budget while a fresh optimizer shakes
    the network: LeNet-5s whose first cuts went over, within, over, over (82%, 68%, 56%,
    46% kept) stopped at 68% or 82% kept, and their refinements then started from there
    (BENCHMARKS.md, sessions 12 and 13)."""
    return have_candidates and over_in_a_row >= 2 and cut + 1 >= cuts // 2


def _forward(model):
    """``x -> outputs`` in batches of 1000 through one `tf.function` (no retracing per call)."""
    import tensorflow as tf

    call = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)

    def forward(x):
        parts = [np.asarray(call(x[i : i + 1000])) for i in range(0, len(x), 1000)]
        return np.concatenate(parts)

    return forward


def _classification_error(forward, x, y):
    outputs = forward(x)
    if outputs.ndim != 2:
        raise ValueError(
            f"metric='error' needs a model with (batch, classes) outputs; got shape "
            f"{outputs.shape}. Pass metric=callable(model, x, y) instead."
        )
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == outputs.shape[1]:
        labels = labels.argmax(axis=1)
    return float(np.mean(outputs.argmax(axis=1) != labels.reshape(-1)))


@dataclasses.dataclass
class _Search:
    model: object
    metric: object
    loss: object
    batch_size: int
    learning_rate: float
    calibrate_lr: bool
    prune_epochs: float
    start_density: float
    density_step: float
    prune_share: float
    layer_moves: bool
    variational_epochs: float
    variational_kl: float
    gradual_epochs: float
    gradual_events: int
    gradual_floor: float
    gradual_refine: float
    ramp_events: int
    final_epochs: float
    cluster_epochs: float
    cluster_learning_rate: float
    centroid_update: str
    min_bits: int
    max_bits: int
    init: str
    rate_weight: float
    cluster_retries: int
    bit_moves: object  # False, True (most non-zeros first) or "best"
    bias_bits: object
    min_size: int
    size_fn: object
    directory: object
    strict_resume: bool
    time_limit: object
    seed: int
    verbose: int

    # --- set-up --------------------------------------------------------------

    def set_data(self, train, validation, validation_split, steps_per_epoch):
        if isinstance(train, (tuple, list)):
            if len(train) != 2:
                raise ValueError("train must be (x, y) or a tf.data.Dataset of (x, y) batches.")
            x, y = (np.asarray(a) for a in train)
            if len(x) != len(y):
                raise ValueError(f"train: x has {len(x)} samples but y has {len(y)}.")
            if validation is None:
                split = as_float(validation_split, "validation_split", 0.0)
                n_val = int(round(len(x) * split))
                if not 0 < n_val < len(x):
                    raise ValueError(
                        f"validation is None and validation_split={validation_split!r} of "
                        f"{len(x)} samples leaves no validation or no training data."
                    )
                validation = (x[-n_val:], y[-n_val:])
                x, y = x[:-n_val], y[:-n_val]
            self.dataset, self.steps_per_epoch = data.array_batches(
                x, y, self.batch_size, self.seed
            )
            self.n_train = len(x)
        else:
            if validation is None:
                raise ValueError(
                    "validation is required when train is a tf.data.Dataset (the search "
                    "decides on validation data; never pass the test set)."
                )
            self.dataset, self.steps_per_epoch = data.dataset_steps(
                train,
                steps_per_epoch,
                "train is a tf.data.Dataset of unknown or infinite length; pass "
                "steps_per_epoch (batches in one epoch).",
            )
            self.n_train = None  # steps x the first batch's size, if variational_epochs
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise ValueError("validation must be (x, y) arrays.")
        self.x_val, self.y_val = (np.asarray(a) for a in validation)
        if len(self.x_val) != len(self.y_val) or len(self.x_val) == 0:
            raise ValueError(
                f"validation: x has {len(self.x_val)} samples and y has {len(self.y_val)}; "
                "they must match and not be empty."
            )
        if self.metric == "error":
            self.metric_name, self._metric = "error", _classification_error
        elif callable(self.metric):
            self.metric_name = getattr(self.metric, "__name__", "metric")
            self._metric = self.metric
        else:
            raise ValueError(
                f"metric must be 'error' or a callable (model, x, y) -> float, received {self.metric!r}."
            )
        if self.loss is None:
            self.loss = getattr(self.model, "loss", None)
            if self.loss is None:
                raise ValueError(
                    "compress_to_budget: the model is not compiled and no loss was given; "
                    "pass loss=... (e.g. keras.losses.SparseCategoricalCrossentropy(from_logits=True))."
                )
        self.variables = compressible_variables(self.model, self.min_size)
        if not self.variables:
            raise ValueError(
                f"compress_to_budget: model {self.model.name!r} has no compressible variable "
                f"(float kernels with at least min_size={self.min_size} entries)."
            )

    def set_limit(self, max_increase, max_value):
        self.max_increase = as_float(max_increase, "max_increase", 0.0)
        self.max_value = None if max_value is None else as_float(max_value, "max_value", 0.0)

    # --- small helpers ---------------------------------------------------------

    def say(self, message):
        if self.verbose:
            print(f"compress_to_budget: {message}", flush=True)

    def evaluate(self):
        if self._metric is _classification_error:
            if getattr(self, "_forward_fn", None) is None:
                self._forward_fn = _forward(self.model)
            return _classification_error(self._forward_fn, self.x_val, self.y_val)
        return float(self._metric(self.model, self.x_val, self.y_val))

    def measure(self):
        if self.size_fn is None:
            return None
        return int(self.size_fn(self.model))

    def layer_state(self):
        out = {}
        for v in self.variables:
            w = glue.read(v)
            out[_key(v)] = float(np.mean(w == 0))
        return out

    def total_weights(self):
        return sum(int(np.prod(v.shape)) for v in self.variables)

    def density(self):
        nonzero = sum(int(np.count_nonzero(glue.read(v))) for v in self.variables)
        return nonzero / self.total_weights()

    def fit(self, callback, epochs, lr, watch=None):
        """Compile a fresh Adam (cosine decay to 0) and train for `epochs` (a fraction is allowed)
        with `callback` (a pruning or clustering callback; `None`: plain retraining) and
        `watch` (a callback that runs after it)."""
        k = glue.keras_of(self.model)
        steps = max(1, int(round(epochs * self.steps_per_epoch)))
        strategy = getattr(self.model, "distribute_strategy", None)
        scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
        with scope:
            schedule = k.optimizers.schedules.CosineDecay(lr, decay_steps=steps)
            # metrics=[]: Keras 3.15 keeps an earlier compile's metrics when given None, and
            # those may not fit the retraining targets (e.g. distillation's [label, logits]).
            self.model.compile(optimizer=k.optimizers.Adam(schedule), loss=self.loss, metrics=[])
        self.model.fit(
            self.dataset,
            epochs=1,
            steps_per_epoch=steps,
            shuffle=False,  # the dataset shuffles itself
            verbose=2 if self.verbose == 2 else 0,
            callbacks=[c for c in (callback, watch) if c is not None],
        )

    # --- state (resume) ----------------------------------------------------------

    def fingerprint(self):
        keys = {
            # Layer and variable names only: a model loaded from a .keras file names its
            # variables without the model's name ("ip1/kernel", not "mlp/ip1/kernel").
            "variables": [[_key(v), list(map(int, v.shape))] for v in self.variables],
            "max_increase": self.max_increase,
            "max_value": self.max_value,
            "metric": self.metric_name,
            "start_density": self.start_density,
            "density_step": self.density_step,
            "prune_share": self.prune_share,
            "bits": [self.min_bits, self.max_bits],
            "bias_bits": self.bias_bits,
            "n_val": len(self.x_val),
            "calibrate_lr": self.calibrate_lr,
        }
        if self.variational_epochs:  # only then: older states keep their fingerprints
            keys["variational"] = [self.variational_epochs, self.variational_kl]
        if self.gradual_epochs:  # only then: older states keep their fingerprints
            keys["gradual"] = [self.gradual_epochs, self.gradual_events, self.gradual_floor]
            if self.gradual_refine:
                keys["gradual"].append(self.gradual_refine)
        return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]

    def save(self):
        if not self.directory:
            return
        os.makedirs(self.directory, exist_ok=True)
        weights = os.path.join(self.directory, _WEIGHTS)
        tmp = os.path.join(self.directory, ".tmp-" + _WEIGHTS)
        self.model.set_weights(self.accepted)
        self.model.save_weights(tmp)
        os.replace(tmp, weights)
        _write_atomic(
            os.path.join(self.directory, _STATE), json.dumps(self.state, indent=1).encode()
        )

    def load(self):
        path = os.path.join(self.directory, _STATE) if self.directory else None
        if not path or not os.path.exists(path):
            return False
        with open(path) as f:
            state = json.load(f)
        if state.get("version") != _STATE_VERSION or state.get("fingerprint") != self.fingerprint():
            raise SearchStateError(
                f"compress_to_budget: {path} was written by a search with other settings or "
                "another model; use another directory or delete it to start afresh."
            )
        started_from = state.get("start_sha256")  # since session 15
        if started_from is not None:
            other = started_from != _weights_sha256(self.model)
        elif self.strict_resume:  # an older state: the dense model's validation metric
            other = not math.isclose(
                self.evaluate(), state["dense_metric"], rel_tol=1e-6, abs_tol=1e-12
            )
        else:
            other = False
        if other:
            message = (
                f"compress_to_budget: {path} holds a search that started from other weights "
                "than the model given"
            )
            if self.strict_resume:
                raise SearchStateError(
                    f"{message}; use another directory or delete it to start afresh."
                )
            warnings.warn(f"{message}: resuming it with its saved weights.", stacklevel=3)
            self.say("note: the model given is not the one this search started from")
        self.model.load_weights(os.path.join(self.directory, _WEIGHTS))
        self.state = state
        self.accepted = self.model.get_weights()
        self.say(
            f"resuming from {self.directory}: {len(state['steps'])} moves done, stage {state['stage']}"
        )
        return True

    def log_step(self, stage, move, value, size, accepted, started, limit=None, verdict=None):
        step = {
            "stage": stage,
            "move": move,
            "layers": {
                path: [round(s, 6), self.state["bits"].get(path)]
                for path, s in self.layer_state().items()
            },
            "metric": value,
            "bytes": size,
            "accepted": bool(accepted),
            "seconds": round(time.perf_counter() - started, 2),
        }
        self.state["steps"].append(step)
        verdict = verdict or ("accepted" if accepted else "rejected, undone")
        size_text = f", bundle {size:,d} B" if size else ""
        self.say(
            f"[{stage}] {move}: validation {self.metric_name} {value:.4f} "
            f"(limit {self.state['limit'] if limit is None else limit:.4f}){size_text}, "
            f"{step['seconds']:.0f} s: {verdict}"
        )

    # --- the stages -----------------------------------------------------------------

    def run(self):
        if not self.load():
            started = time.perf_counter()
            dense = self.evaluate()
            limit = self.max_value if self.max_value is not None else dense + self.max_increase
            self.state = {
                "version": _STATE_VERSION,
                "fingerprint": self.fingerprint(),
                "start_sha256": _weights_sha256(self.model),
                "stage": "prune",
                "dense_metric": dense,
                "limit": limit,
                "dense_bytes": None,
                "global_failed": 0,
                "layers_done": [],
                "bits": {},
                "bits_tried": 0,
                "steps": [],
            }
            self.accepted = self.model.get_weights()
            self.state["dense_bytes"] = self.measure()
            self.log_step("dense", "as given", dense, self.state["dense_bytes"], True, started)
            if dense > limit:
                raise ValueError(
                    f"compress_to_budget: the model as given already has validation "
                    f"{self.metric_name} {dense:.4f} > max_value {limit:.4f}."
                )
            self.save()
        self.t0 = time.perf_counter()
        if self.state["stage"] == "prune":
            if self.calibrate_lr and "lr_scale" not in self.state:
                self.calibrate()
            self.prune()
            self.drop_dead_units()
            self.state["stage"] = "cluster"
            self.state["pruned_metric"] = self.last_accepted_metric()
            self.save()
            self.pruned = [np.array(w) for w in self.accepted]
            if self.directory:  # the pruned network, e.g. to try other clusterings from it
                self.model.save_weights(os.path.join(self.directory, "pruned.weights.h5"))
        if self.state["stage"] == "cluster":
            self.cluster()
            self.state["stage"] = "done"
            self.save()
        self.model.set_weights(self.accepted)
        return self.result()

    def lr_scale(self):
        return self.state.get("lr_scale", 1.0)

    def calibrate(self):
        """The largest learning rate (÷3 steps) at which retraining alone stays within half
        of pruning's share of the budget; a retraining that improves the model is kept."""
        s = self.state
        dense = s["dense_metric"]
        allowed = dense + 0.5 * self.prune_share * (s["limit"] - dense)
        scale = 1.0
        for attempt in range(4):
            started = time.perf_counter()
            self.model.set_weights(self.accepted)
            # A model that comes pruned keeps its zeros (masks fixed) while it retrains.
            keep = self.masks_fixed() if self.density() < 1.0 else None
            self.fit(keep, self.prune_epochs, self.learning_rate * scale)
            value = self.evaluate()
            better = value < self.last_accepted_metric()
            if better:
                self.accepted = self.model.get_weights()
            else:
                self.model.set_weights(self.accepted)
            self.log_step(
                "calibrate",
                f"retrain only, learning rate {self.learning_rate * scale:.3g}",
                value,
                self.measure() if better else None,
                better,
                started,
                allowed,
            )
            if value <= allowed + 1e-12 or attempt == 3:
                break
            scale /= 3.0
        s["lr_scale"] = scale
        self.say(
            f"learning rates from here: {self.learning_rate * scale:.3g} (pruning), "
            f"{self.cluster_learning_rate * scale:.3g} (clustering)"
        )
        self.save()

    def last_accepted_metric(self):
        return [s for s in self.state["steps"] if s["accepted"]][-1]["metric"]

    def last_accepted_bytes(self):
        sizes = [s["bytes"] for s in self.state["steps"] if s["accepted"] and s["bytes"]]
        return sizes[-1] if sizes else None

    def out_of_time(self, cluster=False):
        limit = self.time_limit
        if limit is None:
            return False
        return time.perf_counter() - self.t0 > (limit * 1.5 if cluster else limit)

    def try_prune(self, move, pruning, epochs=None):
        """Prune with `pruning`, retrain, keep the result if within the pruning budget."""
        started = time.perf_counter()
        self.model.set_weights(self.accepted)
        self.fit(pruning, epochs or self.prune_epochs, self.learning_rate * self.lr_scale())
        value = self.evaluate()
        limit = self.pruning_limit()
        ok = value <= limit + 1e-12
        size = self.measure() if ok else None
        if ok:
            self.accepted = self.model.get_weights()
        else:
            self.model.set_weights(self.accepted)
        self.log_step("prune", move, value, size, ok, started, limit)
        self.save()
        return ok

    def masks_fixed(self):
        """A pruning callback that keeps every layer at its present sparsity (retraining only)."""
        state = self.layer_state()
        return MagnitudePruning(
            0.0,
            schedule=OneShot(0),
            overrides=[(v, _sparsity(state[_key(v)])) for v in self.variables],
            min_size=self.min_size,
            verbose=0,
        )

    def prune(self):
        s = self.state
        if self.variational_epochs and not s.get("variational_done"):
            self.variational()
        if self.gradual_epochs and not s.get("gradual_done"):
            self.gradual()
        if self.gradual_refine and s.get("refine_from") and not s.get("refine_done"):
            self.refine()
        self.prune_moves()
        if self.final_epochs and not s.get("final_done"):
            # Longer retraining of the pruned network (masks fixed), for the clustering's budget.
            self.model.set_weights(self.accepted)
            keep = self.masks_fixed()
            s["final_done"] = True
            self.try_prune(f"retrain {self.final_epochs:g} epochs", keep, self.final_epochs)

    def drop_dead_units(self):
        """Zeroes the weights that feed units no later layer reads (`remove_dead_units`):
        no output changes, and clustering spends nothing on them."""
        started = time.perf_counter()
        self.model.set_weights(self.accepted)
        removed = remove_dead_units(self.model)
        if not removed:
            return
        self.accepted = self.model.get_weights()
        self.log_step(
            "prune",
            f"dead units: {removed} weights that fed nothing zeroed",
            self.evaluate(),
            self.measure(),
            True,
            started,
        )

    def variational(self):
        """Sparse variational dropout (`variational_sparsify`) for `variational_epochs`, then
        the zeros of each threshold in `_VARIATIONAL_THRESHOLDS` (deepest first) looked at on
        validation data; the deepest few within the whole budget are retrained with their
        masks fixed, the first that fits pruning's share is kept."""
        s = self.state
        clock = time.perf_counter()
        self.model.set_weights(self.accepted)
        before = self.accepted
        self.say(
            f"variational sparsification: {self.variational_epochs:g} epochs, KL weight "
            f"{self.variational_kl:g}, from "
            f"{self.density():.2%} of the weights"
        )
        n_train = self.n_train
        if n_train is None:
            n_train = data.samples_per_epoch(self.dataset, self.steps_per_epoch)
        result = variational_sparsify(
            self.model,
            None,
            epochs=self.variational_epochs,
            learning_rate=self.learning_rate,
            loss=self.loss,
            kl_weight=self.variational_kl,
            min_size=self.min_size,
            verbose=1 if self.verbose else 0,
            _prepared=(self.dataset, self.steps_per_epoch, n_train),
        )
        candidates = []
        for threshold in _VARIATIONAL_THRESHOLDS:
            result.apply(threshold)
            value = self.evaluate()
            ok = value <= s["limit"] + 1e-12
            if ok:
                candidates.append((threshold, self.density(), self.model.get_weights()))
            verdict = "within the budget: a candidate" if ok else "over the budget"
            self.log_step(
                "prune",
                f"variational: log alpha < {threshold:g}, keep {self.density():.2%}",
                value,
                None,
                False,
                clock,
                s["limit"],
                verdict,
            )
            clock = time.perf_counter()
        epochs = self.final_epochs or self.prune_epochs
        for threshold, keep, weights in candidates[:3]:
            self.model.set_weights(weights)
            fixed = self.masks_fixed()
            self.accepted = weights
            if self.try_prune(
                f"variational: keep {keep:.2%} (log alpha < {threshold:g}), retrain "
                f"{epochs:g} epochs",
                fixed,
                epochs,
            ):
                s["global_accepted"] = True
                s["variational_done"] = True
                self.save()
                return
        self.accepted = before
        self.model.set_weights(before)
        s["variational_done"] = True
        self.save()

    def gradual(self):
        """One long retraining while a global magnitude threshold rises in `gradual_events`
        cuts, each keeping the same share of the weights left, from the current density to
        `gradual_floor`; the validation metric is measured before every cut and at the end.
        States within the whole budget are candidates: the deepest is retrained with its
        masks fixed and accepted if it then fits pruning's share, else the next deepest
        (three at most); the moves go on from there (or from where they were). Once there
        were candidates, two cuts in a row over the budget in the ramp's second half end
        the retraining early (`_gradual_stops`)."""
        s = self.state
        clock = [time.perf_counter()]
        self.model.set_weights(self.accepted)
        density = self.density()
        n = self.gradual_events
        if density <= self.gradual_floor * (1 + 1e-6):
            self.say(f"gradual pruning skipped: {density:.2%} of the weights left already")
            s["gradual_done"] = True
            return
        floor = self.gradual_floor
        densities, every, pruning = self.geometric_cuts(density, floor, 0.75)
        candidates = []  # (keep, weights), shallow to deep; the deepest few only

        def look(keep, move):
            value = self.evaluate()
            candidate = value <= s["limit"] + 1e-12
            if candidate:
                candidates[:] = candidates[-2:] + [(keep, self.model.get_weights())]
            verdict = "within the budget: a candidate" if candidate else "over the budget"
            self.log_step("prune", move, value, None, False, clock[0], s["limit"], verdict)
            clock[0] = time.perf_counter()  # each cut's seconds: since the one before
            return candidate

        search, progress = self, {"last": -1, "over": 0}

        class _Watch(glue.keras_of(self.model).callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if (batch + 1) % every or (batch + 1) // every > n:
                    return
                progress["last"] = (batch + 1) // every - 1
                keep = densities[progress["last"]]
                progress["over"] = (
                    0 if look(keep, f"gradual: keep {keep:.2%}") else progress["over"] + 1
                )
                if _gradual_stops(bool(candidates), progress["over"], progress["last"], n):
                    search.model.stop_training = True

        self.say(
            f"gradual pruning: {self.gradual_epochs:g} epochs, {n} cuts from {density:.2%} "
            f"to {floor:.2%} of the weights"
        )
        self.fit(pruning, self.gradual_epochs, self.learning_rate, _Watch())
        if progress["last"] == n - 1 and not self.model.stop_training:
            # The whole ramp ran: its end, retrained at the floor, is the deepest state.
            look(floor, f"gradual: keep {floor:.2%}, end of the schedule")
        s["gradual_done"] = True
        before = self.accepted
        epochs = self.final_epochs or self.prune_epochs
        for keep, weights in reversed(candidates):
            self.model.set_weights(weights)
            fixed = self.masks_fixed()
            self.accepted = weights
            if self.try_prune(
                f"gradual: keep {keep:.2%}, retrain {epochs:g} epochs", fixed, epochs
            ):
                s["global_accepted"] = True  # one threshold for all layers works here
                if self.gradual_refine:
                    self.keep_start(before, keep)
                self.save()
                return
        self.accepted = before
        self.model.set_weights(before)
        self.save()

    def keep_start(self, weights, keep):
        """Remembers the weights the gradual stage started from (in memory, and in
        `directory` for a resumed search) and the density it reached, for `refine`."""
        self._refine_start = [np.array(w) for w in weights]
        self.state["refine_from"] = keep
        if self.directory:
            os.makedirs(self.directory, exist_ok=True)
            current = self.model.get_weights()
            self.model.set_weights(weights)
            self.model.save_weights(os.path.join(self.directory, _REFINE_START))
            self.model.set_weights(current)

    def refine(self):
        """The gradual stage again, from the weights it started from, straight to a
        deeper target (`gradual_refine`): cuts over the first 60% of `gradual_epochs`, fixed
        masks for the rest; kept if within pruning's share (see `compress_to_budget`)."""
        s = self.state
        start = getattr(self, "_refine_start", None)
        if start is None:  # a resumed search: the weights were saved by `keep_start`
            self.model.load_weights(os.path.join(self.directory, _REFINE_START))
            start = self.model.get_weights()
        self.model.set_weights(start)
        density = self.density()
        keep, factor = s["refine_from"], self.gradual_refine
        limit = self.pruning_limit()
        for _ in range(3):
            target = keep * factor
            started = time.perf_counter()
            self.model.set_weights(start)
            pruning = self.geometric_cuts(density, target, 0.6)[2]
            self.say(
                f"gradual refine: {self.gradual_epochs:g} epochs from {density:.2%} "
                f"straight to {target:.2%} of the weights"
            )
            self.fit(pruning, self.gradual_epochs, self.learning_rate)
            value = self.evaluate()
            ok = value <= limit + 1e-12
            size = self.measure() if ok else None
            if ok:
                self.accepted = self.model.get_weights()
                keep = target
            self.model.set_weights(self.accepted)
            move = f"gradual refine: keep {target:.2%}, {self.gradual_epochs:g} epochs"
            self.log_step("prune", move, value, size, ok, started, limit)
            s["refine_from"] = keep
            self.save()
            if factor != self.gradual_refine:
                break  # the half step after a failure is the last try
            if not ok:
                factor = math.sqrt(self.gradual_refine)
        s["refine_done"] = True
        self.save()

    def pruning_limit(self):
        """The metric pruning may reach: the dense model's plus `prune_share` of the budget."""
        s = self.state
        return s["dense_metric"] + self.prune_share * (s["limit"] - s["dense_metric"])

    def geometric_cuts(self, density, target, share):
        """One global threshold from `density` to `target` over the first `share` of
        `gradual_epochs`, in `gradual_events` cuts each keeping the same share of the weights
        left. Returns the densities after each cut, the steps between cuts, the callback."""
        n = self.gradual_events
        densities = [density * (target / density) ** ((i + 1) / n) for i in range(n)]
        steps = max(1, int(round(self.gradual_epochs * self.steps_per_epoch)))
        every = max(1, int(share * steps) // n)
        pruning = MagnitudePruning(
            GlobalSparsity(1.0 - target),
            schedule=Iterative(
                fractions=[(1.0 - d) / (1.0 - target) for d in densities],
                every=every,
                begin=0,
                unit="step",
            ),
            min_size=self.min_size,
            verbose=0,
        )
        return densities, every, pruning

    def ramp(self, current, target, epochs=None):
        """A pruning schedule from sparsity `current` to `target` in `ramp_events` cuts spread
        over the first half of the move's retraining (big moves hurt less when gradual)."""
        n = self.ramp_events
        steps = max(1, int(round((epochs or self.prune_epochs) * self.steps_per_epoch)))
        if n <= 1 or target <= 0 or steps < 2 * n:
            return OneShot(0)
        fractions = [(current + (target - current) * (i + 1) / n) / target for i in range(n)]
        fractions = [min(1.0, max(1e-6, f)) for f in fractions]
        fractions[-1] = 1.0
        return Iterative(fractions=fractions, every=max(1, steps // (2 * n)), begin=0, unit="step")

    def prune_moves(self):
        s = self.state
        # Global moves: full steps until one fails, then half steps until one fails. One
        # magnitude threshold over all layers first; if the very first such move fails,
        # the same share in every layer instead ("uniform"): BatchNorm after a layer makes
        # its weight scale arbitrary, and one threshold can then empty a whole layer.
        while s["global_failed"] < 2 and not self.out_of_time():
            self.model.set_weights(self.accepted)
            density = self.density()
            step = self.density_step if s["global_failed"] == 0 else (1 + self.density_step) / 2
            target = density * step
            if target * self.total_weights() < 1:  # less than one weight would be left
                break
            if density > self.start_density and s["global_failed"] == 0:
                target = min(self.start_density, target)
            uniform = s.get("global_kind") == "uniform"
            overrides = None
            if uniform:  # every layer keeps the same share of what it has left
                overrides = [
                    (v, _sparsity(1.0 - (1.0 - sp) * target / density))
                    for v, sp in zip(self.variables, self.layer_state().values())
                ]
            pruning = MagnitudePruning(
                0.0 if uniform else GlobalSparsity(1.0 - target),
                schedule=self.ramp(1.0 - density, 1.0 - target),
                overrides=overrides,
                min_size=self.min_size,
                verbose=0,
            )
            kind = "uniform" if uniform else "global"
            if self.try_prune(f"{kind}: keep {target:.2%}", pruning):
                s["global_accepted"] = True
            elif not uniform and not s.get("global_accepted"):
                s["global_kind"] = "uniform"
                self.save()
            else:
                s["global_failed"] += 1
        if not self.layer_moves:
            return
        # Layer moves: the layer with the most kept weights first (most bytes); a layer
        # whose move fails gets one half step, then is done.
        while not self.out_of_time():
            self.model.set_weights(self.accepted)
            state = self.layer_state()
            failed = s.setdefault("layer_failed", {})
            candidates = [
                v
                for v in self.variables
                if _key(v) not in s["layers_done"] and np.count_nonzero(glue.read(v)) > 1
            ]
            if not candidates:
                break
            variable = max(candidates, key=lambda v: int(np.count_nonzero(glue.read(v))))
            path = _key(variable)
            step = self.density_step if not failed.get(path) else (1 + self.density_step) / 2
            keep = (1.0 - state[path]) * step
            overrides = [
                (v, _sparsity(state[_key(v)])) for v in self.variables if v is not variable
            ]
            overrides.append((variable, _sparsity(1.0 - keep)))
            pruning = MagnitudePruning(
                0.0,
                schedule=self.ramp(state[path], 1.0 - keep),
                overrides=overrides,
                min_size=self.min_size,
                verbose=0,
            )
            if not self.try_prune(f"{_short(path)}: keep {keep:.2%}", pruning):
                failed[path] = failed.get(path, 0) + 1
                if failed[path] >= 2:
                    s["layers_done"].append(path)
                self.save()

    def one_shot_bits(self, pruned_metric, tolerance):
        """Per variable, the fewest bits whose one-shot clustering costs ≤ `tolerance`."""
        chosen, damage = {}, {}
        for v in self.variables:
            original = glue.read(v)
            best, best_damage = self.max_bits, 0.0
            try:
                for bits in range(self.max_bits, self.min_bits - 1, -1):
                    centroids, indices = cluster_weights(
                        original, bits, self.init, self.seed, self.rate_weight
                    )
                    v.assign(centroids[indices].astype(original.dtype))
                    cost = self.evaluate() - pruned_metric
                    if cost > tolerance:
                        break
                    best, best_damage = bits, cost
            finally:
                v.assign(original)
            chosen[_key(v)], damage[_key(v)] = best, best_damage
        return chosen, damage

    def biases(self):
        return [b for _, group in layer_biases(self.model, self.variables) for b in group]

    def one_shot_bias_bits(self, pruned_metric, tolerance):
        """The fewest bits for all biases together whose one-shot clustering costs ≤ `tolerance`."""
        biases = self.biases()
        if not biases:
            return None
        originals = [glue.read(b) for b in biases]
        best = self.max_bits
        try:
            for bits in range(self.max_bits, self.min_bits - 1, -1):
                for b, w in zip(biases, originals):
                    c, i = cluster_weights(w, bits, self.init, self.seed, zeros_apart=False)
                    b.assign(c[i].astype(w.dtype))
                if self.evaluate() - pruned_metric > tolerance:
                    break
                best = bits
        finally:
            for b, w in zip(biases, originals):
                b.assign(w)
        return best

    def cluster(self):
        s = self.state
        pruned_metric = s["pruned_metric"]
        self.model.set_weights(self.accepted)
        if not s["bits"]:
            shares = len(self.variables) + (self.bias_bits == "auto")
            tolerance = max(0.0, s["limit"] - pruned_metric) / shares
            s["bits"], s["damage"] = self.one_shot_bits(pruned_metric, tolerance)
            s["bias_bits"] = (
                self.one_shot_bias_bits(pruned_metric, tolerance)
                if self.bias_bits == "auto"
                else self.bias_bits
            )
            self.say(
                "one-shot bits per layer: "
                + ", ".join(f"{_short(p)} {b}" for p, b in s["bits"].items())
                + (f", biases {s['bias_bits']}" if s["bias_bits"] is not None else "")
            )
        pruned = self.pruned_weights()
        if not s.get("clustered"):
            self.first_clustering(pruned)
        if s.get("clustered") and self.bit_moves == "best":
            self.best_bit_moves_loop(pruned)
        elif s.get("clustered") and self.bit_moves:
            self.bit_moves_loop(pruned)

    def pruned_weights(self):
        """The weights at the end of pruning (from memory, or the state folder on resume)."""
        if getattr(self, "pruned", None) is None:
            path = os.path.join(self.directory or "", "pruned.weights.h5")
            if self.directory and os.path.exists(path):
                self.model.load_weights(path)
                self.pruned = self.model.get_weights()
                self.model.set_weights(self.accepted)
            else:
                self.pruned = [np.array(w) for w in self.accepted]
        return self.pruned

    def cluster_and_measure(self, pruned, bits, bias_bits, update=None):
        """Clusters `pruned` with `bits`, retrains the centroids: ``(metric, bytes)``, the
        bytes only when within budget (`None` otherwise or without ``size_fn``). The model
        keeps the retrained weights. `update`: the centroid update (default: the search's)."""
        s = self.state
        self.model.set_weights(pruned)
        by_path = {_key(v): v for v in self.variables}
        clustering = WeightClustering(
            overrides=[(by_path[p], b) for p, b in bits.items()],
            init=self.init,
            rate_weight=self.rate_weight,
            centroid_update=update or self.update(),
            min_size=self.min_size,
            seed=self.seed,
            bias_bits=bias_bits,
            verbose=0,
        )
        self.fit(clustering, self.cluster_epochs, self.cluster_learning_rate * self.lr_scale())
        value = self.evaluate()
        size = self.measure() if value <= s["limit"] + 1e-12 else None
        return value, size

    def try_clustering(self, pruned, bits, bias_bits, move):
        """Cluster `pruned` with `bits` and retrain the centroids; keep it if within budget."""
        s = self.state
        started = time.perf_counter()
        value, size = self.cluster_and_measure(pruned, bits, bias_bits)
        ok = value <= s["limit"] + 1e-12
        previous = self.last_accepted_bytes() if s.get("clustered") else None
        if ok and size is not None and previous is not None and size >= previous:
            ok = False  # fewer bits, but not a smaller file: not worth the accuracy
        if ok:
            self.accepted = self.model.get_weights()
        else:
            self.model.set_weights(self.accepted)
        self.log_step("cluster", move, value, size, ok, started)
        return ok

    def bits_text(self, bits, bias_bits):
        text = ", ".join(f"{_short(p)} {b}" for p, b in bits.items())
        return text + (f", bias {bias_bits}" if bias_bits is not None else "")

    def update(self):
        """The centroid update clustering uses: the one chosen (``"best"``) or given."""
        if self.centroid_update != "best":
            return self.centroid_update
        return self.state.get("centroid_update", "latent")

    def choose_update(self, pruned):
        """``centroid_update="best"``: cluster at the one-shot bits with the paper's update
        and with the latent one, and keep for the whole stage the one whose validation
        metric is lower (the latent one on a tie)."""
        s = self.state
        if self.centroid_update != "best" or "centroid_update" in s:
            return
        values = {}
        for update in ("auto", "latent"):
            started = time.perf_counter()
            values[update], size = self.cluster_and_measure(
                pruned, s["bits"], s["bias_bits"], update
            )
            self.model.set_weights(self.accepted)
            move = f"centroid update {update}: bits {self.bits_text(s['bits'], s['bias_bits'])}"
            self.log_step(
                "cluster", move, values[update], size, False, started, s["limit"], "trial"
            )
        s["centroid_update"] = "auto" if values["auto"] < values["latent"] else "latent"
        self.say(f"centroid update from here: {s['centroid_update']}")
        self.save()

    def first_clustering(self, pruned):
        """Cluster at the one-shot bits; on failure add a bit where the one-shot loss was largest."""
        s = self.state
        self.choose_update(pruned)
        while s["bits_tried"] <= self.cluster_retries:
            s["bits_tried"] += 1
            move = f"bits {self.bits_text(s['bits'], s['bias_bits'])}"
            if self.try_clustering(pruned, s["bits"], s["bias_bits"], move):
                s["clustered"] = True
                self.save()
                return
            room = [p for p in s["bits"] if s["bits"][p] < self.max_bits]
            if s["bias_bits"] is not None and s["bias_bits"] < self.max_bits:
                room.append("(biases)")
            if not room:
                break
            worst = max(room, key=lambda p: s["damage"].get(p, 0.0))
            if worst == "(biases)":
                s["bias_bits"] += 1
            else:
                s["bits"][worst] += 1
            s["damage"][worst] = -1.0
            self.save()
        # Clustering did not fit the budget: keep the pruned model, unclustered.
        s["bits"], s["bias_bits"] = {}, None
        self.accepted = [np.array(w) for w in pruned]
        self.model.set_weights(pruned)
        self.save()
        self.say("clustering did not fit the budget at any tried bits; the model stays pruned only")

    def bit_room(self, done):
        """The layers (and ``"(biases)"``) that may still lose a bit."""
        s = self.state
        room = [p for p, b in s["bits"].items() if b > self.min_bits and p not in done]
        if s["bias_bits"] is not None and s["bias_bits"] > self.min_bits:
            room += [] if "(biases)" in done else ["(biases)"]
        return room

    def one_bit_fewer(self, target):
        """``(bits, bias_bits)``: the current ones with one bit fewer for `target`."""
        bits, bias_bits = dict(self.state["bits"]), self.state["bias_bits"]
        if target == "(biases)":
            bias_bits -= 1
        else:
            bits[target] -= 1
        return bits, bias_bits

    def nonzeros(self, pruned):
        """Non-zeros per clustered variable of `pruned`, and the biases' element count."""
        sizes = {
            _key(v): int(np.count_nonzero(w))
            for v, w in zip(self.model.weights, pruned)
            if _key(v) in self.state["bits"]
        }
        sizes["(biases)"] = sum(int(np.prod(b.shape)) for b in self.biases())
        return sizes

    def bit_rounds(self, pruned):
        """Yields ``(room, done, non-zeros)`` per round of bit moves while there is time and a
        layer with room; `done` is the state's list of layers whose move failed."""
        done = self.state.setdefault("bits_done", [])
        sizes = self.nonzeros(pruned)
        while not self.out_of_time(cluster=True):
            room = self.bit_room(done)
            if not room:
                return
            yield room, done, sizes

    def bit_moves_loop(self, pruned):
        """One bit fewer for the layer with the most non-zeros, clustered again from the pruned
        weights and retrained; kept when within budget and smaller; a layer that fails is done."""
        s = self.state
        for room, done, sizes in self.bit_rounds(pruned):
            target = max(room, key=lambda p: sizes.get(p, 0))
            bits, bias_bits = self.one_bit_fewer(target)
            move = f"fewer bits: {self.bits_text(bits, bias_bits)}"
            if self.try_clustering(pruned, bits, bias_bits, move):
                s["bits"], s["bias_bits"] = bits, bias_bits
            else:
                done.append(target)
            self.save()

    def best_bit_moves_loop(self, pruned):
        """``bit_moves="best"``: per round, one bit fewer for every layer with room, each
        clustered again from the pruned weights and retrained; of the moves within budget
        that shrink the file, the one saving the most bytes per unit of metric it costs
        is kept (a move that costs nothing wins by its bytes); a layer whose move fails is
        done. Without ``size_fn`` the bytes saved are estimated as one bit per non-zero."""
        s = self.state
        for room, done, sizes in self.bit_rounds(pruned):
            metric, previous = self.last_accepted_metric(), self.last_accepted_bytes()
            best = None
            for target in sorted(room, key=lambda p: -sizes.get(p, 0)):
                bits, bias_bits = self.one_bit_fewer(target)
                started = time.perf_counter()
                value, size = self.cluster_and_measure(pruned, bits, bias_bits)
                ok = value <= s["limit"] + 1e-12 and (
                    size is None or previous is None or size < previous
                )
                if not ok:
                    done.append(target)
                    score = None
                else:
                    saved = previous - size if None not in (size, previous) else sizes[target] / 8
                    score = _bit_move_score(saved, value - metric)
                    if best is None or score > best["score"]:
                        best = dict(
                            score=score,
                            bits=bits,
                            bias_bits=bias_bits,
                            value=value,
                            size=size,
                            weights=self.model.get_weights(),
                        )
                self.model.set_weights(self.accepted)
                verdict = "rejected" if not ok else f"within budget, {score:,.0f} B per unit"
                self.log_step(
                    "cluster",
                    f"try fewer bits: {self.bits_text(bits, bias_bits)}",
                    value,
                    size if ok else None,
                    False,
                    started,
                    verdict=verdict,
                )
            if best is None:
                self.save()
                break
            self.accepted = best["weights"]
            self.model.set_weights(self.accepted)
            s["bits"], s["bias_bits"] = best["bits"], best["bias_bits"]
            self.log_step(
                "cluster",
                f"fewer bits (best of {len(room)}): {self.bits_text(best['bits'], best['bias_bits'])}",
                best["value"],
                best["size"],
                True,
                time.perf_counter(),
            )
            self.save()

    def result(self):
        s = self.state
        layers = []
        for v in self.variables:
            w = glue.read(v)
            nz = w[w != 0]
            path = _key(v)
            layers.append(
                {
                    "path": variable_path(v),
                    "weights": int(w.size),
                    "sparsity": float(np.mean(w == 0)),
                    "bits": s["bits"].get(path),
                    "clusters": int(np.unique(nz).size),
                }
            )
        return BudgetResult(
            model=self.model,
            metric=self.metric_name,
            dense_metric=s["dense_metric"],
            limit=s["limit"],
            final_metric=self.last_accepted_metric(),
            dense_bytes=s["dense_bytes"],
            final_bytes=self.last_accepted_bytes(),
            layers=layers,
            bias_bits=s.get("bias_bits"),
            steps=s["steps"],
            centroid_update=self.update() if s.get("clustered") else None,
        )
