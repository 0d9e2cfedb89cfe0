"""When an alarm fires and when it resolves: at once when its figure leaves its bound, and only
after the figure has stayed inside for a whole window of new evidence.

Why: a figure near its bound crosses it back and forth from one check to the next; an alarm that
followed it would flap. Evidence is counted in events (predictions, verdicts, searches), not time:
a quiet model neither resolves nor fires on no evidence.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum


class AlarmState(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclasses.dataclass(frozen=True)
class Track:
    """An alarm's state and ``last_outside``: the time of the newest event at the last check whose
    figure was outside its bound."""

    state: AlarmState
    last_outside: dt.datetime


def step(track: Track | None, *, outside: bool, newest: dt.datetime, events_since_outside: int,
         window: int) -> Track | None:
    """The alarm after one check (None while it never fired: nothing to keep). ``newest`` is the
    time of the newest event the check saw; ``events_since_outside`` how many events came after
    ``track.last_outside``."""
    if outside:
        return Track(AlarmState.FIRING, newest)
    if track is None:
        return None
    if track.state is AlarmState.FIRING and events_since_outside >= window:
        return Track(AlarmState.RESOLVED, track.last_outside)
    return track
