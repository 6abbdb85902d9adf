"""Choose where a run's spans go: OTLP/HTTP when configured and installed, else the file.

The OTLP exporter reads the standard OTEL_EXPORTER_OTLP_* variables itself (endpoint,
headers, timeout, compression). Anything wrong with it falls back to the JSONL file with a
warning on stderr: telemetry never stops a run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export import SpanExporter

from halo_mcp.engine.telemetry.config import otlp_endpoint, output_path
from halo_mcp.engine.telemetry.jsonl import HaloJsonlExporter

log = logging.getLogger(__name__)

OTLP_HINT = "pip install 'halo-mcp[otlp]'"


@dataclass
class ExportTarget:
    exporter: SpanExporter
    kind: str  # "file" or "otlp"
    path: Path | None = None  # the JSONL file (kind "file")
    endpoint: str | None = None  # scheme://host[:port] only (kind "otlp")


def endpoint_label(url: str) -> str:
    """scheme://host[:port]: no user info, path or query that might hold a token."""
    parts = urlsplit(url)
    if not parts.hostname:
        return "(endpoint)"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _otlp_installed() -> bool:
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
    except ImportError:
        return False
    return True


def destination(run_id: str) -> str:
    """Where `choose_exporter` would send this run's spans, as text (no exporter made)."""
    endpoint = otlp_endpoint()
    if endpoint and _otlp_installed():
        return f"OTLP {endpoint_label(endpoint)}"
    return str(output_path(run_id))


def choose_exporter(run_id: str) -> ExportTarget:
    endpoint = otlp_endpoint()
    if endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning(
                "telemetry: OTEL_EXPORTER_OTLP_*ENDPOINT is set but the OTLP exporter is not "
                "installed (%s); writing spans to a file instead.",
                OTLP_HINT,
            )
        else:
            try:
                return ExportTarget(OTLPSpanExporter(), "otlp", endpoint=endpoint_label(endpoint))
            except Exception as exc:
                log.warning(
                    "telemetry: cannot set up the OTLP exporter (%s: %s); check the "
                    "OTEL_EXPORTER_OTLP_* variables. Writing spans to a file instead.",
                    type(exc).__name__,
                    exc,
                )
    path = output_path(run_id)
    return ExportTarget(HaloJsonlExporter(path), "file", path=path)
