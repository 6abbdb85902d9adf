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


class DirectoryError(OSError):
    """The cache or data directory cannot be used (a file is in the way, no permission);
    the message names the directory, the variable that sets it and what to do."""


def ensure_dir(path: Path, what: str) -> Path:
    """Create `path` (a `what` = "cache" or "data" directory) if needed and return it;
    raise DirectoryError with a message saying how to fix it when it cannot be used."""
    variable = "HALO_CACHE_DIR" if what == "cache" else "HALO_DATA_DIR"
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise DirectoryError(
            f"the {what} directory {path} cannot be used: {blocker} is a file, not a "
            f"directory. Move that file away, or set {variable} to a directory"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DirectoryError(
            f"the {what} directory {path} cannot be created ({exc.strerror or exc}). Set "
            f"{variable} to a directory this user can write"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DirectoryError(
            f"the {what} directory {path} is not writable by this user. Fix its permissions "
            f"or set {variable} to another directory"
        )
    return path
