"""Arguments that break a tool's input schema come back as one clean tool error: the
argument's name, what was wrong, what is allowed, and the next step; never pydantic's dump."""

from __future__ import annotations

import pytest
from mcp import Client

from halo_mcp.server import create_server
from tests.mcp_support import make_traces, settings

MODES = ["legacy", "auto"]


@pytest.fixture
def traces(tmp_path, monkeypatch):
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HALO_DATA_DIR", str(tmp_path / "data"))
    return make_traces(tmp_path / "traces")


@pytest.mark.parametrize("mode", MODES)
async def test_bad_arguments_name_the_argument_what_is_allowed_and_what_to_do(traces, mode):
    paths = [str(traces)]
    async with Client(create_server(settings()), mode=mode) as client:
        bad_sort = await client.call_tool("query_spans", {"trace_paths": paths, "sort": "newest"})
        too_long = await client.call_tool(
            "query_spans", {"trace_paths": paths, "max_chars": 999_999}
        )
        wrong_type = await client.call_tool("get_run", {"run_id": "run_x", "wait_seconds": "soon"})
        missing = await client.call_tool("get_finding", {})
    for result in (bad_sort, too_long, wrong_type, missing):
        text = result.content[0].text
        assert result.is_error
        assert "pydantic" not in text and "validation error for" not in text, text
        assert "call" in text and "again" in text  # the next step
    assert "`sort`" in bad_sort.content[0].text and "'-duration'" in bad_sort.content[0].text
    assert "(got 'newest')" in bad_sort.content[0].text
    assert "`max_chars`" in too_long.content[0].text
    assert ">= 50 and <= 20000" in too_long.content[0].text
    assert "`wait_seconds`" in wrong_type.content[0].text
    assert "number >= 0 and <= 50" in wrong_type.content[0].text
    assert "`finding_id` is required" in missing.content[0].text


async def test_a_valid_call_after_a_bad_one_still_works(traces):
    async with Client(create_server(settings())) as client:
        bad = await client.call_tool("query_spans", {"trace_paths": [str(traces)], "limit": 0})
        good = await client.call_tool("query_spans", {"trace_paths": [str(traces)], "limit": 1})
    assert bad.is_error and "`limit`" in bad.content[0].text
    assert not good.is_error and len(good.structured_content["spans"]) == 1
