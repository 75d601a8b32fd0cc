"""Per-layer pruning sensitivity analysis (Han et al. 2015, §4 / Fig. 6)."""

from keras_dc import masks as masks_lib
from keras_dc._keras_glue import check_model, read
from keras_dc.selection import compressible_variables, variable_path

__all__ = ["sensitivity_analysis", "SensitivityResult"]

_LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "crossentropy")


class SensitivityResult:
    """Metric vs. pruned fraction for each variable, pruned alone.

    Attributes:
        metric: Name of the metric measured.
        baseline: Its value on the unpruned model.
        curves: ``{variable path: [(sparsity, metric value), ...]}``.
        variables: ``{variable path: variable}``.
    """

    def __init__(self, metric, baseline, curves, variables):
        self.metric = metric
        self.baseline = baseline
        self.curves = curves
        self.variables = variables
        self.lower_is_better = any(word in metric for word in _LOWER_IS_BETTER)

    def _drop(self, value):
        return (value - self.baseline) if self.lower_is_better else (self.baseline - value)

    def propose(self, max_drop=0.005):
        """Per-variable targets: the largest sparsity whose metric loss is ≤ ``max_drop``.

        Args:
            max_drop: Largest acceptable worsening of the metric (absolute, e.g.
                0.005 = half a point of accuracy). Defaults to `0.005`.

        Returns:
            A list of ``(variable, sparsity)`` pairs, ready to pass as
            ``MagnitudePruning(overrides=...)`` (Keras variables are not
            hashable, hence pairs rather than a dict). A variable that cannot
            lose any tested fraction gets ``None`` (left dense).
        """
        proposal = []
        for path, curve in self.curves.items():
            best = None
            for sparsity, value in curve:
                if self._drop(value) <= max_drop:
                    best = sparsity
                else:
                    break
            proposal.append((self.variables[path], best))
        return proposal

    def format(self):
        """A text table: one row per variable, one column per sparsity."""
        sparsities = [s for s, _ in next(iter(self.curves.values()))] if self.curves else []
        head = f"{'variable':<40s}" + "".join(f"{s:>8.2f}" for s in sparsities)
        lines = [
            f"{self.metric} (baseline {self.baseline:.4f}) vs. sparsity, each variable pruned alone",
            head,
            "-" * len(head),
        ]
        for path, curve in self.curves.items():
            lines.append(f"{path[-40:]:<40s}" + "".join(f"{v:>8.4f}" for _, v in curve))
        return "\n".join(lines)


def sensitivity_analysis(
    model,
    x,
    y=None,
    sparsities=(0.3, 0.5, 0.7, 0.8, 0.9, 0.95),
    metric=None,
    batch_size=256,
    min_size=256,
    verbose=1,
):
    """Measures how each layer alone tolerates magnitude pruning.

    For every compressible variable and every sparsity, the variable is pruned
    one-shot (smallest magnitudes), the model is evaluated on ``(x, y)``, and the
    weights are restored, as in the paper's sensitivity analysis. Use the
    result's `propose` to get per-layer targets for `MagnitudePruning`.

    Args:
        model: A compiled, built (usually trained) model.
        x, y: Validation data as accepted by ``model.evaluate``.
        sparsities: Increasing fractions to test, each in [0, 1).
        metric: Name of the metric to read from ``evaluate``; defaults to the
            first compiled metric, else the loss.
        batch_size: Evaluation batch size. Defaults to `256`.
        min_size: As for the callbacks. Defaults to `256`.
        verbose: 1 prints a line per variable. Defaults to `1`.

    Returns:
        A `SensitivityResult`.

    Example:
        >>> result = keras_dc.sensitivity_analysis(model, x_val, y_val)
        >>> print(result.format())
        >>> pruning = keras_dc.MagnitudePruning(0.9, overrides=result.propose(0.005))
    """
    check_model(model, "sensitivity_analysis")
    sparsities = tuple(float(s) for s in sparsities)
    if (
        not sparsities
        or any(not 0 <= s < 1 for s in sparsities)
        or list(sparsities) != sorted(sparsities)
    ):
        raise ValueError(
            f"sparsities must be increasing values in [0, 1), received {sparsities!r}."
        )
    variables = compressible_variables(model, min_size)
    if not variables:
        raise ValueError(f"sensitivity_analysis: no compressible variable in model {model.name!r}.")

    def evaluate():
        return model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)

    results = evaluate()
    if metric is None:
        others = [k for k in results if k != "loss"]
        metric = others[0] if others else "loss"
    if metric not in results:
        raise ValueError(f"metric {metric!r} is not among the evaluated metrics {sorted(results)}.")
    baseline = float(results[metric])
    curves, by_path = {}, {}
    for variable in variables:
        path = variable_path(variable)
        original = read(variable)
        curve = []
        try:
            for s in sparsities:
                mask = masks_lib.mask_for_sparsity(original, s)
                variable.assign(original * mask)
                curve.append((s, float(evaluate()[metric])))
        finally:
            variable.assign(original)
        curves[path], by_path[path] = curve, variable
        if verbose:
            print(
                f"sensitivity: {path}: " + ", ".join(f"{s:.2f}->{v:.4f}" for s, v in curve),
                flush=True,
            )
    return SensitivityResult(metric, baseline, curves, by_path)
