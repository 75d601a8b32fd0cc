"""Per-layer sensitivity analysis, as in the paper, feeding per-layer pruning targets.

Trains a small LeNet-300-100, measures test accuracy vs. pruned fraction for each
layer pruned alone, proposes the largest sparsity per layer that costs at most
--max_drop accuracy, and prunes with those targets.

    python -m examples.sensitivity_analysis [--data=mnist.npz] [--smoke]
"""

import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_DATA = flags.DEFINE_string("data", None, "mnist.npz; default: the shared offline copy.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny run for tests.")
_MAX_DROP = flags.DEFINE_float("max_drop", 0.005, "Largest accuracy loss allowed per layer.")


def main(argv):
    del argv
    import keras

    import keras_dc
    from examples.mnist_data import build_model, compile_model, load_mnist
    from keras_dc import schedules

    (x, y), (x_test, y_test) = load_mnist(_DATA.value)
    x, x_test = x.reshape(-1, 784), x_test.reshape(-1, 784)
    epochs = 3
    if _SMOKE.value:
        x, y, x_test, y_test, epochs = x[:2000], y[:2000], x_test[:500], y_test[:500], 1
    keras.utils.set_random_seed(0)
    model = build_model()
    compile_model(model, 1e-3)
    model.fit(x, y, batch_size=128, epochs=epochs, verbose=2)

    result = keras_dc.sensitivity_analysis(
        model, x_test, y_test, sparsities=(0.5, 0.7, 0.8, 0.9, 0.95, 0.98), min_size=1
    )
    print(result.format())
    proposal = result.propose(max_drop=_MAX_DROP.value)
    for variable, sparsity in proposal:
        print(f"proposed: {keras_dc.variable_path(variable):<32s} {sparsity}")

    compile_model(model, 3e-4)
    model.fit(
        x,
        y,
        batch_size=128,
        epochs=epochs,
        verbose=2,
        callbacks=[
            keras_dc.MagnitudePruning(
                0.9,
                schedule=schedules.Gradual(
                    begin=0, end=max(1, epochs - 1), frequency=1, unit="epoch"
                )
                if epochs > 1
                else schedules.OneShot(),
                overrides=proposal,
                min_size=1,
            )
        ],
    )
    print(keras_dc.format_layer_report(keras_dc.layer_report(model, min_size=1)))
    print(f"test accuracy after pruning: {model.evaluate(x_test, y_test, verbose=0)[1]:.4f}")


if __name__ == "__main__":
    app.run(main)
