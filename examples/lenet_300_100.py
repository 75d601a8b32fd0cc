"""Deep Compression of LeNet-300-100 on MNIST, the paper's first row, end to end.

Dense reference (random shifts, L2, cosine LR) → iterative magnitude pruning
(per-layer targets; retraining at the dense run's learning rate) → weight sharing with
centroid retraining → bundle (skeleton + Huffman sidecar) → restore → test
error of the restored flatbuffer in LiteRT, and the paper-style table.

Paper (Han, Mao, Dally 2016, Table 2): 1.64% → 1.58% error, 40× smaller
(weights + indices only). Targets here, counting every byte a phone receives
against the float32 .tflite: dense ≤ 1.70%, compressed ≤ dense + 0.10 pp, ≥ 40×.

    python -m examples.lenet_300_100                 # 6-12 min on a busy shared 2-core machine
    python -m examples.lenet_300_100 --smoke         # < 1 min: a tiny subset, for CI
    python -m examples.lenet_300_100 --data=/path/mnist.npz --out=out/lenet_300_100
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Per-layer pruning targets (sparsity) and cluster bits. ip1 holds 88% of the
# weights and is the least sensitive; the 10-way output layer is kept denser.
PRUNE = {"ip1": 0.93, "ip2": 0.90, "ip3": 0.70}
BITS = {"ip1": 4, "ip2": 5, "ip3": 6}  # ip1 tolerates 16 values; its bits pay for its 7% kept


def recipe():
    from examples.paper_common import Recipe, cubic_fractions

    # Pruning: 12 prune → retrain cycles half an epoch apart (big cuts first), then
    # 10 epochs of retraining at the dense run's learning rate (decaying), on the
    # unshifted images: the 7%-dense network fits them better than the shifted ones
    # (which make a better dense reference). Measured here (BENCHMARKS.md, "The
    # paper's MNIST rows"): with shifts while retraining the pruned network ended at 1.28-1.38% whatever
    # the reference (+0.03 to +0.15 pp over four runs; 16 retraining epochs,
    # distillation, cuts one epoch apart and the paper's lower rates did not help);
    # without them, 1.18%.
    return Recipe(
        dense_epochs=20,
        dense_lr=1e-3,
        prune_fractions=cubic_fractions(12),
        prune_every=0.5,
        prune_final_epochs=10,
        prune_lr=1e-3,
        cluster_epochs=2,
        cluster_lr=3e-5,
        l2=1e-5,
        retrain_shifts=False,
    )


def build_model(l2, keras=None):
    """The model, built with `keras` (Keras 3 by default; the benchmark passes tf_keras for tfmot)."""
    if keras is None:
        import keras

    reg = keras.regularizers.L2(l2)
    return keras.Sequential(
        [
            keras.Input((784,), name="pixels"),
            keras.layers.Dense(300, activation="relu", kernel_regularizer=reg, name="ip1"),
            keras.layers.Dense(100, activation="relu", kernel_regularizer=reg, name="ip2"),
            keras.layers.Dense(10, kernel_regularizer=reg, name="ip3"),
        ],
        name="lenet_300_100",
    )


if __name__ == "__main__":
    from examples.paper_common import example_app

    example_app(
        sys.modules[__name__],
        title="LeNet-300-100",
        flatten=True,
        ref_error_target=0.017,
        ratio_target=40,
        default_out="out/lenet_300_100",
    )
