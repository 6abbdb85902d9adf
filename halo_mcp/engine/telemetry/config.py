"""Telemetry knobs read from the environment (no new EngineSettings fields needed).

- `HALO_TELEMETRY`: "1"/"true"/"yes"/"on" turns telemetry on where a host has no flag
  (the MCP server); the CLI has `--telemetry`, the API has `EngineSettings.telemetry`.
- `HALO_TELEMETRY_PATH`: where the JSONL goes; a directory (existing, or ending in "/")
  gets `<run_id>.jsonl` inside it, anything else is used as the file (appended to).
  Default: `<data dir>/telemetry/<run_id>.jsonl`.
- `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`: the GenAI conventions' opt-in for
  prompts, completions, tool arguments and results (off by default).
- `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: export with OTLP/HTTP
  instead of the file (needs the `otlp` extra).
"""

from __future__ import annotations

import os
from pathlib import Path

from halo_mcp.settings import data_dir

ENABLE_ENV = "HALO_TELEMETRY"
PATH_ENV = "HALO_TELEMETRY_PATH"
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
OTLP_ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")

_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def env_enabled() -> bool:
    """True when HALO_TELEMETRY asks for telemetry (for hosts without a --telemetry flag)."""
    return _flag(ENABLE_ENV)


def capture_content() -> bool:
    """The GenAI content-capture opt-in: prompts, completions, tool arguments and results."""
    return _flag(CAPTURE_ENV)


def otlp_endpoint() -> str | None:
    """The OTLP endpoint configured by the standard variables, if any."""
    for name in OTLP_ENDPOINT_ENVS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def output_path(run_id: str) -> Path:
    """Where a run's telemetry JSONL is written (when the file exporter is used)."""
    explicit = os.environ.get(PATH_ENV, "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if explicit.endswith(("/", os.sep)) or path.is_dir():
            return path / f"{run_id}.jsonl"
        return path
    return data_dir() / "telemetry" / f"{run_id}.jsonl"
