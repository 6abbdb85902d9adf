"""MCP server figures: cold start to the tools/list answer over stdio, and query_spans latency
through MCP against the direct store call on the same query.

    python bench/bench_mcp.py [--starts 5] [--queries 200] [--traces 300]

Goals: cold start under 1 s; MCP overhead on query_spans under 5 ms at p50. Trace data is
generated into bench/data/ (git-ignored); the index and run store go to a temporary dir.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUERY = {"filter": {"errors_only": True}, "limit": 20, "sort": "start_time"}


#: An MCP client's opening: initialize, initialized, then tools/list (id 2 answers it).
HANDSHAKE = [
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "0"},
        },
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
]


def cold_start(runs: int, env: dict[str, str]) -> list[float]:
    """Seconds from spawning `python -m halo_mcp serve` to the tools/list response."""
    payload = "".join(json.dumps(m) + "\n" for m in HANDSHAKE).encode()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "halo_mcp", "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        assert proc.stdin and proc.stdout
        proc.stdin.write(payload)
        proc.stdin.flush()
        tools = None
        for line in proc.stdout:
            message = json.loads(line)
            if message.get("id") == 2:
                tools = message["result"]["tools"]
                break
        times.append(time.perf_counter() - started)
        proc.stdin.close()
        proc.wait(10)
        assert tools, "no tools/list answer"
    return times


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {p50 * 1000:7.2f} ms  p95 {p95 * 1000:7.2f} ms"


def _timed(times: list[float], cpu: list[float], started: float, cpu_started: float) -> None:
    times.append(time.perf_counter() - started)
    cpu.append(time.process_time() - cpu_started)


def query_latency(trace_file: Path, queries: int) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU seconds per query_spans call: direct, server-side only, and end to end."""
    import anyio
    from mcp import Client

    from halo_mcp.server import ServerSettings, create_server
    from halo_mcp.store.models import SpanFilter
    from halo_mcp.store.store import open_store

    store = open_store([trace_file])
    span_filter = SpanFilter.model_validate(QUERY["filter"])
    direct: tuple[list[float], list[float]] = ([], [])
    for _ in range(queries):
        started, cpu_started = time.perf_counter(), time.process_time()
        store.query_spans(span_filter, sort="start_time", limit=QUERY["limit"])
        _timed(*direct, started, cpu_started)
    store.close()
    args = {"trace_paths": [str(trace_file)], **QUERY}

    async def through_mcp(mode: str) -> tuple[list[float], list[float]]:
        out: tuple[list[float], list[float]] = ([], [])
        async with Client(create_server(ServerSettings()), mode=mode) as client:
            await client.call_tool("query_spans", args)  # opens the store once
            for _ in range(queries):
                started, cpu_started = time.perf_counter(), time.process_time()
                result = await client.call_tool("query_spans", args)
                _timed(*out, started, cpu_started)
                assert not result.is_error, result.content[0].text
        return out

    async def server_side() -> tuple[list[float], list[float]]:
        """The server's own work: MCPServer.call_tool, no transport, no client validation."""
        out: tuple[list[float], list[float]] = ([], [])
        server = create_server(ServerSettings())
        lifespan = server._lowlevel_server.lifespan(server._lowlevel_server)
        async with lifespan as state:
            from mcp.server.context import ServerRequestContext
            from mcp.server.mcpserver import Context

            request = ServerRequestContext(
                session=None, lifespan_context=state, protocol_version="2026-07-28", method="x"
            )
            ctx = Context(request_context=request, mcp_server=server)
            await server.call_tool("query_spans", args, ctx)
            for _ in range(queries):
                started, cpu_started = time.perf_counter(), time.process_time()
                await server.call_tool("query_spans", args, ctx)
                _timed(*out, started, cpu_started)
        return out

    return {
        "direct store call": direct,
        "server side (call_tool)": anyio.run(server_side),
        "MCP in-memory (2026-07-28)": anyio.run(through_mcp, "auto"),
        "MCP in-memory (legacy)": anyio.run(through_mcp, "legacy"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--traces", type=int, default=300)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="halo-bench-mcp-"))
    os.environ["HALO_CACHE_DIR"] = str(work / "cache")
    os.environ["HALO_DATA_DIR"] = str(work / "data")
    env = {**os.environ}

    data = ROOT / "bench" / "data"
    data.mkdir(parents=True, exist_ok=True)
    trace_file = data / f"mcp_bench_{args.traces}.jsonl"
    if not trace_file.exists():
        from halo_mcp.synth import generate

        generate(trace_file, traces=args.traces, seed=11)

    starts = cold_start(args.starts, env)
    print(
        f"cold start to tools/list over stdio ({args.starts} runs): "
        f"median {statistics.median(starts):.3f} s, min {min(starts):.3f} s, "
        f"max {max(starts):.3f} s (goal < 1 s)"
    )

    size_mb = trace_file.stat().st_size / 1e6
    print(
        f"query_spans {json.dumps(QUERY)} on {trace_file.name} ({size_mb:.1f} MB), "
        f"{args.queries} calls each:"
    )
    results = query_latency(trace_file, args.queries)
    for name, (wall, cpu) in results.items():
        cpu_ms = statistics.median(cpu) * 1000
        print(f"  {name:28s} wall {percentiles(wall)} | cpu p50 {cpu_ms:.2f} ms")
    base_wall = statistics.median(results["direct store call"][0])
    base_cpu = statistics.median(results["direct store call"][1])
    for name, (wall, cpu) in results.items():
        if name != "direct store call":
            wall_ms = (statistics.median(wall) - base_wall) * 1000
            cpu_ms = (statistics.median(cpu) - base_cpu) * 1000
            print(
                f"  overhead at p50, {name}: wall {wall_ms:.2f} ms, cpu {cpu_ms:.2f} ms"
                " (goal < 5 ms)"
            )
    print(f"  (load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
