"""`halo-mcp load PATH... --to LOCATION`: local trace files into a ClickHouse trace table
laid out as the OpenTelemetry Collector's ClickHouse exporter writes it; `halo-mcp index
LOCATION`: that table's spans normalized once into its companion table, for fast reads."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from halo_mcp.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Subcommands
from halo_mcp.cli.options import add_verbose_option

if TYPE_CHECKING:
    from halo_mcp.store.clickhouse.client import ClickHouseClient
    from halo_mcp.store.clickhouse.load import LoadResult
    from halo_mcp.store.clickhouse.location import ClickHouseLocation
    from halo_mcp.store.clickhouse.materialize import IndexResult


_LOAD_DESCRIPTION = """\
Read trace files (any format halo-mcp reads) and write their spans into LOCATION as the
OpenTelemetry Collector's ClickHouse exporter would, creating the exporter's tables when
missing. LOCATION is clickhouse://USER@HOST:8123/DB?table=otel_traces (password from
HALO_CLICKHOUSE_PASSWORD) or chdb:FOLDER. Afterwards pass LOCATION wherever a trace path
goes. The companion table of normalized spans (see `halo-mcp index`) is extended
afterwards."""


_INDEX_DESCRIPTION = """\
Build, or extend by the spans started since the last build, the companion table LOCATION's
table + '_halo': every span's kind, agent, model, tool, tokens, status and error normalized
once, agent and service inherited, all inside ClickHouse. Reads use it when it covers their
window, and read the exporter table in place otherwise (slower). A store opened with write
access extends it by itself; spans that arrive late (started before the last build) make it
rebuild here. Needs write access (CREATE TABLE, INSERT)."""


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

    index = subparsers.add_parser(
        "index",
        help="Normalize a ClickHouse trace table once into its companion table (fast reads).",
        description=_INDEX_DESCRIPTION,
    )
    index.add_argument("location", metavar="LOCATION", help="clickhouse://... or chdb:FOLDER")
    index.add_argument("--rebuild", action="store_true", help="Rebuild it from scratch.")
    index.add_argument("--json", action="store_true", help="Print the result as JSON.")
    add_verbose_option(index)
    index.set_defaults(handler=run_index)


def _on_location(
    text: str, work: Callable[[ClickHouseClient, ClickHouseLocation], Any]
) -> tuple[int, Any]:
    """Parse and connect to the location `text`, run `work` with it: (exit code, result),
    errors on stderr."""
    from halo_mcp.settings import clickhouse_password
    from halo_mcp.store.clickhouse.client import connect
    from halo_mcp.store.clickhouse.location import parse_location
    from halo_mcp.store.errors import StoreError

    try:
        location = parse_location(text, password=clickhouse_password())
        client = connect(location)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE, None
    try:
        return EXIT_OK, work(client, location)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED, None
    finally:
        client.close()


def run_load(args: argparse.Namespace) -> int:
    from halo_mcp.cli.output import notice
    from halo_mcp.store.clickhouse.load import load_files
    from halo_mcp.store.clickhouse.materialize import build_index

    def work(client: ClickHouseClient, location: ClickHouseLocation) -> LoadResult:
        result = load_files(args.paths, client, location, notify=notice)
        return result.model_copy(update={"index": build_index(client, location, notify=notice)})

    code, result = _on_location(args.to, work)
    if code != EXIT_OK:
        return code
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print(f"{result.spans} spans from {result.files} file(s) written to {result.location}")
        print(_index_line(result.index))
        for bad in result.bad_line_examples:
            print(f"skipped {bad.file}:{bad.line}: {bad.reason}", file=sys.stderr)
        if result.bad_lines > len(result.bad_line_examples):
            print(f"... {result.bad_lines} bad lines in all", file=sys.stderr)
    return EXIT_OK


def run_index(args: argparse.Namespace) -> int:
    from halo_mcp.cli.output import notice
    from halo_mcp.store.clickhouse.materialize import build_index

    code, built = _on_location(
        args.location,
        lambda client, location: build_index(client, location, rebuild=args.rebuild, notify=notice),
    )
    if code == EXIT_OK:
        print(built.model_dump_json(indent=2) if args.json else _index_line(built))
    return code


def _index_line(built: IndexResult) -> str:
    verb = "rebuilt" if built.rebuilt else "extended"
    until = built.built_until.isoformat(timespec="seconds") if built.built_until else "-"
    return (
        f"{built.table} {verb}: +{built.spans_added} spans, {built.spans} in all, up to "
        f"{until} ({built.seconds:g} s)"
    )
