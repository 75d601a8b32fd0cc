"""The smallest bundle within an accuracy budget, found by `keras_dc.compress_to_budget`.

Trains a dense model on 50,000 MNIST training images (random shifts, as the paper
examples), holds out the last 10,000 training images as the validation set the
search decides on (``--validation``; with 5,000 the search over-fitted them: its
standard error at 1.5% error is 0.17 pp, as large as the budget), runs the search (pruning moves, then per-layer bits, each
followed by retraining), converts the result into a bundle, restores it and
measures the restored flatbuffer in LiteRT on the 10,000 test images, which the
search never sees.

    python -m examples.budget_search                              # LeNet-300-100, ~10-20 min
    python -m examples.budget_search --model=lenet5 --max_error=0.007
    python -m examples.budget_search --model=mobilenet            # a third network, default budget
    python -m examples.budget_search --smoke --time_limit=30      # 1-2 min: a tiny run, for CI
    python -m examples.budget_search --dense_weights=examples/weights/lenet_300_100_seed0.npz

The dense model is cached in the output folder (``dense.keras``) and the search
state too (``search/``): run the command again after an interruption and it
resumes. Results: ``results.json``, ``search.png`` and the bundle in ``bundle/``.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

MODELS = ("lenet_300_100", "lenet5", "mobilenet")
_main = {"module_name": sys.argv[0]} if __name__ == "__main__" else {}

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_enum("model", "lenet_300_100", MODELS, "Network to compress.", **_main)
    flags.DEFINE_string(
        "data", None, "mnist.npz (keras layout); default: the shared copy.", **_main
    )
    flags.DEFINE_string(
        "out", None, "Output folder; default out/budget_<model>_seed<seed>.", **_main
    )
    flags.DEFINE_integer("seed", 0, "Random seed.", **_main)
    flags.DEFINE_integer(
        "validation",
        10000,
        "Validation images the search decides on (the last ones of the training set; "
        "the dense model trains on the rest).",
        lower_bound=100,
        **_main,
    )
    flags.DEFINE_float(
        "max_increase",
        0.002,
        "Allowed increase of the validation error over the dense model.",
        **_main,
    )
    flags.DEFINE_float("max_error", None, "Absolute validation error limit instead.", **_main)
    flags.DEFINE_integer(
        "dense_epochs", None, "Dense training epochs (default per model).", **_main
    )
    flags.DEFINE_float("prune_epochs", None, "Retraining epochs per pruning move.", **_main)
    flags.DEFINE_float(
        "final_epochs",
        None,
        "Retraining epochs of the pruned network after the last pruning move "
        "(default: twice --prune_epochs; 0: none).",
        lower_bound=0.0,
        **_main,
    )
    flags.DEFINE_float(
        "gradual_epochs",
        None,
        "Epochs of the search's gradual pruning stage (one long retraining with a rising "
        "threshold before the moves; 0: none). Default per model: LeNet-300-100 24, else 0.",
        lower_bound=0.0,
        **_main,
    )
    flags.DEFINE_float(
        "variational_epochs",
        None,
        "Epochs of sparse variational dropout before the other pruning stages (the search "
        "keeps the deepest log-alpha threshold within the budget; 0: none). Default per "
        "model: LeNet-5 20, else 0.",
        lower_bound=0.0,
        **_main,
    )
    flags.DEFINE_float(
        "variational_kl",
        None,
        "KL weight of the variational stage (1 drops most; lower keeps more accuracy). "
        "Default per model: LeNet-5 0.3, else 1.",
        lower_bound=0.0,
        **_main,
    )
    flags.DEFINE_float(
        "gradual_refine",
        None,
        "After the gradual stage, run it again from its start straight to this share of "
        "the density it kept (0: no second pass). Default per model: 0.6 where the "
        "gradual stage runs, else 0.",
        lower_bound=0.0,
        upper_bound=0.999,
        **_main,
    )
    flags.DEFINE_float("start_density", 0.5, "Kept fraction after the first pruning move.", **_main)
    flags.DEFINE_float(
        "prune_share",
        0.75,
        "Share of the budget pruning may use; clustering gets the rest.",
        lower_bound=0.0,
        upper_bound=1.0,
        **_main,
    )
    flags.DEFINE_bool(
        "calibrate_lr",
        True,
        "Lower the retraining learning rate first if plain retraining costs budget.",
        **_main,
    )
    flags.DEFINE_float("rate_weight", 0.0, "Entropy-constrained clustering weight.", **_main)
    flags.DEFINE_enum(
        "bit_moves",
        "best",
        ["largest", "best", "none"],
        "Bit moves after clustering: the layer with the most non-zeros first (largest), the "
        "most bytes per metric cost of all layers' moves each round (best), or none.",
        **_main,
    )
    flags.DEFINE_enum(
        "centroid_update",
        "best",
        ["auto", "latent", "best"],
        "Centroid retraining: the paper's (auto: fixed assignments, the members' mean "
        "step), latent (every weight keeps a float value and may change cluster), or best "
        "(whichever measures better at the first clustering).",
        **_main,
    )
    flags.DEFINE_float(
        "cluster_lr",
        3e-4,
        "Adam's rate for the clustering stage's retraining (before the calibration's scaling).",
        lower_bound=0.0,
        **_main,
    )
    flags.DEFINE_enum(
        "init",
        "linear_gap",
        ["linear", "linear_gap", "density", "kmeans++"],
        "k-means init.",
        **_main,
    )
    flags.DEFINE_float(
        "time_limit", None, "Seconds after which no new pruning move starts.", **_main
    )
    flags.DEFINE_float(
        "distill",
        0.0,
        "Weight of the dense model's soft targets while retraining (0: labels only).",
        **_main,
    )
    flags.DEFINE_bool(
        "shifts",
        None,
        "Random shifts of up to 2 px while the search retrains (default per model: "
        "LeNet-5 and the MobileNet-style net yes, LeNet-300-100 no).",
        **_main,
    )
    flags.DEFINE_string(
        "dense_weights",
        None,
        "Start from this trained dense model (an .npz of save_weights, e.g. "
        "examples/weights/lenet_300_100_seed0.npz) instead of training one.",
        **_main,
    )
    flags.DEFINE_bool("smoke", False, "Tiny run (2k images, short stages) for tests.", **_main)


# Per network: dense epochs, retraining epochs per move, the gradual stage, whether retraining
# sees shifted images. Long dense training leaves more of an absolute budget to compression:
# LeNet-300-100 after 60 epochs 0.87-0.97% test error (20 epochs: 1.15-1.41%), LeNet-5 after 40
# epochs 0.51% (12 epochs: 0.58-0.65%); BENCHMARKS.md, "A better-trained dense model".
SETTINGS = {
    "lenet_300_100": {
        "dense_epochs": 60,
        "variational_epochs": 0.0,
        "variational_kl": 1.0,
        "prune_epochs": 2.0,
        "gradual_epochs": 24.0,
        "gradual_refine": 0.0,  # no gain measured on this network (BENCHMARKS.md, session 11)
        "shifts": False,
        "flatten": True,
    },
    "lenet5": {
        "dense_epochs": 40,
        # Sparse variational dropout instead of the gradual stage: three seeds at <= 0.75%
        # validation error 188.1x at 0.71% test, against 147.6x at 0.81% (BENCHMARKS.md,
        # "Variational sparsification", session 14).
        "variational_epochs": 20.0,
        "variational_kl": 0.3,
        "prune_epochs": 0.5,
        "gradual_epochs": 0.0,  # 16 before session 14
        "gradual_refine": 0.6,  # where --gradual_epochs turns the stage on
        "shifts": True,
        "flatten": False,
    },
    "mobilenet": {
        "dense_epochs": 5,
        "variational_epochs": 0.0,
        "variational_kl": 1.0,
        "prune_epochs": 0.5,
        "gradual_epochs": 0.0,
        "gradual_refine": 0.0,
        "shifts": True,
        "flatten": False,
    },
}


def build_mobilenet(l2=1e-5):
    """A small MobileNetV2-style CNN for 28x28 digits: inverted residual blocks
    (1x1 expand, 3x3 depthwise, 1x1 project, BatchNorm, ReLU6), global pooling,
    a dense classifier. Not from the paper: the test that nothing is tuned to LeNets."""
    import keras

    reg = keras.regularizers.L2(l2)

    def block(x, expand, out, stride, name):
        channels = x.shape[-1]
        y = keras.layers.Conv2D(
            channels * expand, 1, use_bias=False, kernel_regularizer=reg, name=f"{name}_expand"
        )(x)
        y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
        y = keras.layers.ReLU(6.0, name=f"{name}_relu1")(y)
        y = keras.layers.DepthwiseConv2D(
            3, stride, padding="same", use_bias=False, name=f"{name}_dw"
        )(y)
        y = keras.layers.BatchNormalization(name=f"{name}_bn2")(y)
        y = keras.layers.ReLU(6.0, name=f"{name}_relu2")(y)
        y = keras.layers.Conv2D(
            out, 1, use_bias=False, kernel_regularizer=reg, name=f"{name}_project"
        )(y)
        y = keras.layers.BatchNormalization(name=f"{name}_bn3")(y)
        if stride == 1 and channels == out:
            y = keras.layers.Add(name=f"{name}_add")([x, y])
        return y

    inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Conv2D(
        16, 3, 2, padding="same", use_bias=False, kernel_regularizer=reg, name="stem"
    )(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(6.0, name="stem_relu")(x)
    x = block(x, 4, 24, 2, "b1")
    x = block(x, 4, 24, 1, "b2")
    x = block(x, 4, 48, 2, "b3")
    x = block(x, 4, 48, 1, "b4")
    x = keras.layers.Conv2D(128, 1, use_bias=False, kernel_regularizer=reg, name="head")(x)
    x = keras.layers.BatchNormalization(name="head_bn")(x)
    x = keras.layers.ReLU(6.0, name="head_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(10, kernel_regularizer=reg, name="logits")(x)
    return keras.Model(inputs, outputs, name="mobilenet_mnist")


def build(name):
    if name == "lenet_300_100":
        from examples import lenet_300_100

        return lenet_300_100.build_model(1e-5)
    if name == "lenet5":
        from examples import lenet5

        return lenet5.build_model(1e-5)
    return build_mobilenet()


def _named_variables(model):
    """``[(name, variable)]`` with names ``<layer>.<variable>`` (e.g. ``ip1.kernel``): the
    same for a freshly built model and a loaded one, whose variable paths differ."""
    return [(f"{layer.name}.{v.name}", v) for layer in model.layers for v in layer.weights]


class WeightsError(ValueError):
    """A dense-weights file that is missing, unreadable or does not fit the model."""


def save_weights(model, path):
    """Writes the model's variables to an ``.npz``, one array per variable named
    ``<layer>.<variable>``: the dense starting point `load_weights` reads back."""
    import numpy as np

    np.savez(path, **{name: np.asarray(v.numpy()) for name, v in _named_variables(model)})


def load_weights(model, path):
    """Sets every variable of `model` from an ``.npz`` written by `save_weights`; a missing,
    unreadable or mismatching file is a clear error, and leaves the model unchanged."""
    import numpy as np

    if not os.path.isfile(path):
        raise WeightsError(f"dense weights {path!r} do not exist.")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise WeightsError(f"dense weights {path!r} are not a readable .npz: {e}") from None
    variables = _named_variables(model)
    names = [name for name, _ in variables]
    if sorted(arrays) != sorted(names):
        raise WeightsError(
            f"dense weights {path!r} hold {sorted(arrays)}, but {model.name} has {sorted(names)}."
        )
    for name, v in variables:
        if tuple(arrays[name].shape) != tuple(v.shape):
            raise WeightsError(
                f"dense weights {path!r}: {name} has shape {arrays[name].shape}, "
                f"{model.name} needs {tuple(v.shape)}."
            )
    for name, v in variables:
        v.assign(arrays[name])


def dense_model(name, settings, x_train, y_train, path, seed, log=print, weights=None):
    """The trained dense model: built and given `weights` (an ``.npz`` of `save_weights`)
    when those are named, else loaded from `path` when there, else trained and saved there."""
    import keras

    from examples.paper_common import compile_model, make_dataset

    if weights is not None:
        model = build(name)
        load_weights(model, weights)
        compile_model(model, 1e-3, 0, 1)
        log(f"== dense model: weights from {weights}")
        return model
    if os.path.exists(path):
        log(f"== dense model: loaded from {path}")
        return keras.models.load_model(path)
    model = build(name)
    epochs = settings["dense_epochs"]
    steps = -(-len(x_train) // 128)
    log(f"== dense training: {epochs} epochs, Adam 1e-3 with cosine decay, random shifts ±2 px")
    compile_model(model, 1e-3, epochs, steps)
    model.fit(
        make_dataset(x_train, y_train, 128, seed, flatten=settings["flatten"]),
        epochs=epochs,
        verbose=2,
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.save(path)
    # The saved copy, so that a first run and a resumed one convert the same graph (a
    # reloaded model's TFLite tensor names differ from a freshly built one's).
    return keras.models.load_model(path)


def run(
    model_name,
    *,
    out,
    data=None,
    seed=0,
    validation=10000,
    max_increase=0.002,
    max_error=None,
    smoke=False,
    dense_epochs=None,
    prune_epochs=None,
    final_epochs=None,
    gradual_epochs=None,
    gradual_refine=None,
    variational_epochs=None,
    variational_kl=None,
    shifts=None,
    start_density=0.5,
    prune_share=0.75,
    rate_weight=0.0,
    init="linear_gap",
    calibrate_lr=True,
    time_limit=None,
    distill=0.0,
    bit_moves="best",
    centroid_update="best",
    cluster_lr=3e-4,
    dense_weights=None,
    log=print,
):
    """The whole job for one network; returns the results dict (also written to results.json).

    `dense_weights`: an ``.npz`` (`save_weights`) of the trained dense model to start from instead
    of training one (or loading ``out/dense.keras``); ignored in `smoke` runs."""
    import converters
    import keras_dc
    from examples.mnist_data import load_mnist
    from examples.paper_common import litert_error, make_dataset

    settings = dict(SETTINGS[model_name])
    if dense_epochs is not None:
        settings["dense_epochs"] = dense_epochs
    if prune_epochs is not None:
        settings["prune_epochs"] = prune_epochs
    if gradual_epochs is not None:
        settings["gradual_epochs"] = gradual_epochs
    if variational_epochs is not None:
        settings["variational_epochs"] = variational_epochs
    if variational_kl is not None:
        settings["variational_kl"] = variational_kl
    if shifts is not None:
        settings["shifts"] = bool(shifts)
    if gradual_refine is None:
        gradual_refine = settings["gradual_refine"] if settings["gradual_epochs"] else 0.0
    if smoke:
        dense_weights = None  # a smoke run trains its own tiny dense model
    keras_dc.make_reproducible(seed)
    (x_train, y_train), (x_test, y_test) = load_mnist(data)
    if not 0 < validation < len(x_train):
        raise ValueError(f"validation={validation} must be between 1 and {len(x_train) - 1}.")
    x_val, y_val = x_train[-validation:], y_train[-validation:]
    x_train, y_train = x_train[:-validation], y_train[:-validation]
    if smoke:
        x_train, y_train, x_val, y_val = x_train[:2000], y_train[:2000], x_val[:500], y_val[:500]
        x_test, y_test = x_test[:500], y_test[:500]
        settings.update(
            dense_epochs=1,
            prune_epochs=0.5,
            gradual_epochs=min(1.0, settings["gradual_epochs"]),
            variational_epochs=min(0.5, settings["variational_epochs"]),
        )
    shape = (-1, 784) if settings["flatten"] else (-1, 28, 28, 1)
    x_val, x_test = x_val.reshape(shape), x_test.reshape(shape)
    started = time.perf_counter()
    model = dense_model(
        model_name,
        settings,
        x_train,
        y_train,
        os.path.join(out, "dense.keras"),
        seed,
        log,
        weights=dense_weights,
    )
    dense_tflite = converters.export.to_tflite(model)
    dense_test = litert_error(dense_tflite, x_test, y_test)
    log(
        f"   dense: test error {dense_test:.2%} (LiteRT), float32 .tflite {len(dense_tflite):,d} bytes"
    )

    dense_seconds = time.perf_counter() - started
    loss = None
    if distill > 0:
        # The dense model, frozen, teaches the compressed one (Hinton et al. 2015).
        import keras

        from examples.paper_common import distillation_loss

        teacher = keras.models.clone_model(model)
        teacher.set_weights(model.get_weights())
        teacher.trainable = False
        loss = distillation_loss(distill, 4.0)
        train = make_dataset(
            x_train,
            y_train,
            128,
            seed + 1,
            augment=settings["shifts"],
            flatten=settings["flatten"],
            teacher=teacher,
        )
        log(f"   retraining with distillation: weight {distill:g}, temperature 4")
    elif settings["shifts"]:
        train = make_dataset(x_train, y_train, 128, seed + 1, flatten=settings["flatten"])
    else:
        train = (x_train.reshape(shape), y_train)
    log(f"== compress_to_budget on {len(x_val):,d} validation images (the test set is not used)")
    result = keras_dc.compress_to_budget(
        model,
        train,
        (x_val, y_val),
        max_increase=max_increase,
        max_value=max_error,
        loss=loss,
        prune_epochs=settings["prune_epochs"],
        variational_epochs=settings["variational_epochs"],
        variational_kl=settings["variational_kl"],
        gradual_epochs=settings["gradual_epochs"],
        gradual_refine=gradual_refine,
        final_epochs=final_epochs,
        cluster_epochs=max(0.5, settings["prune_epochs"]),
        start_density=start_density,
        prune_share=prune_share,
        init=init,
        rate_weight=rate_weight,
        calibrate_lr=calibrate_lr,
        bit_moves={"largest": True, "best": "best", "none": False}[bit_moves],
        centroid_update=centroid_update,
        cluster_learning_rate=cluster_lr,
        min_size=1,
        directory=os.path.join(out, "search"),
        strict_resume=True,  # the dense model is a fixed input: never resume another's search
        time_limit=time_limit,
        seed=seed,
    )
    search_seconds = time.perf_counter() - started - dense_seconds
    log(result.format_table())
    result.save_json(os.path.join(out, "search.json"))
    result.save_picture(os.path.join(out, "search.png"))

    log("== converting, restoring, measuring the restored bundle in LiteRT on the test set")
    bundle_dir = os.path.join(out, "bundle")
    bundle = converters.convert(model, bundle_dir, verbose=0)
    restored = converters.restore(bundle_dir)
    test_error = litert_error(restored, x_test, y_test)
    totals = bundle.report["totals"]
    res = {
        "model": model_name,
        "seed": seed,
        "max_increase": max_increase,
        "max_error": max_error,
        "distill": distill,
        "bit_moves": bit_moves,
        "centroid_update": centroid_update,
        "centroid_update_used": result.centroid_update,
        "cluster_lr": cluster_lr,
        "prune_epochs": settings["prune_epochs"],
        "variational_epochs": settings["variational_epochs"],
        "variational_kl": settings["variational_kl"],
        "gradual_epochs": settings["gradual_epochs"],
        "gradual_refine": gradual_refine,
        "final_epochs": final_epochs,
        "prune_share": prune_share,
        "validation_images": len(x_val),
        "calibrated": any(s["stage"] == "calibrate" for s in result.steps),
        "dense_test_error": dense_test,
        "dense_validation_error": result.dense_metric,
        "validation_error": result.final_metric,
        "test_error": test_error,
        "dense_tflite_bytes": len(dense_tflite),
        "bundle_bytes": totals["bundle_bytes"],
        "skeleton_bytes": totals["skeleton_bytes"],
        "sidecar_bytes": totals["sidecar_bytes"],
        "ratio": len(dense_tflite) / totals["bundle_bytes"],
        "layers": result.layers,
        "shifts": settings["shifts"],
        "dense_epochs": settings["dense_epochs"],
        "dense_weights": dense_weights,
        "seconds": round(time.perf_counter() - started, 1),
        "dense_seconds": round(dense_seconds, 1),
        "search_seconds": round(search_seconds, 1),
        "moves": len(result.steps),
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    log("")
    log(
        f"== {model_name}, seed {seed}: summary (test set: {len(x_test):,d} images, restored bundle in LiteRT)"
    )
    log(
        f"  dense                 test error {dense_test:6.2%}   {len(dense_tflite):>10,d} bytes (.tflite float32)"
    )
    log(
        f"  compressed bundle     test error {test_error:6.2%}   {totals['bundle_bytes']:>10,d} bytes "
        f"= {res['ratio']:.1f}x smaller (skeleton {totals['skeleton_bytes']:,d} + sidecar {totals['sidecar_bytes']:,d})"
    )
    log(
        f"  validation error      dense {result.dense_metric:.2%} -> {result.final_metric:.2%} "
        f"(limit {result.limit:.2%})"
    )
    log(
        f"  wall time             {res['seconds']:.0f} s (dense model {dense_seconds:.0f} s, "
        f"search {search_seconds:.0f} s)"
    )
    return res


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    out = FLAGS.out or os.path.join("out", f"budget_{FLAGS.model}_seed{FLAGS.seed}")
    import keras_dc

    try:
        run(
            FLAGS.model,
            out=out,
            data=FLAGS.data,
            seed=FLAGS.seed,
            validation=FLAGS.validation,
            max_increase=FLAGS.max_increase,
            max_error=FLAGS.max_error,
            smoke=FLAGS.smoke,
            dense_epochs=FLAGS.dense_epochs,
            prune_epochs=FLAGS.prune_epochs,
            final_epochs=FLAGS.final_epochs,
            gradual_epochs=FLAGS.gradual_epochs,
            gradual_refine=FLAGS.gradual_refine,
            variational_epochs=FLAGS.variational_epochs,
            variational_kl=FLAGS.variational_kl,
            shifts=FLAGS.shifts,
            start_density=FLAGS.start_density,
            prune_share=FLAGS.prune_share,
            rate_weight=FLAGS.rate_weight,
            init=FLAGS.init,
            calibrate_lr=FLAGS.calibrate_lr,
            time_limit=FLAGS.time_limit,
            distill=FLAGS.distill,
            bit_moves=FLAGS.bit_moves,
            centroid_update=FLAGS.centroid_update,
            cluster_lr=FLAGS.cluster_lr,
            dense_weights=FLAGS.dense_weights,
        )
    except WeightsError as e:
        raise app.UsageError(f"--dense_weights: {e}") from None
    except keras_dc.SearchStateError as e:
        raise app.UsageError(f"--out: {e}") from None
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
