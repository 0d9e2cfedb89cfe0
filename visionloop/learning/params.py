"""Parameter constraints declared as data, checked at ``fit`` with precise messages.

Why not sklearn's own ``_parameter_constraints``: its machinery lives in private modules; this is
the same idea in a few lines that no sklearn upgrade can break.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    """A real (or integer) number in [low, high]; ``open_low`` excludes ``low``."""

    low: float | None = None
    high: float | None = None
    integer: bool = False
    open_low: bool = False

    def check(self, name: str, value: Any) -> None:
        kind = "an integer" if self.integer else "a number"
        ok = isinstance(value, int) if self.integer else isinstance(value, int | float)
        if not ok or isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(f"{name} must be {kind}, got {value!r}")
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            bound = ">" if self.open_low else ">="
            raise ValueError(f"{name} must be {bound} {self.low}, got {value!r}")
        if self.high is not None and value > self.high:
            raise ValueError(f"{name} must be <= {self.high}, got {value!r}")


def validate(params: Mapping[str, Any], constraints: Mapping[str, Range]) -> None:
    """Raise ValueError naming the first parameter outside its declared range."""
    for name, constraint in constraints.items():
        constraint.check(name, params[name])
