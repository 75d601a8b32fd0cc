"""The dense starting point of the demo: `examples.budget_search.save_weights` /
`load_weights`, and the shipped LeNet-300-100 weights the quickstart starts from."""

import hashlib
import os

import numpy as np
import pytest

from examples import budget_search
from examples.mnist_data import load_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "examples", "weights")
SHIPPED = os.path.join(WEIGHTS, "lenet_300_100_seed2.npz")  # the demo's (quickstart default)


def _fresh():
    import keras

    keras.utils.set_random_seed(1)
    return budget_search.build("lenet_300_100")


def test_round_trip(tmp_path):
    model = _fresh()
    path = str(tmp_path / "w.npz")
    budget_search.save_weights(model, path)
    other = _fresh()
    for v in other.weights:
        v.assign(np.zeros(v.shape, "float32"))
    budget_search.load_weights(other, path)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_files_are_clear_errors_and_change_nothing(tmp_path):
    model = _fresh()
    before = model.get_weights()
    with pytest.raises(budget_search.WeightsError, match="do not exist"):
        budget_search.load_weights(model, str(tmp_path / "missing.npz"))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a readable .npz"):
        budget_search.load_weights(model, str(junk))
    weights = {f"{layer.name}.{v.name}": v.numpy() for layer in model.layers for v in layer.weights}
    fewer = dict(weights)
    del fewer["ip3.bias"]
    np.savez(tmp_path / "fewer.npz", **fewer)
    with pytest.raises(ValueError, match="hold .* but lenet_300_100 has"):
        budget_search.load_weights(model, str(tmp_path / "fewer.npz"))
    wrong = dict(weights)
    wrong["ip3.kernel"] = np.zeros((100, 11), "float32")
    np.savez(tmp_path / "wrong.npz", **wrong)
    with pytest.raises(ValueError, match=r"ip3.kernel has shape \(100, 11\)"):
        budget_search.load_weights(model, str(tmp_path / "wrong.npz"))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # every failure left the model as it was


@pytest.mark.parametrize("seed, errors", [(2, 87), (0, 97)])
def test_shipped_weights_are_the_recorded_dense_models(seed, errors):
    """The files the demo starts from (seed 2, the default; seed 0 before session 15): their
    bytes as recorded in README.md and their test errors (0.87% and 0.97% in LiteRT for the
    runs that trained them) in Keras on the 10,000 test images."""
    path = os.path.join(WEIGHTS, f"lenet_300_100_seed{seed}.npz")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert digest in readme
    model = _fresh()
    budget_search.load_weights(model, path)
    _, (x_test, y_test) = load_mnist()
    predicted = model.predict(x_test.reshape(-1, 784), batch_size=2000, verbose=0).argmax(1)
    assert (predicted != y_test).sum() == errors


@pytest.mark.parametrize(
    "module, flag",
    [("examples.quickstart", "--weights"), ("examples.budget_search", "--dense_weights")],
)
def test_a_bad_weights_file_is_a_usage_error_not_a_traceback(tmp_path, module, flag):
    import subprocess
    import sys

    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    proc = subprocess.run(
        [sys.executable, "-m", module, f"{flag}={junk}", f"--out={tmp_path / 'out'}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=300,
    )
    assert proc.returncode == 1
    assert f"{flag}: dense weights" in proc.stderr and "not a readable .npz" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "results.json").exists()
