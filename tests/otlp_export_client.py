"""A real OpenTelemetry SDK program exporting agent-like spans with the real OTLP/HTTP
protobuf exporter (run as a subprocess by the receiver tests and the Phoenix test).

Usage: python tests/otlp_export_client.py '{"endpoint": URL, "traces": 20, "batch": 10,
"compression": "gzip" | "none", "tag": "run-a", "headers": {...}, "stop_on_failure": false}'

Each trace is an `invoke_agent` root with an LLM call and a tool call (every third tool
call fails). Spans are exported `batch` at a time through OTLPSpanExporter.export; after
each batch the exporter reports success, the program prints one line per span:
`ACK <trace_id> <span_id>` (flushed), so a test knows exactly what was acknowledged.
At the end it prints `DONE <ok batches> <failed batches>` and exits 0 when all succeeded.
"""

from __future__ import annotations

import json
import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import Status, StatusCode


class Keep(SpanProcessor):
    """Keeps ended spans in memory; the program exports them in batches itself."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def main() -> int:
    options = json.loads(sys.argv[1])
    tag = options.get("tag", "run")
    keep = Keep()
    provider = TracerProvider(resource=Resource.create({"service.name": f"agent-{tag}"}))
    provider.add_span_processor(keep)
    tracer = provider.get_tracer("halo-test-harness")
    for i in range(int(options.get("traces", 10))):
        with tracer.start_as_current_span(
            "invoke_agent planner",
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"},
        ):
            with tracer.start_as_current_span(
                "chat gpt-test",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-test",
                    "gen_ai.usage.input_tokens": 100 + i,
                    "gen_ai.usage.output_tokens": 20,
                },
            ):
                pass
            with tracer.start_as_current_span(
                "execute_tool search",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "search",
                    "test.tag": tag,
                    "test.index": i,
                },
            ) as tool:
                if i % 3 == 0:
                    tool.set_status(Status(StatusCode.ERROR, f"search timed out after {i}s"))
    compression = Compression.Gzip if options.get("compression") == "gzip" else None
    exporter = OTLPSpanExporter(
        endpoint=options["endpoint"],
        compression=compression,
        headers=options.get("headers"),
        timeout=float(options.get("timeout", 10)),
    )
    batch = int(options.get("batch", 50))
    ok = failed = 0
    for start in range(0, len(keep.spans), batch):
        spans = keep.spans[start : start + batch]
        if exporter.export(spans) == SpanExportResult.SUCCESS:
            ok += 1
            lines = [f"ACK {s.context.trace_id:032x} {s.context.span_id:016x}" for s in spans]
            print("\n".join(lines), flush=True)
        else:
            failed += 1
            if options.get("stop_on_failure"):
                break
    exporter.shutdown()
    print(f"DONE {ok} {failed}", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
