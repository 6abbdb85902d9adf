"""triage_traces and check_findings through the real MCP client on the real server; no LLM
and no API key involved."""

from __future__ import annotations

import pytest
from mcp import Client

from halo_mcp.engine.models import RunStatus
from halo_mcp.engine.runstore import RunStore
from halo_mcp.findings.models import Finding, Prevalence, Severity
from halo_mcp.server import create_server
from halo_mcp.synth import generate
from halo_mcp.tools.results import RESULT_BUDGET_CHARS
from tests.mcp_support import settings

MODES = ["legacy", "auto"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HALO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    generate(tmp_path / "old.jsonl", traces=200, seed=9, profile="tiny")
    generate(
        tmp_path / "new.jsonl", traces=200, seed=9, profile="tiny", failure_rates={"retry_loop": 0}
    )
    return tmp_path


def server():
    return create_server(settings())


@pytest.mark.parametrize("mode", MODES)
async def test_triage_traces_returns_ranked_items_and_a_summary(env, mode):
    async with Client(server(), mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["triage_traces"].annotations.read_only_hint is True
        assert tools["check_findings"].output_schema["type"] == "object"
        result = await client.call_tool(
            "triage_traces", {"trace_paths": [str(env / "old.jsonl")], "max_items": 5}
        )
    assert not result.is_error, result.content[0].text
    data = result.structured_content
    assert data["source"] == "triage" and data["traces"] == 200
    assert 1 <= len(data["items"]) <= 5
    assert all(i["source"] == "triage" and i["prevalence"] for i in data["items"])
    assert "no LLM" in data["summary"]
    assert len(result.content[0].text) < RESULT_BUDGET_CHARS


async def test_check_findings_compares_a_baseline_triage_with_new_traces(env):
    async with Client(server()) as client:
        result = await client.call_tool(
            "check_findings",
            {
                "trace_paths": [str(env / "new.jsonl")],
                "baseline_paths": [str(env / "old.jsonl")],
            },
        )
    assert not result.is_error, result.content[0].text
    verdicts = {r["category"]: r["verdict"] for r in result.structured_content["results"]}
    assert verdicts["loop"] == "resolved" and verdicts["tool-error"] == "unchanged"


async def test_check_findings_of_a_finished_run(env):
    runs = RunStore(env / "data")
    run = runs.create("why?", [str(env / "old.jsonl")], {})
    run.findings = [
        Finding(
            id="f_paths",
            run_id=run.id,
            title="read_file gets paths with spaces",
            category="tool-error",
            severity=Severity.high,
            description="d",
            root_cause="r",
            suggested_change="s",
            validation="v",
            matcher={"tool_name": "read_file", "errors_only": True},
            prevalence=Prevalence(traces_matched=24, traces_in_scope=200, spans_matched=24),
        )
    ]
    run.status = RunStatus.finished
    runs.save(run)
    async with Client(server()) as client:
        result = await client.call_tool(
            "check_findings", {"trace_paths": [str(env / "new.jsonl")], "run_id": run.id}
        )
        missing = await client.call_tool(
            "check_findings", {"trace_paths": [str(env / "new.jsonl")], "run_id": "run_nope"}
        )
        neither = await client.call_tool(
            "check_findings", {"trace_paths": [str(env / "new.jsonl")]}
        )
    assert not result.is_error, result.content[0].text
    [checked] = result.structured_content["results"]
    assert checked["finding_id"] == "f_paths" and checked["after"]["traces_in_scope"] == 200
    assert checked["still_matching"]
    assert missing.is_error and "run_nope" in missing.content[0].text
    assert neither.is_error and "baseline_paths" in neither.content[0].text


async def test_checking_a_run_without_findings_says_what_to_check_instead(env):
    runs = RunStore(env / "data")
    run = runs.create("why?", [str(env / "old.jsonl")], {})
    run.status = RunStatus.finished
    runs.save(run)
    async with Client(server()) as client:
        result = await client.call_tool(
            "check_findings", {"trace_paths": [str(env / "new.jsonl")], "run_id": run.id}
        )
    text = result.content[0].text
    assert result.is_error and f"run {run.id} has no findings" in text
    assert "list_runs" in text and "baseline_paths" in text
