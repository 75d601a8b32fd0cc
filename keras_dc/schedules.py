"""Pruning schedules: when to prune, and how far toward the final targets.

A schedule answers one question per optimizer step: is this step a pruning
event, and if so what fraction f in (0, 1] of the final targets applies now?
The pruning callback scales every layer's target by f: a sparsity target s
prunes to s * f, a standard-deviation rule with quality q uses q * f. The last
event of every schedule has f = 1, and f never decreases from one event to the
next.

Schedules count in optimizer steps (``unit="step"``) or in epochs
(``unit="epoch"``); an epoch-valued position e becomes step
e * steps_per_epoch, so the callback must pass ``steps_per_epoch``.

* `OneShot`: prune once, all the way.
* `Iterative`: the paper's prune -> retrain cycles (Han et al., NIPS 2015).
* `Gradual`: the polynomial ramp of Zhu & Gupta (2017), "To prune, or not to
  prune", arXiv 1710.01878.

Schedules are plain Python (no TensorFlow): `get_config` gives a flat dict,
`from_config(config)` is ``cls(**config)``, and `serialize` / `deserialize`
add and read the class name.
"""

import numbers

from keras_dc._validate import as_choice, as_float, as_int

__all__ = ["PruningSchedule", "OneShot", "Iterative", "Gradual", "serialize", "deserialize"]

UNITS = ("step", "epoch")


class PruningSchedule:
    """Base class of the pruning schedules.

    Subclasses define `fraction`, `events`, `last_event_step` and
    `get_config`.
    """

    unit = "step"

    def fraction(self, step, steps_per_epoch=None):
        """Fraction of the final targets to prune to at `step`.

        Args:
            step: The optimizer step (iteration count from 0), an int >= 0.
            steps_per_epoch: Steps per epoch, an int >= 1; required when the
                schedule counts in epochs. Defaults to `None`.

        Returns:
            A float in (0, 1] if `step` is a pruning event, else `None`.
        """
        raise NotImplementedError

    def events(self, total_steps, steps_per_epoch=None):
        """All pruning events at steps 0 <= step < total_steps.

        Args:
            total_steps: Number of optimizer steps of the training run, an
                int >= 0.
            steps_per_epoch: As in `fraction`. Defaults to `None`.

        Returns:
            A list of ``(step, fraction)`` pairs, steps increasing.
        """
        total_steps = as_int(total_steps, "total_steps", 0)
        events = []
        for step, fraction in self._all_events(_as_steps_per_epoch(steps_per_epoch, self)):
            if step >= total_steps:
                break
            events.append((step, fraction))
        return events

    def last_event_step(self, steps_per_epoch=None):
        """The step of the last pruning event (where the fraction reaches 1).

        Args:
            steps_per_epoch: As in `fraction`. Defaults to `None`.

        Returns:
            An int; training must run past this step for the targets to be met.
        """
        raise NotImplementedError

    def get_config(self):
        """The constructor arguments, a flat dict of plain values."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        """Rebuilds a schedule from `get_config`'s dict."""
        return cls(**config)

    def _all_events(self, steps_per_epoch):
        raise NotImplementedError

    def _step_of(self, value, steps_per_epoch):
        return value * steps_per_epoch if self.unit == "epoch" else value

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class OneShot(PruningSchedule):
    """Prunes once, straight to the final targets.

    f(t) = 1 at t = at (converted to steps), no event elsewhere.

    Args:
        at: When to prune, an int >= 0 in `unit`s. Defaults to `0`.
        unit: ``"step"`` or ``"epoch"``; in epochs the event is at step
            ``at * steps_per_epoch``. Defaults to `"step"`.

    Example:
        >>> schedule = OneShot(at=2, unit="epoch")
        >>> schedule.events(total_steps=1000, steps_per_epoch=100)
        [(200, 1.0)]
    """

    def __init__(self, at=0, unit="step"):
        self.unit = as_choice(unit, "unit", UNITS)
        self.at = as_int(at, "at", 0)

    def fraction(self, step, steps_per_epoch=None):
        step = as_int(step, "step", 0)
        spe = _as_steps_per_epoch(steps_per_epoch, self)
        return 1.0 if step == self._step_of(self.at, spe) else None

    def last_event_step(self, steps_per_epoch=None):
        return self._step_of(self.at, _as_steps_per_epoch(steps_per_epoch, self))

    def get_config(self):
        return {"at": self.at, "unit": self.unit}

    def _all_events(self, steps_per_epoch):
        yield self._step_of(self.at, steps_per_epoch), 1.0


class Iterative(PruningSchedule):
    """The paper's iterative prune -> retrain cycles.

    Event i (i = 0 .. len(fractions) - 1) is at t_i = begin + i * every and
    prunes to f(t_i) = fractions[i]; the steps in between retrain the
    survivors. Han et al. (2015) found iterating beat pruning once: AlexNet
    5x -> 9x at no accuracy loss.

    Args:
        fractions: Fractions of the final targets, a sequence of numbers in
            (0, 1], strictly increasing and ending at 1.0. Defaults to
            `(0.5, 0.75, 0.9, 1.0)`.
        every: Retraining length between events, an int >= 1 in `unit`s.
            Defaults to `1`.
        begin: Position of the first event, an int >= 0 in `unit`s. Defaults
            to `0`.
        unit: ``"step"`` or ``"epoch"``. Defaults to `"epoch"`.

    Example:
        >>> schedule = Iterative(fractions=(0.5, 1.0), every=2, begin=1)
        >>> schedule.events(total_steps=1000, steps_per_epoch=100)
        [(100, 0.5), (300, 1.0)]
    """

    def __init__(self, fractions=(0.5, 0.75, 0.9, 1.0), every=1, begin=0, unit="epoch"):
        self.unit = as_choice(unit, "unit", UNITS)
        self.fractions = _as_fractions(fractions)
        self.every = as_int(every, "every", 1)
        self.begin = as_int(begin, "begin", 0)

    def fraction(self, step, steps_per_epoch=None):
        step = as_int(step, "step", 0)
        spe = _as_steps_per_epoch(steps_per_epoch, self)
        offset = step - self._step_of(self.begin, spe)
        every = self._step_of(self.every, spe)
        if offset < 0 or offset % every:
            return None
        index = offset // every
        return self.fractions[index] if index < len(self.fractions) else None

    def last_event_step(self, steps_per_epoch=None):
        spe = _as_steps_per_epoch(steps_per_epoch, self)
        return self._step_of(self.begin + (len(self.fractions) - 1) * self.every, spe)

    def get_config(self):
        return {
            "fractions": list(self.fractions),
            "every": self.every,
            "begin": self.begin,
            "unit": self.unit,
        }

    def _all_events(self, steps_per_epoch):
        for i, fraction in enumerate(self.fractions):
            yield self._step_of(self.begin + i * self.every, steps_per_epoch), fraction


class Gradual(PruningSchedule):
    """Zhu & Gupta's (2017) polynomial ramp of the pruned fraction.

    At t = begin, begin + frequency, begin + 2 frequency, ... (t < end), and
    always at t = end:

        f(t) = 1 - (1 - initial_fraction) * (1 - (t - begin) / (end - begin))^power

    so f rises fast at first, while many redundant weights remain, then slows
    down; f(end) = 1. An event whose f is 0 (the first one when
    initial_fraction is 0) would prune nothing and is not an event.

    Args:
        begin: Start of the ramp, an int >= 0 in `unit`s. Defaults to `0`.
        end: End of the ramp, an int > begin in `unit`s. Required.
        frequency: Distance between events, an int >= 1 in `unit`s. Defaults
            to `100`.
        power: Exponent of the ramp, a number >= 1 (Zhu & Gupta use 3).
            Defaults to `3`.
        initial_fraction: f at `begin`, a number in [0, 1]. Defaults to `0.0`.
        unit: ``"step"`` or ``"epoch"``. Defaults to `"step"`.

    Example:
        >>> schedule = Gradual(begin=0, end=100, frequency=25)
        >>> schedule.events(total_steps=1000)
        [(25, 0.578125), (50, 0.875), (75, 0.984375), (100, 1.0)]
    """

    def __init__(
        self, begin=0, end=None, frequency=100, power=3, initial_fraction=0.0, unit="step"
    ):
        self.unit = as_choice(unit, "unit", UNITS)
        self.begin = as_int(begin, "begin", 0)
        if end is None:
            raise ValueError(
                "Gradual needs `end`, the position (in `unit`s) where pruning reaches "
                "its final targets, e.g. Gradual(begin=0, end=10, frequency=1, unit='epoch')."
            )
        self.end = as_int(end, "end", 0)
        if self.end <= self.begin:
            raise ValueError(
                f"end must be greater than begin, received begin={self.begin}, end={self.end}."
            )
        self.frequency = as_int(frequency, "frequency", 1)
        as_float(power, "power", 1)
        self.power = int(power) if isinstance(power, numbers.Integral) else float(power)
        if isinstance(initial_fraction, bool) or not isinstance(initial_fraction, numbers.Real):
            raise TypeError(
                "initial_fraction must be a number in [0, 1], "
                f"received {initial_fraction!r} ({type(initial_fraction).__name__})."
            )
        if not 0.0 <= float(initial_fraction) <= 1.0:
            raise ValueError(f"initial_fraction must be in [0, 1], received {initial_fraction!r}.")
        self.initial_fraction = float(initial_fraction)

    def fraction(self, step, steps_per_epoch=None):
        step = as_int(step, "step", 0)
        spe = _as_steps_per_epoch(steps_per_epoch, self)
        begin, end = self._step_of(self.begin, spe), self._step_of(self.end, spe)
        if step == end:
            return 1.0
        if step < begin or step > end or (step - begin) % self._step_of(self.frequency, spe):
            return None
        return self._ramp(step, begin, end)

    def last_event_step(self, steps_per_epoch=None):
        return self._step_of(self.end, _as_steps_per_epoch(steps_per_epoch, self))

    def get_config(self):
        return {
            "begin": self.begin,
            "end": self.end,
            "frequency": self.frequency,
            "power": self.power,
            "initial_fraction": self.initial_fraction,
            "unit": self.unit,
        }

    def _ramp(self, step, begin, end):
        progress = (step - begin) / (end - begin)
        f = 1.0 - (1.0 - self.initial_fraction) * (1.0 - progress) ** self.power
        return f if f > 0.0 else None

    def _all_events(self, steps_per_epoch):
        begin = self._step_of(self.begin, steps_per_epoch)
        end = self._step_of(self.end, steps_per_epoch)
        for step in range(begin, end, self._step_of(self.frequency, steps_per_epoch)):
            f = self._ramp(step, begin, end)
            if f is not None:
                yield step, f
        yield end, 1.0


_CLASSES = {cls.__name__: cls for cls in (OneShot, Iterative, Gradual)}


def serialize(schedule):
    """Returns ``{"class_name": ..., "config": schedule.get_config()}``.

    Args:
        schedule: A `OneShot`, `Iterative` or `Gradual`.

    Returns:
        A dict of plain values (JSON-serialisable).

    Raises:
        TypeError: `schedule` is not one of the schedules above.

    Example:
        >>> serialize(OneShot(at=5))
        {'class_name': 'OneShot', 'config': {'at': 5, 'unit': 'step'}}
    """
    if type(schedule) not in _CLASSES.values():
        raise TypeError(
            f"schedule must be one of {sorted(_CLASSES)}, received {type(schedule).__name__}."
        )
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config):
    """Rebuilds a schedule from `serialize`'s dict.

    Args:
        config: A dict ``{"class_name": name, "config": dict}`` with name one
            of ``"OneShot"``, ``"Iterative"``, ``"Gradual"``.

    Returns:
        The schedule.

    Raises:
        TypeError: `config` is not such a dict.
        ValueError: the class name is unknown.

    Example:
        >>> deserialize({"class_name": "OneShot", "config": {"at": 5, "unit": "step"}})
        OneShot(at=5, unit='step')
    """
    if not isinstance(config, dict) or set(config) != {"class_name", "config"}:
        raise TypeError(
            'config must be a dict {"class_name": ..., "config": {...}} as serialize() '
            f"returns, received {config!r}."
        )
    name = config["class_name"]
    if name not in _CLASSES:
        raise ValueError(
            f"unknown schedule class_name {name!r}; expected one of {sorted(_CLASSES)}."
        )
    if not isinstance(config["config"], dict):
        raise TypeError(
            f"config['config'] must be a dict, received {type(config['config']).__name__}."
        )
    return _CLASSES[name].from_config(config["config"])


# --- validation ----------------------------------------------------------------


def _as_steps_per_epoch(steps_per_epoch, schedule):
    if steps_per_epoch is None:
        if schedule.unit == "epoch":
            raise ValueError(
                f"{type(schedule).__name__}(unit='epoch') needs steps_per_epoch to turn "
                "epochs into optimizer steps, received None. Pass steps_per_epoch "
                "(e.g. fit(steps_per_epoch=...) or a dataset of known length) or count "
                "in steps with unit='step'."
            )
        return None
    return as_int(steps_per_epoch, "steps_per_epoch", 1)


def _as_fractions(fractions):
    if isinstance(fractions, (str, bytes)) or not hasattr(fractions, "__iter__"):
        raise TypeError(f"fractions must be a sequence of numbers, received {fractions!r}.")
    values = list(fractions)
    if not values:
        raise ValueError("fractions must not be empty; the last one must be 1.0.")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"fractions must hold numbers, received {value!r} in {values!r}.")
    values = [float(v) for v in values]
    if not all(0.0 < v <= 1.0 for v in values):
        raise ValueError(f"fractions must lie in (0, 1], received {values!r}.")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"fractions must be strictly increasing, received {values!r}.")
    if values[-1] != 1.0:
        raise ValueError(
            f"fractions must end at 1.0 (the final targets), received {values!r}; "
            "append 1.0 or scale the targets instead."
        )
    return tuple(values)
