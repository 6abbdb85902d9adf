"""`--since`/`--until` for every command that reads traces (parsed by store.timewindow)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from halo_mcp.cli import AddsArguments

if TYPE_CHECKING:
    from halo_mcp.store.timewindow import TimeWindow

#: Spelled out (not imported) to keep `--help` fast; same text as store.timewindow.EXAMPLES.
_FORMS = "relative to now (30m, 24h, 7d) or ISO 8601 (2026-05-01T12:00:00Z)"


def add_window_options(parser: AddsArguments, prefix: str = "") -> None:
    """--since/--until (with `prefix` 'baseline-': the baseline's window)."""
    whose = "baseline traces" if prefix else "traces"
    parser.add_argument(
        f"--{prefix}since",
        metavar="T",
        help=f"only {whose} that started at or after T: {_FORMS}",
    )
    parser.add_argument(
        f"--{prefix}until", metavar="T", help=f"only {whose} that started before T (same forms)"
    )


def window_from_args(args: argparse.Namespace, prefix: str = "") -> TimeWindow | None:
    """The TimeWindow of the flags, or None; ValueError naming the flag when invalid."""
    from halo_mcp.store.timewindow import time_window

    name = prefix.replace("-", "_")
    since, until = getattr(args, f"{name}since", None), getattr(args, f"{name}until", None)
    try:
        return time_window(since, until)
    except ValueError as exc:
        raise ValueError(f"--{prefix}{exc}") from None
