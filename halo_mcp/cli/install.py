"""`halo-mcp install CLIENT`: register the halo MCP server in a coding agent's config.

Merges one entry into the client's config file (keeping everything else), shows what
changed on stderr, and with `--dry-run` prints the result instead of writing it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from halo_mcp.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Subcommands
from halo_mcp.cli.clientconfig import (
    CLIENTS,
    DEFAULT_TOKEN_ENV,
    Client,
    ConfigError,
    ServerSpec,
    entry_excerpt,
    is_loopback_url,
    merge,
)
from halo_mcp.cli.output import first_error_message
from halo_mcp.settings import Environment

DEFAULT_SCOPE: dict[str, str] = {
    "claude-code": "project",
    "cursor": "project",
    "vscode": "project",
    "codex": "user",
}

_NEXT_STEP = {
    "claude-code": "Check it with `claude mcp list` (a project .mcp.json asks for approval"
    " the first time claude starts in this folder).",
    "cursor": "Enable it in Cursor Settings > MCP (Cursor reloads mcp.json by itself).",
    "codex": "Start codex; `/mcp` lists the servers it connected to.",
    "vscode": "In VS Code run 'MCP: List Servers' from the Command Palette and start halo.",
}

_DESCRIPTION = """\
Write or merge the halo server entry into a coding agent's MCP config:
stdio (the client starts `halo-mcp serve`, the default) or a running
HTTP server (--http URL). What changed is shown on stderr."""

_EPILOG = """\
where the entry goes:
  claude-code  project: ./.mcp.json            user: ~/.claude.json (only mcpServers.NAME)
  cursor       project: ./.cursor/mcp.json     user: ~/.cursor/mcp.json
  codex        project: ./.codex/config.toml   user: $CODEX_HOME/config.toml (~/.codex)
  vscode       project: ./.vscode/mcp.json     user: VS Code's user mcp.json, if found

The API key is never written: the entry tells the client to pass OPENAI_API_KEY from its
own environment (Claude Code and Codex also OPENAI_BASE_URL and HALO_MODEL when set).
Running install twice changes nothing; other servers and settings in the file are kept.

examples:
  halo-mcp install claude-code
  halo-mcp install codex --dry-run
  halo-mcp install cursor --scope user --http http://127.0.0.1:8765/mcp
"""


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "install",
        help="Register the halo MCP server in Claude Code, Cursor, Codex or VS Code.",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("client", choices=CLIENTS, help="The coding agent to configure.")
    parser.add_argument(
        "--scope",
        choices=("project", "user"),
        help="project: a file in the current folder; user: your home config"
        " (default: user for codex, project for the others).",
    )
    parser.add_argument(
        "--http",
        metavar="URL",
        help="Connect to a running `halo-mcp serve --http` at URL (e.g."
        " http://127.0.0.1:8765/mcp) instead of starting halo-mcp over stdio.",
    )
    parser.add_argument(
        "--token-env",
        metavar="VAR",
        help="With --http: the environment variable holding the bearer token the client"
        f" sends (default: {DEFAULT_TOKEN_ENV} for non-loopback URLs or when it is set here;"
        " none otherwise).",
    )
    parser.add_argument(
        "--command",
        metavar="PATH",
        help="The halo-mcp executable the client starts (default: the absolute path of the"
        " installed one; pass `halo-mcp` for a file you share with others).",
    )
    parser.add_argument(
        "--name", default="halo", help="The server's name in the client (default: halo)."
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="Print the resulting file on stdout and write nothing.",
    )
    parser.set_defaults(handler=run_install)


# --------------------------------------------------------------------------- paths


def stdio_command(explicit: str | None = None) -> list[str]:
    """The command line that starts the server, robust to the client's PATH and cwd.

    The absolute path of the installed `halo-mcp` (pyenv shims are skipped: they pick a
    Python from the cwd), else this interpreter with `-m halo_mcp`.
    """
    if explicit:
        return [explicit, "serve"]
    found = shutil.which("halo-mcp")
    if found and "shims" not in Path(found).parts:
        return [str(Path(found).absolute()), "serve"]
    script = "halo-mcp.exe" if os.name == "nt" else "halo-mcp"
    sibling = Path(sys.executable).parent / script
    if sibling.is_file():
        return [str(sibling), "serve"]
    return [sys.executable, "-m", "halo_mcp", "serve"]


def vscode_user_dir() -> Path | None:
    """VS Code's user settings folder on this machine, if it exists."""
    home = Path.home()
    if sys.platform == "darwin":
        candidates = [home / "Library" / "Application Support" / "Code" / "User"]
    elif os.name == "nt":
        appdata = Environment.read().appdata
        candidates = [Path(appdata) / "Code" / "User"] if appdata else []
    else:
        config = Path(Environment.read().xdg_config_home or home / ".config")
        candidates = [config / "Code" / "User"]
    return next((c for c in candidates if c.is_dir()), None)


def config_path(client: Client, scope: str, cwd: Path | None = None) -> Path | None:
    """Where the client reads its MCP servers for this scope (None: not determinable)."""
    cwd = cwd or Path.cwd()
    home = Path.home()
    if client == "claude-code":
        return cwd / ".mcp.json" if scope == "project" else home / ".claude.json"
    if client == "cursor":
        return (cwd if scope == "project" else home) / ".cursor" / "mcp.json"
    if client == "codex":
        if scope == "project":
            return cwd / ".codex" / "config.toml"
        codex_home = Environment.read().codex_home
        return (Path(codex_home).expanduser() if codex_home else home / ".codex") / "config.toml"
    if scope == "project":
        return cwd / ".vscode" / "mcp.json"
    user_dir = vscode_user_dir()
    return user_dir / "mcp.json" if user_dir else None


def _display(path: Path) -> str:
    try:
        return "./" + str(path.relative_to(Path.cwd()))
    except ValueError:
        pass
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` in one step (a crash leaves the old or the new file, never half),
    keeping the old file's permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        mode = path.stat().st_mode & 0o777
    else:  # what open() would have given a new file (mkstemp makes it 0600)
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------- handler


def _err(message: str = "") -> None:
    print(message, file=sys.stderr)


def run_install(args: argparse.Namespace) -> int:
    client: Client = args.client
    scope = args.scope or DEFAULT_SCOPE[client]
    token_env = args.token_env
    # A remote server needs a token; a local one does when the user has set one up.
    wants_token = args.http and (
        not is_loopback_url(args.http) or bool(Environment.variable(DEFAULT_TOKEN_ENV))
    )
    if token_env is None and wants_token:
        token_env = DEFAULT_TOKEN_ENV
    try:
        spec = ServerSpec(
            name=args.name,
            command=stdio_command(args.command),
            url=args.http,
            token_env=token_env if args.http else None,
        )
    except ValueError as exc:
        _err(f"halo-mcp install: {first_error_message(exc)}")
        return EXIT_USAGE

    path = config_path(client, scope)
    if path is None:
        _err(
            "halo-mcp install: VS Code's user settings folder was not found. In VS Code run"
            " 'MCP: Open User Configuration' from the Command Palette and add the entry"
            ' printed on stdout under "servers", or use --scope project.'
        )
        sys.stdout.write(merge("", client, spec).text)
        return EXIT_FAILED

    try:
        old_text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        _err(f"halo-mcp install: cannot read {path}: {exc}")
        return EXIT_FAILED
    try:
        result = merge(old_text, client, spec)
    except ConfigError as exc:
        _err(f"halo-mcp install: cannot merge into {path}: {exc}")
        return EXIT_USAGE

    shown = _display(path)
    if args.dry_run:
        shared_file = client == "claude-code" and scope == "user"
        sys.stdout.write(
            entry_excerpt(client, result.text, spec.name) if shared_file else result.text
        )
        verb = {"added": "would add", "updated": "would update", "unchanged": "would keep"}
        _err(f"dry run: {verb[result.action]} {result.location} in {shown}; nothing written.")
        if shared_file:
            _err(f"(only {result.location} is shown; the rest of {shown} would stay as it is)")
        if result.action != "unchanged":
            _err(result.diff(shown))
        return EXIT_OK

    if result.action == "unchanged":
        _err(f"{result.location} in {shown} is already up to date; nothing changed.")
    else:
        try:
            write_atomically(path, result.text)
        except OSError as exc:
            _err(f"halo-mcp install: cannot write {path}: {exc}")
            return EXIT_FAILED
        done = "added" if result.action == "added" else "updated"
        _err(f"{done} {result.location} in {shown}")
        _err(result.diff(shown))
    _err(_NEXT_STEP[client])
    if not args.http and not Environment.read().openai_api_key:
        _err(
            "Note: OPENAI_API_KEY is not set in this shell. The client passes its own"
            " environment to halo-mcp; set the key where the client starts (or"
            " OPENAI_BASE_URL for a keyless local provider). Span queries and triage work"
            " without it."
        )
    return EXIT_OK
