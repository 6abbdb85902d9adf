"""`halo-mcp collect`: receive OTLP/HTTP traces into a collection directory.

Agents export OpenTelemetry as they run; pointing their exporter at this endpoint
(`OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318`) makes the directory a growing trace
path that every halo-mcp command and tool reads. `serve --collect DIR` runs the same
receiver beside the MCP server (options shared through `collect_settings`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from halo_mcp.cli import EXIT_OK, EXIT_USAGE, Subcommands
from halo_mcp.cli.options import add_http_options, add_verbose_option, http_options
from halo_mcp.cli.output import first_error_message

if TYPE_CHECKING:
    from halo_mcp.collect.settings import CollectSettings


_COLLECT_DESCRIPTION = """\
An OTLP/HTTP trace receiver (protobuf or JSON, gzip or not) at http://HOST:PORT/v1/traces.
Spans are appended to DIR as OTLP JSON lines, fsync'ed before each request is acknowledged,
in files rotated by day and size. Read DIR with any command (halo-mcp triage DIR --since
24h) while it grows."""


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "collect",
        help="Receive OTLP/HTTP traces at /v1/traces into a directory halo-mcp reads.",
        description=_COLLECT_DESCRIPTION,
    )
    add_http_options(parser, default_port=4318)
    parser.add_argument(
        "--dir", required=True, type=Path, metavar="DIR", help="the collection directory"
    )
    add_limit_options(parser)
    add_verbose_option(parser)
    parser.set_defaults(handler=run)


def add_limit_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """The receiver's limits (`prefix` is 'collect-' under `serve`)."""
    parser.add_argument(
        f"--{prefix}max-request-mb",
        type=float,
        default=16,
        metavar="MB",
        help="largest request body, before and after decompression (default 16; else 413)",
    )
    parser.add_argument(
        f"--{prefix}max-in-flight",
        type=int,
        default=8,
        metavar="N",
        help="requests handled at once; more get 429 with Retry-After (default 8)",
    )
    parser.add_argument(
        f"--{prefix}rotate-mb",
        type=float,
        default=256,
        metavar="MB",
        help="start a new file when the current one reaches this size (default 256)",
    )


def collect_settings(
    args: argparse.Namespace,
    directory: Path,
    port: int,
    tokens: list[SecretStr],
    prefix: str = "",
) -> CollectSettings:
    """The receiver's settings from the flags (`prefix` 'collect-' under `serve`)."""
    from halo_mcp.collect.settings import CollectSettings

    option = prefix.replace("-", "_")
    return CollectSettings(
        host=args.host,
        port=port,
        directory=directory.expanduser().absolute(),
        tokens=tokens,
        allowed_hosts=args.allowed_host,
        allowed_origins=args.allowed_origin,
        max_request_bytes=int(getattr(args, f"{option}max_request_mb") * (1 << 20)),
        max_in_flight=getattr(args, f"{option}max_in_flight"),
        rotate_bytes=int(getattr(args, f"{option}rotate_mb") * (1 << 20)),
    )


def run(args: argparse.Namespace) -> int:
    import anyio
    from pydantic import ValidationError

    from halo_mcp.collect.app import run_collector
    from halo_mcp.collect.journal import JournalError

    try:
        settings = collect_settings(args, args.dir, args.port, http_options(args)["tokens"])
        anyio.run(run_collector, settings)
    except (ValidationError, ValueError, JournalError, OSError) as exc:
        print(f"halo-mcp collect: {first_error_message(exc)}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
