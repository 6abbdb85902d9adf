"""The `since`/`until` arguments of the read tools (parsed by store.timewindow)."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from halo_mcp.store.timewindow import EXAMPLES, TimeWindow, time_window

Since = Annotated[
    str | None,
    Field(
        description=(
            "Only traces that started at or after this time: relative to now "
            f"or ISO 8601, e.g. {EXAMPLES}. Whole traces are kept or left out."
        ),
        max_length=64,
    ),
]
Until = Annotated[
    str | None,
    Field(description="Only traces that started before this time (same forms).", max_length=64),
]


def window_arg(since: str | None, until: str | None) -> TimeWindow | None:
    """The window of a tool call, or a ToolError saying which forms are accepted."""
    try:
        return time_window(since, until)
    except ValueError as exc:
        raise ToolError(f"Invalid time window ({exc}).") from None
