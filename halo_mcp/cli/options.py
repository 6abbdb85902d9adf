"""Options that several commands share, added by one function each so that a fix to one
command's flags reaches its twins.

`add_read_options` is what every command that reads traces takes (--json, --cache-dir,
--since/--until, -v); `add_directory_options` and `add_verbose_option` are its parts, for
the commands that take only some. One help text per flag, the same on every command.

`add_http_options` + `http_options` are for every command that serves HTTP (`serve --http`,
`ui`): the bind address, the bearer tokens and the extra Host/Origin values that the
DNS-rebinding protection (`halo_mcp.server.transport_security`) accepts. A new command
that listens adds them with `add_http_options(parser, default_port=...)` and passes
`**http_options(args)` to its settings model.
"""

from __future__ import annotations

import argparse
from typing import TypedDict

from pydantic import SecretStr

from halo_mcp.cli import AddsArguments
from halo_mcp.cli.clientconfig import DEFAULT_TOKEN_ENV
from halo_mcp.cli.window import add_window_options


def add_verbose_option(parser: AddsArguments) -> None:
    """-v/--verbose: debug logs on stderr (stdout keeps only the command's output)."""
    parser.add_argument("-v", "--verbose", action="store_true", help="Debug logs on stderr.")


def add_directory_options(
    parser: AddsArguments, *, data: bool = False, cache: bool = False
) -> None:
    """--data-dir (the run store) and/or --cache-dir (the trace index)."""
    if data:
        parser.add_argument(
            "--data-dir",
            metavar="DIR",
            help="Run store (default: $HALO_DATA_DIR or ~/.local/share/halo-mcp).",
        )
    if cache:
        parser.add_argument(
            "--cache-dir",
            metavar="DIR",
            help="Trace index (default: $HALO_CACHE_DIR or ~/.cache/halo-mcp).",
        )


def add_read_options(parser: AddsArguments, *, json_help: str) -> None:
    """--json (`json_help` says what it prints), --cache-dir, --since/--until and -v."""
    parser.add_argument("--json", action="store_true", help=json_help)
    add_directory_options(parser, cache=True)
    add_window_options(parser)
    add_verbose_option(parser)


class HttpOptions(TypedDict):
    """The HTTP fields of `ServerSettings` and `UiSettings`, by the same names."""

    host: str
    port: int
    tokens: list[SecretStr]
    allowed_hosts: list[str]
    allowed_origins: list[str]


def add_http_options(parser: argparse.ArgumentParser, *, default_port: int) -> None:
    """--host, --port, --token-env | --token, --allowed-host, --allowed-origin."""
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=default_port, help=f"HTTP port (default {default_port})"
    )
    tokens = parser.add_mutually_exclusive_group()
    tokens.add_argument(
        "--token-env",
        default=DEFAULT_TOKEN_ENV,
        metavar="NAME",
        help=f"env var holding the bearer token(s), comma-separated (default {DEFAULT_TOKEN_ENV})",
    )
    tokens.add_argument(
        "--token", metavar="T", help="bearer token(s), comma-separated (prefer --token-env)"
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="extra Host header accepted over HTTP, e.g. halo.internal:8765 or halo.internal:*",
    )
    parser.add_argument(
        "--allowed-origin", action="append", default=[], metavar="ORIGIN", help="extra Origin"
    )


def http_options(args: argparse.Namespace) -> HttpOptions:
    """The values of `add_http_options`' flags; tokens from --token, else from the variable
    --token-env names."""
    from halo_mcp.server import parse_tokens, tokens_from_env

    return HttpOptions(
        host=args.host,
        port=args.port,
        tokens=parse_tokens(args.token) if args.token else tokens_from_env(args.token_env),
        allowed_hosts=args.allowed_host,
        allowed_origins=args.allowed_origin,
    )
