"""Time windows: `since`/`until` as every tool and command takes them, parsed in one place.

A bound is an ISO 8601 timestamp (`2026-05-01`, `2026-05-01T12:00:00Z`; without a zone it
is UTC), a relative value counted back from now (`30s`, `30m`, `24h`, `7d`, `2w`), or
`now`. A window selects whole traces: those whose first span starts at or after `since`
and before `until`, so a trace is never cut in half (triage counts per trace).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_RELATIVE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
EXAMPLES = "'24h', '30m', '7d', '2026-05-01' or '2026-05-01T12:00:00Z'"


def parse_time_point(value: Any, now: datetime | None = None) -> datetime:
    """A bound as an aware UTC datetime; ValueError (with examples) for anything else."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a time must be text such as {EXAMPLES}")
    text = value.strip()
    current = now or datetime.now(timezone.utc)
    if text.lower() == "now":
        return current
    relative = _RELATIVE.fullmatch(text)
    if relative:
        amount, unit = float(relative.group(1)), relative.group(2).lower()
        return current - timedelta(seconds=amount * _UNIT_SECONDS[unit])
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{value!r} is not a time: use a relative value counted back from now or an ISO "
            f"timestamp, e.g. {EXAMPLES}"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


TimePoint = Annotated[datetime, BeforeValidator(parse_time_point)]


class TimeWindow(BaseModel):
    """Traces whose start is in [since, until); either bound may be open."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: TimePoint | None = Field(
        default=None, description=f"Only traces starting at or after this time, e.g. {EXAMPLES}."
    )
    until: TimePoint | None = Field(
        default=None, description="Only traces starting before this time (same forms)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(
                f"since ({self.since.isoformat()}) must be before until ({self.until.isoformat()})"
            )
        return self

    @property
    def is_open(self) -> bool:
        """True when neither bound is set (every trace)."""
        return self.since is None and self.until is None

    def bounds_ns(self) -> tuple[int, int]:
        """[low, high) in Unix epoch nanoseconds (open ends as the widest values)."""
        low = _ns(self.since) if self.since is not None else -(1 << 63)
        high = _ns(self.until) if self.until is not None else (1 << 63) - 1
        return low, high

    def describe(self) -> str:
        since = self.since.isoformat() if self.since else "the start"
        until = self.until.isoformat() if self.until else "now"
        return f"traces starting from {since} until {until}"


def _ns(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def time_window(since: Any = None, until: Any = None) -> TimeWindow | None:
    """The window for optional since/until (None when both are unset); ValueError on bad input."""
    from pydantic import ValidationError

    if since in (None, "") and until in (None, ""):
        return None
    try:
        return TimeWindow(since=since or None, until=until or None)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ValueError(f"{where}: {message}" if where else message) from None
