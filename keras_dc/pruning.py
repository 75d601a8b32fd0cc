"""Magnitude pruning during ``model.fit`` (Han et al. 2015; Zhu & Gupta 2017)."""

import warnings

import numpy as np
import tensorflow as tf

from keras_dc import _distributed
from keras_dc import _keras_glue as glue
from keras_dc import masks as masks_lib
from keras_dc import schedules as schedules_lib
from keras_dc._callback import CompressionCallback
from keras_dc.selection import variable_path
from keras_dc.targets import GlobalSparsity, Sparsity, StdThreshold, as_target

__all__ = ["MagnitudePruning"]


class _MaskConstraint:
    """``w ↦ inner(w) · mask``, applied by the optimizer after every update."""

    def __init__(self, mask):
        self.mask = mask
        self.inner = None

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        return w * tf.cast(self.mask, w.dtype)


_BLOCKS = (None, "litert")


def _is_block_kernel(variable):
    """True for a 2-D variable named ``kernel``: a Dense-like ``[in, out]`` kernel."""
    path = variable_path(variable)
    return len(variable.shape) == 2 and path.rsplit("/", 1)[-1] == "kernel"


class MagnitudePruning(CompressionCallback):
    """Prunes the smallest-magnitude weights of every compressible layer during fit.

    At each event of ``schedule`` the callback ranks each selected variable's
    weights by magnitude and zeroes the smallest ones until the layer reaches
    ``target × fraction`` (``fraction`` is how far the schedule has ramped, in
    (0, 1]). Between events the survivors keep training; pruned weights are held
    at exactly zero by a mask the optimizer applies after every update (a variable
    constraint), whatever momentum or Adam state says. Schedule positions are
    optimizer steps (``model.optimizer.iterations``, which keep counting across
    ``fit`` calls until the model is recompiled) or epochs. Once pruned, a weight stays
    pruned, also across later ``fit`` calls and after saving and loading the model
    (the mask is re-derived from the zeros), so a run restarted from a checkpoint
    continues its schedule from ``optimizer.iterations`` with the same masks.

    The variables compressed are found automatically: trainable float kernels and
    embeddings (≥ 2 dimensions) with at least ``min_size`` entries. No wrapper
    layers are involved and the model is unchanged after training.

    Reference: Han, Pool, Tran, Dally, "Learning both Weights and Connections for
    Efficient Neural Networks", NIPS 2015; Zhu & Gupta, "To prune, or not to
    prune", 2017 (the gradual schedule).

    Args:
        target: The final target of every selected layer: a float sparsity in
            [0, 1), `keras_dc.Sparsity`, `keras_dc.GlobalSparsity` (one threshold
            over all layers) or `keras_dc.StdThreshold` (the paper's
            ``quality × std`` rule). Defaults to `0.9`.
        schedule: When to prune: a `keras_dc.schedules.OneShot`, `Iterative`
            or `Gradual`. Defaults to `None`: a gradual ramp over the first two
            thirds of this fit's steps (every ~5% of them), then retraining.
        overrides: Per-layer targets, ``{layer or variable or layer name: target}``;
            ``None`` as a value leaves that layer dense. Defaults to `None`.
        min_size: Smallest variable (in entries) that is pruned. Defaults to `256`.
        block: ``None`` prunes single weights; ``"litert"`` prunes 2-D kernels
            named ``kernel`` (Dense, Keras ``[in, out]``) in blocks of 4
            consecutive rows of one column, the 1x4 blocks (4 inputs of one
            output) that LiteRT's FULLY_CONNECTED kernel runs sparse when the
            model is converted with ``sparse=True``
            (`keras_dc.masks.mask_for_block_sparsity`: blocks ranked by mean
            |w|, the target rounded to whole blocks, a tail of ``in % 4`` rows
            is one shorter block). Threshold targets (`GlobalSparsity`,
            `StdThreshold`) give such a layer the sparsity their threshold
            would, reached in blocks. Convolutions, embeddings and kernels of
            another rank have no sparse LiteRT kernel and stay unstructured;
            the selection table says which is which. Defaults to `None`.
        verbose: 0 silent, 1 prints the selected variables and a line per epoch,
            2 also a line per pruning event. Defaults to `1`.

    After ``on_train_begin``, ``selected`` lists the variables being pruned with
    their targets. Each epoch writes ``sparsity`` (overall) and
    ``sparsity/<variable path>`` into ``logs`` so History and TensorBoard see them.

    Example:
        >>> pruning = keras_dc.MagnitudePruning(
        ...     target=0.92,
        ...     schedule=keras_dc.schedules.Gradual(begin=0, end=8, frequency=1, unit="epoch"),
        ...     overrides={model.layers[-1]: 0.75})
        >>> model.fit(x, y, epochs=12, callbacks=[pruning])
    """

    name = "MagnitudePruning"

    def __init__(
        self, target=0.9, schedule=None, overrides=None, min_size=256, block=None, verbose=1
    ):
        self.target = as_target(target, "target")
        if self.target is None:
            raise ValueError("target must not be None; to prune nothing, do not add the callback.")
        if schedule is not None and not isinstance(schedule, schedules_lib.PruningSchedule):
            raise TypeError(
                "schedule must be a keras_dc.schedules.OneShot, Iterative or Gradual "
                f"(or None for the default ramp), received {schedule!r}."
            )
        if block not in _BLOCKS:
            raise ValueError(
                f"block must be None (prune single weights) or 'litert' (prune Dense kernels "
                f"in the 1x4 blocks LiteRT runs sparse), received {block!r}."
            )
        self.schedule = schedule
        self.block = block
        super().__init__(overrides=overrides, min_size=min_size, verbose=verbose)

    # --- what pruning adds to the shared lifecycle ---------------------------

    def _convert_override(self, value):
        return as_target(value, "override target")

    def _default_setting(self, variable):
        return self.target

    def _begin(self):
        self._schedule = self.schedule or self._default_schedule()
        last = self._schedule.last_event_step(self._steps_per_epoch)
        if last is not None and last < self._step:
            warnings.warn(
                f"MagnitudePruning: every event of {self._schedule!r} lies before the optimizer's "
                f"current step {self._step} (schedules count optimizer.iterations, which continue "
                "across fit calls), so this fit only keeps the existing zeros. To prune now, "
                f"start the schedule at begin/at={self._step}, or recompile the model.",
                stacklevel=3,
            )
        return self._step

    def _constraint(self, index, variable, setting, prepared):
        # The mask is re-derived from the zeros, so a resumed run keeps its pruned weights.
        mask = glue.make_state_variable(
            self.model,
            (glue.read(variable) != 0).astype(np.float32),
            tf.float32,
            f"keras_dc_mask_{index}",
        )
        return _MaskConstraint(mask)

    def _selection_fields(self, entry):
        return {"target": entry.setting, "blocks": self._in_blocks(entry.variable)}

    def _selection_title(self):
        return f"pruning {len(self.selected)} variables (schedule {self._schedule!r})"

    def _selection_detail(self, item):
        detail = f"target {item['target']!r}"
        if self.block is None:
            return detail
        if item["blocks"]:
            return f"{detail}, blocks of {masks_lib.LITERT_BLOCK_ROWS} rows"
        return f"{detail}, unstructured (no LiteRT sparse kernel)"

    def _at_steps(self, steps):
        # With steps_per_execution > 1 one call covers several steps: take the
        # furthest event among them.
        fractions = [
            f for s in steps if (f := self._schedule.fraction(s, self._steps_per_epoch)) is not None
        ]
        if fractions:
            self._prune(max(fractions), steps.start)

    def _epoch_logs(self):
        stats = self.sparsities()
        fields = {f"sparsity/{path}": value for path, value in stats["layers"].items()}
        fields["sparsity"] = stats["overall"]
        return fields

    def _epoch_line(self, epoch, fields):
        return (
            f"MagnitudePruning: epoch {epoch + 1}: overall sparsity "
            f"{fields['sparsity']:.4f} (step {self._step})"
        )

    def _summary(self):
        stats = self.sparsities()
        lines = [f"MagnitudePruning: done, overall sparsity {stats['overall']:.4f}"]
        lines += [f"  {path:<48s} {value:.4f}" for path, value in stats["layers"].items()]
        return "\n".join(lines)

    # --- helpers -----------------------------------------------------------

    def _default_schedule(self):
        total = (self._steps_per_epoch or 0) * int(self.params.get("epochs", 0) or 0)
        if total < 3:
            return schedules_lib.OneShot(at=self._step)
        end = self._step + max(1, (2 * total) // 3)
        frequency = max(1, (end - self._step) // 20)
        return schedules_lib.Gradual(begin=self._step, end=end, frequency=frequency)

    def _prune(self, fraction, step):
        weights = [glue.read(e.variable) for e in self._entries]
        previous = [glue.read(e.constraint.mask) > 0 for e in self._entries]
        global_ids = [
            i for i, e in enumerate(self._entries) if isinstance(e.setting, GlobalSparsity)
        ]
        threshold = None
        if global_ids:
            sparsity = self._entries[global_ids[0]].setting.sparsity * fraction
            threshold = masks_lib.global_threshold(
                [weights[i] * previous[i] for i in global_ids], sparsity
            )
        masks = []
        for entry, w, prev in zip(self._entries, weights, previous):
            target = entry.setting
            if isinstance(target, GlobalSparsity):
                mask = masks_lib.mask_for_threshold(w, threshold, prev)
            elif isinstance(target, Sparsity):
                mask = masks_lib.mask_for_sparsity(w, target.sparsity * fraction, prev)
            elif isinstance(target, StdThreshold):
                t = masks_lib.std_threshold(w * prev, target.quality * fraction)
                mask = masks_lib.mask_for_threshold(w, t, prev)
            else:  # pragma: no cover - validated in __init__
                raise TypeError(f"unknown target {target!r}")
            if self._in_blocks(entry.variable):
                # The block mask reaches the sparsity this layer's target gives it.
                goal = min(1.0 - float(mask.mean()), 1.0 - 1.0 / w.size)
                mask = masks_lib.mask_for_block_sparsity(w, goal, prev)
            masks.append(mask.astype(np.float32))
        # With several workers, every worker takes the chief's masks.
        masks = _distributed.chief_values(self.model, masks)
        report = []
        for entry, w, mask in zip(self._entries, weights, masks):
            entry.constraint.mask.assign(mask)
            entry.variable.assign((w * mask).astype(w.dtype))
            report.append((variable_path(entry.variable), 1.0 - mask.mean()))
        if self.verbose > 1:
            detail = ", ".join(f"{p}: {s:.3f}" for p, s in report)
            self._print(f"MagnitudePruning: step {step}: fraction {fraction:.3f} -> {detail}")

    def _in_blocks(self, variable):
        return self.block == "litert" and _is_block_kernel(variable)

    def sparsities(self):
        """Current sparsity of every pruned variable and overall.

        Returns:
            ``{"overall": float, "layers": {path: float}}``.
        """
        layers, zeros, total = {}, 0, 0
        for entry in self._entries:
            w = glue.read(entry.variable)
            z = int(np.count_nonzero(w == 0))
            layers[variable_path(entry.variable)] = z / w.size
            zeros += z
            total += w.size
        return {"overall": zeros / total if total else 0.0, "layers": layers}
