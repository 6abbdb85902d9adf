"""The OTLP/HTTP trace receiver: an ASGI app at POST /v1/traces, and running it.

Per request, in order: the in-flight bound (429 + Retry-After when full), Host/Origin and
bearer-token checks (the MCP HTTP server's own, see server.py), Content-Type, the body
size limit (413, also after decompression), decoding (400 with a google.rpc.Status
message), then one durable append (see journal.py) before the answer: an
ExportTraceServiceResponse whose partial_success counts the spans left out. A failed
write answers 503 + Retry-After: the client retries, and nothing was acknowledged.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from halo_mcp.collect import otlp
from halo_mcp.collect.journal import SpanJournal
from halo_mcp.collect.settings import CollectSettings

log = logging.getLogger(__name__)

PATH = "/v1/traces"


class _TooLarge(Exception):
    pass


class Receiver:
    """The receiver's state: its journal, checks and the count of requests in flight."""

    def __init__(self, settings: CollectSettings, journal: SpanJournal) -> None:
        from mcp.server.transport_security import TransportSecurityMiddleware

        from halo_mcp.server import StaticTokenVerifier, transport_security

        guard = settings.http_guard()
        self.settings = settings
        self.journal = journal
        self._hosts = TransportSecurityMiddleware(transport_security(guard))
        self._tokens = StaticTokenVerifier(settings.tokens) if settings.tokens else None
        self.in_flight = 0
        self.spans_accepted = 0
        self.requests_refused = 0

    async def export(self, request: Request) -> Response:
        if self.in_flight >= self.settings.max_in_flight:
            self.requests_refused += 1
            log.info("busy: %d requests in flight, answered 429", self.in_flight)
            kind = otlp.media_type(request.headers.get("content-type")) or otlp.PROTOBUF
            return self._error(
                kind, 429, otlp.RESOURCE_EXHAUSTED, "receiver busy, retry later", retry=True
            )
        self.in_flight += 1
        log.debug("receiving a request (%d in flight)", self.in_flight)
        try:
            return await self._export(request)
        finally:
            self.in_flight -= 1

    async def _export(self, request: Request) -> Response:
        refused = await self._hosts.validate_request(request)
        if refused is not None:
            return refused
        if self._tokens is not None:
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or await self._tokens.verify_token(token.strip()) is None:
                return Response(
                    "missing or wrong bearer token",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
        kind = otlp.media_type(request.headers.get("content-type"))
        if kind is None:
            return Response(
                "Content-Type must be application/x-protobuf or application/json",
                status_code=415,
            )
        limit = self.settings.max_request_bytes
        try:
            body = await _read_body(request, limit)
        except _TooLarge:
            return self._error(kind, 413, otlp.INVALID_ARGUMENT, f"body over {limit} bytes")
        except ClientDisconnect:
            return Response(status_code=400)
        encoding = request.headers.get("content-encoding")
        try:
            decoded = await anyio.to_thread.run_sync(_decode, body, encoding, kind, limit)
        except otlp.PayloadTooLargeError as exc:
            return self._error(kind, 413, otlp.INVALID_ARGUMENT, str(exc))
        except otlp.PayloadError as exc:
            log.info("bad payload: %s", exc)
            return self._error(kind, 400, otlp.INVALID_ARGUMENT, str(exc))
        if decoded.accepted:
            try:
                await anyio.to_thread.run_sync(self.journal.append, decoded.line())
            except OSError as exc:
                log.error("cannot write spans to %s: %s", self.journal.directory, exc)
                return self._error(
                    kind, 503, otlp.UNAVAILABLE, "cannot store spans now, retry", retry=True
                )
            self.spans_accepted += decoded.accepted
        return Response(
            otlp.export_response(kind, decoded.rejected, decoded.first_reason),
            media_type=kind,
        )

    def _error(
        self, kind: str, status: int, code: int, message: str, retry: bool = False
    ) -> Response:
        headers = {"Retry-After": str(self.settings.retry_after_s)} if retry else None
        return Response(
            otlp.status_body(kind, code, message),
            status_code=status,
            media_type=kind,
            headers=headers,
        )


def _decode(body: bytes, encoding: str | None, kind: str, limit: int) -> otlp.Decoded:
    return otlp.decode(otlp.decompress(body, encoding, limit), kind)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def collector_app(receiver: Receiver) -> Starlette:
    """The ASGI app: POST /v1/traces (anything else: 404/405 from Starlette)."""
    return Starlette(routes=[Route(PATH, receiver.export, methods=["POST"])])


def collector_server(settings: CollectSettings) -> tuple[Any, SpanJournal]:
    """A uvicorn server for the receiver (not started) and its journal (close it after)."""
    import uvicorn

    journal = SpanJournal(settings.directory, rotate_bytes=settings.rotate_bytes)
    app = collector_app(Receiver(settings, journal))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,  # stdout stays free (serve --collect over stdio)
        lifespan="off",
    )
    return uvicorn.Server(config), journal


async def run_collector(settings: CollectSettings) -> None:
    """Serve until cancelled or interrupted; the journal is closed on the way out."""
    server, journal = collector_server(settings)
    log.warning(
        "halo-mcp receiving OTLP/HTTP traces on http://%s:%d%s into %s (%s)",
        settings.host,
        settings.port,
        PATH,
        settings.directory,
        f"{len(settings.tokens)} bearer token(s)" if settings.tokens else "no token: loopback only",
    )
    try:
        await server.serve()
    finally:
        journal.close()
