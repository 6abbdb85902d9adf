"""`halo-mcp serve --collect DIR`: the receiver beside the stdio MCP server, one process;
a real MCP client reads the directory while the real OTel exporter fills it."""

from __future__ import annotations

import os
import sys
from functools import partial

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.collect_support import run_export
from tests.mcp_support import free_port


async def test_serve_collect_receives_while_tools_read_the_directory(tmp_path):
    collection = tmp_path / "collection"
    port = free_port()
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "halo_mcp", "serve", "--collect", str(collection), "--collect-port", str(port)],
        env={**os.environ, "HALO_CACHE_DIR": str(tmp_path / "cache")},
    )
    url = f"http://127.0.0.1:{port}/v1/traces"
    async with Client(params) as client:
        with anyio.fail_after(60):  # the receiver starts with the server
            while True:
                try:
                    await anyio.connect_tcp("127.0.0.1", port)
                    break
                except OSError:
                    await anyio.sleep(0.1)
        first, _ = await anyio.to_thread.run_sync(partial(run_export, url, traces=5, tag="a"))
        page = await client.call_tool("query_spans", {"trace_paths": [str(collection)]})
        assert not page.is_error, page.content[0].text
        assert page.structured_content["total"] == len(first)
        more, _ = await anyio.to_thread.run_sync(partial(run_export, url, traces=3, tag="b"))
        overview = await client.call_tool("trace_overview", {"trace_paths": [str(collection)]})
        assert overview.structured_content["spans"] == len(first | more)
        triage = await client.call_tool(
            "triage_traces", {"trace_paths": [str(collection)], "since": "1h"}
        )
        assert not triage.is_error, triage.content[0].text
        assert triage.structured_content["traces"] == 8


async def test_serve_http_collect_shares_the_token_and_makes_the_directory_a_root(tmp_path):
    """Over HTTP: one token for both endpoints; the collection directory (outside the
    working directory and not existing yet) is readable by the tools."""
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    token = "serve-collect-token-0123456789"
    collection = tmp_path / "elsewhere" / "collection"
    mcp_port, port = free_port(), free_port()
    serve = [sys.executable, "-m", "halo_mcp", "serve", "--http", "--port", str(mcp_port)]
    proc = await anyio.open_process(
        [*serve, "--collect", str(collection), "--collect-port", str(port)],
        env={**os.environ, "HALO_CACHE_DIR": str(tmp_path / "cache"), "HALO_MCP_TOKEN": token},
        cwd=tmp_path,
    )
    try:
        with anyio.fail_after(60):
            for wanted in (mcp_port, port):
                while True:
                    try:
                        await anyio.connect_tcp("127.0.0.1", wanted)
                        break
                    except OSError:
                        await anyio.sleep(0.1)
        url = f"http://127.0.0.1:{port}/v1/traces"
        denied = partial(run_export, url, traces=1)
        with pytest.raises(AssertionError, match="exporter failed"):
            await anyio.to_thread.run_sync(denied)  # no token: 401, not retried
        auth = {"Authorization": f"Bearer {token}"}
        sent, _ = await anyio.to_thread.run_sync(partial(run_export, url, traces=4, headers=auth))
        http = create_mcp_http_client(headers=auth)
        mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
        async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
            page = await client.call_tool("query_spans", {"trace_paths": [str(collection)]})
            assert not page.is_error, page.content[0].text
            assert page.structured_content["total"] == len(sent)
    finally:
        proc.terminate()
        await proc.aclose()  # waits, and closes its pipes while the loop still runs
