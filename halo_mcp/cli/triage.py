"""`halo-mcp triage PATH...` and `halo-mcp check SOURCE NEW_PATH...`: the loop without a key.

`triage` counts the symptoms of a trace set (no LLM). `check` recounts findings on new
traces and says per finding whether it is resolved, improved, unchanged or worse. SOURCE
is a run id from the run store, a saved JSON (a `triage --json` output, a run record or a
list of findings), or `triage` to triage the `--baseline` traces first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from halo_mcp.cli.window import add_window_options, window_from_args

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers: argparse._SubParsersAction) -> None:
    triage = subparsers.add_parser(
        "triage",
        help="Count the failure symptoms of a trace set (no LLM, no API key).",
        description="Deterministic triage: error clusters, loops, retry storms, runs stopped "
        "at a turn limit, runs without a final answer, latency and token outliers, tools by "
        "failure rate. Each item has a matcher, a prevalence and evidence ids.",
    )
    triage.add_argument("paths", nargs="+", metavar="PATH", help="Trace files or directories.")
    triage.add_argument("--json", action="store_true", help="Print the report as JSON.")
    triage.add_argument("--max-items", type=int, default=25, help="Items to keep (default 25).")
    triage.add_argument("--cache-dir", help="Where the index lives (default: $HALO_CACHE_DIR).")
    add_window_options(triage)
    triage.add_argument("-v", "--verbose", action="store_true", help="Log details to stderr.")
    triage.set_defaults(handler=run_triage_command)

    check = subparsers.add_parser(
        "check",
        help="Recount a run's findings (or triage items) on new traces: resolved or not?",
        description="Recompute each finding's prevalence on NEW_PATH with its matcher and "
        "compare with before (the recorded prevalence, or a recount on --baseline traces). "
        "SOURCE: a run id, a saved JSON (`halo-mcp triage --json` output, a run record, or a "
        "list of findings), or 'triage' to triage the --baseline traces first.",
    )
    check.add_argument("source", metavar="SOURCE", help="RUN_ID, a JSON file, or 'triage'.")
    check.add_argument("new_paths", nargs="+", metavar="NEW_PATH", help="The new traces.")
    check.add_argument(
        "--baseline",
        nargs="+",
        metavar="OLD_PATH",
        help="The old traces: 'before' is recounted on them instead of the recorded figures.",
    )
    check.add_argument("--json", action="store_true", help="Print the report as JSON.")
    check.add_argument("--cache-dir", help="Where the index lives (default: $HALO_CACHE_DIR).")
    check.add_argument("--data-dir", help="The run store (default: $HALO_DATA_DIR).")
    add_window_options(check)
    add_window_options(check, prefix="baseline-")
    check.add_argument("-v", "--verbose", action="store_true", help="Log details to stderr.")
    check.set_defaults(handler=run_check_command)


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def run_triage_command(args: argparse.Namespace) -> int:
    from halo_mcp.cli.output import notice, print_json
    from halo_mcp.store import StoreError, open_store
    from halo_mcp.triage import run_triage

    if args.max_items < 1:
        return _fail("--max-items must be at least 1")
    try:
        window = window_from_args(args)
        with open_store(
            args.paths, cache_dir=args.cache_dir, notify=notice, window=window
        ) as store:
            report = run_triage(store, max_items=args.max_items)
    except (StoreError, ValueError) as exc:
        return _fail(str(exc))
    if args.json:
        print_json(report)
    else:
        print(render_triage(report))
    return EXIT_OK


def render_triage(report: Any) -> str:
    from halo_mcp.cli.output import table

    head = (
        f"Triage of {', '.join(report.paths)}: {report.traces} traces, {report.spans} spans, "
        f"{report.error_spans} error spans ({report.elapsed_ms / 1000:.2f} s). Deterministic "
        "counts, no LLM: symptoms and rates, not causes."
    )
    lines = [head, ""]
    if report.items:
        rows = [
            (
                n,
                item.severity.value,
                item.category,
                f"{item.prevalence.traces_matched}/{item.prevalence.traces_in_scope}",
                f"{item.prevalence.rate:.1%}",
                item.title,
                item.id,
            )
            for n, item in enumerate(report.items, 1)
        ]
        lines.append(
            table(("#", "severity", "category", "traces", "rate", "title", "id"), rows, 70)
        )
    else:
        lines.append("No symptom found.")
    failing = [t for t in report.tools if t.errors]
    if failing:
        lines += ["", "Tools by failure rate:"]
        rows = [
            (t.name, t.calls, t.errors, f"{t.failure_rate:.1%}", t.traces_with_errors)
            for t in failing
        ]
        lines.append(table(("tool", "calls", "errors", "rate", "traces"), rows))
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


def load_findings(source: str, data_dir: str | None) -> tuple[list[Any], str | None, str]:
    """Findings from a JSON file or a run id: (findings, run id, where they came from).
    Raises ValueError with a message saying what to pass instead."""
    import orjson
    from pydantic import TypeAdapter, ValidationError

    from halo_mcp.findings.models import Finding

    path = Path(source)
    if path.suffix.lower() == ".json" or path.is_file():
        if not path.is_file():
            raise ValueError(f"{source} does not exist; pass a run id or a saved JSON file")
        try:
            data = orjson.loads(path.read_bytes())
            if isinstance(data, dict) and "items" in data:
                raw, run_id, what = data["items"], None, f"triage saved in {path}"
            elif isinstance(data, dict) and "findings" in data:
                raw, run_id = data["findings"], data.get("id")
                what = f"run {run_id} saved in {path}"
            elif isinstance(data, list):
                raw, run_id, what = data, None, f"findings saved in {path}"
            else:
                raise ValueError("no 'items' or 'findings' in it")
            findings = TypeAdapter(list[Finding]).validate_python(raw)
        except (orjson.JSONDecodeError, ValidationError, ValueError, OSError) as exc:
            raise ValueError(
                f"{path} is not a triage report, run record or findings list ({exc}). Save "
                "one with `halo-mcp triage PATH --json > triage.json`."
            ) from None
        return findings, run_id, what
    from halo_mcp.engine.errors import UnknownRunError
    from halo_mcp.engine.runstore import RunStore

    try:
        run = RunStore(data_dir).get(source)
    except UnknownRunError as exc:
        raise ValueError(str(exc)) from None
    return list(run.findings), run.id, f"run {run.id}"


def run_check_command(args: argparse.Namespace) -> int:
    from halo_mcp.check.recount import check_findings
    from halo_mcp.cli.output import notice, print_json
    from halo_mcp.store import StoreError, open_store
    from halo_mcp.triage import run_triage

    baseline = None
    try:
        window = window_from_args(args)
        baseline_window = window_from_args(args, prefix="baseline-")
    except ValueError as exc:
        return _fail(str(exc))
    try:
        if args.source == "triage":
            if not args.baseline:
                return _fail("SOURCE 'triage' needs --baseline OLD_PATH... (the traces to triage)")
            baseline = open_store(
                args.baseline, cache_dir=args.cache_dir, notify=notice, window=baseline_window
            )
            findings = run_triage(baseline).items
            run_id, what = None, "triage of the baseline traces"
        else:
            try:
                findings, run_id, what = load_findings(args.source, args.data_dir)
            except ValueError as exc:
                return _fail(str(exc))
            if args.baseline:
                baseline = open_store(
                    args.baseline, cache_dir=args.cache_dir, notify=notice, window=baseline_window
                )
        if not findings:
            return _fail(f"{what} has no findings to check", EXIT_FAILED)
        with open_store(
            args.new_paths, cache_dir=args.cache_dir, notify=notice, window=window
        ) as new_store:
            report = check_findings(findings, new_store, baseline_store=baseline, run_id=run_id)
    except StoreError as exc:
        return _fail(str(exc))
    finally:
        if baseline is not None:
            baseline.close()
    if args.json:
        print_json(report)
    else:
        print(render_check(report, what))
    return EXIT_OK


def render_check(report: Any, what: str) -> str:
    from halo_mcp.cli.output import table

    def figure(prev: Any) -> str:
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
