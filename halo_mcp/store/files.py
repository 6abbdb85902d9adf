"""Which files a set of paths names, and a cheap fingerprint of each file's state.

The fingerprint (size, mtime, inode, a hash of the first few KB) is what lets a second run
reuse an index without reading the file again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from halo_mcp.store.errors import TraceFileNotFoundError

TRACE_SUFFIXES = (".jsonl", ".json", ".ndjson", ".gz")
HASH_BYTES = 4096


@dataclass(frozen=True)
class FileState:
    path: Path
    size: int
    mtime_ns: int
    inode: int
    head_hash: bytes
    gz: bool


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Resolve files and directories (recursively: their *.jsonl/json/ndjson/gz files),
    sorted and de-duplicated. Raises TraceFileNotFoundError naming the absolute path."""
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        raise TraceFileNotFoundError("no trace path given: pass a .jsonl/.json/.gz file or a dir")
    found: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        absolute = path.absolute()
        if not path.exists():
            raise TraceFileNotFoundError(
                f"trace path not found: {absolute} (check the path; relative paths are "
                f"resolved from {Path.cwd()})"
            )
        if path.is_dir():
            inside = [
                p.resolve()
                for p in path.rglob("*")
                if p.is_file() and p.name.lower().endswith(TRACE_SUFFIXES)
            ]
            if not inside:
                raise TraceFileNotFoundError(
                    f"directory {absolute} holds no trace file (looked for "
                    f"{', '.join('*' + s for s in TRACE_SUFFIXES)}, recursively)"
                )
            found.update(inside)
        elif not os.access(path, os.R_OK):
            raise TraceFileNotFoundError(f"trace file not readable: {absolute} (check permissions)")
        else:
            found.add(path.resolve())
    return sorted(found)


def is_gz(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def hash_range(path: Path, start: int, stop: int) -> bytes:
    """blake2b of bytes [start, stop) of a file (a few KB at most)."""
    with open(path, "rb") as handle:
        handle.seek(max(0, start))
        data = handle.read(max(0, stop - max(0, start)))
    return hashlib.blake2b(data, digest_size=16).digest()


def file_state(path: Path) -> FileState:
    stat = path.stat()
    return FileState(
        path=path,
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        inode=stat.st_ino,
        head_hash=hash_range(path, 0, min(HASH_BYTES, stat.st_size)),
        gz=is_gz(path),
    )


def set_key(files: Sequence[Path]) -> str:
    """A stable name for an input set: the hash of its sorted resolved file list."""
    text = "\n".join(str(p) for p in files)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:24]
