"""The MCP server: an app factory from explicit settings, and `serve` for the two transports.

`create_server(settings)` builds the MCPServer (instructions, lifespan, tools, resources,
prompt), so tests and the CLI construct it the same way. `serve(settings)` runs it over stdio
(the default: nothing but protocol on stdout, logs on stderr) or Streamable HTTP (bearer
tokens, DNS-rebinding protection for every bind address, a request size limit).

Start-up over stdio stays fast: the engine's run machinery and the OpenAI client are imported
on the first analysis (see tools/manager.py); the HTTP server imports them before listening.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import ipaddress
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import anyio
import uvicorn
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, InputRequiredResult
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from starlette.applications import Starlette

from halo_mcp import __version__
from halo_mcp.engine.settings import EngineSettings
from halo_mcp.settings import Environment
from halo_mcp.tools import analyze, findings, html_report, prompts, runs, spans, sql, triage
from halo_mcp.tools.analyze import settings_for_run
from halo_mcp.tools.arguments import invalid_arguments, invalid_unicode
from halo_mcp.tools.manager import RunManager, load_engine
from halo_mcp.tools.paths import normalize_roots
from halo_mcp.tools.state import ServerState
from halo_mcp.tools.stores import StoreCache, limit_malloc_arenas

if TYPE_CHECKING:
    from halo_mcp.collect.settings import CollectSettings

log = logging.getLogger(__name__)
#: The GIL switch interval of the HTTP server (Python's default is 5 ms); see serve().
GIL_SWITCH_S = 0.0005
#: Allocations between two collections of young objects in the HTTP server; see serve().
GC_YOUNG_OBJECTS = 10_000

TOKEN_ENV = "HALO_MCP_TOKEN"

INSTRUCTIONS = """\
halo-mcp finds the systemic failure modes of an LLM agent harness in its OpenTelemetry traces.
Workflow:
1. analyze_traces(trace_paths, prompt) starts an LLM analysis that takes minutes. It returns
   within wait_seconds with a run_id and status, sending progress meanwhile. Polling: while
   `done` is false, call get_run(run_id, wait_seconds=50) again. Never start a duplicate.
   Pass repo_path (the harness's repository) so findings cite code lines and commits.
2. When finished, read findings (most severe first) with get_finding(finding_id): root cause,
   suggested harness change, how to validate it, evidence, code_refs (path:lines verified
   at HEAD), suspect_commits, first_seen/last_seen. Act on `status: verified` ones;
   check `partial`/`unverified` ones (status_reasons say what failed). A run whose
   `outcome` is not "findings" carries a `warning`: read it before trusting the result.
3. See concrete cases with query_spans(trace_paths, filter=<finding.matcher>) and get_trace
   (deterministic, no LLM, fast; trace_overview lists names and error signatures to filter
   on; query_sql answers rates and joins in SQL), then edit the harness.
Large artifacts are resources: halo://runs/{run_id}/report (markdown),
halo://runs/{run_id}/report.html (a self-contained page for a person to open) and
halo://findings/{finding_id} (JSON). Errors say what to do next."""


class ServerSettings(BaseModel):
    """Everything `create_server` and `serve` need; the CLI fills it from flags and env."""

    transport: Literal["stdio", "http"] = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    roots: list[Path] = Field(
        default_factory=list,
        description="Trace paths must lie inside these directories. Over HTTP, default: cwd.",
    )
    tokens: list[SecretStr] = Field(
        default_factory=list, description="Accepted bearer tokens (HTTP); one per client."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list, description="Extra Host header values, e.g. 'halo.internal:*'."
    )
    allowed_origins: list[str] = Field(default_factory=list)
    max_concurrent_runs: int = Field(2, ge=1, le=32)
    max_request_bytes: int = Field(1_000_000, ge=1024)
    progress_interval_s: float = Field(2.0, gt=0, le=30)
    engine: EngineSettings = Field(
        default_factory=lambda: server_engine_settings(),
        description="Settings of every analysis (an analyze_traces call may change a few).",
    )
    store_cache_size: int = Field(8, ge=1, le=64)
    scan_processes: int | None = Field(
        None,
        ge=0,
        le=8,
        description="Worker processes for text scans (0: in the server's threads). "
        "Default: 1 over HTTP, where many clients share the server, 0 over stdio.",
    )

    @classmethod
    def from_env(
        cls,
        *,
        token_env: str = TOKEN_ENV,
        tokens: list[SecretStr] | None = None,
        engine: dict[str, object] | None = None,
        **values: Any,
    ) -> ServerSettings:
        """Settings from flags (`values`) over the environment: bearer tokens from
        `token_env` unless `tokens` are given; `engine` fields over the environment's."""
        if tokens is None:
            tokens = tokens_from_env(token_env)
        return cls(tokens=tokens, engine=server_engine_settings(**(engine or {})), **values)

    @model_validator(mode="after")
    def _remote_needs_token(self) -> ServerSettings:
        if self.transport == "http" and not is_loopback(self.host) and not self.tokens:
            raise ValueError(
                f"binding {self.host} (not loopback) needs a bearer token: set {TOKEN_ENV} "
                "(comma-separated for several clients) or pass --token"
            )
        return self

    def effective_scan_processes(self) -> int:
        """`scan_processes`, or its default for the transport."""
        if self.scan_processes is not None:
            return self.scan_processes
        return 1 if self.transport == "http" else 0

    def effective_roots(self) -> list[Path] | None:
        """Resolved roots, or None (any readable path) for stdio without --root."""
        if self.roots:
            return normalize_roots(self.roots)
        if self.transport == "http":
            return normalize_roots([Path.cwd()])
        return None


class HttpListener(Protocol):
    """The HTTP fields of another listener (the viewer, the OTLP receiver)."""

    host: str
    port: int
    tokens: list[SecretStr]
    allowed_hosts: list[str]
    allowed_origins: list[str]


def http_guard(listener: HttpListener) -> ServerSettings:
    """This server's HTTP settings for another listener's address, tokens, hosts and
    origins: validating them applies the same rule (a non-loopback bind needs a token),
    and `transport_security` of them gives the same Host/Origin checks."""
    return ServerSettings(
        transport="http",
        host=listener.host,
        port=listener.port,
        tokens=listener.tokens,
        allowed_hosts=listener.allowed_hosts,
        allowed_origins=listener.allowed_origins,
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_owner(token: str) -> str:
    """A stable, non-reversible id for a token: runs stay its own across restarts."""
    return "tok-" + hashlib.sha256(token.encode()).hexdigest()[:12]


def tokens_from_env(name: str = TOKEN_ENV) -> list[SecretStr]:
    """The bearer tokens in the variable `name`, comma-separated."""
    return parse_tokens(Environment.variable(name))


def parse_tokens(text: str) -> list[SecretStr]:
    """Bearer tokens from comma-separated text (blanks dropped)."""
    return [SecretStr(t.strip()) for t in text.split(",") if t.strip()]


def server_engine_settings(**overrides: object) -> EngineSettings:
    """EngineSettings from the environment, with HALO_TELEMETRY (the server has no per-run
    flag), then `overrides` (None values ignored)."""
    env = Environment.read()
    values = {name: value for name, value in overrides.items() if value is not None}
    if env.halo_telemetry:
        values.setdefault("telemetry", True)
    return EngineSettings.from_env(env, **values)


class StaticTokenVerifier:
    """Accepts the configured bearer tokens (constant-time compare); the owner is the token's id."""

    def __init__(self, tokens: list[SecretStr]) -> None:
        self._tokens = [
            (t.get_secret_value().encode(), token_owner(t.get_secret_value())) for t in tokens
        ]

    async def verify_token(self, token: str) -> AccessToken | None:
        given = token.encode()
        match = None
        for secret, owner in self._tokens:
            if hmac.compare_digest(secret, given):
                match = owner
        if match is None:
            return None
        return AccessToken(token="(redacted)", client_id=match, scopes=[])


class HaloServer(MCPServer):
    """MCPServer whose argument errors name the argument, what is allowed and the next step.

    The SDK validates every call's arguments in one place and raises a ToolError caused by
    pydantic's ValidationError; this is the one place to reword it for every tool.
    """

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        context: Context[ServerState, Any] | None = None,
    ) -> CallToolResult | InputRequiredResult:
        bad_text = invalid_unicode(name, arguments)
        if bad_text is not None:
            raise bad_text
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError) or not isinstance(cause, ValidationError):
                raise
            schema = next((t.input_schema for t in await self.list_tools() if t.name == name), None)
            raise invalid_arguments(name, cause, schema) from cause


def _lifespan(
    settings: ServerSettings, roots: list[Path] | None
) -> Callable[[MCPServer], AbstractAsyncContextManager[ServerState]]:
    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[ServerState]:
        engine = settings.engine
        manager = RunManager(
            settings_for_run(engine),
            max_concurrent=settings.max_concurrent_runs,
            data_dir=engine.data_dir,
        )
        stores = StoreCache(
            size=settings.store_cache_size,
            cache_dir=engine.cache_dir,
            scan_processes=settings.effective_scan_processes(),
        )
        await anyio.to_thread.run_sync(stores.start_scan_workers)  # before listening
        async with manager:
            try:
                yield ServerState(
                    roots=roots,
                    manager=manager,
                    stores=stores,
                    progress_interval_s=settings.progress_interval_s,
                )
            finally:
                await anyio.to_thread.run_sync(stores.close)  # stops the scan workers

    return lifespan


def create_server(settings: ServerSettings | None = None) -> MCPServer:
    """Build the halo-mcp MCP server from explicit settings."""
    settings = settings or ServerSettings()
    roots = settings.effective_roots()
    auth_kwargs: dict[str, Any] = {}
    if settings.transport == "http" and settings.tokens:
        auth_kwargs = {
            "token_verifier": StaticTokenVerifier(settings.tokens),
            "auth": AuthSettings(
                issuer_url=f"http://{settings.host}:{settings.port}",  # type: ignore[arg-type]
                resource_server_url=None,
            ),
        }
    server = HaloServer(
        "halo-mcp",
        title="HALO trace analysis",
        description="Finds the systemic failure modes of an LLM agent harness in its traces.",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=_lifespan(settings, roots),
        log_level="WARNING",
        **auth_kwargs,
    )
    for module in (analyze, runs, findings, spans, sql, triage, prompts, html_report):
        module.register(server)
    return server


def transport_security(settings: ServerSettings) -> TransportSecuritySettings:
    """Host/Origin checks for every bind address (the SDK only adds them for loopback)."""
    hosts, origins = list(settings.allowed_hosts), list(settings.allowed_origins)
    host = settings.host
    if is_loopback(host):
        for name in ("127.0.0.1", "localhost", "[::1]"):
            hosts.append(f"{name}:*")
            origins.append(f"http://{name}:*")
    elif host not in ("0.0.0.0", "::", ""):
        name = f"[{host}]" if ":" in host else host
        hosts.append(f"{name}:*")
        origins += [f"http://{name}:*", f"https://{name}:*"]
    if not hosts:
        raise ValueError(
            f"binding {host} accepts any address: pass --allowed-host NAME:PORT (the Host "
            "header clients will send) so DNS-rebinding protection can check it"
        )
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def http_app(server: MCPServer, settings: ServerSettings) -> Starlette:
    """The Streamable HTTP ASGI app at /mcp, with Host/Origin checks and a body size limit."""
    return server.streamable_http_app(
        transport_security=transport_security(settings),
        max_request_body_size=settings.max_request_bytes,
        host=settings.host,
    )


def serve(settings: ServerSettings, collect: CollectSettings | None = None) -> None:
    """Run the server until stdin closes (stdio) or the process is interrupted (HTTP);
    with `collect`, the OTLP trace receiver runs beside it in the same event loop."""
    server = create_server(settings)
    if collect is not None:
        anyio.run(_serve_beside_collector, server, settings, collect)
    elif settings.transport == "stdio":
        anyio.run(server.run_stdio_async)
    else:
        anyio.run(_http_server(server, settings).serve)


async def _serve_beside_collector(
    server: MCPServer, settings: ServerSettings, collect: CollectSettings
) -> None:
    from halo_mcp.collect.app import run_collector

    async with anyio.create_task_group() as group:
        group.start_soon(run_collector, collect)
        if settings.transport == "stdio":
            await server.run_stdio_async()
        else:
            await _http_server(server, settings).serve()
        group.cancel_scope.cancel()


def _http_server(server: MCPServer, settings: ServerSettings) -> uvicorn.Server:
    # Many clients at once: quick queries hand the GIL back and forth with SQLite (once per
    # row) while scans and analyses compute in other threads. A shorter switch interval
    # lets a quick query get the GIL back in well under a millisecond instead of up to 5 ms
    # per row, which otherwise turns a 10 ms query into seconds under load.
    sys.setswitchinterval(GIL_SWITCH_S)
    limit_malloc_arenas()
    # A shared HTTP server is there to run analyses too: import their machinery (the
    # engine, the OpenAI client: about a second of CPU) before listening, not in the
    # middle of other clients' queries, where it would hold the GIL for that second.
    load_engine()
    # What start-up made (modules, classes, schemas: most of the heap) lives as long as
    # the process: leave it out of the garbage collector's full passes, which otherwise
    # walk all of it and stall every client for 100 ms or more each time. Every request
    # allocates thousands of objects: collect the young ones every GC_YOUNG_OBJECTS
    # allocations instead of Python's 700, a tenth as many pauses.
    gc.freeze()
    gc.set_threshold(GC_YOUNG_OBJECTS, *gc.get_threshold()[1:])
    app = http_app(server, settings)
    log.warning(
        "halo-mcp serving Streamable HTTP on http://%s:%d/mcp (%s)",
        settings.host,
        settings.port,
        f"{len(settings.tokens)} bearer token(s)" if settings.tokens else "no token: loopback only",
    )
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning")
    return uvicorn.Server(config)
