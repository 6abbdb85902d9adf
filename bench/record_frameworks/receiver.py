"""A small OTLP/HTTP trace receiver on 127.0.0.1 that writes OTLP JSON lines.

Each export request (protobuf, as the real `opentelemetry-exporter-otlp-proto-http` sends
it, or OTLP/JSON, the Node exporter's default) becomes one line shaped like the
Collector's file exporter writes it:
`{"resourceSpans": [...]}` with camelCase keys, hex trace/span ids and int64 as strings.
(Kept inside the recorder for now; `halo-mcp collect` is built elsewhere.)
"""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def _hex_ids(value: Any) -> Any:
    """MessageToDict writes bytes ids as base64; the Collector writes them as hex."""
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            if key in _ID_KEYS and isinstance(inner, str):
                import base64

                out[key] = base64.b64decode(inner).hex()
            else:
                out[key] = _hex_ids(inner)
        return out
    if isinstance(value, list):
        return [_hex_ids(item) for item in value]
    return value


class OtlpReceiver:
    """POST /v1/traces -> one JSON line per request in `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.spans = 0
        self._lock = threading.Lock()
        self._handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in stop)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if "chunked" not in (self.headers.get("transfer-encoding") or ""):
                    return self.rfile.read(int(self.headers.get("content-length") or 0))
                parts = []  # chunked transfer encoding (the Node exporter sends it)
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()

            def do_POST(self) -> None:
                body = self._body()
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if "json" in (self.headers.get("content-type") or ""):
                    # OTLP/JSON (the Node exporter's default): already hex ids, camelCase.
                    receiver.write_json(json.loads(body))
                    data, kind = b"{}", "application/json"
                else:
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    receiver.write(request)
                    data = ExportTraceServiceResponse().SerializeToString()
                    kind = "application/x-protobuf"
                self.send_response(200)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1/traces"

    def write(self, request: ExportTraceServiceRequest) -> None:
        self.write_json(_hex_ids(MessageToDict(request)))

    def write_json(self, payload: dict[str, Any]) -> None:
        count = sum(
            len(scope.get("spans", []))
            for resource in payload.get("resourceSpans", [])
            for scope in resource.get("scopeSpans", [])
        )
        with self._lock:
            self._handle.write(json.dumps(payload, separators=(",", ":")) + "\n")
            self._handle.flush()
            self.spans += count

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._handle.close()
