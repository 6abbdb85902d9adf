"""Benchmark of the OTLP receiver: spans/s received (durably) and indexed, vs one orjson pass.

    python bench/bench_collect.py                     # 200 batches of 512 spans
    python bench/bench_collect.py --batches 400 --senders 4

The receiver (`halo-mcp collect`) runs in its own process; `--senders` threads post
protobuf ExportTraceServiceRequests of 512 agent-like spans (6-9 attributes each) over
keep-alive HTTP connections. "Received" counts from the first request to the last
acknowledgement (every one fsync'ed). "Indexed" is a first open_store of the collection
directory. The baseline is one orjson.loads pass over the very lines the receiver wrote
(the same spans as OTLP JSON lines), in this process. RSS: the receiver's VmRSS after the
run (steady state) and its VmHWM (peak).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

BATCH = 512


def build_batches(count: int) -> list[bytes]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    out = []
    start = 1_760_000_000_000_000_000
    for b in range(count):
        request = ExportTraceServiceRequest()
        resource = request.resource_spans.add()
        attr = resource.resource.attributes.add()
        attr.key, attr.value.string_value = "service.name", "bench-agent"
        scope = resource.scope_spans.add()
        scope.scope.name = "bench"
        for i in range(BATCH):
            n = b * BATCH + i
            span = scope.spans.add()
            span.trace_id = (n // 8 + 1).to_bytes(16, "big")
            span.span_id = (n + 1).to_bytes(8, "big")
            if n % 8:
                span.parent_span_id = (n - n % 8 + 1).to_bytes(8, "big")
            span.name = ("invoke_agent planner", "chat gpt-test", "execute_tool search")[n % 3]
            span.kind = 1
            span.start_time_unix_nano = start + n * 1_000_000
            span.end_time_unix_nano = start + n * 1_000_000 + 700_000
            for key, value in (
                ("gen_ai.operation.name", ("invoke_agent", "chat", "execute_tool")[n % 3]),
                ("gen_ai.agent.name", "planner"),
                ("gen_ai.request.model", "gpt-test"),
                ("gen_ai.tool.name", "search"),
                ("input.value", f'{{"query": "find item {n}", "page": {n % 7}}}'),
                ("output.value", "result " * 8),
            ):
                kv = span.attributes.add()
                kv.key, kv.value.string_value = key, value
            kv = span.attributes.add()
            kv.key, kv.value.int_value = "gen_ai.usage.input_tokens", 100 + n % 50
            if n % 11 == 0:
                span.status.code, span.status.message = 2, f"search timed out after {n % 30}s"
        out.append(request.SerializeToString())
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("receiver exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("receiver did not start")


def send_all(port: int, batches: list[bytes], senders: int) -> tuple[float, int]:
    """Post every batch; returns (seconds, 429 answers retried)."""
    queue = list(reversed(batches))
    lock = threading.Lock()
    retried = [0]

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/x-protobuf"}
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            while True:
                conn.request("POST", "/v1/traces", body=body, headers=headers)
                answer = conn.getresponse()
                answer.read()
                if answer.status == 200:
                    break
                if answer.status != 429:
                    raise SystemExit(f"receiver answered {answer.status}")
                with lock:
                    retried[0] += 1
                time.sleep(0.01)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(senders)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - began, retried[0]


def proc_memory(pid: int) -> tuple[int, int]:
    rss = hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) // 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) // 1024
    return rss, hwm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--senders", type=int, default=4)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}; building {args.batches} protobuf batches of {BATCH} spans")
    batches = build_batches(args.batches)
    spans = args.batches * BATCH
    work = Path(tempfile.mkdtemp(prefix="bench-collect-"))
    collection, cache = work / "collection", work / "cache"
    port = free_port()
    command = [sys.executable, "-m", "halo_mcp", "collect", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--dir", str(collection), "--max-in-flight", str(max(8, args.senders))],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc)
        received_s, retried = send_all(port, batches, args.senders)
        time.sleep(0.5)
        rss, hwm = proc_memory(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    files = sorted(collection.glob("spans-*.jsonl"))
    size = sum(f.stat().st_size for f in files)

    os.environ["HALO_CACHE_DIR"] = str(cache)
    from halo_mcp.store import open_store

    began = time.perf_counter()
    with open_store([collection]) as store:
        indexed = store.count().spans
    index_s = time.perf_counter() - began
    assert indexed == spans, (indexed, spans)

    began = time.perf_counter()
    parsed = 0
    for path in files:
        with open(path, "rb") as handle:
            for line in handle:
                request = orjson.loads(line)
                parsed += sum(
                    len(s["spans"]) for r in request["resourceSpans"] for s in r["scopeSpans"]
                )
    orjson_s = time.perf_counter() - began
    assert parsed == spans

    protobuf_mb = sum(len(b) for b in batches) / 1e6
    print(f"spans: {spans} in {args.batches} requests ({protobuf_mb:.1f} MB protobuf), "
          f"{args.senders} senders; written {size / 1e6:.1f} MB OTLP JSON, "
          f"{len(files)} file(s)")  # fmt: skip
    print(f"received (fsync'ed, acknowledged): {spans / received_s:,.0f} spans/s "
          f"({received_s:.2f} s, {retried} 429 retries)")  # fmt: skip
    print(f"indexed (first open_store):        {spans / index_s:,.0f} spans/s ({index_s:.2f} s)")
    both = received_s + index_s
    print(f"received + indexed:                {spans / both:,.0f} spans/s ({both:.2f} s)")
    print(f"baseline, one orjson pass:         {spans / orjson_s:,.0f} spans/s ({orjson_s:.2f} s)")
    print(f"ratio received+indexed / orjson:   {orjson_s / both:.3f} "
          f"(receive alone {orjson_s / received_s:.3f})")  # fmt: skip
    print(f"receiver RSS at steady state: {rss} MB (peak {hwm} MB)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
