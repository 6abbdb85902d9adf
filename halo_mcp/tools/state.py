"""What every tool receives from the server: settings, the run manager, open stores, and who
is calling (the token's owner id over HTTP, None over stdio)."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError

from halo_mcp.tools.manager import RunManager
from halo_mcp.tools.stores import StoreCache

T = TypeVar("T")


@dataclass
class ServerState:
    """Yielded by the server's lifespan; one per server process."""

    roots: list[Path] | None  # None: any readable path (stdio)
    manager: RunManager
    stores: StoreCache
    progress_interval_s: float = 2.0


def server_state(ctx: Context) -> ServerState:
    """The state the server's lifespan yielded (the SDK types it loosely)."""
    state = ctx.request_context.lifespan_context
    if not isinstance(state, ServerState):
        raise TypeError("the halo-mcp server's lifespan did not run")
    return state


def caller_owner(ctx: Context) -> str | None:
    """The owner id of the bearer token that made this request, or None (stdio, no auth)."""
    token = get_access_token()
    if token is None:
        request = getattr(ctx.request_context, "request", None)
        scope = getattr(request, "scope", None) or {}
        user = scope.get("user") if isinstance(scope, dict) else None
        token = getattr(user, "access_token", None)
    return token.client_id if token is not None else None


def visible(owner: str | None, caller: str | None) -> bool:
    """A caller with a token sees only its own runs; stdio (None) sees every run."""
    return caller is None or owner == caller


async def for_resource(load: Awaitable[T]) -> T:
    """A resource read's lookup (`load_record`, `load_finding`): the same not-found message,
    raised as the resource error clients expect instead of a tool error."""
    try:
        return await load
    except ToolError as exc:
        raise ResourceNotFoundError(str(exc)) from None
