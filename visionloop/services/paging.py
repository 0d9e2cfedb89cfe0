"""Pagination as Clarifai does it: 1-based ``page`` and ``per_page``; past the end is an empty page."""

from __future__ import annotations

import dataclasses

from visionloop import errors


@dataclasses.dataclass(frozen=True)
class Page:
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @classmethod
    def of(cls, page: object, per_page: object, *, default: int, cap: int) -> Page:
        """Validate raw values (query strings or JSON) into a page; per_page is capped, not refused."""
        return cls(_positive("page", page, 1), min(_positive("per_page", per_page, default), cap))


def _positive(name: str, raw: object, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw)) if not isinstance(raw, bool) else None
    except ValueError:
        value = None
    if value is None or value < 1 or value > 2**31:
        raise errors.InvalidRequest(f"{name}: must be a whole number from 1, got {raw!r}")
    return value
