"""`halo-mcp`: the command line. Each subcommand lives in its own module here.

Modules expose `register(subparsers)`, which adds their commands and sets `handler` to a
function `(args) -> int` (the exit code). Heavy imports happen inside handlers so that
`halo-mcp --help` and `halo-mcp serve` start fast.

Exit codes: 0 done, 1 failed, 2 bad usage or bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any, Protocol

from halo_mcp import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
#: The run finished but its result needs a second look (see RunRecord.outcome/warning).
EXIT_WARNING = 3
EXIT_INTERRUPTED = 130

_COMMAND_MODULES = (
    "traces",
    "sql",
    "run",
    "triage",
    "serve",
    "collect",
    "imports",
    "install",
    "web",
    "load",
)


class Subcommands(Protocol):
    """What a command module's `register` gets: `ArgumentParser.add_subparsers()`'s result,
    which argparse only names privately (`argparse._SubParsersAction`)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


class AddsArguments(Protocol):
    """A parser or an argument group (argparse names their common base only privately)."""

    def add_argument(self, *name_or_flags: str, **kwargs: Any) -> argparse.Action: ...


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="halo-mcp",
        description=(
            "Find the systemic failure modes of an LLM agent harness in its OpenTelemetry "
            "traces, from a terminal or from a coding agent over MCP."
        ),
    )
    parser.add_argument("--version", action="version", version=f"halo-mcp {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"halo_mcp.cli.{name}")
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name != f"halo_mcp.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
