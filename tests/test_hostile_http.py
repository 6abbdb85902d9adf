"""A pattern built to backtrack forever, sent to the shared HTTP server, stalls nobody:
it runs in linear time (or is refused) and another client's call is answered meanwhile."""

from __future__ import annotations

import json

import anyio
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from halo_mcp.synth import generate
from tests.mcp_support import free_port, http_server, settings

#: With backtracking, (a+)+! over this many a's (then no '!') takes longer than the
#: universe has; linear-time matching takes milliseconds.
RUN_OF_AS = 200_000
#: Generous: only a stalled server comes near it.
STALL_S = 120


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HALO_DATA_DIR", str(tmp_path / "data"))
    folder = tmp_path / "root"
    folder.mkdir()
    path = folder / "traces.jsonl"
    generate(path, traces=12, seed=3, profile="tiny")
    first = json.loads(path.read_bytes().splitlines()[0])
    first["span_id"] = "feedfacefeedface"
    first["parent_span_id"] = None
    first["attributes"] = {**first.get("attributes", {}), "input.value": "a" * RUN_OF_AS + "?"}
    with path.open("ab") as handle:
        handle.write(json.dumps(first).encode() + b"\n")
    return folder


def client(url: str) -> Client:
    return Client(streamable_http_client(url, http_client=create_mcp_http_client()))


async def test_a_catastrophic_pattern_does_not_stall_another_client(root):
    server_settings = settings(transport="http", port=free_port(), roots=[root])
    answers: dict[str, object] = {}
    with http_server(server_settings) as url:
        async with client(url) as attacker, client(url) as bystander:

            async def attack() -> None:
                for name, pattern in [("nested", "(a+)+!"), ("backref", r"(a)\1+!")]:
                    answers[name] = await attacker.call_tool(
                        "query_spans",
                        {"trace_paths": ["traces.jsonl"], "filter": {"text": pattern}},
                    )

            async def bystand() -> None:
                answers["bystander"] = await bystander.call_tool(
                    "query_spans",
                    {"trace_paths": ["traces.jsonl"], "filter": {"kind": ["tool"]}, "limit": 3},
                )

            with anyio.fail_after(STALL_S):
                async with anyio.create_task_group() as group:
                    group.start_soon(attack)
                    group.start_soon(bystand)
            with anyio.fail_after(STALL_S):  # the attacker's own session still answers too
                answers["after"] = await attacker.call_tool(
                    "query_spans", {"trace_paths": ["traces.jsonl"], "limit": 1}
                )

    bystander_answer = answers["bystander"]
    assert not bystander_answer.is_error, bystander_answer.content[0].text
    assert len(bystander_answer.structured_content["spans"]) == 3
    nested = answers["nested"]
    assert not nested.is_error, nested.content[0].text
    assert nested.structured_content["total"] == 0  # linear time, and the right answer
    backref = answers["backref"]
    assert backref.is_error
    assert "backreference" in backref.content[0].text
    assert "repeat the text literally" in backref.content[0].text
    assert not answers["after"].is_error
