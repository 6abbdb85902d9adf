"""`halo-mcp triage PATH...` and `halo-mcp check SOURCE NEW_PATH...`: the loop without a key.

`triage` counts the symptoms of a trace set (no LLM). `check` recounts findings on new
traces and says per finding whether it is resolved, improved, unchanged or worse. SOURCE
is a run id from the run store, a saved JSON (a `triage --json` output, a run record or a
list of findings), or `triage` to triage the `--baseline` traces first.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from halo_mcp.cli import EXIT_FAILED, EXIT_OK, Subcommands
from halo_mcp.cli.options import add_directory_options, add_read_options
from halo_mcp.cli.output import fail, notice, print_json, table
from halo_mcp.cli.window import add_window_options, window_from_args

# Handlers import the store, triage and check when they run, so that `halo-mcp --help` and
# `halo-mcp serve` do not pay for them at start-up.
if TYPE_CHECKING:
    from halo_mcp.check.recount import CheckReport
    from halo_mcp.check.workflow import CheckOutcome, CheckSource, RunFindings, WithStore
    from halo_mcp.findings.models import Prevalence
    from halo_mcp.store.api import TraceReader
    from halo_mcp.store.timewindow import TimeWindow
    from halo_mcp.triage import TriageReport

T = TypeVar("T")


_TRIAGE_DESCRIPTION = """\
Deterministic triage: error clusters, loops, retry storms, runs stopped at a turn limit,
runs without a final answer, latency and token outliers, tools by failure rate. Each item
has a matcher, a prevalence and evidence ids."""


_CHECK_DESCRIPTION = """\
Recompute each finding's prevalence on NEW_PATH with its matcher and compare with before
(the recorded prevalence, or a recount on --baseline traces). SOURCE: a run id, a saved JSON
(`halo-mcp triage --json` output, a run record, or a list of findings), or 'triage' to
triage the --baseline traces first."""


def register(subparsers: Subcommands) -> None:
    triage = subparsers.add_parser(
        "triage",
        help="Count the failure symptoms of a trace set (no LLM, no API key).",
        description=_TRIAGE_DESCRIPTION,
    )
    triage.add_argument("paths", nargs="+", metavar="PATH", help="Trace files or directories.")
    triage.add_argument("--max-items", type=int, default=25, help="Items to keep (default 25).")
    add_read_options(triage, json_help="Print the report as JSON.")
    triage.set_defaults(handler=run_triage_command)

    check = subparsers.add_parser(
        "check",
        help="Recount a run's findings (or triage items) on new traces: resolved or not?",
        description=_CHECK_DESCRIPTION,
    )
    check.add_argument("source", metavar="SOURCE", help="RUN_ID, a JSON file, or 'triage'.")
    check.add_argument("new_paths", nargs="+", metavar="NEW_PATH", help="The new traces.")
    check.add_argument(
        "--baseline",
        nargs="+",
        metavar="OLD_PATH",
        help="The old traces: 'before' is recounted on them instead of the recorded figures.",
    )
    add_read_options(check, json_help="Print the report as JSON.")
    add_window_options(check, prefix="baseline-")
    add_directory_options(check, data=True)
    check.set_defaults(handler=run_check_command)


def run_triage_command(args: argparse.Namespace) -> int:
    from halo_mcp.store import StoreError, open_store
    from halo_mcp.triage import run_triage

    if args.max_items < 1:
        return fail("--max-items must be at least 1")
    try:
        window = window_from_args(args)
        with open_store(
            args.paths, cache_dir=args.cache_dir, notify=notice, window=window
        ) as store:
            report = run_triage(store, max_items=args.max_items)
    except (StoreError, ValueError) as exc:
        return fail(str(exc))
    if args.json:
        print_json(report)
    else:
        print(render_triage(report))
    return EXIT_OK


def render_triage(report: TriageReport) -> str:

    head = (
        f"Triage of {', '.join(report.paths)}: {report.traces} traces, {report.spans} spans, "
        f"{report.error_spans} error spans ({report.elapsed_ms / 1000:.2f} s). Deterministic "
        "counts, no LLM: symptoms and rates, not causes."
    )
    lines = [head, ""]
    if report.items:
        rows = []
        for n, item in enumerate(report.items, 1):
            prev = item.prevalence  # triage items always carry one
            traces = f"{prev.traces_matched}/{prev.traces_in_scope}" if prev else "?"
            rate = f"{prev.rate:.1%}" if prev else "?"
            rows.append((n, item.severity.value, item.category, traces, rate, item.title, item.id))
        lines.append(
            table(("#", "severity", "category", "traces", "rate", "title", "id"), rows, 70)
        )
    else:
        lines.append("No symptom found.")
    failing = [t for t in report.tools if t.errors]
    if failing:
        lines += ["", "Tools by failure rate:"]
        tool_rows = [
            (t.name, t.calls, t.errors, f"{t.failure_rate:.1%}", t.traces_with_errors)
            for t in failing
        ]
        lines.append(table(("tool", "calls", "errors", "rate", "traces"), tool_rows))
    lines += [f"note: {n}" for n in report.notes]
    if report.truncated:
        lines.append("note: more items exist; raise --max-items to see them.")
    if report.items:
        lines += [
            "",
            "Evidence and matchers: --json. After a fix: `halo-mcp triage PATH --json > "
            "triage.json`, then `halo-mcp check triage.json NEW_PATH...`.",
        ]
    return "\n".join(lines)


def check_from_terminal(
    source: CheckSource,
    new_paths: Sequence[str],
    *,
    baseline: Sequence[str] | None = None,
    cache_dir: str | None = None,
    data_dir: str | None = None,
    window: TimeWindow | None = None,
    baseline_window: TimeWindow | None = None,
) -> CheckOutcome:
    """The check workflow with the terminal's stores and run store (`check`, `report
    --check`); raises CheckError or StoreError."""
    from halo_mcp.check.workflow import run_check
    from halo_mcp.store import open_store

    def opener(scope: TimeWindow | None) -> WithStore:
        def with_store(paths: Sequence[Path | str], fn: Callable[[TraceReader], T]) -> T:
            with open_store(paths, cache_dir=cache_dir, notify=notice, window=scope) as store:
                return fn(store)

        return with_store

    return run_check(
        source,
        [Path(p) for p in new_paths],
        with_store=opener(window),
        with_baseline_store=opener(baseline_window),
        run_findings=lambda run_id: _run_findings(run_id, data_dir),
        baseline_paths=[Path(p) for p in baseline] if baseline else None,
    )


def run_check_command(args: argparse.Namespace) -> int:
    from halo_mcp.check.workflow import CheckError, NothingToCheck, parse_source
    from halo_mcp.store import StoreError

    source = parse_source(args.source)
    if args.source == "triage" and not args.baseline:
        return fail("SOURCE 'triage' needs --baseline OLD_PATH... (the traces to triage)")
    try:
        window = window_from_args(args)
        baseline_window = window_from_args(args, prefix="baseline-")
    except ValueError as exc:
        return fail(str(exc))
    try:
        outcome = check_from_terminal(
            source,
            args.new_paths,
            baseline=args.baseline,
            cache_dir=args.cache_dir,
            data_dir=args.data_dir,
            window=window,
            baseline_window=baseline_window,
        )
    except NothingToCheck as exc:
        return fail(f"{exc.what} has no findings to check", EXIT_FAILED)
    except (CheckError, StoreError) as exc:
        return fail(str(exc))
    if args.json:
        print_json(outcome.report)
    else:
        print(render_check(outcome.report, outcome.what))
    return EXIT_OK


def _run_findings(run_id: str, data_dir: str | None) -> RunFindings:
    """A run of the run store, for the check workflow (unknown ids: a CheckError)."""
    from halo_mcp.check.workflow import CheckError, RunFindings
    from halo_mcp.engine.errors import UnknownRunError
    from halo_mcp.engine.runstore import RunStore

    try:
        run = RunStore(data_dir).get(run_id)
    except UnknownRunError as exc:
        raise CheckError(str(exc)) from None
    return RunFindings(
        run_id=run.id, status=run.status.value, ended=run.status.done, findings=run.findings
    )


def render_check(report: CheckReport, what: str) -> str:

    def figure(prev: Prevalence | None) -> str:
        return f"{prev.traces_matched}/{prev.traces_in_scope} ({prev.rate:.1%})" if prev else "?"

    rows = [
        (r.verdict.upper(), figure(r.before), figure(r.after), str(r.status), r.title, r.finding_id)
        for r in report.results
    ]
    lines = [
        f"Check of {len(report.results)} findings ({what}) on {', '.join(report.new_paths)} "
        f"({report.traces_in_scope} traces). Before: {report.baseline}.",
        "",
        table(("verdict", "before", "after", "status", "finding", "id"), rows, 70),
        "",
    ]
    for r in report.results:
        lines.append(f"- {r.title}: {r.reason}")
        for ev in r.still_matching[:2]:
            lines.append(f"    still matching: trace {ev.trace_id} span {ev.span_id or '-'}")
    summary = ", ".join(f"{n} {v}" for v, n in report.verdicts.items())
    lines += ["", f"Verdicts: {summary}. Rule: {report.rule}."]
    return "\n".join(lines)
