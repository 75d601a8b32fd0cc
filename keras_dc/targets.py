"""Pruning targets: how much of each layer the pruning callback removes.

A target is a small value object. The pruning callback multiplies it by the
schedule's fraction ``f`` in (0, 1] at every pruning event, so a schedule ramps
every layer towards its own final target:

* `Sparsity(s)`: prune each layer to sparsity ``s·f`` (its own magnitude ranking).
* `GlobalSparsity(s)`: one magnitude threshold over all selected layers, chosen so
  that ``s·f`` of all their weights together are zero (layers with many small
  weights lose more).
* `StdThreshold(q)`: the paper's rule, prune ``|w| < (q·f)·std(w)`` per layer.

A bare float is read as `Sparsity`.
"""

from keras_dc._validate import as_float, as_fraction

__all__ = ["Sparsity", "GlobalSparsity", "StdThreshold", "as_target"]


class Sparsity:
    """Prune every layer it applies to to the same fraction of zeros.

    Args:
        sparsity: Fraction of the layer's weights set to zero, in [0, 1).

    Example:
        >>> Sparsity(0.9).sparsity
        0.9
    """

    def __init__(self, sparsity):
        self.sparsity = as_fraction(sparsity, "sparsity")

    def get_config(self):
        return {"sparsity": self.sparsity}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"Sparsity({self.sparsity:g})"

    def __eq__(self, other):
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __hash__(self):
        return hash((type(self).__name__, self.sparsity))


class GlobalSparsity(Sparsity):
    """One magnitude threshold over all selected layers together.

    The overall fraction of zeros over every layer that uses this target is
    ``sparsity``; each layer's own sparsity follows from its weight magnitudes.
    Per-layer overrides take their layers out of the global pool.

    Args:
        sparsity: Overall fraction of zeros, in [0, 1).

    Example:
        >>> GlobalSparsity(0.9)
        GlobalSparsity(0.9)
    """

    def __repr__(self):
        return f"GlobalSparsity({self.sparsity:g})"


class StdThreshold:
    """The paper's rule: prune ``|w| < quality × std(w)`` in each layer.

    For Gaussian weights ``quality = 1.75`` removes about ``erf(1.75/√2) ≈ 92%``.
    The standard deviation is taken over the whole tensor (pruned zeros
    included), so applying the rule again does not keep removing weights.

    Args:
        quality: The quality parameter ``s`` (≥ 0).

    Example:
        >>> StdThreshold(1.75).quality
        1.75
    """

    def __init__(self, quality):
        self.quality = as_float(
            quality,
            "quality",
            0,
            hint=" The paper uses values around 1–2 (1.75 removes ≈92% of Gaussian weights).",
        )

    def get_config(self):
        return {"quality": self.quality}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"StdThreshold({self.quality:g})"

    def __eq__(self, other):
        return type(other) is type(self) and other.quality == self.quality

    def __hash__(self):
        return hash(("StdThreshold", self.quality))


def as_target(value, what="target"):
    """Turns a float or target object into a target object (``None`` stays ``None``)."""
    if value is None or isinstance(value, (Sparsity, StdThreshold)):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Sparsity(as_fraction(value, what))
    raise TypeError(
        f"{what} must be a float sparsity in [0, 1), keras_dc.Sparsity, "
        f"keras_dc.GlobalSparsity, keras_dc.StdThreshold or None (skip the layer); "
        f"received {value!r} of type {type(value).__name__}."
    )
