"""Finding the real error inside anyio's exception groups: the one place that unwraps them
(the engine's runner and agents, `halo-mcp run` and `halo-mcp serve --test` all ask here).
Shared by every layer and cheap to import, like `halo_mcp.text`."""

from __future__ import annotations

import asyncio
import sys

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (possibly nested) exception groups, in order; [exc] for a
    plain exception."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def _is_cancelled(exc: BaseException) -> bool:
    """Cancellation of a task (asyncio's, which anyio uses on its asyncio backend)."""
    return isinstance(exc, asyncio.CancelledError)


def first_error(exc: BaseException) -> BaseException | None:
    """The first real error inside (possibly nested) exception groups; None when the
    exception is only cancellation."""
    return next((leaf for leaf in leaves(exc) if not _is_cancelled(leaf)), None)


def is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C: a KeyboardInterrupt, alone or in groups with nothing but cancellations
    (helper processes hit by the same Ctrl-C report it through the engine's task group)."""
    found = leaves(exc)
    return any(isinstance(e, KeyboardInterrupt) for e in found) and all(
        isinstance(e, KeyboardInterrupt) or _is_cancelled(e) for e in found
    )
