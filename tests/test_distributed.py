"""The callbacks under tf.distribute.MultiWorkerMirroredStrategy: two real worker processes.

The workers run the documented example (``python -m examples.distributed_train``) as a cluster on
loopback ports: a real ``model.fit`` with MagnitudePruning, then WeightClustering, on
data the strategy shards between them. The workers seed Keras differently and run
k-means++ with different seeds, so they agree only because the strategy broadcasts the
chief's initial weights and the callbacks take the chief's masks and clusters (without
that, this run ends with different weights on the two workers). Each worker writes its
weights; the chief also saves the model, which must convert to the same bundle as a
single-process model holding the same weights.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from examples import distributed_train as example

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SPARSITY, BITS = 0.75, 3
WORKER_TIMEOUT = 300  # each worker's own watchdog; the launcher waits a little longer


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Runs the two-worker cluster once; returns its output directory and workers' arrays."""
    out = tmp_path_factory.mktemp("multi_worker")
    args = [
        "--smoke",
        f"--out={out}",
        f"--sparsity={SPARSITY}",
        f"--bits={BITS}",
        "--init=kmeans++",
        "--seed_per_worker",
        f"--timeout={WORKER_TIMEOUT}",
    ]
    results = example.run_local_workers(
        2, args, timeout=WORKER_TIMEOUT + 30, log_dir=str(out / "logs")
    )
    assert all(r["returncode"] == 0 for r in results), (
        "a worker failed or hung:\n" + example.describe_failures(results)
    )
    for r in results:  # really one cluster of two workers, not two single-worker runs
        assert f"worker {r['index']}: done, 2 replicas in sync" in r["stdout"], r["stdout"][-2000:]
    arrays = []
    for index in range(2):
        with np.load(out / f"weights.worker{index}.npz") as data:
            arrays.append({key: data[key] for key in data.files})
    return out, arrays


def _kernels(arrays, prefix="w"):
    return {
        key: value
        for key, value in arrays.items()
        if key.startswith(prefix) and key[len(prefix) :].isdigit() and value.ndim == 2
    }


def test_workers_end_bit_identical(cluster):
    _, (chief, worker) = cluster
    assert sorted(chief) == sorted(worker)
    assert len(_kernels(chief)) == 3 and len([k for k in chief if k.startswith("centroids/")]) == 3
    for key in chief:
        assert chief[key].dtype == worker[key].dtype and chief[key].shape == worker[key].shape, key
        assert chief[key].tobytes() == worker[key].tobytes(), f"workers disagree on {key}"


def test_pruning_and_clustering_invariants_hold(cluster):
    _, (chief, _) = cluster
    for key, w in _kernels(chief).items():
        pruned = chief[f"pruned_{key}"]
        assert abs(np.mean(pruned == 0) - SPARSITY) < 0.01, (key, np.mean(pruned == 0))
        assert np.all(w[pruned == 0] == 0), f"{key}: a pruned weight came back"
        assert abs(np.mean(w == 0) - SPARSITY) < 0.01, (key, np.mean(w == 0))
        values = np.unique(w[w != 0])
        assert 2 <= values.size <= 2**BITS, (key, values.size)
    centroids = {k: v for k, v in chief.items() if k.startswith("centroids/")}
    for path, c in centroids.items():
        kernel = {
            "centroids/fc1/kernel": "w0",
            "centroids/fc2/kernel": "w2",
            "centroids/logits/kernel": "w4",
        }[path]
        w = chief[kernel]
        assert c[0] == 0 and c.size <= 2**BITS + 1
        # every surviving weight holds its cluster's retrained centroid
        assert set(np.unique(w[w != 0]).tolist()) <= set(c.astype(w.dtype).tolist()), path
    for key, b in chief.items():  # biases train but are never pruned
        if key.startswith("w") and key[1:].isdigit() and b.ndim == 1:
            assert np.mean(b == 0) < 0.5, key


def test_chief_model_converts_to_the_same_bundle_as_a_single_process_model(cluster, tmp_path):
    import converters

    out, (chief, _) = cluster
    from_cluster = converters.convert(
        str(out / "model.keras"), str(tmp_path / "cluster"), picture=False, verbose=0
    )
    model = example.build_model()
    model.set_weights([chief[f"w{i}"] for i in range(len(model.weights))])
    single = converters.convert(model, str(tmp_path / "single"), picture=False, verbose=0)
    for name in ("model.skeleton.tflite", "model.dcw"):
        cluster_bytes = (tmp_path / "cluster" / name).read_bytes()
        single_bytes = (tmp_path / "single" / name).read_bytes()
        assert cluster_bytes == single_bytes, name  # the skeleton may be empty (compacted)
        assert name.endswith(".tflite") or len(cluster_bytes) > 0
    assert from_cluster.bundle_bytes == single.bundle_bytes
    # the clustered layers are stored as codebooks, not as raw floats
    report = json.loads((tmp_path / "cluster" / "model.report.json").read_text())
    assert report["totals"]["bundle_bytes"] < report["totals"]["dense_tflite_bytes"] / 3, report[
        "totals"
    ]


def test_a_worker_whose_peer_never_starts_gives_up(tmp_path):
    port, absent = example.free_ports(2)
    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="-1",
        TF_CONFIG=example.tf_config([port, absent], 0),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "examples.distributed_train",
            "--smoke",
            f"--out={tmp_path}",
            "--timeout=20",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail("the worker hung past its own timeout:\n" + stderr[-4000:])
    assert proc.returncode != 0, stdout[-2000:]
    # faulthandler's stack dump, then exit (normally from inside the strategy's wait for
    # the cluster; on a loaded machine the import of TensorFlow can still be running)
    assert "Timeout (0:00:20)!" in stderr, stderr[-4000:]
    assert not os.path.exists(tmp_path / "model.keras")
