"""What an epoch of sparse variational dropout costs beside a plain epoch, in one run.

LeNet-5 on MNIST (50,000 training images, batch 128, Adam), from the same starting weights.
Each repeat times, interleaved (the order rotated per repeat so that load on a shared machine
hits both alike):

* ``plain``: compile a fresh Adam and ``fit`` the model for ``--epochs`` epochs;
* ``variational``: ``keras_dc.variational_sparsify`` for the same epochs (clone with
  variational kernels, compile, fit, write the zeros back).

Both include compiling and tracing (the search pays them at every stage too). It prints the
median wall seconds of each and their ratio.

    python -m benchmarks.variational_cost              # ~5 min on 2 CPU cores
    python -m benchmarks.variational_cost --smoke      # a tiny subset, for CI
"""

import json
import os
import statistics
import time

from absl import app, flags

from benchmarks._common import machine_info

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_DATA = flags.DEFINE_string("data", None, "mnist.npz (keras layout); default: the shared copy.")
_EPOCHS = flags.DEFINE_float("epochs", 1.0, "Epochs per timed fit.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed fits per configuration, interleaved.")
_SMOKE = flags.DEFINE_bool("smoke", False, "2,048 images, 1 repeat: checks the script.")
_JSON = flags.DEFINE_string("json_out", None, "Also write the figures here.")


def main(argv):
    del argv
    import keras
    import numpy as np

    import keras_dc
    from examples.lenet5 import build_model
    from examples.mnist_data import load_mnist

    (x, y), _ = load_mnist(_DATA.value)
    x = x[:50000].reshape(-1, 28, 28, 1)
    y = y[:50000]
    repeats = _REPEATS.value
    if _SMOKE.value:
        x, y, repeats = x[:2048], y[:2048], 1
    keras_dc.make_reproducible(0)
    model = build_model(0.0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(1e-3), loss)
    start = model.get_weights()
    times = {"plain": [], "variational": []}

    def plain():
        model.set_weights(start)
        model.compile(keras.optimizers.Adam(1e-3), loss)
        steps = max(1, int(round(_EPOCHS.value * len(x) / 128)))
        model.fit(x, y, batch_size=128, epochs=1, steps_per_epoch=steps, verbose=0)

    def variational():
        model.set_weights(start)
        keras_dc.variational_sparsify(model, (x, y), epochs=_EPOCHS.value, loss=loss, verbose=0)

    runs = {"plain": plain, "variational": variational}
    order = list(runs)
    for r in range(repeats):
        for name in order if r % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - t0)
            print(f"repeat {r + 1}: {name} {times[name][-1]:.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["variational"] / med["plain"]
    print(
        f"LeNet-5, {len(x):,d} images, {_EPOCHS.value:g} epoch(s) per fit, {repeats} repeats: "
        f"plain {med['plain']:.1f} s, variational {med['variational']:.1f} s (medians), "
        f"ratio {ratio:.2f}"
    )
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(
                {"machine": machine_info(), "seconds": times, "median": med, "ratio": ratio},
                f,
                indent=1,
            )
    return 0 if np.isfinite(ratio) else 1


if __name__ == "__main__":
    app.run(main)
