"""Trace path validation: the one function every tool calls before touching a file.

Over stdio the server acts for the local user, so any readable path is fine (it is resolved
and reported back absolute). Over HTTP the caller may be anyone holding a token, so paths are
confined to the configured roots: symlinks are resolved before the check, and `..` parts,
NUL bytes and flag-like names are refused with a message saying what is allowed.

A ClickHouse location is accepted in place of paths (alone): `chdb:FOLDER` like a path
(inside the roots over HTTP), and over HTTP a `clickhouse://` URL only when it is the
server's configured default (`HALO_CLICKHOUSE_URL`), so a client cannot point the server
at another host. With no trace path at all, that default is used when set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import anyio
from mcp.server.mcpserver.exceptions import ToolError

from halo_mcp.settings import clickhouse_url
from halo_mcp.store.clickhouse.location import (
    ClickHouseLocationError,
    is_clickhouse_location,
    parse_location,
)

MAX_PATHS = 64

#: A resolved trace path, or a ClickHouse location (kept as text: it is not a file path).
TracePath = Path | str


async def resolve_paths(
    paths: Sequence[str] | None, roots: Sequence[Path] | None
) -> list[TracePath]:
    """`resolve_trace_paths` in a worker thread: it stats files, which can block on slow or
    network file systems, and async tools must never block the event loop."""
    return await anyio.to_thread.run_sync(resolve_trace_paths, list(paths or ()), roots)


def resolve_trace_paths(paths: Sequence[str], roots: Sequence[Path] | None) -> list[TracePath]:
    """Validate and resolve trace paths; raise ToolError naming the path and the fix.

    `roots=None` means unconfined (stdio). With roots, a relative path is taken relative to
    the first root and every resolved path must lie inside one root.
    """
    default = clickhouse_url()
    if not paths and default:
        paths = [default]
    locations = [p for p in paths if is_clickhouse_location(p.strip())]
    if locations:
        if len(paths) > 1:
            raise ToolError(
                "A ClickHouse location is read on its own: pass it as the only trace path."
            )
        return [_location(locations[0].strip(), roots, default)]
    if not paths:
        raise ToolError(
            "No trace path given: pass trace_paths, e.g. ['/abs/path/traces.jsonl'] "
            "(files or directories of .jsonl/.json/.gz)."
        )
    if len(paths) > MAX_PATHS:
        raise ToolError(
            f"Too many trace paths ({len(paths)}); pass at most {MAX_PATHS}, or a directory."
        )
    resolved: list[TracePath] = []
    for raw in paths:
        path = _resolve_one(raw, roots)
        if path not in resolved:
            resolved.append(path)
    return resolved


def _location(text: str, roots: Sequence[Path] | None, default: str | None) -> str:
    """A ClickHouse location, checked: a chDB folder like a path, a server URL over HTTP
    only when it is the configured default. Returned in its canonical form."""
    try:
        location = parse_location(text)
    except ClickHouseLocationError as exc:
        raise ToolError(str(exc)) from None
    if location.mode == "server":
        if roots is not None and text != default:
            raise ToolError(
                "This server reads ClickHouse only at its configured location "
                f"({'HALO_CLICKHOUSE_URL is not set' if not default else repr(default)}); "
                "pass that location (or no trace path), or trace files inside the roots."
            )
        return text
    raw_path = text[len("chdb:") :].partition("?")[0]
    folder = _resolve_one(raw_path, roots)
    if not folder.is_dir():
        raise ToolError(f"chdb: needs a folder; {str(folder)!r} is not a directory.")
    query = text.partition("?")[2]
    return f"chdb:{folder}" + (f"?{query}" if query else "")


def _resolve_one(raw: str, roots: Sequence[Path] | None) -> Path:
    text = raw.strip()
    if not text:
        raise ToolError("A trace path is empty: pass a file or directory path.")
    if "\x00" in text:
        raise ToolError("A trace path contains a NUL byte; pass a plain file or directory path.")
    if text.startswith("-"):
        raise ToolError(f"Trace path {text!r} starts with '-'; pass a path such as ./{text}.")
    if roots is None:
        return _existing(Path(text).expanduser().absolute(), raw)
    if ".." in Path(text).parts:
        raise ToolError(
            f"Trace path {text!r} contains '..', which this server refuses over HTTP. "
            f"Pass a path inside the allowed roots: {_roots_text(roots)}."
        )
    candidate = Path(text) if Path(text).is_absolute() else roots[0] / text
    path = _existing(candidate, raw)
    if not any(path == root or path.is_relative_to(root) for root in roots):
        raise ToolError(
            f"Trace path {str(candidate)!r} (resolved to {str(path)!r}) is outside the allowed "
            f"roots: {_roots_text(roots)}. Copy the traces under a root, or restart the server "
            "with another --root."
        )
    return path


def _existing(candidate: Path, raw: str) -> Path:
    """The resolved (symlink-free) path, or a ToolError saying where we looked."""
    try:
        path = candidate.resolve(strict=True)
    except FileNotFoundError:
        raise ToolError(
            f"Trace file not found: {str(candidate.absolute())!r} (from {raw!r}). Pass an "
            "absolute path; relative paths are taken from the server's working directory "
            f"({os.getcwd()}) over stdio, or from the first root over HTTP."
        ) from None
    except (OSError, RuntimeError) as exc:  # symlink loop, permission on a parent
        raise ToolError(f"Cannot read trace path {str(candidate)!r}: {exc}.") from None
    if not os.access(path, os.R_OK):
        raise ToolError(f"Trace path {str(path)!r} is not readable by the server's user.")
    return path


def _roots_text(roots: Sequence[Path]) -> str:
    return ", ".join(str(root) for root in roots) or "(none configured)"


def normalize_roots(roots: Sequence[str | Path]) -> list[Path]:
    """Resolve configured roots once, so the containment check compares real paths."""
    out: list[Path] = []
    for root in roots:
        path = Path(root).expanduser().resolve()
        if not path.is_dir():
            raise ValueError(f"--root {str(root)!r} is not a directory")
        out.append(path)
    return out


async def resolve_repo_path(raw: str, roots: Sequence[Path] | None) -> str:
    """A harness repository folder for analyze_traces: resolved like a trace path (over
    HTTP inside the roots, `..` refused, symlinks resolved first) and a directory."""
    try:
        path = await anyio.to_thread.run_sync(_resolve_one, raw, roots)
    except ToolError as exc:
        raise ToolError(f"repo_path: {exc}".replace("Trace path", "path")) from None
    if not path.is_dir():
        raise ToolError(
            f"repo_path {str(path)!r} is not a directory; pass the harness repository's root "
            "folder."
        )
    return str(path)
