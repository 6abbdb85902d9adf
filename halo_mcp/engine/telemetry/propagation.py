"""Join a caller's trace: W3C `traceparent` (e.g. from an MCP request's `_meta`) -> Context.

Three ways for a host to hand the caller's trace context to a run:
- `parent_context(traceparent)`: a context manager around starting the run in this task;
- `register_parent(run_id, traceparent)`: when the run executes in another task (the MCP
  server starts queued runs in the background), keyed by run id, consumed at run start;
- `Telemetry.start(..., parent=context_from_traceparent(value))` directly.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel

_PROPAGATOR = TraceContextTextMapPropagator()
_parent: ContextVar[Context | None] = ContextVar("halo_telemetry_parent", default=None)
_by_run: dict[str, Context] = {}
_by_run_lock = threading.Lock()
_MAX_REGISTERED = 1000


def context_from_traceparent(value: str, tracestate: str | None = None) -> Context:
    """A Context whose parent span is the remote span named by a W3C `traceparent`.

    An invalid or empty value gives an empty Context (the run starts a new trace).
    """
    carrier = {"traceparent": value.strip()} if isinstance(value, str) else {}
    if tracestate:
        carrier["tracestate"] = tracestate
    return _PROPAGATOR.extract(carrier, context=Context())


def has_parent(ctx: Context | None) -> bool:
    """True when `ctx` carries a valid remote parent span."""
    return ctx is not None and trace.get_current_span(ctx).get_span_context().is_valid


def traceparent_from_meta(meta: Mapping[str, Any] | BaseModel | None) -> str | None:
    """The `traceparent` of an MCP request's `_meta` (a dict or a pydantic model), if any."""
    if meta is None:
        return None
    if not isinstance(meta, Mapping):
        extra = getattr(meta, "model_extra", None) or {}
        value = extra.get("traceparent", getattr(meta, "traceparent", None))
    else:
        value = meta.get("traceparent")
    return value if isinstance(value, str) and value.strip() else None


def context_from_meta(meta: Mapping[str, Any] | BaseModel | None) -> Context | None:
    """Context from an MCP `_meta` (`traceparent`, optional `tracestate`); None if absent."""
    value = traceparent_from_meta(meta)
    if value is None:
        return None
    state = meta.get("tracestate") if isinstance(meta, Mapping) else None
    ctx = context_from_traceparent(value, state if isinstance(state, str) else None)
    return ctx if has_parent(ctx) else None


@contextlib.contextmanager
def parent_context(traceparent: str | Context | None) -> Iterator[None]:
    """Runs started (in this task, or tasks spawned from it) inside join this trace."""
    ctx = context_from_traceparent(traceparent) if isinstance(traceparent, str) else traceparent
    token = _parent.set(ctx if has_parent(ctx) else None)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            _parent.reset(token)


def register_parent(run_id: str, traceparent: str | Context | None) -> bool:
    """Remember the caller's trace for a run that will start elsewhere; False if invalid."""
    ctx = context_from_traceparent(traceparent) if isinstance(traceparent, str) else traceparent
    if ctx is None or not has_parent(ctx):
        return False
    with _by_run_lock:
        if len(_by_run) >= _MAX_REGISTERED:  # runs that never started: forget the oldest
            _by_run.pop(next(iter(_by_run)))
        _by_run[run_id] = ctx
    return True


def take_parent(run_id: str) -> Context | None:
    """The parent for a starting run: registered for its id, else the ambient one."""
    with _by_run_lock:
        ctx = _by_run.pop(run_id, None)
    return ctx if ctx is not None else _parent.get()
