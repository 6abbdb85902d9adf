"""Helpers for the telemetry tests: an in-memory run telemetry and span-tree lookups."""

from __future__ import annotations

import gzip
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from halo_mcp.engine.telemetry import ExportTarget, Telemetry


def memory_telemetry(
    settings: Any, run_id: str = "run_telemetry_test", **start: Any
) -> tuple[Telemetry, InMemorySpanExporter]:
    """A started run telemetry whose spans are kept in memory."""
    exporter = InMemorySpanExporter()
    tel = Telemetry.start(settings, run_id, target=ExportTarget(exporter, "memory"), **start)
    assert tel is not None, "settings.telemetry must be on"
    return tel, exporter


def fake_agent(
    agent_id: str = "root",
    depth: int = 0,
    parent_id: str | None = None,
    task: str = "find the failures",
) -> SimpleNamespace:
    """What agent_span reads from an Agent."""
    return SimpleNamespace(
        agent_id=agent_id, depth=depth, parent_id=parent_id, task=task, turns=0, report=""
    )


def named(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def one(spans: list[ReadableSpan], prefix: str) -> ReadableSpan:
    found = named(spans, prefix)
    assert len(found) == 1, f"expected one span named {prefix!r}, got {[s.name for s in spans]}"
    return found[0]


def parent_of(spans: list[ReadableSpan], span: ReadableSpan) -> ReadableSpan | None:
    if span.parent is None:
        return None
    for candidate in spans:
        if candidate.context.span_id == span.parent.span_id:
            return candidate
    return None


class OtlpCollector:
    """A tiny OTLP/HTTP trace receiver on 127.0.0.1: POST /v1/traces (protobuf)."""

    def __init__(self) -> None:
        collector = self
        self.bodies: list[bytes] = []
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(size)
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                collector.paths.append(self.path)
                collector.bodies.append(body)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> OtlpCollector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def spans(self) -> list[Any]:
        """Every span received, decoded from the protobuf requests (needs the otlp extra)."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        out = []
        for body in self.bodies:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for block in request.resource_spans:
                for scope in block.scope_spans:
                    out.extend(scope.spans)
        return out


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
