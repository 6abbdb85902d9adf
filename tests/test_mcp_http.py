"""halo-mcp over Streamable HTTP on 127.0.0.1: bearer tokens, DNS-rebinding protection, the
request size limit, trace paths confined to the roots, and runs private to each token."""

from __future__ import annotations

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr, ValidationError

from halo_mcp.server import ServerSettings, token_owner, transport_security
from tests.mcp_support import free_port, http_server, make_traces, script_analysis, settings

TOKEN_A = "token-alpha-0123456789"
TOKEN_B = "token-bravo-9876543210"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HALO_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "root"


@pytest.fixture
def traces(root):
    return make_traces(root)


@pytest.fixture
def url(root, traces):
    server_settings = settings(
        transport="http",
        port=free_port(),
        roots=[root],
        tokens=[SecretStr(TOKEN_A), SecretStr(TOKEN_B)],
        max_request_bytes=64_000,
    )
    with http_server(server_settings) as address:
        yield address


def client(url: str, token: str, mode: str = "auto") -> Client:
    # A long read timeout: the server holds the response stream open while a tool runs.
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=300)
    )
    return Client(streamable_http_client(url, http_client=http), mode=mode)


async def test_a_request_without_a_valid_token_is_refused_with_401(url):
    async with httpx2.AsyncClient() as http:
        missing = await http.post(url, json=INIT, headers=ACCEPT)
        wrong = await http.post(
            url, json=INIT, headers={**ACCEPT, "Authorization": "Bearer not-the-token"}
        )
        good = await http.post(
            url, json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {TOKEN_A}"}
        )
    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert good.status_code == 200


async def test_a_foreign_host_or_origin_is_refused_even_with_a_token(url):
    auth = {**ACCEPT, "Authorization": f"Bearer {TOKEN_A}"}
    async with httpx2.AsyncClient() as http:
        host = await http.post(url, json=INIT, headers={**auth, "Host": "evil.example:8765"})
        origin = await http.post(url, json=INIT, headers={**auth, "Origin": "http://evil.example"})
    assert host.status_code == 421
    assert origin.status_code == 403


async def test_an_oversized_request_body_is_refused_with_413(url):
    big = {**INIT, "params": {**INIT["params"], "padding": "x" * 100_000}}
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            url, json=big, headers={**ACCEPT, "Authorization": f"Bearer {TOKEN_A}"}
        )
    assert response.status_code == 413


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_with_a_token_spans_are_queried_inside_the_roots_only(url, root, traces, mode):
    outside = root.parent / "outside.jsonl"
    outside.write_text(traces.read_text())
    async with client(url, TOKEN_A, mode) as session:
        tools = await session.list_tools()
        assert "query_spans" in {t.name for t in tools.tools}
        good = await session.call_tool("query_spans", {"trace_paths": ["traces.jsonl"], "limit": 2})
        assert not good.is_error, good.content[0].text
        assert good.structured_content["trace_paths"] == [str(traces.resolve())]
        refused = await session.call_tool("query_spans", {"trace_paths": [str(outside)]})
        assert refused.is_error and "outside the allowed roots" in refused.content[0].text
        dotdot = await session.call_tool("query_spans", {"trace_paths": ["../outside.jsonl"]})
        assert dotdot.is_error and "'..'" in dotdot.content[0].text


async def test_each_token_sees_only_its_own_runs(engine_env, url, traces):
    script_analysis(engine_env.server)
    async with client(url, TOKEN_A) as alice:
        started = await alice.call_tool(
            "analyze_traces", {"trace_paths": [str(traces)], "wait_seconds": 30}
        )
        run = started.structured_content
        assert run["status"] == "finished", run
        finding_id = run["findings"][0]["id"]
        mine = await alice.call_tool("list_runs", {})
        assert [r["run_id"] for r in mine.structured_content["runs"]] == [run["run_id"]]
    async with client(url, TOKEN_B) as bob:
        theirs = await bob.call_tool("get_run", {"run_id": run["run_id"], "wait_seconds": 0})
        assert theirs.is_error and "You have no runs yet" in theirs.content[0].text
        assert (await bob.call_tool("list_runs", {})).structured_content["runs"] == []
        finding = await bob.call_tool("get_finding", {"finding_id": finding_id})
        assert finding.is_error
        cancel = await bob.call_tool("cancel_run", {"run_id": run["run_id"]})
        assert cancel.is_error
        for run_id in (run["run_id"], "run_unknown"):  # a foreign id reads like an unknown one
            check = await bob.call_tool(
                "check_findings", {"trace_paths": [str(traces)], "run_id": run_id}
            )
            text = check.content[0].text
            assert check.is_error and "You have no runs yet" in text and "list_runs" in text
            assert text.count(run["run_id"]) == (run_id == run["run_id"])  # only as asked
            assert str(engine_env.data_dir) not in text and ".sqlite" not in text
    owners = {token_owner(TOKEN_A), token_owner(TOKEN_B)}
    assert len(owners) == 2 and all(TOKEN_A not in o and TOKEN_B not in o for o in owners)


def test_a_non_loopback_bind_needs_a_token_and_known_host_names():
    with pytest.raises(ValidationError, match="HALO_MCP_TOKEN"):
        ServerSettings(transport="http", host="0.0.0.0")
    wildcard = ServerSettings(transport="http", host="0.0.0.0", tokens=[SecretStr("t")])
    with pytest.raises(ValueError, match="--allowed-host"):
        transport_security(wildcard)
    named = ServerSettings(
        transport="http",
        host="0.0.0.0",
        tokens=[SecretStr("t")],
        allowed_hosts=["halo.internal:8765"],
    )
    security = transport_security(named)
    assert security.enable_dns_rebinding_protection
    assert security.allowed_hosts == ["halo.internal:8765"]
    lan = transport_security(
        ServerSettings(transport="http", host="10.0.0.5", tokens=[SecretStr("t")])
    )
    assert lan.enable_dns_rebinding_protection and lan.allowed_hosts == ["10.0.0.5:*"]
