"""keras-dc: Deep Compression for Keras 3.

Prune (`MagnitudePruning`), share weights by k-means with retrained centroids
(`WeightClustering`) during `model.fit`, then pack the model into a small
Huffman-coded mobile bundle with `converters.convert`.

Example:
    >>> import keras_dc
    >>> model.fit(x, y, epochs=10, callbacks=[keras_dc.MagnitudePruning(0.9)])
    >>> model.fit(x, y, epochs=3, callbacks=[keras_dc.WeightClustering(bits=5)])
"""

from keras_dc import schedules
from keras_dc.budget import BudgetResult, SearchStateError, bundle_size, compress_to_budget
from keras_dc.clustering import WeightClustering
from keras_dc.dead_units import remove_dead_units
from keras_dc.kmeans import cluster_weights
from keras_dc.layer_stats import format_layer_report, layer_report
from keras_dc.pruning import MagnitudePruning
from keras_dc.reproducibility import make_reproducible
from keras_dc.selection import compressible_variables, variable_path
from keras_dc.sensitivity import SensitivityResult, sensitivity_analysis
from keras_dc.targets import GlobalSparsity, Sparsity, StdThreshold
from keras_dc.variational import VariationalResult, variational_sparsify

__version__ = "0.1.0"

__all__ = [
    "compress_to_budget",
    "BudgetResult",
    "SearchStateError",
    "bundle_size",
    "MagnitudePruning",
    "make_reproducible",
    "remove_dead_units",
    "WeightClustering",
    "Sparsity",
    "GlobalSparsity",
    "StdThreshold",
    "schedules",
    "sensitivity_analysis",
    "SensitivityResult",
    "compressible_variables",
    "variable_path",
    "cluster_weights",
    "layer_report",
    "format_layer_report",
    "variational_sparsify",
    "VariationalResult",
]
