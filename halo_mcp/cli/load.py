"""`halo-mcp load PATH... --to LOCATION`: local trace files into a ClickHouse trace table
laid out as the OpenTelemetry Collector's ClickHouse exporter writes it."""

from __future__ import annotations

import argparse
import sys

from halo_mcp.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Subcommands
from halo_mcp.cli.options import add_verbose_option

_LOAD_DESCRIPTION = """\
Read trace files (any format halo-mcp reads) and write their spans into LOCATION as the
OpenTelemetry Collector's ClickHouse exporter would, creating the exporter's tables when
missing. LOCATION is clickhouse://USER@HOST:8123/DB?table=otel_traces (password from
HALO_CLICKHOUSE_PASSWORD) or chdb:FOLDER. Afterwards pass LOCATION wherever a trace path
goes."""


def register(subparsers: Subcommands) -> None:
    load = subparsers.add_parser(
        "load",
        help="Write trace files into a ClickHouse table (exporter schema), or a chDB folder.",
        description=_LOAD_DESCRIPTION,
    )
    load.add_argument("paths", nargs="+", metavar="PATH", help="Trace files or directories.")
    load.add_argument("--to", required=True, metavar="LOCATION", help="Where to write.")
    load.add_argument("--json", action="store_true", help="Print the result as JSON.")
    add_verbose_option(load)
    load.set_defaults(handler=run_load)


def run_load(args: argparse.Namespace) -> int:
    from halo_mcp.cli.output import notice
    from halo_mcp.settings import clickhouse_password
    from halo_mcp.store.clickhouse.client import connect
    from halo_mcp.store.clickhouse.load import load_files
    from halo_mcp.store.clickhouse.location import parse_location
    from halo_mcp.store.errors import StoreError

    try:
        location = parse_location(args.to, password=clickhouse_password())
        client = connect(location)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = load_files(args.paths, client, location, notify=notice)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        client.close()
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print(f"{result.spans} spans from {result.files} file(s) written to {result.location}")
        for bad in result.bad_line_examples:
            print(f"skipped {bad.file}:{bad.line}: {bad.reason}", file=sys.stderr)
        if result.bad_lines > len(result.bad_line_examples):
            print(f"... {result.bad_lines} bad lines in all", file=sys.stderr)
    return EXIT_OK
