"""`halo-mcp sql PATH... "SELECT ..."`: read-only SQL over the trace views from a terminal
(the same views and limits as the `query_sql` MCP tool)."""

from __future__ import annotations

import argparse

from halo_mcp.cli import EXIT_FAILED, EXIT_OK, Subcommands
from halo_mcp.cli.options import add_read_options
from halo_mcp.cli.output import fail, notice, print_json, table
from halo_mcp.cli.window import window_from_args

# The store is imported by the handler when it runs, so that `halo-mcp --help` and the other
# commands do not pay for it at start-up.


_SQL_DESCRIPTION = """\
Run one SELECT over the views `spans`, `traces` and `span_counts` of the traces' index
(read-only, bounded rows, characters and time). The last argument is the query; `--schema`
prints the views' columns."""


def register(subparsers: Subcommands) -> None:
    p = subparsers.add_parser(
        "sql",
        help="Read-only SQL over views of the traces (spans, traces, span_counts).",
        description=_SQL_DESCRIPTION,
        epilog='example: halo-mcp sql traces.jsonl "SELECT tool_name, COUNT(*) AS calls, '
        'AVG(is_error) AS error_rate FROM spans WHERE tool_name IS NOT NULL GROUP BY 1"',
    )
    p.add_argument("items", nargs="*", metavar="PATH... SQL", help="Trace paths, then the query.")
    p.add_argument("--schema", action="store_true", help="Print the views and their columns.")
    p.add_argument("--limit", type=int, default=100, metavar="N", help="Rows, 1-1000 (100).")
    p.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="Time limit in seconds (30)."
    )
    add_read_options(p, json_help="Print the result as JSON.")
    p.set_defaults(handler=run_sql_command)


def run_sql_command(args: argparse.Namespace) -> int:
    from halo_mcp.store import open_store
    from halo_mcp.store.errors import StoreError
    from halo_mcp.store.sql import MAX_ROW_LIMIT, SQL_SCHEMA, SqlError

    if args.schema:
        print(SQL_SCHEMA)
        return EXIT_OK
    if len(args.items) < 2:
        return fail(
            'pass trace paths and then the query, e.g. halo-mcp sql traces.jsonl "SELECT '
            'COUNT(*) FROM spans" (--schema lists the columns)'
        )
    if not 1 <= args.limit <= MAX_ROW_LIMIT or args.timeout <= 0:
        return fail(f"--limit must be 1-{MAX_ROW_LIMIT} and --timeout > 0")
    *paths, sql = args.items
    try:
        window = window_from_args(args)
    except ValueError as exc:
        return fail(str(exc))
    try:
        with open_store(paths, cache_dir=args.cache_dir, notify=notice, window=window) as store:
            result = store.query_sql(sql, limit=args.limit, time_limit_s=args.timeout)
    except SqlError as exc:
        return fail(str(exc), EXIT_FAILED)
    except StoreError as exc:
        return fail(str(exc))
    if args.json:
        print_json(result)
        return EXIT_OK
    print(table(result.columns, result.rows))
    tail = f"{result.returned} rows in {result.elapsed_ms:.0f} ms"
    if result.note:
        tail += f"; {result.note}"
    notice(tail)
    return EXIT_OK
