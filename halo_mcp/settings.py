"""Where halo-mcp keeps its files: one place, overridable by environment variables."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Trace indexes (rebuildable). `HALO_CACHE_DIR`, else `$XDG_CACHE_HOME/halo-mcp`."""
    explicit = os.environ.get("HALO_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "halo-mcp"


def data_dir() -> Path:
    """Runs and findings (kept). `HALO_DATA_DIR`, else `$XDG_DATA_HOME/halo-mcp`."""
    explicit = os.environ.get("HALO_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "halo-mcp"


def clickhouse_password() -> str | None:
    """The password of ClickHouse trace locations: `HALO_CLICKHOUSE_PASSWORD` (never taken
    from a URL, where it would be stored and shown)."""
    return os.environ.get("HALO_CLICKHOUSE_PASSWORD") or None


def clickhouse_url() -> str | None:
    """The server's default trace location, `HALO_CLICKHOUSE_URL` (a
    `clickhouse://USER@HOST:PORT/DB?table=T` URL or `chdb:FOLDER`): read when a tool gets no
    trace path, and over HTTP the only `clickhouse://` location a client may name."""
    return (os.environ.get("HALO_CLICKHOUSE_URL") or "").strip() or None
