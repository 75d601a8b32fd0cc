"""Block-structured pruning: 1x4 blocks (LiteRT's sparse FULLY_CONNECTED path)."""

import keras
import numpy as np
import pytest

import keras_dc
from keras_dc import masks

BLOCK = masks.LITERT_BLOCK_ROWS


def _blocks(mask_or_weights, rows=BLOCK):
    """``[column, block]`` lists of entries: each block is 4 rows of one column (tail shorter)."""
    a = np.asarray(mask_or_weights)
    return [a[r : r + rows, j] for j in range(a.shape[1]) for r in range(0, a.shape[0], rows)]


def _assert_whole_blocks(mask, rows=BLOCK):
    for block in _blocks(mask, rows):
        assert block.all() or not block.any(), block


@pytest.mark.parametrize("shape", [(32, 8), (30, 7), (3, 5), (64, 1)])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 0.99])
def test_block_mask_whole_blocks_and_target(shape, sparsity):
    w = np.random.default_rng(1).normal(size=shape)
    mask = masks.mask_for_block_sparsity(w, sparsity)
    assert mask.dtype == bool and mask.shape == shape
    _assert_whole_blocks(mask)
    pruned = w.size - np.count_nonzero(mask)
    # Within half a block of round(sparsity * n).
    assert abs(pruned - round(sparsity * w.size)) <= BLOCK / 2


def test_block_mask_hand_worked():
    # Column 0: blocks mean|w| 0.25 (rows 0-3) and 2.0 (rows 4-5, the tail);
    # column 1: 1.0 and 0.05. n = 12, sparsity 0.5 -> m = 6: pruning the two
    # weakest blocks (col 1 tail 0.05: 2 entries, col 0 head 0.25: 4) gives exactly 6.
    w = np.array(
        [
            [0.1, 1.0],
            [-0.4, -1.0],
            [0.2, 1.0],
            [0.3, 1.0],
            [2.0, 0.05],
            [-2.0, -0.05],
        ]
    )
    mask = masks.mask_for_block_sparsity(w, 0.5)
    expected = np.array([[0, 1], [0, 1], [0, 1], [0, 1], [1, 0], [1, 0]], dtype=bool)
    np.testing.assert_array_equal(mask, expected)


def test_block_mask_scores_blocks_not_single_weights():
    # One large weight keeps its block although its other entries are small;
    # the uniform block of medium weights is pruned.
    w = np.array([[5.0, 0.5], [0.0, 0.5], [0.0, 0.5], [0.0, 0.5]])
    mask = masks.mask_for_block_sparsity(w, 0.5)
    np.testing.assert_array_equal(mask[:, 0], [True] * 4)
    np.testing.assert_array_equal(mask[:, 1], [False] * 4)


def test_block_mask_ties_lower_block_index_first():
    w = np.ones((8, 2))
    mask = masks.mask_for_block_sparsity(w, 0.25)
    # Four blocks of equal score; block order is column-major: column 0 rows 0-3 first.
    expected = np.ones((8, 2), dtype=bool)
    expected[0:4, 0] = False
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(mask, masks.mask_for_block_sparsity(w, 0.25))


def test_block_mask_monotone_with_previous_mask():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(40, 6))
    previous = None
    for sparsity in (0.2, 0.5, 0.7, 0.9):
        mask = masks.mask_for_block_sparsity(w, sparsity, previous)
        if previous is not None:
            assert not np.any(mask & ~previous)
        _assert_whole_blocks(mask)
        previous = mask
        # The kept weights move, as training would; pruned ones stay pruned.
        w = w * mask + rng.normal(scale=0.5, size=w.shape) * mask
    # A previous mask pruning more than the target is returned unchanged.
    again = masks.mask_for_block_sparsity(w, 0.5, previous)
    np.testing.assert_array_equal(again, previous)


def test_block_mask_previous_partial_block_stays_pruned():
    w = np.ones((4, 2))
    previous = np.ones((4, 2), dtype=bool)
    previous[1, 1] = False
    mask = masks.mask_for_block_sparsity(w, 0.125, previous)
    np.testing.assert_array_equal(mask, previous)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"weights": np.ones((2, 2, 2)), "sparsity": 0.5}, ValueError),
        ({"weights": np.ones((4, 2)), "sparsity": 1.0}, ValueError),
        ({"weights": np.ones((4, 2)), "sparsity": 0.5, "block_rows": 0}, ValueError),
        ({"weights": np.ones((4, 2)), "sparsity": 0.5, "block_rows": 2.0}, TypeError),
    ],
)
def test_block_mask_rejects_bad_input(kwargs, error):
    with pytest.raises(error):
        masks.mask_for_block_sparsity(**kwargs)


@pytest.mark.parametrize("block", ["1x4", True, 4])
def test_magnitude_pruning_rejects_bad_block(block):
    with pytest.raises(ValueError, match="block must be None"):
        keras_dc.MagnitudePruning(0.9, block=block)


def _data(n=256, features=24, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = (x[:, :classes].argmax(axis=1)).astype(np.int32)
    return x, y


def test_fit_block_pruning_then_clustering_keeps_blocks(capsys):
    keras.utils.set_random_seed(0)
    x, y = _data()
    model = keras.Sequential(
        [
            keras.Input((24,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(4),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruning = keras_dc.MagnitudePruning(0.9, block="litert", min_size=64)
    model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[pruning])
    table = capsys.readouterr().out
    assert "blocks of 4 rows" in table
    kernels = [layer.kernel for layer in model.layers]
    for kernel in kernels:
        w = kernel.numpy()
        _assert_whole_blocks(w != 0)
        assert abs(np.count_nonzero(w == 0) - round(0.9 * w.size)) <= BLOCK / 2
    clustering = keras_dc.WeightClustering(bits=4, verbose=0, min_size=64)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[clustering])
    for kernel in kernels:
        w = kernel.numpy()
        _assert_whole_blocks(w != 0)
        assert 0 < np.count_nonzero(w) and len(np.unique(w[w != 0])) <= 16


def test_block_pruning_leaves_embeddings_and_convolutions_unstructured(capsys):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,), dtype="int32"),
            keras.layers.Embedding(64, 16),
            keras.layers.Conv1D(16, 3, padding="same"),
            keras.layers.Flatten(),
            keras.layers.Dense(4),
        ]
    )
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).integers(0, 64, size=(64, 8)).astype(np.int32)
    y = np.zeros((64, 4), np.float32)
    pruning = keras_dc.MagnitudePruning(
        0.75, schedule=keras_dc.schedules.OneShot(at=0), block="litert", min_size=64
    )
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[pruning])
    out = capsys.readouterr().out
    assert out.count("unstructured (no LiteRT sparse kernel)") == 2
    assert out.count("blocks of 4 rows") == 1
    embeddings = model.layers[0].embeddings.numpy()
    # Unstructured: some 4-row block of the embedding table is partly pruned.
    assert any(0 < np.count_nonzero(b) < len(b) for b in _blocks(embeddings != 0))
    _assert_whole_blocks(model.layers[3].kernel.numpy() != 0)
