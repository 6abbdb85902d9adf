"""`halo-mcp run`, `halo-mcp runs`, `halo-mcp show`: analyses from a terminal.

`run` streams an analysis with live progress on stderr and prints the report on stdout;
the run is saved in the run store, so `runs` and `show` (and the MCP server) can read it
and its findings later.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from halo_mcp.cli import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_WARNING,
    Subcommands,
)
from halo_mcp.cli.install import write_atomically
from halo_mcp.cli.options import add_directory_options
from halo_mcp.cli.output import json_text
from halo_mcp.cli.window import add_window_options, window_from_args
from halo_mcp.excgroups import is_interrupt
from halo_mcp.redact import redact_urls_in
from halo_mcp.settings import Environment

# The engine's run machinery, the run store and the trace store are imported by the handlers
# when they run (together well over a second): `halo-mcp --help` and `serve` must not pay.
if TYPE_CHECKING:
    from halo_mcp.cli.progress import ProgressRenderer
    from halo_mcp.engine.models import RunRecord
    from halo_mcp.engine.runstore import RunStore
    from halo_mcp.engine.settings import EngineSettings
_NOISY_LOGGERS = ("asyncio", "httpcore", "httpcore2", "httpx", "httpx2", "openai")

_RUN_DESCRIPTION = """\
Run an analysis: LLM agents explore the traces, delegate to sub-agents and
report the systemic failure modes of the harness with verified evidence.
The run is saved: read it later with `halo-mcp show` or over MCP."""

_RUN_EPILOG = """\
results:
  stdout  the markdown report (or the run as JSON with --json; both go to FILE with --output)
  stderr  live progress, then the run id and how to read a finding (halo-mcp show f_...)

exit codes:
  0 finished, 1 failed, 2 bad usage or input (missing file, file without spans,
  bad header, no API key), 3 finished with a warning (the model refused every turn,
  produced no structured finding or only unverified ones, or --max-run-tokens ended it),
  130 interrupted (Ctrl-C cancels the run and records it as cancelled)

environment:
  OPENAI_API_KEY, OPENAI_BASE_URL, HALO_MODEL   credentials, endpoint and model
  HALO_DATA_DIR, HALO_CACHE_DIR                 run store and trace index locations

examples:
  halo-mcp run traces/prod.jsonl -p "Diagnose errors and suggest harness fixes"
  halo-mcp run traces/ -p "Why do refunds fail?" --repo . --context @docs/agent.md
"""


_SHOW_DESCRIPTION = """\
Print a run's markdown report (ids starting with run_) or one finding with its evidence,
root cause, suggested change and validation (ids starting with f_)."""


def register(subparsers: Subcommands) -> None:
    _register_run(subparsers)
    _register_runs(subparsers)
    _register_show(subparsers)


def _register_run(subparsers: Subcommands) -> None:
    p = subparsers.add_parser(
        "run",
        help="Analyze traces with the HALO engine and print the report.",
        description=_RUN_DESCRIPTION,
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "trace_paths",
        nargs="+",
        metavar="TRACE_PATH",
        help="Trace files (.jsonl, OTLP JSON, .gz) or directories of them.",
    )
    p.add_argument(
        "-p",
        "--prompt",
        required=True,
        metavar="PROMPT",
        help="What to look for, e.g. 'Diagnose errors'.",
    )
    model = p.add_argument_group("model and provider")
    model.add_argument(
        "-m", "--model", help="Model of the agents (default: $HALO_MODEL, else gpt-5.4-mini)."
    )
    model.add_argument(
        "--synthesis-model", metavar="MODEL", help="Model of the synthesis tool (default: --model)."
    )
    model.add_argument(
        "--compaction-model",
        metavar="MODEL",
        help="Model that compacts context (default: --model).",
    )
    model.add_argument(
        "--base-url",
        metavar="URL",
        help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL, else OpenAI).",
    )
    model.add_argument(
        "--api-key", metavar="KEY", help="API key (default: $OPENAI_API_KEY; prefer the variable)."
    )
    model.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar='"NAME: VALUE"',
        help="Extra HTTP header sent to the provider; repeat for several.",
    )
    model.add_argument("--temperature", type=float, metavar="T", help="Sampling temperature.")
    model.add_argument(
        "--max-output-tokens", type=int, metavar="N", help="Cap on tokens per model reply."
    )
    model.add_argument(
        "--parallel-tool-calls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Let the model call several tools per turn (default: on).",
    )
    model.add_argument(
        "--refusal-retries",
        type=int,
        metavar="N",
        help="Retries after a model refusal (default: 1).",
    )
    model.add_argument(
        "--reasoning-effort",
        metavar="EFFORT",
        help="Reasoning effort for reasoning models, e.g. low, medium, high.",
    )
    harness = p.add_argument_group("the harness")
    harness.add_argument(
        "--repo",
        metavar="PATH",
        help="The harness's source repository: agents read its code and git history, and "
        "findings cite code (path:lines) and suspect commits, checked against HEAD.",
    )
    harness.add_argument(
        "--context",
        metavar="TEXT|@FILE",
        help="A description of the harness for every agent (text, or @file to read it).",
    )
    add_window_options(p)
    engine = p.add_argument_group("engine")
    engine.add_argument("--max-depth", type=int, metavar="N", help="Sub-agent depth (default: 2).")
    engine.add_argument("--max-turns", type=int, metavar="N", help="Turns per agent (default: 20).")
    engine.add_argument(
        "--max-parallel", type=int, metavar="N", help="Sub-agents running at once (default: 10)."
    )
    engine.add_argument(
        "--sub-max-turns",
        type=int,
        metavar="N",
        help="Turns per sub-agent (default: half of --max-turns; never more).",
    )
    engine.add_argument(
        "--max-run-tokens",
        type=int,
        metavar="N",
        help="Token budget of the whole run; when reached the run ends, keeping its findings.",
    )
    engine.add_argument(
        "--cache-control",
        action="store_true",
        default=None,
        help="Add explicit prompt-cache breakpoints (for Anthropic models behind "
        "OpenAI-compatible gateways).",
    )
    engine.add_argument(
        "--telemetry",
        action="store_true",
        default=None,
        help="Emit OpenTelemetry spans of this run (see README, Configuration).",
    )
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="Print the run as JSON, not markdown.")
    out.add_argument(
        "-o", "--output", metavar="FILE", help="Write the report (or JSON) to FILE, not stdout."
    )
    out.add_argument("-q", "--quiet", action="store_true", help="No progress, only errors.")
    out.add_argument(
        "-v", "--verbose", action="store_true", help="Also show agents, tool calls and debug logs."
    )
    add_directory_options(out, data=True)
    p.set_defaults(handler=run_command)


def _register_runs(subparsers: Subcommands) -> None:
    p = subparsers.add_parser(
        "runs",
        help="List recent analyses (newest first).",
        description="List recent analyses from the run store, newest first.",
    )
    p.add_argument(
        "--limit", type=int, default=20, metavar="N", help="How many runs (default: 20)."
    )
    p.add_argument("--json", action="store_true", help="Print the runs as JSON.")
    add_directory_options(p, data=True)
    p.set_defaults(handler=runs_command)


def _register_show(subparsers: Subcommands) -> None:
    p = subparsers.add_parser(
        "show",
        help="Print a run's report (RUN_ID) or one finding in full (FINDING_ID).",
        description=_SHOW_DESCRIPTION,
    )
    p.add_argument("id", metavar="RUN_ID|FINDING_ID", help="From `halo-mcp runs` or a report.")
    p.add_argument("--json", action="store_true", help="Print the run or finding as JSON.")
    add_directory_options(p, data=True)
    p.set_defaults(handler=show_command)


# ----------------------------------------------------------------------- helpers


def read_context(value: str | None) -> str | None:
    """--context TEXT, or @FILE for the text of a file; ValueError saying what is wrong."""
    if value is None:
        return None
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read --context file {str(path)!r} ({exc})") from None
    if len(value) > 20_000:
        raise ValueError(
            f"--context is {len(value):,} characters; keep it under 20,000 (a description "
            "of the harness, not its code: pass the code with --repo)"
        )
    return value.strip() or None


def check_repo(value: str | None) -> Path | None:
    """--repo as a resolved directory; ValueError with the fix."""
    if value is None:
        return None
    from halo_mcp.harness.paths import HarnessPathError, open_repository

    try:
        repo = open_repository(value)
    except HarnessPathError as exc:
        raise ValueError(str(exc)) from None
    if repo.enclosing_work_tree is not None:
        _err(
            f"halo-mcp run: note: {repo.root} is inside the git work tree "
            f"{repo.enclosing_work_tree}; the agents read its code but not its history. "
            "Pass the work tree's root to --repo for git log, show, diff and blame."
        )
    return repo.root


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Redactor:
    """Removes secrets (the API key, header values) from text shown to the user."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return redact_urls_in(text)


def parse_headers(values: Sequence[str]) -> dict[str, str]:
    """'NAME: VALUE' strings to a dict; ValueError naming the bad one."""
    headers: dict[str, str] = {}
    for raw in values:
        name, sep, value = raw.partition(":")
        name = name.strip()
        if not sep or not name or any(c.isspace() for c in name):
            raise ValueError(
                f"bad --header {raw.split(':', 1)[0]!r}...: use -H 'NAME: VALUE',"
                " e.g. -H 'OpenAI-Organization: org-123'"
            )
        headers[name] = value.strip()
    return headers


def _no_key_message(trace_paths: Sequence[str]) -> str:
    """Say that no LLM is configured and offer the triage of the same traces, as a command
    line that can be pasted as is."""
    triage = " ".join(["halo-mcp", "triage", *(shlex.quote(str(p)) for p in trace_paths)])
    return (
        "halo-mcp run: no LLM credentials. Set OPENAI_API_KEY (export OPENAI_API_KEY=...),"
        " or pass --api-key KEY, or --base-url URL for an OpenAI-compatible server that"
        " needs no key (e.g. a local one). Without a key, the deterministic triage (no LLM)"
        f" gives a first look at these traces now:\n  {triage}"
    )


# --------------------------------------------------------------------------- run


def run_command(args: argparse.Namespace) -> int:
    from halo_mcp.engine.settings import EngineSettings

    try:
        headers = parse_headers(args.header)
    except ValueError as exc:
        _err(f"halo-mcp run: {exc}")
        return EXIT_USAGE
    missing = [p for p in args.trace_paths if not Path(p).exists()]
    if missing:
        _err(
            f"halo-mcp run: no such file or directory: {', '.join(missing)} (looked in"
            f" {Path.cwd()}). Pass trace files or directories that exist."
        )
        return EXIT_USAGE
    if not args.prompt.strip():
        _err("halo-mcp run: the prompt is empty; say what to look for with -p '...'.")
        return EXIT_USAGE
    if args.output and not Path(args.output).parent.resolve().is_dir():
        _err(f"halo-mcp run: cannot write --output {args.output}: its folder does not exist.")
        return EXIT_USAGE

    try:
        context = read_context(args.context)
        repo = check_repo(args.repo)
    except ValueError as exc:
        _err(f"halo-mcp run: {exc}")
        return EXIT_USAGE

    env_key = Environment.read().openai_api_key
    redact = _Redactor(
        [args.api_key or "", env_key.get_secret_value() if env_key else "", *headers.values()]
    )
    try:
        settings = EngineSettings.from_env(
            model=args.model,
            synthesis_model=args.synthesis_model,
            compaction_model=args.compaction_model,
            base_url=args.base_url,
            api_key=args.api_key,
            extra_headers=headers or None,
            temperature=args.temperature,
            max_output_tokens=args.max_output_tokens,
            parallel_tool_calls=args.parallel_tool_calls,
            refusal_retries=args.refusal_retries,
            reasoning_effort=args.reasoning_effort,
            max_depth=args.max_depth,
            max_turns=args.max_turns,
            max_parallel=args.max_parallel,
            sub_max_turns=args.sub_max_turns,
            max_run_tokens=args.max_run_tokens,
            cache_control=args.cache_control,
            telemetry=args.telemetry,
            data_dir=args.data_dir,
            repo_path=repo,
            context=context,
            window=window_from_args(args),
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in exc.errors()
        )
        _err(f"halo-mcp run: {redact(problems)}")
        return EXIT_USAGE
    except ValueError as exc:  # --since/--until
        _err(f"halo-mcp run: {redact(str(exc))}")
        return EXIT_USAGE

    from halo_mcp.cli.progress import ProgressRenderer

    if args.verbose:  # our debug logs, not every HTTP frame of the libraries below
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)

    renderer = None
    if not args.quiet:
        renderer = ProgressRenderer(sys.stderr, live=sys.stderr.isatty(), verbose=args.verbose)
    outcome = asyncio.run(_execute(args.trace_paths, args.prompt, settings, renderer))
    if renderer is not None:
        renderer.close()
    return _finish(args, settings, outcome, redact)


@dataclass
class _Outcome:
    """How the streaming ended: the final run, or the reason there is none."""

    run_id: str | None = None
    run: RunRecord | None = None
    failed_error: str | None = None
    interrupted: bool = False
    error: BaseException | None = None


async def _execute(
    trace_paths: Sequence[str],
    prompt: str,
    settings: EngineSettings,
    renderer: ProgressRenderer | None,
) -> _Outcome:
    from halo_mcp.engine.api import stream_run
    from halo_mcp.engine.events import RunFailed, RunFinished, RunStarted

    outcome = _Outcome()

    async def consume() -> None:
        stream = stream_run(list(trace_paths), prompt, settings)
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                if isinstance(event, RunStarted):
                    outcome.run_id = event.run_id
                elif isinstance(event, (RunFinished, RunFailed)):
                    outcome.run = event.run
                    outcome.run_id = event.run.id
                    if isinstance(event, RunFailed):
                        outcome.failed_error = event.error
                if renderer is not None:
                    try:
                        renderer.handle(event)
                    except Exception:  # progress is cosmetic: never let it stop the run
                        logging.getLogger(__name__).debug("progress failed", exc_info=True)

    async def ticker(renderer: ProgressRenderer) -> None:
        while True:
            await asyncio.sleep(1.0)
            renderer.tick()

    task = asyncio.ensure_future(consume())
    ticking = asyncio.ensure_future(ticker(renderer)) if renderer is not None else None

    def on_interrupt() -> None:
        if outcome.interrupted:  # second Ctrl-C: stop waiting for a clean cancel
            os._exit(EXIT_INTERRUPTED)
        outcome.interrupted = True
        if renderer is not None:
            renderer.note("cancelling the run... (Ctrl-C again to quit at once)")
        task.cancel()

    loop = asyncio.get_running_loop()
    restore = _install_interrupt_handler(loop, on_interrupt)
    try:
        await task
    except asyncio.CancelledError:
        if not outcome.interrupted:
            raise
    except BaseException as exc:
        if outcome.interrupted or is_interrupt(exc):
            # Ctrl-C in a terminal also reaches helper processes (the index builders):
            # their KeyboardInterrupt comes back as the run's error. It is still Ctrl-C.
            outcome.interrupted = True
        elif isinstance(exc, Exception):  # reported by _finish with a message for the user
            outcome.error = exc
        else:
            raise
    finally:
        restore()
        if ticking is not None:
            ticking.cancel()
    return outcome


def _install_interrupt_handler(
    loop: asyncio.AbstractEventLoop, callback: Callable[[], None]
) -> Callable[[], object]:
    """Route Ctrl-C to `callback` inside the loop; returns the function that undoes it."""
    try:
        loop.add_signal_handler(signal.SIGINT, callback)
        return lambda: loop.remove_signal_handler(signal.SIGINT)
    except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
        try:
            previous = signal.signal(signal.SIGINT, lambda *_: loop.call_soon_threadsafe(callback))
        except ValueError:
            return lambda: None
        return lambda: signal.signal(signal.SIGINT, previous)


def _finish(
    args: argparse.Namespace,
    settings: EngineSettings,
    outcome: _Outcome,
    redact: Callable[[str], str],
) -> int:
    from halo_mcp.cli import runview
    from halo_mcp.engine.errors import EngineError, NoApiKeyError
    from halo_mcp.settings import DirectoryError
    from halo_mcp.store.errors import StoreError

    error = outcome.error
    if isinstance(error, NoApiKeyError):
        _err(_no_key_message(args.trace_paths))
        return EXIT_USAGE
    if isinstance(error, StoreError | DirectoryError):
        _err(f"halo-mcp run: {redact(str(error))}")
        return EXIT_USAGE
    if error is not None:
        kind = "" if isinstance(error, EngineError) else f"{type(error).__name__}: "
        _err(f"halo-mcp run: {kind}{redact(str(error))}")
        if outcome.run_id:
            _err(f"The run is saved as {outcome.run_id}: halo-mcp show {outcome.run_id}")
        return EXIT_FAILED

    run = outcome.run
    if outcome.interrupted:
        run = _record_cancelled(settings, outcome.run_id) or run
        if run is not None:
            _err(f"halo-mcp run: interrupted; {runview.summary_line(run)}")
            _err(f"What it found so far: halo-mcp show {run.id}")
        else:
            _err("halo-mcp run: interrupted before the run started.")
        if args.json and run is not None:
            _deliver(args, json_text(run.model_dump(mode="json")))
        return EXIT_INTERRUPTED

    if run is None:
        _err("halo-mcp run: the engine stopped without a result; run again with --verbose.")
        return EXIT_FAILED

    failed = outcome.failed_error is not None
    # A run that failed while loading its traces (no spans, no trace file, unreadable)
    # failed on its input: exit 2 like a missing file, not 1 like a provider failure.
    bad_input = failed and run.progress.phase == "indexing" and run.usage.calls == 0
    if args.json:
        _deliver(args, json_text(run.model_dump(mode="json")))
    elif not failed or run.findings:  # a failed run still prints the findings it had
        _deliver(args, runview.render_report(run))

    if failed:
        _err(f"halo-mcp run: run {run.id} failed: {redact(outcome.failed_error or '')}")
    if settings.telemetry:
        _err(f"telemetry of this run: {_telemetry_output(run.id)}")
    if not args.quiet or failed:
        _err(runview.summary_line(run))
        if args.output:
            _err(f"report written to {args.output}")
        _err(f"report again: halo-mcp show {run.id}")
        if run.findings:
            _err(f"read a finding: halo-mcp show {run.findings[0].id}")
    if bad_input:
        return EXIT_USAGE
    if failed:
        return EXIT_FAILED
    if run.warning:
        _err(f"halo-mcp run: warning ({run.outcome}): {run.warning}")
        return EXIT_WARNING
    return EXIT_OK


def _telemetry_output(run_id: str) -> str:
    try:
        from halo_mcp.engine.telemetry import describe_output

        return describe_output(run_id)
    except Exception as exc:  # telemetry is optional: never fail a finished run over it
        return f"unknown ({type(exc).__name__})"


def _deliver(args: argparse.Namespace, text: str) -> None:
    if args.output:
        try:
            write_atomically(Path(args.output), text)  # never a half-written report
        except OSError as exc:
            _err(f"halo-mcp run: cannot write {args.output} ({exc}); the report goes to stdout.")
            sys.stdout.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def _record_cancelled(settings: EngineSettings, run_id: str | None) -> RunRecord | None:
    """The interrupted run as stored, ended as cancelled if the engine could not do it
    (e.g. Ctrl-C also stopped an index builder and the run ended with that error)."""
    from halo_mcp.engine.errors import UnknownRunError
    from halo_mcp.engine.lifecycle import open_lifecycle
    from halo_mcp.engine.models import RunStatus

    if not run_id:
        return None
    try:
        return open_lifecycle(settings).end_stored(
            run_id, RunStatus.cancelled, "Cancelled with Ctrl-C."
        )
    except UnknownRunError:
        return None


# -------------------------------------------------------------------- runs, show


def _store(args: argparse.Namespace) -> RunStore:
    from halo_mcp.engine.runstore import RunStore

    return RunStore(args.data_dir)


def runs_command(args: argparse.Namespace) -> int:
    from halo_mcp.cli import runview

    if args.limit < 1:
        _err("halo-mcp runs: --limit must be at least 1.")
        return EXIT_USAGE
    runs = _store(args).list(limit=args.limit)
    if args.json:
        sys.stdout.write(json_text([_run_summary_json(run) for run in runs]))
        return EXIT_OK
    if not runs:
        _err("No runs yet. Start one with: halo-mcp run TRACE_PATH -p 'What to look for'")
        return EXIT_OK
    sys.stdout.write(runview.runs_table(runs) + "\n")
    return EXIT_OK


def _run_summary_json(run: RunRecord) -> dict[str, Any]:
    """A run without its report and evidence: what a list needs."""
    data = run.model_dump(mode="json", exclude={"report_markdown", "findings", "config"})
    data["findings"] = [
        {
            "id": f.id,
            "title": f.title,
            "severity": f.severity.value,
            "prevalence": f.prevalence.model_dump(mode="json") if f.prevalence else None,
        }
        for f in run.findings
    ]
    return data


def show_command(args: argparse.Namespace) -> int:
    from halo_mcp.cli import runview
    from halo_mcp.engine.errors import UnknownFindingError, UnknownRunError

    store = _store(args)
    ident = args.id.strip()
    try:
        if ident.startswith("f_"):
            finding = store.get_finding(ident)
            text = (
                json_text(finding.model_dump(mode="json"))
                if args.json
                else runview.render_finding(finding)
            )
        else:
            run = store.get(ident)
            text = (
                json_text(run.model_dump(mode="json")) if args.json else runview.render_report(run)
            )
    except (UnknownRunError, UnknownFindingError):
        kind = "finding" if ident.startswith("f_") else "run"
        recent = [run.id for run in store.list(limit=3)]
        hint = f" Recent runs: {', '.join(recent)}." if recent else " No runs recorded yet."
        _err(
            f"halo-mcp show: no {kind} with id {ident!r} in {store.path}.{hint} List runs"
            " with `halo-mcp runs`; a run's report names its finding ids (f_...)."
        )
        return EXIT_USAGE
    sys.stdout.write(text)
    return EXIT_OK
