"""Training data as the retraining loops of `compress_to_budget` and `variational_sparsify`
read it: one shuffled, batched, endless `tf.data` pipeline, and the steps of one epoch."""

import contextlib
import math

__all__ = ["array_batches", "dataset_steps", "samples_per_epoch"]


def array_batches(x, y, batch_size, seed):
    """``(dataset, steps per epoch)`` of arrays `x`, `y`: shuffled again every epoch (seeded),
    in batches of `batch_size`, repeated without end."""
    import tensorflow as tf

    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .repeat()
        .prefetch(2)
    )
    return dataset, math.ceil(len(x) / batch_size)


def dataset_steps(train, steps_per_epoch, message):
    """``(dataset, steps per epoch)`` of a `tf.data.Dataset` of batches: a finite one
    repeats (its length is one epoch unless `steps_per_epoch` says otherwise); one of
    unknown or infinite length needs `steps_per_epoch` (else ValueError(`message`))."""
    from keras_dc._validate import as_int

    cardinality = -1
    with contextlib.suppress(Exception):
        cardinality = int(train.cardinality())
    if steps_per_epoch is not None:
        steps = as_int(steps_per_epoch, "steps_per_epoch", 1)
    elif cardinality > 0:
        steps = cardinality
    else:
        raise ValueError(message)
    return (train.repeat() if cardinality > 0 else train), steps


def samples_per_epoch(dataset, steps):
    """Training samples in one epoch of `steps` batches, counted by the first batch."""
    first = next(iter(dataset.take(1)))[0]
    return steps * int(first.shape[0])
