"""Shared pieces of the paper examples (LeNet-300-100, LeNet-5) and the paper benchmark.

The recipe, stage by stage (Han, Mao, Dally 2016, with what later work added):

1. dense reference: Adam with cosine learning-rate decay, L2 on the kernels and
   random shifts of up to 2 pixels (a better reference than the paper's Caffe run;
   the recipe says whether the shifts go on while pruning and clustering);
2. pruning: ``keras_dc.MagnitudePruning`` with an ``Iterative`` schedule
   (prune → retrain → prune further …), per-layer targets (first conv layer and
   the last layer kept denser), retraining at a lower learning rate (Adam, cosine decay);
3. trained quantization: ``keras_dc.WeightClustering`` with per-layer bits,
   linear centroid initialisation, centroids retrained at a low learning rate;
4. ``converters.convert`` → bundle (skeleton + Huffman-coded sidecar), then
   ``converters.restore`` and the restored flatbuffer measured in LiteRT.
"""

import dataclasses
import os
import time

import numpy as np

SHIFT = 2  # random translation of up to ±2 pixels during training


@dataclasses.dataclass
class Recipe:
    """Epochs and learning rates of one run; `smoke()` shrinks it to a CI-sized check."""

    dense_epochs: int
    dense_lr: float
    prune_fractions: tuple  # the Iterative schedule: fraction of each layer's target per event
    prune_every: float  # retraining epochs between pruning events (may be a fraction of an epoch)
    prune_final_epochs: int  # retraining epochs after the last event (LR decays to 0)
    prune_lr: float
    cluster_epochs: int
    cluster_lr: float
    l2: float = 1e-5
    batch_size: int = 128
    retrain_shifts: bool = (
        True  # random shifts also while pruning and clustering (False: dense stage only)
    )
    distill: float = 0.0  # weight of the dense teacher's soft targets while pruning and clustering (0: labels only)
    temperature: float = 4.0  # softmax temperature of the distillation term

    @property
    def prune_epochs(self):
        return (
            int(round((len(self.prune_fractions) - 1) * self.prune_every)) + self.prune_final_epochs
        )

    def smoke(self):
        return dataclasses.replace(
            self,
            dense_epochs=1,
            prune_fractions=(1.0,),
            prune_every=1,
            prune_final_epochs=1,
            cluster_epochs=1,
        )


def make_dataset(x, y, batch_size, seed, augment=True, flatten=False, teacher=None):
    """A `tf.data.Dataset`: a fresh shuffle and fresh random shifts every epoch.

    `x` holds 28×28 images (shifts are 2-D); `flatten` feeds the model 784
    pixels. The shifts run as TensorFlow ops inside tf.data (in parallel, no
    Python per batch), which works for Keras 3 and tf_keras alike.

    With a `teacher` model, the targets become ``[label, teacher logits...]`` per
    image (the teacher sees the same shifted image), for `distillation_loss`.
    """
    import tensorflow as tf

    images = x.reshape(len(x), 28, 28, 1)

    def shift(image, label):
        padded = tf.pad(image, [[SHIFT, SHIFT], [SHIFT, SHIFT], [0, 0]])
        image = tf.image.random_crop(padded, [28, 28, 1])
        return image, label

    def shape(image, label):
        return (
            tf.reshape(image, [-1, 784]) if flatten else tf.reshape(image, [-1] + list(x.shape[1:]))
        ), label

    ds = tf.data.Dataset.from_tensor_slices((images, y)).shuffle(
        len(x), seed=seed, reshuffle_each_iteration=True
    )
    if augment:
        ds = ds.map(shift, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size).map(shape)
    if teacher is not None:

        def soft_targets(image, label):
            logits = tf.cast(teacher(image, training=False), tf.float32)
            return image, tf.concat([tf.cast(label, tf.float32)[:, None], logits], axis=1)

        ds = ds.map(soft_targets)
    return ds.prefetch(tf.data.AUTOTUNE)


def distillation_loss(weight, temperature):
    """Cross-entropy on the labels, mixed with the teacher's softened outputs (Hinton et al. 2015).

    ``y_true`` is ``[label, teacher logits...]`` (`make_dataset` with a teacher):
    ``(1 − weight) · CE(label, logits) + weight · T² · KL(softmax(teacher/T) ‖ softmax(logits/T))``.
    """
    from keras import ops

    def loss(y_true, logits):
        labels = ops.cast(y_true[:, 0], "int32")
        soft = ops.softmax(y_true[:, 1:] / temperature)
        hard_ce = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        soft_ce = ops.categorical_crossentropy(soft, logits / temperature, from_logits=True)
        kl = soft_ce + ops.sum(
            soft * ops.log(ops.maximum(soft, 1e-12)), axis=-1
        )  # minus the teacher's entropy
        return (1.0 - weight) * hard_ce + weight * temperature**2 * kl

    return loss


def cubic_fractions(events):
    """Zhu & Gupta's ramp f_i = 1 − (1 − i/n)³ at n iterative events: big cuts first, small ones last.

    Rounded to 4 decimals, or to as many more as keep the fractions strictly increasing
    (from ~30 events on the last ones differ by less than 1e-4)."""
    if not isinstance(events, int) or events < 1:
        raise ValueError(f"events must be a positive int, received {events!r}.")
    exact = [1.0 - (1.0 - i / events) ** 3 for i in range(1, events + 1)]
    for digits in range(4, 16):
        found = tuple(round(f, digits) for f in exact)
        if all(a < b for a, b in zip(found, found[1:])):
            return found
    return tuple(exact)


def compile_model(model, lr, epochs, steps_per_epoch, loss=None):
    """Adam with cosine decay from `lr` to 0 over `epochs` (or constant `lr` when epochs == 0);
    `loss`: e.g. `distillation_loss` (default: cross-entropy on the labels, with accuracy logged)."""
    import keras

    schedule = lr
    if epochs > 0:
        schedule = keras.optimizers.schedules.CosineDecay(
            lr, decay_steps=max(1, epochs * steps_per_epoch)
        )
    if loss is None:
        model.compile(
            keras.optimizers.Adam(schedule),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    else:
        # metrics must be given: Keras 3.15 keeps the previous compile's metrics when it is None.
        model.compile(keras.optimizers.Adam(schedule), loss, metrics=[label_accuracy])


def label_accuracy(y_true, logits):
    """Accuracy against the label column of distillation targets ``[label, teacher logits...]``."""
    from keras import ops

    return ops.cast(
        ops.equal(ops.cast(y_true[:, 0], "int32"), ops.cast(ops.argmax(logits, axis=-1), "int32")),
        "float32",
    )


def keras_error(model, x, y):
    """Test error of the Keras model (argmax of its outputs; independent of the compiled loss)."""
    logits = model.predict(x, batch_size=1000, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) != y))


def litert_error(model_bytes, x, y, batch=500):
    """Test error of a flatbuffer in the LiteRT interpreter.

    The bundle is converted at batch 1 (what a phone runs); here its input is
    resized to `batch` images so the 10,000 test images take a second, not a
    minute. Falls back to one image at a time if the graph cannot be resized.
    """
    from ai_edge_litert.interpreter import Interpreter

    def run(interpreter, images):
        inp = interpreter.get_input_details()[0]
        out = interpreter.get_output_details()[0]
        interpreter.set_tensor(inp["index"], images.astype(np.float32).reshape(inp["shape"]))
        interpreter.invoke()
        return interpreter.get_tensor(out["index"]).reshape(len(images), -1)

    single = Interpreter(model_content=model_bytes)
    single.allocate_tensors()
    shape = list(single.get_input_details()[0]["shape"])
    check = np.concatenate([run(single, x[i : i + 1]) for i in range(min(8, len(x)))])
    try:
        batched = Interpreter(model_content=model_bytes)
        batched.resize_tensor_input(batched.get_input_details()[0]["index"], [batch] + shape[1:])
        batched.allocate_tensors()
        logits = np.concatenate(
            [run(batched, x[i : i + batch]) for i in range(0, len(x) - len(x) % batch, batch)]
            + [run(single, x[i : i + 1]) for i in range(len(x) - len(x) % batch, len(x))]
        )
        if not np.allclose(logits[: len(check)], check, atol=1e-4):
            raise ValueError("batched run disagrees with batch 1")
    except (ValueError, RuntimeError):
        logits = np.concatenate([run(single, x[i : i + 1]) for i in range(len(x))])
    return float(np.mean(np.argmax(logits, axis=1) != y))


def dense_tflite(model):
    """The float32 .tflite the standard converter writes for `model` (the baseline size)."""
    import converters

    return converters.export.to_tflite(model)


def run_pipeline(
    model,
    data,
    recipe,
    *,
    prune_targets,
    default_target,
    bits,
    default_bits,
    out_dir,
    seed=0,
    flatten=False,
    log=print,
    stage_hook=None,
    block=None,
):
    """Dense → iterative pruning → clustering → bundle → restore → LiteRT. Returns a dict of results.

    Args:
        model: An uncompiled Keras model.
        data: ``((x_train, y_train), (x_test, y_test))``; `x_train` as 28×28 images,
            `x_test` shaped as the model's input.
        recipe: A `Recipe`.
        prune_targets: ``{layer name: sparsity}`` overrides of `default_target`.
        bits: ``{layer name: bits}`` overrides of `default_bits`.
        out_dir: Bundle directory.
        flatten: Feed the model flattened training images (MLPs).
        stage_hook: Called as ``stage_hook(name, model)`` after the dense,
            pruned and clustered stages (the benchmark measures bundles there).
        block: `keras_dc.MagnitudePruning`'s ``block`` (``"litert"``: Dense kernels
            in LiteRT's 1x4 blocks, for ``benchmarks.sparse_speed``). Defaults to
            `None` (single weights).
    """
    import keras

    import converters
    import keras_dc
    from examples import paper_figures
    from keras_dc import schedules

    (x_train, y_train), (x_test, y_test) = data
    r = recipe
    steps = -(-len(x_train) // r.batch_size)
    res = {"times": {}, "stages": {}}
    user_hook = stage_hook

    def stage_hook(stage, m):
        # The largest kernel at each stage, for the pictures.
        largest = max(
            keras_dc.compressible_variables(m, min_size=1), key=lambda v: int(np.prod(v.shape))
        )
        res["stages"]["layer"] = largest.path.split("/")[-2]
        res["stages"][stage] = np.array(largest.numpy())
        if user_hook:
            user_hook(stage, m)

    t0 = time.perf_counter()

    log(
        f"== 1/5 dense training: {r.dense_epochs} epochs, Adam {r.dense_lr:g} with cosine decay, "
        f"L2 {r.l2:g}, random shifts ±{SHIFT} px"
    )
    compile_model(model, r.dense_lr, r.dense_epochs, steps)
    model.fit(
        make_dataset(x_train, y_train, r.batch_size, seed, flatten=flatten),
        epochs=r.dense_epochs,
        shuffle=False,
        verbose=2,
    )
    res["dense_error"] = keras_error(model, x_test, y_test)
    res["times"]["dense"] = time.perf_counter() - t0
    log(f"   dense test error {res['dense_error']:.2%}")
    stage_hook("dense", model)

    teacher, loss = None, None
    if r.distill > 0:
        # The dense model, frozen, teaches the pruned and clustered one (its soft targets on
        # the same training images).
        teacher = keras.models.clone_model(model)
        teacher.set_weights(model.get_weights())
        teacher.trainable = False
        loss = distillation_loss(r.distill, r.temperature)
        log(
            f"   distillation: weight {r.distill:g} on the dense model's outputs at temperature {r.temperature:g}"
        )

    def retrain(stage, timer, seed_offset, lr, epochs, callback):
        """Compile, fit with `callback`, measure: the pruning and the clustering stage alike."""
        started = time.perf_counter()
        compile_model(model, lr, epochs, steps, loss)
        model.fit(
            make_dataset(
                x_train,
                y_train,
                r.batch_size,
                seed + seed_offset,
                augment=r.retrain_shifts,
                flatten=flatten,
                teacher=teacher,
            ),
            epochs=epochs,
            shuffle=False,
            verbose=2,
            callbacks=[callback],
        )
        res[f"{stage}_error"] = keras_error(model, x_test, y_test)
        res["times"][timer] = time.perf_counter() - started
        log(f"   {stage} test error {res[f'{stage}_error']:.2%}")

    targets = ", ".join(f"{k} {v:.0%}" for k, v in prune_targets.items())
    fractions = ", ".join(f"{f:.2f}" for f in r.prune_fractions)
    log(
        f"== 2/5 iterative pruning: events at fractions ({fractions}) of each layer's target "
        f"(default {default_target:.0%}; {targets}), {r.prune_every} epoch(s) of retraining between "
        f"events, {r.prune_final_epochs} after, Adam {r.prune_lr:g}"
    )
    pruning = keras_dc.MagnitudePruning(
        default_target,
        schedule=schedules.Iterative(
            fractions=r.prune_fractions,
            every=max(1, int(r.prune_every * steps)),
            begin=0,
            unit="step",
        ),
        overrides={model.get_layer(name): t for name, t in prune_targets.items()},
        min_size=1,
        block=block,
        verbose=0,
    )
    retrain("pruned", "prune", 1, r.prune_lr, r.prune_epochs, pruning)
    stage_hook("pruned", model)

    per_layer = ", ".join(f"{k} {v}" for k, v in bits.items())
    log(
        f"== 3/5 clustering: {default_bits} bits (overrides: {per_layer}), linear init, "
        f"centroid retraining {r.cluster_epochs} epoch(s), Adam {r.cluster_lr:g}"
    )
    clustering = keras_dc.WeightClustering(
        bits=default_bits,
        overrides={model.get_layer(name): b for name, b in bits.items()},
        init="linear",
        min_size=1,
        verbose=0,
    )
    retrain("clustered", "cluster", 2, r.cluster_lr, r.cluster_epochs, clustering)
    res["layer_table"] = keras_dc.format_layer_report(keras_dc.layer_report(model, min_size=1))
    stage_hook("clustered", model)

    t3 = time.perf_counter()
    log(f"== 4/5 converting to a bundle in {out_dir}")
    result = converters.convert(model, out_dir, verbose=0)
    res["report"] = result.report
    res["max_abs_diff"] = result.max_abs_diff
    res["times"]["convert"] = time.perf_counter() - t3

    t4 = time.perf_counter()
    log(f"== 5/5 restoring the bundle and measuring it in LiteRT on {len(x_test):,} test images")
    restored = converters.restore(out_dir)
    res["restored"] = restored
    res["bundle_error"] = litert_error(restored, x_test, y_test)
    res["times"]["litert"] = time.perf_counter() - t4
    res["paper_rows"] = paper_figures.paper_rows(restored, result.report)
    res["times"]["total"] = time.perf_counter() - t0
    return res


def print_summary(title, res, *, ref_error_target, ratio_target, figure=None, log=print):
    """The paper-style tables and the error/size summary with the targets; `figure`: also a PNG there."""
    from converters.report import format_report
    from examples import paper_figures

    t = res["report"]["totals"]
    log("")
    log(f"== {title}: layer by layer after pruning + clustering (Keras variables)")
    log(res["layer_table"])
    log("")
    log(
        f"== {title}: the paper's table (Han et al. 2016, Tables 2-3), from the restored flatbuffer"
    )
    log(paper_figures.format_paper_table(res["paper_rows"]))
    log("")
    if figure and paper_figures.save_figure(
        figure, f"{title}: Deep Compression with keras-dc", res["stages"], res["paper_rows"]
    ):
        paper_figures.save_stages(os.path.dirname(figure), res["stages"])
        log(f"== {title}: pictures written to {figure}")
        log("")
    log(f"== {title}: the bundle, buffer by buffer (as stored in the flatbuffer)")
    log(format_report(res["report"]))
    log("")
    ok_dense = res["dense_error"] <= ref_error_target
    ok_acc = res["bundle_error"] <= res["dense_error"] + 0.001 + 1e-9
    ok_ratio = t["ratio_vs_dense"] >= ratio_target
    mark = {True: "met", False: "MISSED"}
    log(f"== {title}: summary (test error on the {res.get('n_test', 10000):,} test images)")
    log(
        f"  dense reference (Keras)      {res['dense_error']:7.2%}   target ≤ {ref_error_target:.2%}: "
        f"{mark[ok_dense]}"
    )
    log(f"  pruned (Keras)               {res['pruned_error']:7.2%}")
    log(f"  pruned + clustered (Keras)   {res['clustered_error']:7.2%}")
    log(
        f"  restored bundle in LiteRT    {res['bundle_error']:7.2%}   target ≤ dense + 0.10 pp: "
        f"{mark[ok_acc]}"
    )
    log(f"  dense float32 .tflite        {t['dense_tflite_bytes']:>9,d} bytes")
    log(
        f"  bundle (skeleton + sidecar)  {t['bundle_bytes']:>9,d} bytes = {t['ratio_vs_dense']:.1f}x smaller"
        f"   target ≥ {ratio_target}x: {mark[ok_ratio]}"
    )
    log(
        f"  restored .tflite: gzip -9    {t['restored_gzip9_bytes']:>9,d} bytes = "
        f"{t['dense_tflite_bytes'] / t['restored_gzip9_bytes']:.1f}x"
    )
    if t.get("restored_zstd19_bytes"):
        log(
            f"  restored .tflite: zstd -19   {t['restored_zstd19_bytes']:>9,d} bytes = "
            f"{t['dense_tflite_bytes'] / t['restored_zstd19_bytes']:.1f}x"
        )
    log(f"  max |LiteRT - Keras|         {res['max_abs_diff']:.2e}")
    times = res["times"]
    log("  wall time                    " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    return {"dense": ok_dense, "accuracy": ok_acc, "ratio": ok_ratio}


def define_example_flags(default_out):
    """The paper examples' command-line flags (defined only when an example runs as a script:
    the benchmark imports the example modules for their models and recipes)."""
    import sys
    import types

    from absl import flags

    # Registered as the running script's own flags, so that `--help` lists them.
    main = {"module_name": sys.argv[0]}
    return types.SimpleNamespace(
        data=flags.DEFINE_string(
            "data", None, "mnist.npz (keras layout); default: the shared offline copy.", **main
        ),
        out=flags.DEFINE_string("out", default_out, "Bundle directory.", **main),
        smoke=flags.DEFINE_bool(
            "smoke", False, "Tiny run (2k images, 1 epoch per stage) for tests.", **main
        ),
        seed=flags.DEFINE_integer("seed", 0, "Random seed (weights, shuffling, shifts).", **main),
        deterministic=flags.DEFINE_bool(
            "deterministic",
            True,
            "Bit-reproducible on this machine (keras_dc.make_reproducible); "
            "--nodeterministic only seeds.",
            **main,
        ),
        dense_epochs=flags.DEFINE_integer(
            "dense_epochs",
            None,
            "Override the recipe's dense epochs (a shorter run on a busy machine).",
            **main,
        ),
        retrain_epochs=flags.DEFINE_integer(
            "retrain_epochs",
            None,
            "Override the recipe's retraining epochs after the last pruning event.",
            **main,
        ),
        distill=flags.DEFINE_float(
            "distill",
            None,
            "Override the recipe's distillation weight (0: train the "
            "compressed model on the labels only).",
            **main,
        ),
    )


def run_example(flag_values, module, *, title, flatten, ref_error_target, ratio_target):
    """An example's main: MNIST → `run_pipeline` with `module`'s model, recipe, PRUNE and BITS
    → the summary, the paper's table, `paper.png` and `stages.npz` in the bundle directory."""
    import keras

    import keras_dc
    from examples.mnist_data import load_mnist

    f = flag_values
    (x_train, y_train), (x_test, y_test) = load_mnist(f.data.value)
    x_train = x_train if flatten else x_train[..., None]
    x_test = x_test.reshape(-1, 784) if flatten else x_test[..., None]
    r = module.recipe()
    if f.dense_epochs.value is not None:
        r = dataclasses.replace(r, dense_epochs=f.dense_epochs.value)
    if f.retrain_epochs.value is not None:
        r = dataclasses.replace(r, prune_final_epochs=f.retrain_epochs.value)
    if f.distill.value is not None:
        r = dataclasses.replace(r, distill=f.distill.value)
    if f.smoke.value:
        x_train, y_train, x_test, y_test = (
            x_train[:2000],
            y_train[:2000],
            x_test[:500],
            y_test[:500],
        )
        r = r.smoke()
    if f.deterministic.value:
        keras_dc.make_reproducible(f.seed.value)
    else:
        keras.utils.set_random_seed(f.seed.value)
    model = module.build_model(r.l2)
    res = run_pipeline(
        model,
        ((x_train, y_train), (x_test, y_test)),
        r,
        prune_targets=module.PRUNE,
        default_target=max(module.PRUNE.values()),
        bits=module.BITS,
        default_bits=5,
        out_dir=f.out.value,
        seed=f.seed.value,
        flatten=flatten,
    )
    res["n_test"] = len(x_test)
    print_summary(
        title,
        res,
        ref_error_target=ref_error_target,
        ratio_target=ratio_target,
        figure=os.path.join(f.out.value, "paper.png"),
    )
    return res


def example_app(module, *, title, flatten, ref_error_target, ratio_target, default_out):
    """Defines the example flags and runs `run_example` for `module` under absl (the examples' main)."""
    from absl import app

    flag_values = define_example_flags(default_out)

    def main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        run_example(
            flag_values,
            module,
            title=title,
            flatten=flatten,
            ref_error_target=ref_error_target,
            ratio_target=ratio_target,
        )

    app.run(main)
