"""Which files a set of paths names, and a cheap fingerprint of each file's state.

The fingerprint (size, mtime, inode, a hash of the first few KB) is what lets a second run
reuse an index without reading the file again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

from halo_mcp.store.errors import TraceFileNotFoundError
from halo_mcp.store.formats.errors import BadLineError
from halo_mcp.store.formats.lines import load_line

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

    @cached_property
    def end(self) -> int:
        """Where indexing stops: the end of the file, or the start of an unfinished last
        line (see complete_end); `size` for a .gz file. Worked out only for a file about
        to be indexed: an unchanged file is never read for it."""
        return self.size if self.gz else complete_end(self.path, self.size)


def expand_paths(paths: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """Resolve files and directories (recursively: their *.jsonl/json/ndjson/gz files):
    (the trace files, sorted and de-duplicated; the directories scanned for them, which
    inputs_fingerprint watches). Raises TraceFileNotFoundError naming the absolute path."""
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        raise TraceFileNotFoundError("no trace path given: pass a .jsonl/.json/.gz file or a dir")
    found: set[Path] = set()
    directories: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        absolute = path.absolute()
        if not path.exists():
            raise TraceFileNotFoundError(
                f"trace path not found: {absolute} (check the path; relative paths are "
                f"resolved from {Path.cwd()})"
            )
        if path.is_dir():
            directories.add(path.resolve())
            inside = []
            for entry in path.rglob("*"):
                if entry.is_dir():
                    directories.add(entry.resolve())
                elif entry.is_file() and entry.name.lower().endswith(TRACE_SUFFIXES):
                    inside.append(entry.resolve())
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
    return sorted(found), sorted(directories)


#: (path, size, mtime_ns, inode) of each input file and of each directory scanned for them.
Fingerprint = tuple[tuple[str, int, int, int], ...]


def inputs_fingerprint(files: Sequence[Path], directories: Sequence[Path]) -> Fingerprint:
    """What must not change for an index opened on these files (found in `directories`,
    see expand_paths) to still describe them. An append or rewrite changes a file's size,
    mtime or inode; adding or removing a file changes the mtime of the directory holding
    it (a new subdirectory changes its parent's). A path that no longer exists gets -1s.
    Costs one stat per file and directory."""
    return tuple(_stat_entry(p) for p in [*files, *directories])


def fingerprint_now(fingerprint: Fingerprint) -> Fingerprint:
    """The same entries stat-ed again (compare with the recorded one to see a change)."""
    return tuple(_stat_entry(Path(entry[0])) for entry in fingerprint)


def _stat_entry(path: Path) -> tuple[str, int, int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (str(path), -1, -1, -1)
    return (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


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


def complete_end(path: Path, size: int) -> int:
    """The offset just past the file's last complete line.

    A last line with no line end that is not valid JSON is taken to be still being
    written (a live trace file): indexing stops before it, and the next open, once the
    writer has finished the line, extends the index from there instead of having
    recorded half a span as a bad line. A last line without a line end that parses is
    complete (many writers omit the final newline). One small read when the file ends
    with a newline; else the last line is read and parsed (as indexing would anyway)."""
    if size == 0:
        return 0
    with open(path, "rb") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return size
        start = last_line_start(handle, size)
        handle.seek(start)
        last = handle.read(size - start)
    try:
        load_line(last)
    except BadLineError:
        return start
    return size


def last_line_start(handle: BinaryIO, size: int) -> int:
    """Where the last line of the file's first `size` bytes starts: just past its last
    line end, 0 when it has none. Reads backwards in 64 KiB steps (also used by the
    collector's journal to cut a half-written last line)."""
    start = size
    while start > 0:
        step = min(start, 1 << 16)
        handle.seek(start - step)
        cut = handle.read(step).rfind(b"\n")
        if cut >= 0:
            return start - step + cut + 1
        start -= step
    return 0


def set_key(files: Sequence[Path]) -> str:
    """A stable name for an input set: the hash of its sorted resolved file list."""
    text = "\n".join(str(p) for p in files)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:24]
