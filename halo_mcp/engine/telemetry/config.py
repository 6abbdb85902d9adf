"""Telemetry options, from the environment (see `halo_mcp.settings.Environment`).

- `HALO_TELEMETRY`: "1"/"true"/"yes"/"on" turns telemetry on where a host has no flag
  (the MCP server); the CLI has `--telemetry`, the API has `EngineSettings.telemetry`.
- `HALO_TELEMETRY_PATH`: where the JSONL goes; a directory (existing, or ending in "/")
  gets `<run_id>.jsonl` inside it, anything else is used as the file (appended to).
  Default: `<data dir>/telemetry/<run_id>.jsonl`.
- `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`: the GenAI conventions' opt-in for
  prompts, completions, tool arguments and results (off by default).
- `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: export with OTLP/HTTP
  instead of the file (needs the `otlp` extra).

Each is read when used, so a change of the environment applies to the next run.
"""

from __future__ import annotations

import os
from pathlib import Path

from halo_mcp.settings import Environment, data_dir


def env_enabled() -> bool:
    """True when HALO_TELEMETRY asks for telemetry (for hosts without a --telemetry flag)."""
    return Environment.read().halo_telemetry


def capture_content() -> bool:
    """The GenAI content-capture opt-in: prompts, completions, tool arguments and results."""
    return Environment.read().otel_instrumentation_genai_capture_message_content


def otlp_endpoint() -> str | None:
    """The OTLP endpoint configured by the standard variables, if any."""
    env = Environment.read()
    return env.otel_exporter_otlp_traces_endpoint or env.otel_exporter_otlp_endpoint


def output_path(run_id: str) -> Path:
    """Where a run's telemetry JSONL is written (when the file exporter is used)."""
    env = Environment.read()
    explicit = env.halo_telemetry_path
    if explicit:
        path = Path(explicit).expanduser()
        if explicit.endswith(("/", os.sep)) or path.is_dir():
            return path / f"{run_id}.jsonl"
        return path
    return data_dir(env) / "telemetry" / f"{run_id}.jsonl"
