"""`halo-mcp report RUN_ID --html -o FILE` and `halo-mcp ui [PATHS]`: seeing runs and traces.

Both are thin: the report is built by `halo_mcp.web.report`, the viewer by `halo_mcp.web.app`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from halo_mcp.cli import EXIT_FAILED, EXIT_OK, Subcommands
from halo_mcp.cli.install import write_atomically
from halo_mcp.cli.options import (
    add_directory_options,
    add_http_options,
    add_verbose_option,
    http_options,
)
from halo_mcp.cli.output import fail, first_error_message

# The run store, the trace store, the report and the web app are imported by the handlers
# when they run, so that `halo-mcp --help` and the other commands do not pay for them.

DEFAULT_UI_PORT = 8766


_REPORT_DESCRIPTION = """\
Write a run's report: findings ranked, prevalence with 95% intervals, first/last seen and a
daily-rate chart per finding, check results before/after, and each finding's evidence traces
as a span waterfall. One file, nothing fetched."""


_UI_DESCRIPTION = """\
Serve a trace viewer on http://127.0.0.1:PORT: trace list with filters, a trace's tree and
timeline with span details, runs and findings, triage. It follows growing trace files.
Beyond loopback it needs a token (HALO_MCP_TOKEN or --token)."""


def register(subparsers: Subcommands) -> None:
    report = subparsers.add_parser(
        "report",
        help="Write a run's report as one self-contained HTML file (--html).",
        description=_REPORT_DESCRIPTION,
    )
    report.add_argument("run_id", metavar="RUN_ID", help="From `halo-mcp runs`.")
    report.add_argument("--html", action="store_true", help="HTML (the only format here)")
    report.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default stdout)")
    report.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="NEW_PATH",
        help="recount the findings on these newer traces and show before/after (repeatable)",
    )
    report.add_argument(
        "--check-json",
        metavar="FILE",
        help="show a saved check (`halo-mcp check RUN_ID NEW_PATHS --json > FILE`)",
    )
    add_directory_options(report, data=True, cache=True)
    report.set_defaults(handler=run_report)

    ui = subparsers.add_parser(
        "ui",
        help="Browse traces, runs, findings and triage in a local web viewer.",
        description=_UI_DESCRIPTION,
    )
    ui.add_argument("paths", nargs="*", metavar="PATH", help="trace files or directories")
    add_http_options(ui, default_port=DEFAULT_UI_PORT)
    add_directory_options(ui, data=True, cache=True)
    add_verbose_option(ui)
    ui.set_defaults(handler=run_ui)


def run_report(args: argparse.Namespace) -> int:
    from halo_mcp.check.recount import CheckReport
    from halo_mcp.check.workflow import CheckError, FromRun, NothingToCheck
    from halo_mcp.cli.triage import check_from_terminal
    from halo_mcp.engine.errors import UnknownRunError
    from halo_mcp.engine.runstore import RunStore
    from halo_mcp.store import StoreError
    from halo_mcp.web.report import run_report_html

    if not args.html:
        return fail(
            "pass --html (this command writes the HTML report; `halo-mcp show RUN_ID` prints "
            "the markdown one)"
        )
    try:
        run = RunStore(args.data_dir).get(args.run_id)
    except UnknownRunError as exc:
        return fail(str(exc))
    check = None
    if args.check_json:
        try:
            check = CheckReport.model_validate_json(Path(args.check_json).read_bytes())
        except (OSError, ValidationError) as exc:
            return fail(
                f"{args.check_json} is not a saved check ({str(exc).splitlines()[0]}); save "
                f"one with `halo-mcp check {run.id} NEW_PATHS --json > FILE`"
            )
    elif args.check:
        try:
            check = check_from_terminal(
                FromRun(run.id), args.check, cache_dir=args.cache_dir, data_dir=args.data_dir
            ).report
        except NothingToCheck:  # the page says the run found nothing; no before/after
            check = None
        except (CheckError, StoreError) as exc:
            return fail(str(exc))
    page = run_report_html(run, check=check, cache_dir=args.cache_dir)
    if args.output:
        try:
            write_atomically(Path(args.output), page)
        except OSError as exc:
            return fail(f"cannot write {args.output} ({exc})", EXIT_FAILED)
        print(f"report written to {args.output} ({len(page.encode()) // 1024} KB)", file=sys.stderr)
    else:
        sys.stdout.write(page)
    return EXIT_OK


def run_ui(args: argparse.Namespace) -> int:
    from halo_mcp.store import StoreError
    from halo_mcp.web.app import UiSettings, serve_ui

    if not args.paths:
        return fail("name the trace files or directories to view: halo-mcp ui PATH [PATH...]")
    try:
        settings = UiSettings(
            paths=args.paths, cache_dir=args.cache_dir, data_dir=args.data_dir, **http_options(args)
        )
        where = f"http://{settings.host}:{settings.port}/"
        hint = f" (open {where}?token=<your token> once)" if settings.tokens else ""
        print(f"halo-mcp ui: indexing, then serving {where}{hint}", file=sys.stderr)
        serve_ui(settings)
    except (ValidationError, ValueError) as exc:
        return fail(first_error_message(exc))
    except StoreError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK
