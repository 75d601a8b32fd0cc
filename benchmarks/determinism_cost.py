"""What bit-reproducible training costs: `keras_dc.make_reproducible` vs a plain seed.

Each measurement is a child process (op determinism is process-wide): LeNet-300-100
(the quickstart's model) fit on MNIST for `--epochs` epochs with `MagnitudePruning`,
timed from the first to the last batch (TensorFlow's import and the first trace are
excluded by a warm-up epoch). The two modes alternate, `--repeats` times each, and the
medians and their ratio are printed. It also checks that the deterministic children
end with identical weights.

    python -m benchmarks.determinism_cost                 # ~5 min on the 2-core machine
    python -m benchmarks.determinism_cost --repeats=1 --epochs=1
"""

import hashlib
import json
import statistics
import subprocess
import sys
import time

from absl import app, flags

from benchmarks._common import child_env, machine_info, module_command

_REPEATS = flags.DEFINE_integer("repeats", 3, "Children per mode.")
_EPOCHS = flags.DEFINE_integer("epochs", 2, "Timed epochs per child (after one warm-up epoch).")
_CHILD = flags.DEFINE_enum("child", None, ["deterministic", "seeded"], "Internal: run one child.")
_DATA = flags.DEFINE_string("data", None, "mnist.npz; default: the shared offline copy.")


def child(mode):
    import keras
    import numpy as np

    import keras_dc
    from examples.mnist_data import build_model, compile_model, load_mnist

    if mode == "deterministic":
        keras_dc.make_reproducible(0)
    else:
        keras.utils.set_random_seed(0)
    (x, y), _ = load_mnist(_DATA.value)
    x = x.reshape(-1, 784)
    model = build_model()
    compile_model(model, 1e-3)
    pruning = keras_dc.MagnitudePruning(0.9, min_size=1, verbose=0)
    model.fit(x, y, batch_size=128, epochs=1, verbose=0, callbacks=[pruning])  # warm-up
    start = time.perf_counter()
    model.fit(x, y, batch_size=128, epochs=_EPOCHS.value, verbose=0)
    seconds = time.perf_counter() - start
    digest = hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.weights)).hexdigest()
    print("RESULT " + json.dumps({"mode": mode, "seconds": seconds, "weights_sha256": digest}))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _CHILD.value:
        child(_CHILD.value)
        return
    print(json.dumps(machine_info(), indent=2))
    runs = {"deterministic": [], "seeded": []}
    for i in range(_REPEATS.value):
        for mode in runs:
            args = [f"--child={mode}", f"--epochs={_EPOCHS.value}"]
            if _DATA.value:
                args.append(f"--data={_DATA.value}")
            proc = subprocess.run(
                module_command("benchmarks.determinism_cost", *args),
                capture_output=True,
                text=True,
                env=child_env(TF_CPP_MIN_LOG_LEVEL="2"),
            )
            if proc.returncode != 0:
                sys.exit(f"child {mode} failed:\n{proc.stderr[-3000:]}")
            result = json.loads(proc.stdout.split("RESULT ")[-1])
            runs[mode].append(result)
            print(
                f"round {i + 1} {mode:<13s} {result['seconds']:7.2f} s  weights {result['weights_sha256'][:12]}",
                flush=True,
            )
    med = {m: statistics.median(r["seconds"] for r in rs) for m, rs in runs.items()}
    same = len({r["weights_sha256"] for r in runs["deterministic"]}) == 1
    print(
        f"\nLeNet-300-100, {_EPOCHS.value} epochs of MNIST after a warm-up, medians of "
        f"{_REPEATS.value} alternating children:"
    )
    print(f"  seeded only        {med['seeded']:7.2f} s")
    print(
        f"  make_reproducible  {med['deterministic']:7.2f} s   ({med['deterministic'] / med['seeded']:.2f}x)"
    )
    print(f"  deterministic children ended with identical weights: {same}")
    print(
        f"  seeded-only children ended with identical weights: "
        f"{len({r['weights_sha256'] for r in runs['seeded']}) == 1}"
    )


if __name__ == "__main__":
    app.run(main)
