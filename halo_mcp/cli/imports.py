"""`halo-mcp import phoenix`: pull spans from a tracing backend into a trace file.

Langfuse is not offered: its API could only be tested against a real Langfuse server,
which needs Postgres and ClickHouse (not available where the tests run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from halo_mcp.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Subcommands
from halo_mcp.settings import Environment

_PHOENIX_DESCRIPTION = """\
Page through a Phoenix project's spans (oldest first) and append them to FILE as OTLP JSON
lines. Resumable: a re-run with the same -o continues where the last one stopped, then
fetches only new spans. Progress goes to stderr."""


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "import", help="Pull spans from a tracing backend into a trace file halo-mcp reads."
    )
    sources = parser.add_subparsers(dest="source", metavar="SOURCE")
    phoenix = sources.add_parser(
        "phoenix",
        help="From a running Arize Phoenix server (its REST API).",
        description=_PHOENIX_DESCRIPTION,
    )
    phoenix.add_argument("--url", required=True, help="Phoenix URL, e.g. http://127.0.0.1:6006")
    phoenix.add_argument("--project", default="default", help="project name (default 'default')")
    phoenix.add_argument(
        "--since",
        metavar="T",
        help="only spans starting at or after T: relative (24h, 7d) or ISO 8601",
    )
    phoenix.add_argument("--until", metavar="T", help="only spans starting before T")
    phoenix.add_argument("-o", "--output", required=True, type=Path, help="the trace file")
    phoenix.add_argument(
        "--page-size", type=int, default=500, metavar="N", help="spans per request (1-1000)"
    )
    phoenix.add_argument("--max-pages", type=int, metavar="N", help="stop after N pages")
    phoenix.add_argument(
        "--api-key-env",
        default="PHOENIX_API_KEY",
        metavar="NAME",
        help="env var holding a Phoenix API key, if the server needs one",
    )
    phoenix.set_defaults(handler=run_phoenix)
    parser.set_defaults(handler=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def run_phoenix(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from halo_mcp.cli.output import first_error_message
    from halo_mcp.importers.phoenix import PhoenixImport, PhoenixImportError, import_phoenix
    from halo_mcp.store.timewindow import time_window

    try:
        window = time_window(args.since, args.until)
        job = PhoenixImport(
            url=args.url,
            project=args.project,
            output=args.output,
            page_size=args.page_size,
            max_pages=args.max_pages,
            api_key=Environment.variable(args.api_key_env) or None,
            window=window,
        )
    except (ValidationError, ValueError) as exc:
        print(f"halo-mcp import phoenix: {first_error_message(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = import_phoenix(job, lambda line: print(line, file=sys.stderr, flush=True))
    except PhoenixImportError as exc:
        print(f"halo-mcp import phoenix: {exc}", file=sys.stderr)
        return EXIT_FAILED
    more = "" if result.finished else " (stopped at --max-pages: run again to continue)"
    print(
        f"imported {result.spans_added} new spans ({result.spans_total} in {result.output}){more}",
        file=sys.stderr,
    )
    return EXIT_OK
