"""The clustering log counts the values a variable really holds, not its centroids."""

import keras
import numpy as np

import keras_dc


def test_clusters_log_counts_the_distinct_values_used():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(50, name="dense")])
    model.compile("sgd", "mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 20)).astype("float32")
    y = rng.normal(size=(32, 50)).astype("float32")
    # 8 bits = 256 centroids over 1,000 Gaussian weights: linear init leaves some of them
    # without members, so the centroid count overstates what the codebook will hold.
    clustering = keras_dc.WeightClustering(bits=8, min_size=1, verbose=0)
    history = model.fit(x, y, epochs=1, verbose=0, callbacks=[clustering])
    kernel = model.get_layer("dense").kernel
    values = kernel.numpy()
    used = np.unique(values[values != 0]).size
    (centroids,) = clustering.centroids().values()
    assert used < np.count_nonzero(centroids)  # the case this test is about
    assert history.history[f"clusters/{keras_dc.variable_path(kernel)}"] == [used]
