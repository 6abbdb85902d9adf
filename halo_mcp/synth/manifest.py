"""The manifest: what a generated file contains, written next to it as <file>.manifest.json.

Tests and benchmarks compare what the store reports against these numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

#: Above this many affected traces, a mode lists only a sample of its trace ids.
MAX_LISTED_TRACE_IDS = 2000
SAMPLE_TRACE_IDS = 200


class PlantedMode(BaseModel):
    name: str
    description: str
    rate: float = Field(description="Requested probability that a trace has this mode.")
    planted_traces: int = Field(description="Traces that actually have it.")
    planted_spans: int = Field(description="Spans the matcher selects.")
    trace_ids: list[str] = Field(description="Affected trace ids, as written in the file.")
    trace_ids_complete: bool = Field(
        description="False when only a sample is listed (many affected traces)."
    )
    matcher: dict[str, Any] = Field(
        description="A halo_mcp.store.models.SpanFilter selecting exactly the affected spans."
    )


class BadLineRecord(BaseModel):
    line: int = Field(description="1-based line number in the (decompressed) file.")
    kind: str = Field(description="truncated_json, random_bytes, null_fields, not_an_object.")


class ToolCount(BaseModel):
    calls: int = 0
    errors: int = 0


class Manifest(BaseModel):
    file: str = Field(description="File name (the manifest sits next to it).")
    format: str = Field(description="halo, otlp or agents-sdk.")
    convention: str = Field(description="openinference, genai or mixed (not used by agents-sdk).")
    profile: str = Field(description="realistic or tiny.")
    seed: int
    gzip: bool
    traces: int
    spans: int
    lines: int = Field(description="Lines in the (decompressed) file, bad lines included.")
    bytes: int = Field(description="Size of the (decompressed) content in bytes.")
    error_spans: int
    error_traces: int
    start_time: str | None = None
    end_time: str | None = None
    services: dict[str, int] = Field(description="Traces per service.")
    agents: dict[str, int] = Field(description="Agent spans per agent name.")
    models: dict[str, int] = Field(description="LLM spans per model.")
    tools: dict[str, ToolCount] = Field(description="Tool spans and error spans per tool.")
    bom: bool = Field(False, description="The file starts with a UTF-8 BOM (its line is valid).")
    messy_traces: int = Field(
        0, description="Runs written sloppily but validly (numbers as strings, nulls)."
    )
    bad_lines: list[BadLineRecord] = []
    failure_modes: list[PlantedMode] = []
    generator: str = "halo_mcp.synth/1"

    def mode(self, name: str) -> PlantedMode:
        for mode in self.failure_modes:
            if mode.name == name:
                return mode
        known = ", ".join(m.name for m in self.failure_modes)
        raise KeyError(f"no failure mode {name!r} in this manifest; it has: {known}")


def manifest_path(path: str | Path) -> Path:
    """Where the manifest of a generated file lives: `<file>.manifest.json`."""
    return Path(f"{path}.manifest.json")


def load_manifest(path: str | Path) -> Manifest:
    """Read the manifest of a generated file (pass the trace file or the manifest)."""
    path = Path(path)
    if not path.name.endswith(".manifest.json"):
        path = manifest_path(path)
    return Manifest.model_validate_json(path.read_bytes())
