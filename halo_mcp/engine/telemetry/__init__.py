"""halo-mcp traces itself with OpenTelemetry (issue 7).

Per run (when `EngineSettings.telemetry` is on): a `halo.run` span, an `invoke_agent` span
per agent, a `chat` span per provider call and an `execute_tool` span per tool call, with
GenAI and OpenInference attributes. Spans go to a HALO flat JSONL file (which halo-mcp
ingests) or, when OTEL_EXPORTER_OTLP_*ENDPOINT is set and the `otlp` extra is installed,
to OTLP/HTTP. A private TracerProvider per run: the global one is never touched.

Hosts: `run_scope` (runner), `agent_span` / `tool_span` (agent loop), `llm_span`
(provider), `describe_output(run_id)` (CLI: where the spans went), `env_enabled()` (server:
HALO_TELEMETRY=1), `context_from_traceparent` / `context_from_meta` / `register_parent` /
`parent_context` (server: join the caller's trace from `_meta.traceparent`).
"""

from halo_mcp.engine.telemetry.config import capture_content, env_enabled, output_path
from halo_mcp.engine.telemetry.core import Telemetry, current, describe_output
from halo_mcp.engine.telemetry.exporters import ExportTarget, choose_exporter
from halo_mcp.engine.telemetry.jsonl import HaloJsonlExporter, span_to_halo
from halo_mcp.engine.telemetry.propagation import (
    context_from_meta,
    context_from_traceparent,
    parent_context,
    register_parent,
    traceparent_from_meta,
)
from halo_mcp.engine.telemetry.run import record_run, run_scope
from halo_mcp.engine.telemetry.spans import agent_span, llm_span, tool_span

__all__ = [
    "ExportTarget",
    "HaloJsonlExporter",
    "Telemetry",
    "agent_span",
    "capture_content",
    "choose_exporter",
    "context_from_meta",
    "context_from_traceparent",
    "current",
    "describe_output",
    "env_enabled",
    "llm_span",
    "output_path",
    "parent_context",
    "record_run",
    "register_parent",
    "run_scope",
    "span_to_halo",
    "tool_span",
    "traceparent_from_meta",
]
