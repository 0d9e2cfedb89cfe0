"""Count-aware alarm tests: a doubled negative rate over 50 events fires, 3 events never do, i.i.d.
windows rarely do; and hysteresis resolves only after a whole window inside the bound."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from visionloop.learning.alarm_checks import mean_drop, proportion_shift
from visionloop.learning.hysteresis import AlarmState, Track, step

ALPHA, MIN_EVENTS = 0.01, 20  # the settings' defaults


def test_negative_rate_doubling_over_50_events_fires() -> None:
    check = proportion_shift(20, 50, 40, 200, rise=True, alpha=ALPHA, min_events=MIN_EVENTS)
    assert check is not None and check.outside
    assert check.figure == pytest.approx(0.4) and check.figure >= check.threshold and check.evidence == 50


def test_the_same_rate_stays_inside_and_the_threshold_is_the_least_firing_rate() -> None:
    check = proportion_shift(10, 50, 40, 200, rise=True, alpha=ALPHA, min_events=MIN_EVENTS)
    assert check is not None and not check.outside and check.p_value > 0.3
    just = proportion_shift(round(check.threshold * 50), 50, 40, 200, rise=True, alpha=ALPHA, min_events=MIN_EVENTS)
    below = proportion_shift(round(check.threshold * 50) - 1, 50, 40, 200, rise=True, alpha=ALPHA,
                             min_events=MIN_EVENTS)
    assert just is not None and just.outside and below is not None and not below.outside


def test_three_events_have_no_verdict_however_negative() -> None:
    assert proportion_shift(3, 3, 0, 200, rise=True, alpha=ALPHA, min_events=MIN_EVENTS) is None
    assert proportion_shift(30, 50, 1, 3, rise=True, alpha=ALPHA, min_events=MIN_EVENTS) is None


def test_a_short_history_widens_the_bound() -> None:
    short = proportion_shift(10, 50, 5, 25, rise=True, alpha=ALPHA, min_events=MIN_EVENTS)
    long = proportion_shift(10, 50, 200, 1000, rise=True, alpha=ALPHA, min_events=MIN_EVENTS)
    assert short is not None and long is not None and short.threshold > long.threshold


def test_a_falling_click_rate_fires_and_reads_as_a_rate_of_clicks() -> None:
    check = proportion_shift(10, 100, 120, 300, rise=False, alpha=ALPHA, min_events=MIN_EVENTS)
    assert check is not None and check.outside and check.figure == pytest.approx(0.1) and check.threshold > 0.1
    assert not proportion_shift(40, 100, 120, 300, rise=False, alpha=ALPHA, min_events=MIN_EVENTS).outside  # type: ignore[union-attr]


def test_proportion_false_alarm_rate_over_many_iid_windows_is_below_alpha() -> None:
    rng = np.random.default_rng(0)
    fired = [proportion_shift(int(rng.binomial(50, 0.2)), 50, int(rng.binomial(200, 0.2)), 200, rise=True,
                              alpha=ALPHA, min_events=MIN_EVENTS).outside for _ in range(800)]  # type: ignore[union-attr]
    assert np.mean(fired) <= ALPHA


def test_doubling_is_detected_in_most_windows_of_50() -> None:
    """20% -> 40% negative over one window of 50 against 200 events of history (measured: 0.65
    of windows; as the window slides the alarm gets more chances)."""
    rng = np.random.default_rng(1)
    fired = [proportion_shift(int(rng.binomial(50, 0.4)), 50, int(rng.binomial(200, 0.2)), 200, rise=True,
                              alpha=ALPHA, min_events=MIN_EVENTS).outside for _ in range(300)]  # type: ignore[union-attr]
    assert np.mean(fired) >= 0.6


def test_mean_drop_fires_on_a_fallen_mrr_and_not_on_the_same() -> None:
    rng = np.random.default_rng(2)
    past = rng.choice([1.0, 0.5, 0.0], size=300, p=[0.5, 0.2, 0.3])
    same = mean_drop(rng.choice([1.0, 0.5, 0.0], size=100, p=[0.5, 0.2, 0.3]), past, alpha=ALPHA,
                     min_events=MIN_EVENTS)
    fallen = mean_drop(rng.choice([1.0, 0.5, 0.0], size=100, p=[0.2, 0.2, 0.6]), past, alpha=ALPHA,
                       min_events=MIN_EVENTS)
    assert same is not None and not same.outside
    assert fallen is not None and fallen.outside and fallen.figure < fallen.threshold
    assert mean_drop([1.0] * 5, past, alpha=ALPHA, min_events=MIN_EVENTS) is None


def test_hysteresis_fires_at_once_and_resolves_after_a_whole_window_inside() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    at = [t0 + dt.timedelta(minutes=i) for i in range(4)]
    assert step(None, outside=False, newest=at[0], events_since_outside=0, window=50) is None
    firing = step(None, outside=True, newest=at[1], events_since_outside=0, window=50)
    assert firing == Track(AlarmState.FIRING, at[1])
    assert step(firing, outside=False, newest=at[2], events_since_outside=49, window=50) == firing  # not yet
    again = step(firing, outside=True, newest=at[2], events_since_outside=49, window=50)  # the window restarts
    assert again == Track(AlarmState.FIRING, at[2])
    resolved = step(again, outside=False, newest=at[3], events_since_outside=50, window=50)
    assert resolved == Track(AlarmState.RESOLVED, at[2])
    assert step(resolved, outside=False, newest=at[3], events_since_outside=500, window=50) == resolved
