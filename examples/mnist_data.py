"""MNIST for the examples: from an explicit path, the shared copy, or keras.datasets."""

import os

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
# The copy beside the checkout on the project's machines (no internet there).
DEFAULT_PATHS = (
    os.path.join(_HERE, "..", "..", "shared", "data", "mnist.npz"),
    os.path.join(_HERE, "..", "shared", "data", "mnist.npz"),
)


def load_mnist(path=None):
    """Returns ``(x_train, y_train), (x_test, y_test)`` as float32 in [0, 1] and int labels.

    Args:
        path: An ``.npz`` in ``keras.datasets.mnist`` layout. Defaults to the
            shared offline copy when present, else ``keras.datasets.mnist`` (downloads).
    """
    if path is None:
        path = next((p for p in DEFAULT_PATHS if os.path.exists(p)), None)
    if path is None:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    else:
        if not os.path.exists(path):
            raise FileNotFoundError(f"MNIST file {path!r} does not exist; pass --data=PATH to an mnist.npz.")
        with np.load(path) as data:
            x_train, y_train = data["x_train"], data["y_train"]
            x_test, y_test = data["x_test"], data["y_test"]
    scale = np.float32(1.0 / 255.0)
    return ((x_train.astype(np.float32) * scale, y_train.astype(np.int64)),
            (x_test.astype(np.float32) * scale, y_test.astype(np.int64)))
