"""Files from the synthetic generator, in every format and convention, normalize to exactly
what their manifests say: span and error counts, agents, models, tools, bad line numbers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from halo_mcp.store.formats import ROW_FIELDS, parse_line_report
from halo_mcp.synth.generate import generate

CASES = [
    ("halo", "openinference"),
    ("halo", "genai"),
    ("otlp", "openinference"),
    ("otlp", "genai"),
    ("otlp", "mixed"),
    ("agents-sdk", "openinference"),
]


@pytest.mark.parametrize(("format", "convention"), CASES)
def test_a_generated_file_matches_its_manifest(tmp_path: Path, format: str, convention: str):
    path = tmp_path / f"{format}-{convention}.jsonl"
    manifest = generate(path, traces=25, seed=11, format=format, convention=convention, bad_lines=4)
    rows: list[dict] = []
    bad_lines: list[int] = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        found, bad, reason = parse_line_report(line)
        if bad and not found:
            assert reason
            bad_lines.append(number)
        rows.extend(dict(zip(ROW_FIELDS, row, strict=True)) for row in found)

    assert len(rows) == manifest.spans
    assert bad_lines == [record.line for record in manifest.bad_lines]
    assert sum(row["status"] == "error" for row in rows) == manifest.error_spans
    agents = Counter(row["agent"] for row in rows if row["kind"] == "agent")
    assert dict(agents) == manifest.agents
    models = Counter(row["model"] for row in rows if row["kind"] == "llm")
    assert dict(models) == manifest.models
    tools = Counter(row["tool_name"] for row in rows if row["kind"] == "tool")
    assert dict(tools) == {name: count.calls for name, count in manifest.tools.items()}
    trace_ids = {row["trace_id"] for row in rows}
    for mode in manifest.failure_modes:
        assert set(mode.trace_ids) <= trace_ids, mode.name
