"""Argument checks shared by every keras_dc module (plain Python and NumPy).

Each checker returns the value in its canonical form (``int``, ``float``, a
NumPy array) or raises ``TypeError`` for a value of the wrong kind and
``ValueError`` for one out of range. Messages name the argument, state what
was expected and repeat what was received.
"""

import numbers

import numpy as np

__all__ = ["as_int", "as_float", "as_fraction", "as_choice", "as_real_array", "as_mask", "as_bits"]


def as_int(value, name, minimum):
    """An integer ≥ ``minimum`` (``bool`` is refused).

    Args:
        value: The argument received.
        name: Its name, for the message.
        minimum: Smallest value allowed.

    Returns:
        ``int(value)``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, received {value!r} ({type(value).__name__}).")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, received {value}.")
    return value


def as_float(value, name, minimum, hint=""):
    """A finite real number ≥ ``minimum`` (``bool`` is refused).

    Args:
        value: The argument received.
        name: Its name, for the message.
        minimum: Smallest value allowed.
        hint: Appended to the range error, e.g. typical values. Defaults to `""`.

    Returns:
        ``float(value)``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, received {value!r} ({type(value).__name__}).")
    value = float(value)
    if not value >= minimum or value == float("inf"):
        raise ValueError(f"{name} must be a finite number >= {minimum}, received {value!r}.{hint}")
    return value


def as_fraction(value, name):
    """A sparsity: a real number in [0, 1), the fraction of weights set to zero.

    Args:
        value: The argument received.
        name: Its name, for the message.

    Returns:
        ``float(value)``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a number in [0, 1), received {value!r} ({type(value).__name__})."
        )
    value = float(value)
    if not 0.0 <= value < 1.0:  # NaN fails too
        raise ValueError(
            f"{name} must be in [0, 1) (the fraction of weights set to zero), received "
            f"{value!r}. For example use 0.9 to remove 90% of the weights."
        )
    return value


def as_choice(value, name, choices):
    """One of ``choices`` (compared with ``==``).

    Args:
        value: The argument received.
        name: Its name, for the message.
        choices: Tuple of the allowed values.

    Returns:
        ``value``.
    """
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, received {value!r}.")
    return value


def as_real_array(value, name, finite=False):
    """A NumPy array of real numbers (int or float, not bool).

    Args:
        value: Anything `np.asarray` accepts.
        name: Its name, for the message.
        finite: Also refuse NaN and infinity. Defaults to `False`.

    Returns:
        ``np.asarray(value)``.
    """
    array = np.asarray(value)
    if array.dtype == bool or array.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must hold real numbers (int or float), received dtype {array.dtype}."
        )
    if finite and array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(
            f"{name} must be finite, but it contains NaN or infinity; training may have diverged."
        )
    return array


def as_mask(value, shape, name="previous_mask"):
    """A pruning mask of the weights' shape: bool, or 0/1 numbers (``None`` passes).

    Args:
        value: The mask received, or ``None``.
        shape: The weights' shape it must have.
        name: Its name, for the message. Defaults to `"previous_mask"`.

    Returns:
        A bool array (True keeps the weight), or ``None``.
    """
    if value is None:
        return None
    mask = np.asarray(value)
    if mask.shape != shape:
        raise ValueError(
            f"{name} must have the weights' shape {shape}, received shape {mask.shape}."
        )
    if mask.dtype == bool:
        return mask
    if mask.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be bool or 0/1 numbers, received dtype {mask.dtype}.")
    if not np.all((mask == 0) | (mask == 1)):
        raise ValueError(f"{name} must hold only 0/1 (or False/True) values.")
    return mask == 1


def as_bits(value, name="bits", meaning="a layer keeps at most 2**bits distinct non-zero values"):
    """Bits per cluster index, an integer from 1 to 8.

    Args:
        value: The argument received.
        name: Its name, for the message. Defaults to `"bits"`.
        meaning: What the bits bound, for the message. Defaults to
            `"a layer keeps at most 2**bits distinct non-zero values"`.

    Returns:
        ``int(value)``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer from 1 to 8 ({meaning}), received {value!r}.")
    if not 1 <= int(value) <= 8:
        raise ValueError(f"{name} must be from 1 to 8 ({meaning}), received {value!r}.")
    return int(value)
