"""MNIST for the examples (explicit path, the shared copy, or keras.datasets) and LeNet-300-100."""

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
            raise FileNotFoundError(
                f"MNIST file {path!r} does not exist; pass --data=PATH to an mnist.npz."
            )
        with np.load(path) as data:
            x_train, y_train = data["x_train"], data["y_train"]
            x_test, y_test = data["x_test"], data["y_test"]
    scale = np.float32(1.0 / 255.0)
    return (
        (x_train.astype(np.float32) * scale, y_train.astype(np.int64)),
        (x_test.astype(np.float32) * scale, y_test.astype(np.int64)),
    )


def build_model():
    """LeNet-300-100 (784-300-100-10, ReLU) as in the paper, layers named ip1..ip3."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((784,), name="pixels"),
            keras.layers.Dense(300, activation="relu", name="ip1"),
            keras.layers.Dense(100, activation="relu", name="ip2"),
            keras.layers.Dense(10, name="ip3"),
        ],
        name="lenet_300_100",
    )
    return model


def compile_model(model, lr):
    """Compiles with Adam(lr), sparse categorical cross-entropy on logits, accuracy."""
    import keras

    model.compile(
        keras.optimizers.Adam(lr),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def litert_error(model_bytes, x, y):
    """Test error of a flatbuffer in the LiteRT interpreter (batch 1 model, one image at a time)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    wrong = 0
    for image, label in zip(x, y):
        interpreter.set_tensor(inp["index"], image.reshape(inp["shape"]))
        interpreter.invoke()
        wrong += int(np.argmax(interpreter.get_tensor(out["index"])) != label)
    return wrong / len(x)
