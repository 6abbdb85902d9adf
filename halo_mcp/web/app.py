"""The local trace viewer: a Starlette app over the same trace store and run store.

`create_app(settings)` builds it (tests and `halo-mcp ui` construct it the same way);
`serve_ui(settings)` runs it with uvicorn. Pages are drawn in the browser by
`assets/viewer.js` from a small JSON API; every store call runs in a worker thread.

Safety, as for the MCP HTTP server: Host and Origin headers are checked with the MCP SDK's
DNS-rebinding protection, configured by `halo_mcp.server.transport_security` (so the same
hosts are allowed), and a bearer token is required when binding beyond loopback. A browser
cannot send a header on navigation, so the token may be given once as `?token=`: it is then
kept in an HttpOnly, SameSite=Strict cookie and the address is cleaned of it.

Live: a background task checks once every `poll_seconds` whether the trace files grew
(one stat per file) and reopens the store, which extends the index; the page polls
`/api/status` and refreshes when the generation changes.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import anyio
import orjson
from pydantic import BaseModel, Field, SecretStr, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from halo_mcp.engine.errors import UnknownRunError
from halo_mcp.engine.runstore import RunStore
from halo_mcp.store.api import TraceReader
from halo_mcp.store.errors import InvalidFilterError, StoreError, UnknownIdError
from halo_mcp.store.models import DEFAULT_SPAN_FIELDS, SPAN_FIELDS, SpanFilter
from halo_mcp.store.store import open_store
from halo_mcp.web.report import asset, run_report_html
from halo_mcp.web.report_data import ranked_findings

log = logging.getLogger(__name__)

T = TypeVar("T")
TOKEN_COOKIE = "halo_ui_token"
#: Page size bounds of the trace list, and spans drawn per trace in the viewer.
MAX_PAGE = 500
MAX_TREE_SPANS = 5000


class UiSettings(BaseModel):
    """Everything `create_app` needs; the CLI fills it from flags and the environment."""

    paths: list[Path] = Field(min_length=1, description="Trace files or directories.")
    host: str = "127.0.0.1"
    port: int = Field(8766, ge=0, le=65535)
    tokens: list[SecretStr] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    allowed_origins: list[str] = Field(default_factory=list)
    cache_dir: Path | None = None
    data_dir: Path | None = None
    poll_seconds: float = Field(2.0, gt=0, le=300)


class LiveStore:
    """The viewer's trace store, opened again (extending its index) when its files change.

    A replaced store is closed one replacement later, so a request still reading it ends.
    """

    def __init__(self, paths: list[Path], cache_dir: Path | None) -> None:
        self.paths = paths
        self.cache_dir = cache_dir
        self._store = open_store(paths, cache_dir=cache_dir)
        self._retired: TraceReader | None = None
        self._lock = threading.Lock()
        self.generation = 1
        self.updated_at = datetime.now(timezone.utc)

    @property
    def store(self) -> TraceReader:
        return self._store

    def refresh(self) -> bool:
        """Reopen when the files changed; True when a new generation is served."""
        with self._lock:
            if not self._store.inputs_changed():
                return False
            fresh = open_store(self.paths, cache_dir=self.cache_dir)
            if self._retired is not None:
                self._retired.close()
            self._retired, self._store = self._store, fresh
            self.generation += 1
            self.updated_at = datetime.now(timezone.utc)
            return True

    def close(self) -> None:
        with self._lock:
            for store in (self._retired, self._store):
                if store is not None:
                    store.close()


class Viewer:
    """The app's state: the live store, the run store, a triage result per generation."""

    def __init__(self, settings: UiSettings) -> None:
        self.settings = settings
        self.live = LiveStore(settings.paths, settings.cache_dir)
        self.runs = RunStore(settings.data_dir)
        self._triage: tuple[int, bytes] | None = None
        self._triage_lock = threading.Lock()

    def triage_json(self) -> bytes:
        """Triage of the current traces, computed once per generation."""
        from halo_mcp.triage import run_triage

        with self._triage_lock:
            generation = self.live.generation
            if self._triage is None or self._triage[0] != generation:
                report = run_triage(self.live.store)
                self._triage = (generation, _json(report.model_dump(mode="json")))
            return self._triage[1]


def _json(data: Any) -> bytes:
    return orjson.dumps(data, default=str)


def json_response(data: Any, status: int = 200) -> Response:
    body = _json(data.model_dump(mode="json") if isinstance(data, BaseModel) else data)
    return Response(body, status_code=status, media_type="application/json")


def error_response(message: str, status: int) -> Response:
    return json_response({"error": message}, status)


async def in_thread(fn: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(fn)


def parse_filter(request: Request) -> SpanFilter:
    """The `filter` query parameter: a SpanFilter as JSON (the same language as matchers)."""
    raw = request.query_params.get("filter")
    if not raw:
        return SpanFilter()
    try:
        return SpanFilter.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'filter'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidFilterError(
            f"invalid filter ({problems}); fields: {', '.join(SpanFilter.model_fields)}"
        ) from None


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise InvalidFilterError(f"{name} must be an integer, got {raw!r}") from None
    return max(low, min(high, value))


def _handler(
    fn: Callable[[Viewer, Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint whose expected errors become JSON errors saying what to do next."""

    async def endpoint(request: Request) -> Response:
        viewer: Viewer = request.app.state.viewer
        try:
            return await fn(viewer, request)
        except (UnknownIdError, UnknownRunError) as exc:
            return error_response(str(exc), 404)
        except InvalidFilterError as exc:
            return error_response(str(exc), 400)
        except StoreError as exc:
            return error_response(str(exc), 503)

    return endpoint


async def status(viewer: Viewer, request: Request) -> Response:
    live = viewer.live
    store = live.store
    traces_total = await in_thread(lambda: store.count().traces_in_scope)
    return json_response(
        {
            "generation": live.generation,
            "updated_at": live.updated_at.isoformat(),
            "paths": [str(p) for p in live.paths],
            "traces": traces_total,
            "spans": store.report.spans,
            "bad_lines": store.report.bad_lines,
        }
    )


async def traces(viewer: Viewer, request: Request) -> Response:
    flt = parse_filter(request)
    sort = request.query_params.get("sort", "-start_time")
    limit = _int_param(request, "limit", 50, 1, MAX_PAGE)
    cursor = request.query_params.get("cursor") or None
    store = viewer.live.store
    page = await in_thread(
        lambda: store.query_traces(flt, sort=sort, limit=limit, cursor=cursor)  # type: ignore[arg-type]
    )
    return json_response(page)


async def trace(viewer: Viewer, request: Request) -> Response:
    trace_id = request.path_params["trace_id"]
    store = viewer.live.store
    tree = await in_thread(
        lambda: store.trace_tree(
            trace_id, fields=DEFAULT_SPAN_FIELDS, max_chars=300, limit=MAX_TREE_SPANS
        )
    )
    return json_response(tree)


async def span(viewer: Viewer, request: Request) -> Response:
    trace_id, span_id = request.path_params["trace_id"], request.path_params["span_id"]
    store = viewer.live.store
    flt = SpanFilter(trace_ids=[trace_id], span_ids=[span_id])
    page = await in_thread(
        lambda: store.query_spans(flt, limit=1, fields=SPAN_FIELDS, max_chars=20_000)
    )
    if not page.spans:
        raise UnknownIdError(f"span {span_id!r} of trace {trace_id!r} is not in these traces")
    return json_response(page.spans[0])


async def runs(viewer: Viewer, request: Request) -> Response:
    limit = _int_param(request, "limit", 50, 1, 500)
    records = await in_thread(lambda: viewer.runs.list(limit))
    return json_response(
        [
            {
                "id": r.id,
                "status": str(r.status),
                "prompt": r.prompt[:300],
                "created_at": r.created_at.isoformat(),
                "trace_paths": r.trace_paths[:5],
                "findings": len(r.findings),
            }
            for r in records
        ]
    )


async def run(viewer: Viewer, request: Request) -> Response:
    record = await in_thread(lambda: viewer.runs.get(request.path_params["run_id"]))
    data = record.model_dump(mode="json", exclude={"findings", "config", "report_markdown"})
    data["findings"] = [v.model_dump(mode="json") for v in ranked_findings(record.findings)]
    return json_response(data)


async def run_report(viewer: Viewer, request: Request) -> Response:
    record = await in_thread(lambda: viewer.runs.get(request.path_params["run_id"]))
    page = await in_thread(lambda: run_report_html(record, cache_dir=viewer.settings.cache_dir))
    return HTMLResponse(page)


async def triage(viewer: Viewer, request: Request) -> Response:
    body = await in_thread(viewer.triage_json)
    return Response(body, media_type="application/json")


_VIEWER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>HALO traces</title>
<style>{css}</style>
</head>
<body>
<header class="top"><span class="brand">HALO</span>
<nav><a href="#/traces" data-nav="traces">Traces</a><a href="#/runs" data-nav="runs">Runs</a>
<a href="#/triage" data-nav="triage">Triage</a></nav><span class="live" id="live"></span></header>
<main class="page" id="app"></main>
<script>{halo_js}</script>
<script>{viewer_js}</script>
</body>
</html>
"""


async def page(viewer: Viewer, request: Request) -> Response:
    body = _VIEWER_PAGE.format(
        css=asset("halo.css"), halo_js=asset("halo.js"), viewer_js=asset("viewer.js")
    )
    return HTMLResponse(
        body,
        headers={
            "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
            "Cache-Control": "no-store",
        },
    )


class Guard:
    """Host/Origin checks (the MCP SDK's), then the bearer token when one is configured."""

    def __init__(self, app: ASGIApp, security: Any, tokens: list[SecretStr]) -> None:
        from mcp.server.transport_security import TransportSecurityMiddleware

        self.app = app
        self.security = TransportSecurityMiddleware(security)
        self.tokens = [t.get_secret_value().encode() for t in tokens]

    def _known(self, token: str | None) -> bool:
        if not token:
            return False
        given = token.encode()
        found = False
        for secret in self.tokens:
            found |= hmac.compare_digest(secret, given)
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        refused = await self.security.validate_request(request)
        if refused is None and self.tokens:
            refused = self._authorize(request)
        if refused is not None:
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorize(self, request: Request) -> Response | None:
        query_token = request.query_params.get("token")
        if self._known(query_token):
            kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(kept)}" if kept else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(
                TOKEN_COOKIE, query_token or "", httponly=True, samesite="strict", path="/"
            )
            return response
        header = request.headers.get("authorization", "")
        bearer = header[7:] if header.lower().startswith("bearer ") else None
        if self._known(bearer) or self._known(request.cookies.get(TOKEN_COOKIE)):
            return None
        return Response(
            "This viewer needs its token: open it as /?token=<the value of HALO_MCP_TOKEN or "
            "--token>, or send 'Authorization: Bearer <token>'.",
            status_code=401,
            media_type="text/plain",
        )


def http_security(settings: UiSettings) -> Any:
    """The MCP HTTP server's Host/Origin settings for this bind address. Built through its
    own settings model, so the same rule holds: a non-loopback bind needs a token."""
    from halo_mcp.server import http_guard, transport_security

    return transport_security(http_guard(settings))


def create_app(settings: UiSettings) -> ASGIApp:
    """The viewer as an ASGI app (opens the trace store now; may take a while to index).
    Raises ValueError (or pydantic's ValidationError) for an unsafe bind."""
    security = http_security(settings)
    viewer = Viewer(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            group.start_soon(_follow, viewer)
            try:
                yield
            finally:
                group.cancel_scope.cancel()
        viewer.live.close()

    routes = [
        Route("/", _handler(page)),
        Route("/api/status", _handler(status)),
        Route("/api/traces", _handler(traces)),
        Route("/api/traces/{trace_id}", _handler(trace)),
        Route("/api/traces/{trace_id}/spans/{span_id}", _handler(span)),
        Route("/api/runs", _handler(runs)),
        Route("/api/runs/{run_id}", _handler(run)),
        Route("/runs/{run_id}/report.html", _handler(run_report)),
        Route("/api/triage", _handler(triage)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.viewer = viewer
    return Guard(app, security, settings.tokens)


async def _follow(viewer: Viewer) -> None:
    """Reopen the store whenever its files change (the page sees a new generation)."""
    while True:
        await anyio.sleep(viewer.settings.poll_seconds)
        try:
            began = time.perf_counter()
            if await in_thread(viewer.live.refresh):
                log.info("trace files changed: reopened in %.1f s", time.perf_counter() - began)
        except StoreError as exc:
            log.warning("could not reopen the changed trace files: %s", exc)


def serve_ui(settings: UiSettings) -> None:
    """Run the viewer until interrupted."""
    import uvicorn

    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning")
    anyio.run(uvicorn.Server(config).serve)
