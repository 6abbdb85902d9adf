"""With telemetry on, an analysis started by a caller that sends a W3C `traceparent` in the
request's `_meta` records its spans in the caller's trace, so the coding agent's trace and
HALO's run line up in one view."""

from __future__ import annotations

import json

import pytest
from mcp import Client

from halo_mcp.server import create_server
from tests.mcp_support import make_traces, script_analysis, settings

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_an_analysis_joins_the_callers_trace(engine_env, tmp_path, monkeypatch, mode):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    spans_file = tmp_path / "telemetry" / "spans.jsonl"
    monkeypatch.setenv("HALO_TELEMETRY_PATH", str(spans_file))
    traces = make_traces(tmp_path / "traces")
    script_analysis(engine_env.server)
    server = create_server(settings(engine=engine_env.settings(telemetry=True)))
    async with Client(server, mode=mode) as client:
        result = await client.call_tool(
            "analyze_traces",
            {"trace_paths": [str(traces)], "wait_seconds": 30},
            meta={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
        )
    assert result.structured_content["status"] == "finished", result.content[0].text
    spans = [json.loads(line) for line in spans_file.read_text().splitlines() if line.strip()]
    assert spans, "telemetry wrote no span"
    assert {span["trace_id"] for span in spans} == {CALLER_TRACE}
    roots = [span for span in spans if span["parent_span_id"] == CALLER_SPAN]
    assert len(roots) == 1  # the run's top span hangs under the caller's span
