"""Pruning and weight clustering under tf.distribute.MultiWorkerMirroredStrategy.

Every worker of the cluster runs this same script; ``TF_CONFIG`` tells each one
the cluster and its own place in it. Each worker trains its shard of every global
batch (the strategy splits the data), gradients are all-reduced, and every
worker takes the chief's masks and clusters, so all end with bit-identical
weights. The chief (worker 0) saves the model;
the conversion to a bundle runs once, afterwards, in an ordinary process.

    # on every machine (TF_CONFIG set by you or by the cluster manager):
    TF_CONFIG='{"cluster": {"worker": ["host0:20000", "host1:20000"]},
                "task": {"type": "worker", "index": 0}}' \\
        python -m examples.distributed_train --out=/shared/run
    # then once, anywhere:
    keras-dc convert --model=/shared/run/model.keras --out=/shared/run/bundle

    # on one machine: start 2 local workers on loopback ports, check that they
    # agree bit for bit, then convert the chief's model (--smoke: about a minute)
    python -m examples.distributed_train --local=2 --smoke --out=out/distributed

See docs/distributed.md.
"""

import faulthandler
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_OUT = flags.DEFINE_string("out", "out/distributed", "Output directory (shared by the workers).")
_LOCAL = flags.DEFINE_integer(
    "local",
    0,
    "Start this many worker processes on this machine (loopback ports), wait for them, "
    "compare their weights and convert the chief's model. 0: run as one worker of the "
    "cluster described by TF_CONFIG.",
)
_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny run (seconds), for tests.")
_SPARSITY = flags.DEFINE_float("sparsity", 0.8, "Sparsity of every kernel.")
_BITS = flags.DEFINE_integer("bits", 4, "Cluster index bits (2**bits centroids).")
_INIT = flags.DEFINE_string("init", "linear", "k-means initialisation of WeightClustering.")
_SEED_PER_WORKER = flags.DEFINE_bool(
    "seed_per_worker",
    False,
    "A different k-means seed on every worker (a check: the chief's clusters must win).",
)
_GLOBAL_BATCH = flags.DEFINE_integer(
    "global_batch", 64, "Global batch size (split over all workers)."
)
_TIMEOUT = flags.DEFINE_integer(
    "timeout",
    900,
    "Seconds after which a worker dumps its stacks and exits (a peer that never came up "
    "would otherwise keep it waiting). 0: no limit.",
)

FEATURES, CLASSES = 20, 4


def build_model():
    """The example's MLP, with fixed names so that every build converts to the same bytes."""
    import keras

    inputs = keras.Input((FEATURES,), name="features")
    x = keras.layers.Dense(64, activation="relu", name="fc1")(inputs)
    x = keras.layers.Dense(32, activation="relu", name="fc2")(x)
    outputs = keras.layers.Dense(CLASSES, name="logits")(x)
    return keras.Model(inputs, outputs, name="mlp")


def compile_model(model, learning_rate):
    """SGD with momentum: the centroid update is then the paper's summed gradient (Eq. 3)."""
    import keras

    model.compile(
        keras.optimizers.SGD(learning_rate, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def make_dataset(n, global_batch):
    """A synthetic task (a fixed random teacher) as a tf.data pipeline of global batches.

    Every worker builds the same pipeline (fixed seeds); the strategy shards it by data:
    each global batch is split between the workers. Replace it with your input pipeline,
    keeping the seeds of any shuffling identical on every worker.
    """
    import tensorflow as tf

    rng = np.random.default_rng(1234)
    x = rng.normal(size=(n, FEATURES)).astype("float32")
    teacher = rng.normal(size=(FEATURES, CLASSES)).astype("float32")
    y = np.argmax(x @ teacher + 0.5 * rng.normal(size=(n, CLASSES)), axis=1).astype("int32")
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(n, seed=7, reshuffle_each_iteration=True)
        .batch(global_batch, drop_remainder=True)
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def enable_multi_worker_fit(model, strategy):
    """Works around two Keras 3 bugs that stop ``fit`` under MultiWorkerMirroredStrategy.

    Keras 3 (3.15 at the time of writing, keras-team/keras#20585) fails with more than one
    worker, before any callback runs:

    1. ``fit`` first reduces one input batch across all replicas with ``strategy.reduce``,
       only to learn its shapes; with several workers that reduce cannot take an
       ``(x, y)`` pair ("Attempt to convert a value (PerReplica...)"). Here the shapes
       come from the local replica's batch instead.
    2. The logs of every step are averaged with ``strategy.reduce("MEAN", v, axis=0)``,
       which fails on scalars ("Invalid reduction dimension 0"). Here every log value
       gets a leading axis of 1 first, so the reduce averages over the replicas.

    Neither touches the weights or the gradients; both only change this ``model``
    instance (nothing is saved with it). Call it once (not per compile), after building
    the model. Not needed for MirroredStrategy on one machine.
    """
    import tensorflow as tf

    def symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = next(it)
                break
        local = tf.nest.map_structure(
            lambda v: (
                strategy.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues)
                else v
            ),
            data_batch,
        )
        with strategy.scope():
            model._symbolic_build(data_batch=local)

    def with_leading_axis(step):
        return lambda data: tf.nest.map_structure(lambda v: tf.expand_dims(v, 0), step(data))

    model._maybe_symbolic_build = symbolic_build
    model.train_step = with_leading_axis(model.train_step)
    model.test_step = with_leading_axis(model.test_step)


def train_worker(out, smoke, sparsity, bits, global_batch, init="linear", seed_per_worker=False):
    """What each worker runs: dense fit → MagnitudePruning fit → WeightClustering fit.

    Writes ``weights.worker<i>.npz`` (the weights after pruning, ``pruned_w<j>``, and at
    the end, ``w<j>``, plus the final centroids ``centroids/<path>``) and, on the chief
    only, ``model.keras``. Every worker calls ``model.save`` (the non-chiefs into a
    temporary directory), as tf.distribute expects of multi-worker saving.
    """
    import keras
    import tensorflow as tf

    import keras_dc
    from keras_dc import schedules

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = strategy.cluster_resolver.task_id
    is_chief = task == 0
    # Seeded per worker on purpose: the strategy broadcasts the chief's initial weights
    # and the callbacks use only synchronized values, so nothing may depend on this.
    keras.utils.set_random_seed(100 + task)
    if smoke:  # 8 steps per epoch: prune 0 → 100% of the target over steps 0..6
        n, dense_epochs, prune_epochs, cluster_epochs = 512, 1, 1, 1
        ramp = schedules.Gradual(begin=0, end=6, frequency=2)
    else:  # ramp over 6 epochs, then 2 epochs of retraining
        n, dense_epochs, prune_epochs, cluster_epochs = 20000, 5, 8, 3
        ramp = schedules.Gradual(begin=0, end=6, frequency=1, unit="epoch")
    dataset = make_dataset(n, global_batch)
    verbose = 2 if is_chief else 0
    with strategy.scope():
        model = build_model()
        compile_model(model, 0.05)
    enable_multi_worker_fit(model, strategy)
    model.fit(dataset, epochs=dense_epochs, verbose=verbose)

    with strategy.scope():  # a fresh optimizer: the schedule counts from step 0
        compile_model(model, 0.02)
    model.fit(
        dataset,
        epochs=prune_epochs,
        verbose=verbose,
        callbacks=[
            keras_dc.MagnitudePruning(
                sparsity, schedule=ramp, min_size=1, verbose=1 if is_chief else 0
            )
        ],
    )
    pruned = model.get_weights()

    with strategy.scope():
        compile_model(model, 0.01)
    clustering = keras_dc.WeightClustering(
        bits=bits,
        init=init,
        seed=task if seed_per_worker else 0,
        min_size=1,
        verbose=1 if is_chief else 0,
    )
    history = model.fit(dataset, epochs=cluster_epochs, verbose=verbose, callbacks=[clustering])

    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"pruned_w{i}": w for i, w in enumerate(pruned)})
    arrays.update({f"centroids/{path}": c for path, c in clustering.centroids().items()})
    np.savez(os.path.join(out, f"weights.worker{task}.npz"), **arrays)
    target = out if is_chief else tempfile.mkdtemp(prefix=f"keras_dc_worker{task}_")
    model.save(os.path.join(target, "model.keras"))
    if not is_chief:
        shutil.rmtree(target, ignore_errors=True)
    print(
        f"worker {task}: done, {strategy.num_replicas_in_sync} replicas in sync, "
        f"accuracy {history.history['accuracy'][-1]:.3f}",
        flush=True,
    )


def free_ports(n):
    """``n`` distinct TCP ports free on the loopback interface right now."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports, index):
    """The TF_CONFIG of worker ``index`` of a cluster of local workers on ``ports``."""
    return json.dumps(
        {
            "cluster": {"worker": [f"localhost:{p}" for p in ports]},
            "task": {"type": "worker", "index": index},
        }
    )


def run_local_workers(n, args, timeout, log_dir):
    """Runs ``n`` workers of this script on this machine and waits for all of them.

    When a worker fails the others are killed at once (they would otherwise wait in a
    collective for the dead peer), and so are all of them after ``timeout`` seconds.
    The workers run on the CPU (GPUs hidden: several processes would share one; on one
    machine with GPUs, MirroredStrategy is the tool).

    Args:
        n: Number of workers.
        args: Command-line arguments for every worker (not ``--local``).
        timeout: Seconds to wait for the whole cluster.
        log_dir: Where ``worker<i>.stdout`` / ``.stderr`` are written.

    Returns:
        A list of ``{"index", "returncode", "stdout", "stderr"}``, one per worker;
        ``returncode`` is None for a worker that was killed.
    """
    os.makedirs(log_dir, exist_ok=True)
    ports = free_ports(n)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1")
    workers = []
    for index in range(n):
        out = open(os.path.join(log_dir, f"worker{index}.stdout"), "w")
        err = open(os.path.join(log_dir, f"worker{index}.stderr"), "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "examples.distributed_train", *args],
            env=dict(env, TF_CONFIG=tf_config(ports, index)),
            stdout=out,
            stderr=err,
            cwd=ROOT,
        )
        workers.append((proc, out, err))
    deadline = time.monotonic() + timeout
    killed = set()
    try:
        while any(p.poll() is None for p, _, _ in workers):
            if any(p.poll() not in (None, 0) for p, _, _ in workers) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:  # whatever is still running now is killed
        for index, (p, out, err) in enumerate(workers):
            if p.poll() is None:
                p.kill()
                killed.add(index)
            p.wait()
            out.close()
            err.close()
    results = []
    for index, (p, out, err) in enumerate(workers):
        with open(out.name) as f_out, open(err.name) as f_err:
            results.append(
                {
                    "index": index,
                    "returncode": None if index in killed else p.returncode,
                    "stdout": f_out.read(),
                    "stderr": f_err.read(),
                }
            )
    return results


def describe_failures(results, tail=4000):
    """The exit status and the last ``tail`` characters of each worker's output."""
    return "\n".join(
        f"--- worker {r['index']}: "
        f"{'killed' if r['returncode'] is None else 'returncode ' + str(r['returncode'])}\n"
        f"stdout tail:\n{r['stdout'][-tail:]}\nstderr tail:\n{r['stderr'][-tail:]}"
        for r in results
    )


def _worker_args():
    """The command line of every worker: this one's flags, without ``--local``."""
    args = [
        f"--out={os.path.abspath(_OUT.value)}",
        f"--sparsity={_SPARSITY.value}",
        f"--bits={_BITS.value}",
        f"--global_batch={_GLOBAL_BATCH.value}",
        f"--timeout={_TIMEOUT.value}",
        f"--init={_INIT.value}",
    ]
    return args + [f"--{flag.name}" for flag in (_SMOKE, _SEED_PER_WORKER) if flag.value]


def _local(n):
    import converters

    out = os.path.abspath(_OUT.value)
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    results = run_local_workers(
        n, _worker_args(), timeout=_TIMEOUT.value or 24 * 3600, log_dir=os.path.join(out, "logs")
    )
    if any(r["returncode"] != 0 for r in results):
        print(describe_failures(results), file=sys.stderr)
        raise SystemExit(f"a worker failed; logs in {os.path.join(out, 'logs')}")
    print(results[0]["stdout"])
    weights = [np.load(os.path.join(out, f"weights.worker{i}.npz")) for i in range(n)]
    for i in range(1, n):
        differ = [k for k in weights[0].files if weights[0][k].tobytes() != weights[i][k].tobytes()]
        if differ or weights[0].files != weights[i].files:
            raise SystemExit(f"worker {i} disagrees with the chief on {differ}")
    print(
        f"{n} workers trained in {time.perf_counter() - start:.1f} s; their weights, "
        "masks and centroids agree bit for bit"
    )
    result = converters.convert(
        os.path.join(out, "model.keras"), os.path.join(out, "bundle"), picture=False, verbose=0
    )
    print(f"bundle in {os.path.join(out, 'bundle')}: {result.bundle_bytes} bytes")


def _worker():
    if "TF_CONFIG" not in os.environ:
        raise SystemExit("no TF_CONFIG: set it (see docs/distributed.md) or pass --local=2")
    if _TIMEOUT.value:
        # Dumps every thread's stack to stderr and exits: no worker waits forever.
        faulthandler.dump_traceback_later(_TIMEOUT.value, exit=True)
    os.makedirs(_OUT.value, exist_ok=True)
    train_worker(
        _OUT.value,
        _SMOKE.value,
        _SPARSITY.value,
        _BITS.value,
        _GLOBAL_BATCH.value,
        _INIT.value,
        _SEED_PER_WORKER.value,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _LOCAL.value:
        _local(_LOCAL.value)
    else:
        _worker()


if __name__ == "__main__":
    app.run(main)
