"""Tests for keras_dc.schedules: when to prune and how far."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_dc import schedules
from keras_dc.schedules import Gradual, Iterative, OneShot, PruningSchedule, deserialize, serialize

# --- OneShot ----------------------------------------------------------------------


def test_one_shot_in_steps():
    schedule = OneShot(at=5)
    assert schedule.fraction(5) == 1.0
    assert schedule.fraction(4) is None and schedule.fraction(6) is None
    assert schedule.events(5) == []
    assert schedule.events(6) == [(5, 1.0)]
    assert schedule.last_event_step() == 5


def test_one_shot_in_epochs():
    schedule = OneShot(at=2, unit="epoch")
    assert schedule.fraction(200, steps_per_epoch=100) == 1.0
    assert schedule.fraction(2, steps_per_epoch=100) is None
    assert schedule.last_event_step(100) == 200


def test_one_shot_default_prunes_at_step_zero():
    assert OneShot().events(1) == [(0, 1.0)]


# --- Iterative --------------------------------------------------------------------


def test_iterative_defaults_one_cycle_per_epoch():
    schedule = Iterative()
    assert schedule.events(10_000, steps_per_epoch=100) == [
        (0, 0.5),
        (100, 0.75),
        (200, 0.9),
        (300, 1.0),
    ]
    assert schedule.fraction(100, 100) == 0.75
    assert schedule.fraction(150, 100) is None
    assert schedule.fraction(400, 100) is None
    assert schedule.last_event_step(100) == 300


def test_iterative_in_steps_with_begin_and_every():
    schedule = Iterative(fractions=[0.6, 1.0], every=7, begin=3, unit="step")
    assert schedule.events(100) == [(3, 0.6), (10, 1.0)]
    assert schedule.events(10) == [(3, 0.6)]
    assert [schedule.fraction(s) for s in (0, 3, 9, 10, 17)] == [None, 0.6, None, 1.0, None]


@pytest.mark.parametrize(
    "fractions, error, match",
    [
        ((), ValueError, "empty"),
        ((0.5, 0.9), ValueError, "end at 1.0"),
        ((0.5, 0.5, 1.0), ValueError, "strictly increasing"),
        ((0.9, 0.5, 1.0), ValueError, "strictly increasing"),
        ((0.0, 1.0), ValueError, r"\(0, 1\]"),
        ((0.5, 1.5), ValueError, r"\(0, 1\]"),
        ("0.5", TypeError, "sequence"),
        ((0.5, "1"), TypeError, "numbers"),
    ],
)
def test_iterative_rejects_bad_fractions(fractions, error, match):
    with pytest.raises(error, match=match):
        Iterative(fractions=fractions)


# --- Gradual ----------------------------------------------------------------------


def test_gradual_zhu_gupta_values_worked_by_hand():
    # f(t) = 1 - (1 - t / 100)^3 at t = 25, 50, 75, 100; f(0) = 0 is no event.
    schedule = Gradual(begin=0, end=100, frequency=25)
    assert schedule.events(1000) == [(25, 0.578125), (50, 0.875), (75, 0.984375), (100, 1.0)]
    assert schedule.fraction(0) is None
    assert schedule.fraction(30) is None
    assert schedule.fraction(125) is None


def test_gradual_initial_fraction():
    # f(t) = 1 - 0.5 (1 - t / 100)^3: 0.5 at t = 0, 1 - 0.5 * 0.421875 at t = 25.
    schedule = Gradual(end=100, frequency=25, initial_fraction=0.5)
    assert schedule.fraction(0) == 0.5
    assert schedule.fraction(25) == 0.7890625


def test_gradual_always_has_an_event_at_end():
    # Events at 0 (f = 0, skipped), 4, 8 and the unaligned end 10:
    # f(4) = 1 - 0.6^3 = 0.784, f(8) = 1 - 0.2^3 = 0.992.
    events = Gradual(begin=0, end=10, frequency=4, unit="step").events(11)
    assert [s for s, _ in events] == [4, 8, 10]
    assert [f for _, f in events] == pytest.approx([0.784, 0.992, 1.0], abs=1e-12)


def test_gradual_power_one_is_linear():
    events = Gradual(begin=10, end=20, frequency=5, power=1).events(100)
    assert events == [(15, 0.5), (20, 1.0)]


def test_gradual_in_epochs():
    # begin 1, end 3, every epoch, 10 steps per epoch: steps 10 (f = 0, skipped),
    # 20 (1 - 0.5^3 = 0.875) and 30 (1.0).
    schedule = Gradual(begin=1, end=3, frequency=1, unit="epoch")
    assert schedule.events(1000, steps_per_epoch=10) == [(20, 0.875), (30, 1.0)]
    assert schedule.fraction(25, steps_per_epoch=10) is None
    assert schedule.last_event_step(10) == 30


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(begin=0), ValueError, "needs `end`"),
        (dict(begin=5, end=5), ValueError, "greater than begin"),
        (dict(begin=5, end=3), ValueError, "greater than begin"),
        (dict(end=10, frequency=0), ValueError, "frequency must be >= 1"),
        (dict(end=10, frequency=1.5), TypeError, "frequency must be an int"),
        (dict(end=10, power=0.5), ValueError, "power"),
        (dict(end=10, power="3"), TypeError, "power"),
        (dict(end=10, initial_fraction=1.5), ValueError, "initial_fraction"),
        (dict(end=10, unit="batch"), ValueError, "unit must be"),
        (dict(begin=-1, end=10), ValueError, "begin must be >= 0"),
        (dict(begin=True, end=10), TypeError, "begin must be an int"),
    ],
)
def test_gradual_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Gradual(**kwargs)


# --- shared behaviour ---------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule", [OneShot(unit="epoch"), Iterative(), Gradual(end=2, unit="epoch")]
)
def test_epoch_unit_without_steps_per_epoch_explains(schedule):
    calls = (lambda: schedule.fraction(0), lambda: schedule.events(10), schedule.last_event_step)
    for call in calls:
        with pytest.raises(ValueError, match="steps_per_epoch"):
            call()


def test_step_and_steps_per_epoch_are_validated():
    with pytest.raises(ValueError, match="step must be >= 0"):
        OneShot().fraction(-1)
    with pytest.raises(TypeError, match="step must be an int"):
        OneShot().fraction(1.0)
    with pytest.raises(ValueError, match="steps_per_epoch must be >= 1"):
        Iterative().fraction(0, steps_per_epoch=0)
    with pytest.raises(ValueError, match="total_steps must be >= 0"):
        OneShot().events(-1)


def test_serialize_round_trip_is_json():
    schedule = Gradual(begin=2, end=9, frequency=3, power=2, initial_fraction=0.25, unit="epoch")
    payload = json.loads(json.dumps(serialize(schedule)))
    assert payload == {
        "class_name": "Gradual",
        "config": {
            "begin": 2,
            "end": 9,
            "frequency": 3,
            "power": 2,
            "initial_fraction": 0.25,
            "unit": "epoch",
        },
    }
    again = deserialize(payload)
    assert type(again) is Gradual and again.get_config() == schedule.get_config()


def test_serialize_and_deserialize_reject_unknowns():
    with pytest.raises(TypeError, match="schedule must be one of"):
        serialize(object())
    with pytest.raises(ValueError, match="unknown schedule"):
        deserialize({"class_name": "PolynomialDecay", "config": {}})
    with pytest.raises(TypeError, match="class_name"):
        deserialize({"name": "OneShot"})


def test_repr_shows_the_config():
    assert repr(OneShot(at=3)) == "OneShot(at=3, unit='step')"


# --- properties ---------------------------------------------------------------------

units = st.sampled_from(["step", "epoch"])
small = st.integers(min_value=0, max_value=40)


@st.composite
def any_schedule(draw):
    unit = draw(units)
    kind = draw(st.sampled_from(["oneshot", "iterative", "gradual"]))
    if kind == "oneshot":
        return OneShot(at=draw(small), unit=unit)
    if kind == "iterative":
        raw = draw(st.lists(st.floats(0.01, 0.99), max_size=5, unique=True))
        return Iterative(
            fractions=sorted(raw) + [1.0],
            every=draw(st.integers(1, 10)),
            begin=draw(small),
            unit=unit,
        )
    begin = draw(small)
    return Gradual(
        begin=begin,
        end=begin + draw(st.integers(1, 40)),
        frequency=draw(st.integers(1, 15)),
        power=draw(st.one_of(st.integers(1, 5), st.floats(1.0, 6.0))),
        initial_fraction=draw(st.floats(0.0, 1.0)),
        unit=unit,
    )


@settings(max_examples=150, deadline=None)
@given(any_schedule(), st.integers(min_value=1, max_value=6))
def test_events_are_monotone_and_consistent_with_fraction(schedule, steps_per_epoch):
    spe = steps_per_epoch if schedule.unit == "epoch" else None
    last = schedule.last_event_step(spe)
    horizon = last + 2 * steps_per_epoch + 3
    events = schedule.events(horizon, spe)

    assert events, "every schedule has at least its final event"
    steps = [s for s, _ in events]
    values = [f for _, f in events]
    assert steps == sorted(set(steps))
    assert all(0.0 < f <= 1.0 for f in values)
    assert all(a <= b for a, b in zip(values, values[1:]))
    assert events[-1] == (last, 1.0)
    # fraction() agrees with events() at every step, events or not.
    by_step = dict(events)
    for step in range(horizon):
        assert schedule.fraction(step, spe) == by_step.get(step)
    # events() honours its horizon.
    assert schedule.events(last, spe) == events[:-1]


@settings(max_examples=100, deadline=None)
@given(any_schedule())
def test_get_config_round_trips(schedule):
    config = schedule.get_config()
    assert all(isinstance(v, (int, float, str, list)) for v in config.values())
    assert type(schedule).from_config(config).get_config() == config
    assert deserialize(serialize(schedule)).get_config() == config
    assert json.loads(json.dumps(config)) == config


def test_schedules_share_the_base_class():
    assert all(issubclass(c, PruningSchedule) for c in (OneShot, Iterative, Gradual))
    assert set(schedules.__all__) >= {"OneShot", "Iterative", "Gradual", "serialize", "deserialize"}
