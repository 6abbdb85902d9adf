"""`halo-mcp serve`: run the MCP server (stdio by default, Streamable HTTP with --http).

`--test` is a self-check: it starts this same command over stdio in a subprocess, lists the
tools once, and prints one health line (a user can run it when a client says the server
failed to start).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from halo_mcp.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Subcommands
from halo_mcp.cli.collect import add_limit_options, collect_settings
from halo_mcp.cli.options import add_http_options, add_verbose_option, http_options
from halo_mcp.cli.output import first_error_message
from halo_mcp.excgroups import leaves
from halo_mcp.settings import Environment

# The MCP server and client are imported when `serve` runs, not when the parser is built:
# the other commands (and `--help`) must not pay for them at start-up.
if TYPE_CHECKING:
    from halo_mcp.server import ServerSettings

DEFAULT_PORT = 8765


_SERVE_DESCRIPTION = """\
Serve halo-mcp's tools over MCP. Over stdio (the default) stdout carries only the protocol
and logs go to stderr. With --http, clients connect to http://HOST:PORT/mcp with
'Authorization: Bearer <token>'."""


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="Run the MCP server over stdio, or Streamable HTTP with --http.",
        description=_SERVE_DESCRIPTION,
    )
    parser.add_argument("--http", action="store_true", help="serve Streamable HTTP, not stdio")
    add_http_options(parser, default_port=DEFAULT_PORT)
    parser.add_argument(
        "--root",
        action="append",
        default=[],
        metavar="DIR",
        help="allow trace paths only inside DIR (repeatable; over HTTP the default is the cwd)",
    )
    parser.add_argument(
        "--collect",
        type=Path,
        metavar="DIR",
        help="also receive OTLP/HTTP traces into DIR (see `halo-mcp collect`), on --host",
    )
    parser.add_argument(
        "--collect-port", type=int, default=4318, help="port of the receiver (default 4318)"
    )
    add_limit_options(parser, prefix="collect-")
    parser.add_argument(
        "--max-concurrent-runs",
        type=int,
        default=2,
        metavar="N",
        help="analyses running at once; more wait in a queue (default 2)",
    )
    parser.add_argument(
        "--scan-processes",
        type=int,
        metavar="N",
        help="worker processes for text scans, at a lower CPU priority, so a scan never "
        "slows other clients' queries (0: scan in the server; default 1 with --http, 0 "
        "over stdio)",
    )
    parser.add_argument("--model", help="LLM model for analyses (default: HALO_MODEL or built-in)")
    parser.add_argument(
        "--telemetry",
        action="store_true",
        help="trace each analysis with OpenTelemetry (also HALO_TELEMETRY=1); spans join the "
        "caller's trace when a request carries a traceparent in _meta",
    )
    parser.add_argument(
        "--test", action="store_true", help="start the server over stdio, list its tools, report"
    )
    add_verbose_option(parser)
    parser.set_defaults(handler=run)


def build_settings(args: argparse.Namespace) -> ServerSettings:
    from halo_mcp.server import ServerSettings

    return ServerSettings.from_env(
        engine={"model": args.model, "telemetry": True if args.telemetry else None},
        transport="http" if args.http else "stdio",
        roots=_roots(args),
        max_concurrent_runs=args.max_concurrent_runs,
        scan_processes=args.scan_processes,
        **http_options(args),
    )


def _roots(args: argparse.Namespace) -> list[Path]:
    """The --root folders; with --collect, the collection directory is readable too (over
    HTTP, or when roots are set: stdio without --root reads any path anyway)."""
    roots = [Path(r) for r in args.root]
    if args.collect is not None and (roots or args.http):
        roots = [*(roots or [Path.cwd()]), args.collect.expanduser()]
    return roots


def run(args: argparse.Namespace) -> int:
    from halo_mcp.collect.journal import JournalError

    if args.test:
        return self_test(args)
    try:
        if args.collect is not None:  # exists before it is checked as a root
            args.collect.expanduser().mkdir(parents=True, exist_ok=True)
        settings = build_settings(args)
        collect = None
        if args.collect is not None:  # the same address and tokens as the MCP server
            collect = collect_settings(
                args, args.collect, args.collect_port, settings.tokens, prefix="collect-"
            )
        from halo_mcp.server import serve

        serve(settings, collect=collect)
    except (ValidationError, ValueError, JournalError, OSError) as exc:
        print(f"halo-mcp serve: {first_error_message(exc)}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _server_args(args: argparse.Namespace) -> list[str]:
    """The flags to pass on to the stdio server started by --test (HTTP flags dropped)."""
    out: list[str] = []
    for root in args.root:
        out += ["--root", root]
    if args.model:
        out += ["--model", args.model]
    out += ["--max-concurrent-runs", str(args.max_concurrent_runs)]
    if args.scan_processes is not None:
        out += ["--scan-processes", str(args.scan_processes)]
    return out


def self_test(args: argparse.Namespace) -> int:
    import anyio

    try:
        line, ok = anyio.run(_probe, _server_args(args))
    except Exception as exc:  # the server did not start or did not answer
        print(
            f"halo-mcp serve: FAILED to start over stdio: {leaves(exc)[0]!r}. Run `halo-mcp serve "
            "-v` (with the same flags) to see the server's own error on stderr.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(line)
    return EXIT_OK if ok else EXIT_FAILED


async def _probe(server_args: list[str]) -> tuple[str, bool]:
    import anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "halo_mcp", "serve", *server_args],
        env=Environment.for_child_process(),
    )
    started = time.perf_counter()
    with anyio.fail_after(30):
        async with Client(params) as client:
            tools = await client.list_tools()
            elapsed = time.perf_counter() - started
            protocol = client.protocol_version
    names = sorted(t.name for t in tools.tools)
    env = Environment.read()
    creds = (
        "LLM credentials: set"
        if env.openai_api_key or env.openai_base_url
        else "LLM credentials: MISSING (set OPENAI_API_KEY for analyze_traces)"
    )
    ok = "analyze_traces" in names and "query_spans" in names
    status = "OK" if ok else "INCOMPLETE"
    return (
        f"halo-mcp serve: {status}, {len(names)} tools over stdio in {elapsed:.2f}s "
        f"(protocol {protocol}): {', '.join(names)}. {creds}.",
        ok,
    )
