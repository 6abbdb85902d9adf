"""Load on one shared HTTP server: 20 MCP clients querying spans while 3 analyses run.

    python bench/bench_load.py                         # 100 MB, 20 clients, 1,000 calls
    python bench/bench_load.py --calls 400 --size-mb 50

Starts `halo-mcp serve --http` on 127.0.0.1 (a real subprocess, so its RSS and CPU are
measured alone, its text-scan worker processes counted as part of it) and the fake
OpenAI-compatible server from tests/fakes. Trace data is generated once
under bench/data/ (git-ignored) by halo_mcp.synth; the index, the run store and the server
log go to a temporary directory. Each client is a real `mcp.Client` over Streamable HTTP
(the clients are spread over `--client-procs` processes, 4 by default, as separate clients
would be: one event loop serving all of them adds its own queueing to each latency)
issuing a realistic mix of `query_spans` calls: indexed filters (errors, kind, tool, agent,
model, duration, one trace), all sorts, paging through `next_cursor`, and about 10% text
filters. Meanwhile three analyses start against the fake provider; with
`--max-concurrent-runs 2` (the default) the third waits and reports its queue position.

Prints calls, errors, p50/p95/p99 for indexed and text filters, throughput, the server's
RSS before, at peak and after, and whether the analyses finished. Goals: 0 errors, p99
under 500 ms for indexed filters, peak RSS under 250 MB and back within 1.5x after.
`--scan-processes 0` runs the same load with text scans in the server's own threads (the
baseline before scan workers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.fakes

TEXT_PATTERNS = (
    "rate limit",
    "timed out|timeout",
    r"error\s+\d{3}",
    "no such file",
    "permission denied",
)
SORTS = ("start_time", "-start_time", "duration", "-duration", "tokens", "-tokens")
FINDING = {
    "title": "Tool calls fail with file-not-found and the agent retries blindly",
    "category": "tool_use",
    "severity": "medium",
    "description": "read_file is called with paths that do not exist.",
    "root_cause": "Paths are guessed instead of listed first.",
    "suggested_change": "List the directory before reading.",
    "validation": "Count read_file errors.",
    "evidence": [],
    "matcher": {"errors_only": True, "kind": ["tool"]},
}


@dataclass
class Figures:
    indexed: list[float] = field(default_factory=list)
    #: Indexed-filter calls after each client's first call (its session's warm-up: the
    #: client fetches the tool list, the server sets up the session's state).
    indexed_warm: list[float] = field(default_factory=list)
    text: list[float] = field(default_factory=list)
    #: Each client's tools/list right after it connected.
    connect: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    queue_positions: list[int] = field(default_factory=list)
    #: (seconds into the run, latency, arguments) of every call, to see when slow ones happen
    timeline: list[tuple[float, float, str]] = field(default_factory=list)
    analyses: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def family(pid: int) -> list[int]:
    """The process and its live descendants (the server's scan workers count as the server)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(child) for child in task.read_text().split())
    return pids


def rss_by_pid(pid: int) -> dict[int, float]:
    """Resident memory (MB) of the process and of each of its descendants."""
    sizes = {}
    for member in family(pid):
        with contextlib.suppress(OSError), open(f"/proc/{member}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    sizes[member] = int(line.split()[1]) / 1024
    return sizes


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its descendants."""
    return sum(rss_by_pid(pid).values())


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process and its live descendants (all threads)."""
    total = 0.0
    for member in family(pid):
        with contextlib.suppress(OSError), open(f"/proc/{member}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def generate(size_mb: float, data_dir: Path) -> Path:
    """The same generator and seed as bench_store.py: the file is shared when present."""
    path = data_dir / f"realistic-{int(size_mb)}mb.jsonl"
    if not path.exists():
        from halo_mcp.synth import generate as synth

        data_dir.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ...", file=sys.stderr)
        synth(str(path), size_mb=size_mb, seed=1, profile="realistic")
    return path


def fake_provider() -> Any:
    """The fake OpenAI server answering every analysis: an overview, a pause, a finding."""
    from tests.fakes.openai_server import FakeOpenAIServer, delay, tool_call

    fake = FakeOpenAIServer().start()

    def respond(request: dict) -> Any:
        answered = sum(1 for m in request.get("messages", []) if m.get("role") == "tool")
        if answered == 0:
            return delay(1.0, then=tool_call("get_overview", {}))
        if answered == 1:
            return tool_call("query_spans", {"filter": {"errors_only": True}, "limit": 5})
        return delay(
            1.0, then=tool_call("submit_findings", {"findings": [FINDING], "summary": "x"})
        )

    fake.responder = respond
    return fake


@contextlib.contextmanager
def server(
    traces: Path, work: Path, base_url: str, scan_processes: int | None
) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    env = {
        **os.environ,
        "HALO_CACHE_DIR": str(work / "cache"),
        "HALO_DATA_DIR": str(work / "data"),
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "sk-bench-fake",
        "HALO_MODEL": "fake-model",
    }
    log = open(work / "server.log", "wb")  # noqa: SIM115
    argv = [sys.executable, "-m", "halo_mcp", "serve", "--http", "--port", str(port)]
    if scan_processes is not None:
        argv += ["--scan-processes", str(scan_processes)]
    proc = subprocess.Popen(
        [*argv, "--root", str(traces.parent)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"the server did not start; see {work / 'server.log'}")
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}/mcp", proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def query_mix(
    rng: random.Random, trace_ids: list[str], tools: list[str], text_share: float
) -> tuple[dict, bool]:
    """One query_spans argument set and whether it is a text filter (`text_share` of them)."""
    if rng.random() < text_share:
        flt: dict[str, Any] = {"text": rng.choice(TEXT_PATTERNS)}
        if rng.random() < 0.5:
            flt["kind"] = [rng.choice(["tool", "llm"])]
        return {"filter": flt, "limit": 10}, True
    choice = rng.randrange(7)
    if choice == 0:
        flt = {"errors_only": True}
    elif choice == 1:
        flt = {"kind": [rng.choice(["tool", "llm", "agent"])]}
    elif choice == 2:
        flt = {"tool_name": rng.choice(tools), "errors_only": rng.random() < 0.5}
    elif choice == 3:
        flt = {"trace_ids": [rng.choice(trace_ids)]}
    elif choice == 4:
        flt = {"min_duration_ms": rng.choice([500, 2000, 10000])}
    elif choice == 5:
        flt = {"kind": ["llm"], "errors_only": True}
    else:
        flt = {}
    return {"filter": flt, "sort": rng.choice(SORTS), "limit": rng.choice([10, 20, 50])}, False


async def client_loop(
    url: str, paths: list[str], calls: int, seed: int, shared: dict, figures: Figures
) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    rng = random.Random(seed)
    async with Client(streamable_http_client(url)) as client:
        # Connected as MCP clients connect: they list the tools (and keep their schemas)
        # before their first call. Timed apart: it is not a query_spans call.
        began = time.perf_counter()
        await client.list_tools()
        figures.connect.append(time.perf_counter() - began)
        for number in range(calls):
            args, is_text = query_mix(
                rng, shared["trace_ids"], shared["tools"], shared["text_share"]
            )
            began = time.perf_counter()
            try:
                result = await client.call_tool("query_spans", {"trace_paths": paths, **args})
            except Exception as exc:
                figures.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - began
            (figures.text if is_text else figures.indexed).append(elapsed)
            if number > 0 and not is_text:
                figures.indexed_warm.append(elapsed)
            figures.timeline.append((began - shared["began"], elapsed, json.dumps(args)))
            if result.is_error:
                figures.errors.append(result.content[0].text[:200])
                continue
            cursor = (result.structured_content or {}).get("next_cursor")
            if cursor and not is_text and rng.random() < 0.3:  # page on, as agents do
                began = time.perf_counter()
                more = await client.call_tool(
                    "query_spans", {"trace_paths": paths, **args, "cursor": cursor}
                )
                figures.indexed.append(time.perf_counter() - began)
                figures.indexed_warm.append(figures.indexed[-1])
                if more.is_error:
                    figures.errors.append(more.content[0].text[:200])


async def analysis(url: str, paths: list[str], index: int, figures: Figures) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with Client(streamable_http_client(url)) as client:
        started = await client.call_tool(
            "analyze_traces",
            {"trace_paths": paths, "prompt": f"Find failures ({index})", "wait_seconds": 1},
        )
        if started.is_error:
            figures.analyses.append(f"refused: {started.content[0].text[:200]}")
            return
        run = started.structured_content
        if run.get("queue_position") is not None:
            figures.queue_positions.append(run["queue_position"])
        while not run.get("done"):
            polled = await client.call_tool("get_run", {"run_id": run["run_id"], "wait_seconds": 5})
            if polled.is_error:
                figures.analyses.append(f"poll failed: {polled.content[0].text[:200]}")
                return
            run = polled.structured_content
            if run.get("queue_position") is not None:
                figures.queue_positions.append(run["queue_position"])
        figures.analyses.append(run["status"])


async def clients_and_analyses(
    url: str, paths: list[str], clients: list[int], analyses: int, calls: int, shared: dict
) -> tuple[Figures, float]:
    """Run these clients and analyses in this process; its figures and CPU seconds."""
    figures, cpu = Figures(), time.process_time()
    await asyncio.gather(
        *(client_loop(url, paths, calls, i, shared, figures) for i in clients),
        *(analysis(url, paths, i, figures) for i in range(analyses)),
    )
    return figures, time.process_time() - cpu


async def drive(
    url: str, paths: list[str], args: argparse.Namespace, figures: Figures
) -> tuple[float, float]:
    """Run the clients (in `args.client_procs` processes) and the analyses (here); the
    elapsed seconds and the CPU seconds of all the clients."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with Client(streamable_http_client(url)) as client:  # warm: the index is built
        first = await client.call_tool(
            "query_spans", {"trace_paths": paths, "limit": 50, "fields": ["trace_id"]}
        )
        overview = await client.call_tool("trace_overview", {"trace_paths": paths})
    shared = {
        "trace_ids": sorted({s["trace_id"] for s in first.structured_content["spans"]}),
        "tools": [t["name"] for t in overview.structured_content["tools"]][:10] or ["read_file"],
        "text_share": args.text_share,
        "began": 0.0,
    }
    per_client = max(1, args.calls // args.clients)
    procs = max(1, min(args.client_procs, args.clients))
    if procs == 1:
        began = shared["began"] = time.perf_counter()
        got, cpu = await clients_and_analyses(
            url, paths, list(range(args.clients)), args.analyses, per_client, shared
        )
        merge(figures, got)
        return time.perf_counter() - began, cpu
    # Clients in processes of their own, as real clients are: one Python event loop
    # serving all 20 would add its own queueing to every latency measured.
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(procs + 1), ctx.Queue()
    workers = []
    for n in range(procs):
        mine = list(range(n, args.clients, procs))
        worker = ctx.Process(
            target=client_process,
            args=(url, paths, mine, per_client, shared, start, out),
        )
        worker.start()
        workers.append(worker)
    await asyncio.to_thread(start.wait)  # every process has imported the MCP client
    began = time.perf_counter()
    ours = asyncio.create_task(clients_and_analyses(url, paths, [], args.analyses, 0, shared))
    cpu = 0.0
    for _ in workers:
        got, used = await asyncio.to_thread(out.get)
        merge(figures, got)
        cpu += used
    got, used = await ours
    merge(figures, got)
    for worker in workers:
        worker.join()
    return time.perf_counter() - began, cpu + used


def client_process(
    url: str, paths: list[str], clients: list[int], calls: int, shared: dict, start: Any, out: Any
) -> None:
    """One process of clients: imports the MCP client, waits for the common start (the
    monotonic clock is the same in every process), runs, and sends back its figures."""
    # Imported before the clock starts: the transport, and jsonschema, which the SDK
    # client imports on the first result it validates (60 ms of this process's CPU, paid
    # inside whichever call comes first: a cost of the Python client, not of the server).
    import jsonschema  # noqa: F401
    import mcp.client.streamable_http  # noqa: F401

    start.wait()
    shared = {**shared, "began": time.perf_counter()}
    out.put(asyncio.run(clients_and_analyses(url, paths, clients, 0, calls, shared)))


def merge(into: Figures, got: Figures) -> None:
    for name in Figures.__dataclass_fields__:
        getattr(into, name).extend(getattr(got, name))


def sample_peak(pid: int, stop: threading.Event, peak: list[float]) -> None:
    while not stop.is_set():
        with contextlib.suppress(OSError):
            sizes = rss_by_pid(pid)
            peak[0] = max(peak[0], sum(sizes.values()))
            peak[1] = max(peak[1], sizes.get(pid, 0.0))
        stop.wait(0.05)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=100)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--calls", type=int, default=1000, help="query_spans calls in all")
    parser.add_argument("--text-share", type=float, default=0.1, help="share of text filters")
    parser.add_argument("--analyses", type=int, default=3, help="analyses started meanwhile")
    parser.add_argument(
        "--client-procs",
        type=int,
        default=4,
        help="processes the clients run in (1: all in this one, as before)",
    )
    parser.add_argument(
        "--scan-processes",
        type=int,
        help="the server's text-scan worker processes (default: the server's, 1 over HTTP; "
        "0 scans in the server's own threads, the baseline)",
    )
    parser.add_argument("--slowest", type=int, default=0, help="list the N slowest calls")
    parser.add_argument(
        "--settle-s", type=float, default=10, help="idle seconds before the 'after' RSS"
    )
    parser.add_argument("--data-dir", type=Path, default=ROOT / "bench" / "data")
    args = parser.parse_args()
    traces = generate(args.size_mb, args.data_dir)
    fake = fake_provider()
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="halo-load-") as tmp:
        work = Path(tmp)
        with server(traces, work, fake.base_url, args.scan_processes) as (url, proc):
            paths = [str(traces)]
            before_index = rss_mb(proc.pid)
            began = time.perf_counter()
            asyncio.run(_warm(url, paths))
            index_s = time.perf_counter() - began
            before = rss_mb(proc.pid)
            stop, peak = threading.Event(), [before, 0.0]
            sampler = threading.Thread(target=sample_peak, args=(proc.pid, stop, peak))
            sampler.start()
            cpu_before = cpu_s(proc.pid)
            elapsed, client_cpu = asyncio.run(drive(url, paths, args, figures))
            server_cpu = cpu_s(proc.pid) - cpu_before
            stop.set()
            sampler.join()
            time.sleep(args.settle_s)  # idle: freed memory may be given back
            after = rss_mb(proc.pid)
        server_errors = [
            line
            for line in (work / "server.log").read_text(errors="replace").splitlines()
            if "Error" in line or "Traceback" in line
        ]
        fake.stop()
        total = len(figures.indexed) + len(figures.text)
        print(
            f"== {args.clients} clients in {args.client_procs} process(es), {traces.name} "
            f"({traces.stat().st_size / 1e6:.0f} MB), scan processes: "
            f"{'server default' if args.scan_processes is None else args.scan_processes}"
        )
        print(f"index build (first call)   {index_s:7.1f} s")
        print(f"calls                      {total:7d}  ({len(figures.text)} with a text filter)")
        print(f"errors                     {len(figures.errors):7d}")
        for error in sorted(set(figures.errors))[:5]:
            print(f"    {error}")
        for line in sorted(set(server_errors))[:5]:
            print(f"    server log: {line[:300]}")
        for name, values in (
            ("indexed filters", figures.indexed),
            ("  after each first call", figures.indexed_warm),
            ("text filters", figures.text),
            ("connect (tools/list)", figures.connect),
        ):
            print(
                f"{name:<26} p50 {pct(values, 0.5):7.0f} ms  p95 {pct(values, 0.95):7.0f} ms  "
                f"p99 {pct(values, 0.99):7.0f} ms  max {pct(values, 1.0):7.0f} ms"
            )
        print(f"throughput                 {total / elapsed:7.1f} calls/s over {elapsed:.1f} s")
        print(
            f"CPU per call               server {1000 * server_cpu / total:5.1f} ms, "
            f"clients {1000 * client_cpu / total:5.1f} ms (load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )
        print(
            f"server RSS (+ workers)     {before_index:.0f} MB at start, {before:.0f} MB once "
            f"indexed, {peak[0]:.0f} MB at peak (server alone {peak[1]:.0f} MB), "
            f"{after:.0f} MB {args.settle_s:.0f} s after "
            f"({after / before:.2f}x the indexed start)"
        )
        done = statistics.multimode(figures.analyses) if figures.analyses else ["none"]
        print(f"analyses                   {figures.analyses} (most: {done[0]})")
        print(f"queue positions reported   {sorted(set(figures.queue_positions)) or 'none'}")
        if args.slowest:
            print("slowest calls (s into the run, ms, arguments):")
            for at, took, call in sorted(figures.timeline, key=lambda c: -c[1])[: args.slowest]:
                print(f"    {at:6.1f} s {1000 * took:7.0f} ms  {call[:110]}")


async def _warm(url: str, paths: list[str]) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with Client(streamable_http_client(url)) as client:
        result = await client.call_tool("query_spans", {"trace_paths": paths, "limit": 1})
        if result.is_error:
            raise RuntimeError(result.content[0].text)


if __name__ == "__main__":
    main()
