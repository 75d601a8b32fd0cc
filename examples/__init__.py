"""Scripts that use keras-dc on MNIST and on a small multi-worker cluster.

Run them from the repository root as modules, e.g. ``python -m examples.quickstart``;
the shared pieces are imported as ``examples.paper_common`` and ``examples.mnist_data``.
"""
