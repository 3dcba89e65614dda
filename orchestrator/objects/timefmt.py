"""Timestamps as objects carry them: RFC 3339 in UTC with second precision ("...T12:00:00Z").

Parsing is lenient about the form (fractional seconds, "Z" or a numeric offset, a missing
offset meaning UTC) and always yields an aware datetime in UTC. `parse_rfc3339` raises
ValueError for what is not a timestamp; `parse_time` returns None instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def as_utc(t: datetime) -> datetime:
    """Treat a naive datetime as UTC; convert aware ones to UTC."""
    if t.tzinfo is None:
        return t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


def parse_rfc3339(value: Any) -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime; ValueError if it is not one."""
    if not value or not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    return as_utc(datetime.fromisoformat(value))


def parse_time(value: Any) -> datetime | None:
    """Like `parse_rfc3339`, but None for a missing or malformed timestamp."""
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def rfc3339(t: datetime | float) -> str:
    """Format a datetime (naive means UTC) or epoch seconds the way objects carry time."""
    if isinstance(t, datetime):
        return as_utc(t).strftime(FORMAT)
    return datetime.fromtimestamp(t, UTC).strftime(FORMAT)
