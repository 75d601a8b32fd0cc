"""benchmarks.skeleton_bytes: the same weights converted with each option set."""

import os

import keras
import numpy as np
import pytest
from absl import app

from benchmarks import skeleton_bytes


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A folder shaped like an examples.budget_search output: dense.keras and final weights."""
    folder = tmp_path_factory.mktemp("run")
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(32, activation="relu", name="ip1"),
            keras.layers.Dense(10, name="ip2"),
        ]
    )
    model.save(folder / "dense.keras")
    kernel = model.get_layer("ip1").kernel
    values = kernel.numpy()
    values[np.abs(values) < np.quantile(np.abs(values), 0.95)] = 0.0
    kernel.assign(values)
    os.makedirs(folder / "search")
    model.save_weights(folder / "search" / "budget.weights.h5")
    return str(folder)


def test_rows_differ_only_in_what_the_converter_writes_around_the_weights(run_folder):
    rng = np.random.default_rng(0)
    x = rng.random((50, 28, 28)).astype("float32")
    y = rng.integers(0, 10, 50)
    rows = [skeleton_bytes.measure(run_folder, v, x, y) for v in skeleton_bytes.VARIANTS]
    assert [r["variant"] for r in rows] == list(skeleton_bytes.VARIANTS)
    # Each strip shrinks the skeleton and the bundle; the weights' payload and the
    # restored network's outputs (its error on the same images) do not change.
    sizes = [r["bundle_bytes"] for r in rows]
    skeletons = [r["skeleton_bytes"] for r in rows[:3]]
    assert sizes[0] > sizes[1] > sizes[2] > sizes[3] > sizes[4]  # zdict (1.5) is smallest
    assert skeletons[0] > skeletons[1] > skeletons[2]
    assert len({r["payload_bytes"] for r in rows[:3]}) == 1
    assert len({r["test_error"] for r in rows}) == 1
    assert rows[4]["ratio"] > rows[3]["ratio"] > rows[2]["ratio"] > rows[0]["ratio"]
    # The dictionary codes only the flatbuffer's ranges: the weights' parts are the same.
    assert rows[4]["payload_bytes"] == rows[3]["payload_bytes"]
    assert rows[4]["head_bytes"] < rows[3]["head_bytes"]


def test_a_folder_that_is_not_a_finished_search_is_refused(run_folder, tmp_path):
    skeleton_bytes.check_runs([run_folder])
    with pytest.raises(app.UsageError, match="not a finished budget search"):
        skeleton_bytes.check_runs([run_folder, str(tmp_path)])


def test_masked_cost_times_both_settings_on_the_same_segments():
    # benchmarks.masked_cost: an MLP whose hidden layer lost half its units is smaller with
    # MASKED; the smoke model (no dead unit) is the same bytes either way.
    import keras
    import numpy as np

    from benchmarks import masked_cost

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32), keras.layers.Dense(10)])
    kernel = model.layers[0].kernel.numpy()
    kernel[:, ::2] = 0  # units 0, 2, ... lose every input
    kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.7)] = 0
    model.layers[0].kernel.assign(kernel)
    row = masked_cost.measure("dead", model, repeats=1)
    assert row["masked_segments"] >= 1 and row["bytes_with"] < row["bytes_without"]
    assert row["encode_s_with"] > 0 and row["ratio"] > 0
    smoke = masked_cost.measure("smoke", masked_cost._pruned_resnet(smoke=True), repeats=2)
    assert smoke["masked_segments"] == 0 and smoke["bytes_with"] == smoke["bytes_without"]
