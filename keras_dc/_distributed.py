"""Keeping the callbacks' NumPy-side decisions identical on every worker.

Masks and clusters are computed in NumPy from the weights, on every worker. Under
MultiWorkerMirroredStrategy the weights are identical everywhere, but a computation
that is not a pure function of them (k-means with a per-worker seed, floating point
that differs between machines) would silently give each worker other masks or
clusters, and the workers would then train different models. So, with more than
one worker, the chief's result is the one every worker uses.
"""

import numpy as np
import tensorflow as tf

__all__ = ["chief_values"]


def _from_first_replica(tensors):
    context = tf.distribute.get_replica_context()
    first = tf.equal(context.replica_id_in_sync_group, 0)
    # x + 0 + ... + 0 == x: a sum over all replicas that only the first contributes to.
    return context.all_reduce(
        tf.distribute.ReduceOp.SUM, [tf.where(first, t, tf.zeros_like(t)) for t in tensors]
    )


def chief_values(model, arrays):
    """The chief's versions of ``arrays``, which every worker computed for itself.

    Args:
        model: The model being trained (its strategy decides).
        arrays: A list of NumPy arrays whose values float64 holds exactly (float32 or
            float64 values, integers up to 2**53).

    Returns:
        ``arrays`` unchanged unless the model trains under a
        `tf.distribute.MultiWorkerMirroredStrategy` with several replicas; then the
        arrays of the first replica of the chief (a negative zero becomes ``+0``).
        Every worker must call this at the same point, as with any collective.
    """
    strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    if (
        not arrays
        or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        or strategy.num_replicas_in_sync < 2
    ):
        return arrays
    # One dtype: the all-reduce packs the tensors together.
    tensors = [tf.constant(a, dtype=tf.float64) for a in arrays]
    # A fresh tf.function per call: its collectives belong to this strategy's cluster.
    results = strategy.run(tf.function(_from_first_replica, autograph=False), args=(tensors,))
    return [
        np.asarray(strategy.experimental_local_results(r)[0]).astype(a.dtype, copy=False)
        for r, a in zip(results, arrays)
    ]
