"""`halo-mcp overview PATH...` and `halo-mcp query PATH... [filters]`: the trace store
from a terminal, as readable tables or (`--json`) as the same models the MCP tools return."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from halo_mcp.cli import EXIT_OK, Subcommands
from halo_mcp.cli.options import add_read_options
from halo_mcp.cli.output import fail, notice, print_json, table
from halo_mcp.cli.window import window_from_args

# The store is imported by the handlers when they run, so that `halo-mcp --help` and
# `halo-mcp serve` do not pay for it at start-up.
if TYPE_CHECKING:
    from halo_mcp.store import LoadReport, Overview, SpanFilter
    from halo_mcp.store.api import TraceReader


_QUERY_DESCRIPTION = """\
Select spans with filters combined by AND; prints a table and the cursor of the next page."""


def register(subparsers: Subcommands) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("paths", nargs="+", metavar="PATH", help="Trace files or directories.")
    add_read_options(common, json_help="Print JSON instead of tables.")

    overview = subparsers.add_parser(
        "overview",
        parents=[common],
        help="Summarize a trace set: counts, tools, error signatures, bad lines.",
        description="Index the traces (or reuse the index) and print a dataset overview.",
    )
    overview.set_defaults(handler=run_overview)

    query = subparsers.add_parser(
        "query",
        parents=[common],
        help="List spans matching filters (AND), one page at a time.",
        description=_QUERY_DESCRIPTION,
    )
    query.add_argument("--trace-id", action="append", help="Only this trace (repeatable).")
    query.add_argument("--span-id", action="append", help="Only this span (repeatable).")
    query.add_argument("--name", help="Span name, exact or a glob with * and ?.")
    query.add_argument(
        "--kind", action="append", help="agent, llm, tool, chain, guardrail, other (repeatable)."
    )
    query.add_argument("--errors", action="store_true", help="Only spans with error status.")
    query.add_argument("--service", help="Service name (service.name), exact.")
    query.add_argument("--agent", help="Name of the agent that ran the span, exact.")
    query.add_argument("--model", help="LLM model name, exact.")
    query.add_argument("--tool", help="Tool name, exact.")
    query.add_argument(
        "--min-duration-ms", type=float, metavar="MS", help="Spans lasting at least MS ms."
    )
    query.add_argument(
        "--max-duration-ms", type=float, metavar="MS", help="Spans lasting at most MS ms."
    )
    query.add_argument(
        "--start-after", metavar="T", help="Spans (not traces) starting at or after T."
    )
    query.add_argument("--start-before", metavar="T", help="Spans starting before T.")
    query.add_argument(
        "--attr", action="append", metavar="KEY=VALUE", help="Attribute equals (repeatable)."
    )
    query.add_argument("--text", metavar="REGEX", help="Regex over span content (any case).")
    query.add_argument(
        "--trace-rule",
        metavar="JSON",
        help='Only spans of traces satisfying a trace rule, e.g. \'{"kind": "repeated_call", '
        '"tool_name": "http_get", "min_count": 3}\' (kinds: repeated_call, step_limit, '
        "no_final_answer, ends_after_tool_error, followed_by, trace_duration, trace_tokens).",
    )
    query.add_argument(
        "--sort",
        default="start_time",
        help="Order: start_time, -start_time, duration, -duration, tokens, -tokens ('-' for "
        "descending; default start_time).",
    )
    query.add_argument(
        "--limit", type=int, default=20, metavar="N", help="Spans per page, 1-10000 (default 20)."
    )
    query.add_argument("--cursor", help="The next-page cursor printed by the previous call.")
    query.add_argument(
        "--fields",
        metavar="F1,F2",
        help="Comma-separated span fields to show; valid: "
        # halo_mcp.store.models.SPAN_FIELDS, spelled out to keep `--help` fast
        "trace_id, span_id, parent_span_id, name, kind, status, error_message, start_time, "
        "duration_ms, service, agent, model, tool_name, input_tokens, output_tokens, "
        "session_id, source, input, output, attributes, events (default: all but service, "
        "session_id, source and the content fields input, output, attributes, events).",
    )
    query.add_argument(
        "--max-chars",
        type=int,
        default=2000,
        metavar="N",
        help="Cut each string at N chars (default 2000).",
    )
    query.set_defaults(handler=run_query)


def _open(args: argparse.Namespace) -> TraceReader:
    """The store of the paths, scoped to --since/--until; ValueError for a bad window."""
    from halo_mcp.store import open_store

    window = window_from_args(args)
    return open_store(args.paths, cache_dir=args.cache_dir, notify=notice, window=window)


def _time(text: str, flag: str) -> datetime:
    from halo_mcp.store.timewindow import parse_time_point

    try:
        return parse_time_point(text)
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None


def _attr_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _trace_rule(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(
            f'--trace-rule is not JSON ({exc}); e.g. \'{{"kind": "no_final_answer"}}\''
        ) from None


def build_filter(args: argparse.Namespace) -> SpanFilter | None:
    """The SpanFilter the flags describe; ValueError (with a readable message) if invalid."""
    from halo_mcp.store import SpanFilter

    attributes = {}
    for item in args.attr or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--attr {item!r} should be KEY=VALUE, e.g. --attr tool.name=search")
        attributes[key] = _attr_value(value)
    values = {
        "trace_ids": args.trace_id,
        "span_ids": args.span_id,
        "name": args.name,
        "kind": args.kind,
        "errors_only": args.errors,
        "service": args.service,
        "agent": args.agent,
        "model": args.model,
        "tool_name": args.tool,
        "min_duration_ms": args.min_duration_ms,
        "max_duration_ms": args.max_duration_ms,
        "start_after": _time(args.start_after, "--start-after") if args.start_after else None,
        "start_before": _time(args.start_before, "--start-before") if args.start_before else None,
        "attributes": attributes or None,
        "text": args.text,
        "trace_rule": _trace_rule(args.trace_rule) if args.trace_rule else None,
    }
    try:
        return SpanFilter(**{k: v for k, v in values.items() if v not in (None, False)})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        from halo_mcp.store.models import filter_help

        raise ValueError(f"invalid filter: {problems}. {filter_help()}") from None


def run_overview(args: argparse.Namespace) -> int:
    from halo_mcp.store import StoreError

    try:
        with _open(args) as store:
            view = store.overview()
            report = store.report
    except (StoreError, ValueError) as exc:
        return fail(str(exc))
    if args.json:
        print_json(view)
        return EXIT_OK
    sys.stdout.write(render_overview(view, report) + "\n")
    return EXIT_OK


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def render_overview(view: Overview, report: LoadReport) -> str:

    out = []
    files = ", ".join(f"{f.path} ({f.format}, {f.spans} spans)" for f in view.files)
    out.append(f"Files: {files}")
    for skipped in view.skipped_files:
        out.append(f"Skipped: {skipped.path}: {skipped.reason}")
    out.append(
        f"Traces: {view.traces}  Spans: {view.spans}  Error spans: {view.error_spans}  "
        f"Traces with errors: {view.error_traces} ({_pct(view.error_traces, view.traces)})"
    )
    if view.start_time and view.end_time:
        out.append(f"Time range: {view.start_time.isoformat()} .. {view.end_time.isoformat()}")
    out.append(f"Tokens: {view.tokens.input} in, {view.tokens.output} out")
    notes = []
    if view.duplicate_spans:
        notes.append(f"{view.duplicate_spans} duplicate spans skipped")
    if view.orphan_spans:
        notes.append(f"{view.orphan_spans} orphan spans (parent missing)")
    if view.rootless_traces:
        notes.append(f"{view.rootless_traces} traces without root")
    notes += view.notes
    if notes:
        out.append("Notes: " + "; ".join(notes))
    out.append(f"Bad lines: {view.bad_lines}")
    for bad in report.bad_line_examples:
        out.append(f"  {bad.file}:{bad.line}: {bad.reason}")
    if view.bad_lines > len(report.bad_line_examples):
        out.append(f"  … {view.bad_lines - len(report.bad_line_examples)} more")
    for title, items in (
        ("Services", view.services),
        ("Agents", view.agents),
        ("Models", view.models),
        ("Span kinds", view.span_kinds),
    ):
        if items:
            out.append(f"{title}: " + ", ".join(f"{i.name} ({i.count})" for i in items[:10]))
    if view.tools:
        out.append("")
        out.append("Tools")
        rows = [(t.name, t.calls, t.errors, _pct(t.errors, t.calls)) for t in view.tools[:20]]
        out.append(table(["tool", "calls", "errors", "error rate"], rows))
    if view.error_signatures:
        out.append("")
        out.append("Top error signatures")
        signature_rows = [
            (s.traces, s.spans, s.span_name, s.message, s.example_trace_ids[0])
            for s in view.error_signatures
        ]
        out.append(
            table(["traces", "spans", "span/tool", "message", "example trace"], signature_rows)
        )
    if view.sample_trace_ids:
        out.append("")
        out.append("Sample trace ids: " + ", ".join(view.sample_trace_ids))
    return "\n".join(out)


def run_query(args: argparse.Namespace) -> int:
    from halo_mcp.store import DEFAULT_SPAN_FIELDS, StoreError

    try:
        flt = build_filter(args)
    except ValueError as exc:
        return fail(str(exc))
    fields = (
        [f.strip() for f in args.fields.split(",") if f.strip()]
        if args.fields
        else list(DEFAULT_SPAN_FIELDS)
    )
    try:
        with _open(args) as store:
            page = store.query_spans(
                flt,
                sort=args.sort,
                limit=args.limit,
                cursor=args.cursor,
                fields=fields,
                max_chars=args.max_chars,
            )
    except (StoreError, ValueError) as exc:
        return fail(str(exc))
    if args.json:
        print_json(page)
        return EXIT_OK
    rows = []
    for span in page.spans:
        data = span.model_dump(mode="json")
        rows.append([_cell(data.get(f)) for f in fields])
    sys.stdout.write(table(fields, rows) + "\n")
    shown = len(page.spans)
    summary = f"{shown} of {page.total} spans"
    if page.clipped_values:
        summary += f"; {page.clipped_values} values cut at {page.max_chars} chars"
    sys.stdout.write(summary + "\n")
    if page.next_cursor:
        sys.stdout.write(f"next page: --cursor {page.next_cursor}\n")
    return EXIT_OK


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value
