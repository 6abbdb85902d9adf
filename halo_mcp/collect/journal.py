"""The collection directory: spans appended durably as OTLP JSON lines, rotated by day and size.

Durability policy: a batch is acknowledged only after its line is written and fsync'ed
(acknowledged == on disk). Requests arriving while a flush runs share the next one (group
commit), so a busy receiver pays one fsync per flush, not per request. A new file's
directory entry is fsync'ed too. A write that fails is cut back off the file, so a later
line never joins a partial one; after a crash (kill -9, power loss) the next start cuts
an unfinished last line, which was never acknowledged, before appending.

Files are named `spans-YYYY-MM-DD-NNNN.jsonl` (UTC day, then a sequence number): a new one
starts at a new day or when the current one reaches `rotate_bytes`. One receiver per
directory: a lock file (`.halo-collect.lock`) keeps a second one out.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from halo_mcp.store.files import last_line_start

LOCK_NAME = ".halo-collect.lock"
_NAME = re.compile(r"spans-(\d{4}-\d{2}-\d{2})-(\d{4})\.jsonl")


class JournalError(RuntimeError):
    """The collection directory cannot be used (locked by another receiver, not writable)."""


@dataclass
class _Ticket:
    line: bytes
    done: bool = False
    error: OSError | None = None


class SpanJournal:
    """Appends lines to the current file of a collection directory; `append` returns once
    the line is on disk. Thread-safe."""

    def __init__(
        self,
        directory: Path,
        rotate_bytes: int = 256 << 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.rotate_bytes = rotate_bytes
        self._clock = clock
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_handle = open(self.directory / LOCK_NAME, "a+b")  # noqa: SIM115
        except OSError as exc:
            raise JournalError(
                f"cannot use {self.directory} as the collection directory ({exc}); pass a "
                "writable --dir"
            ) from None
        try:
            fcntl.flock(self._lock_handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_handle.close()
            raise JournalError(
                f"another halo-mcp receiver is writing to {self.directory}; stop it or pass "
                "another --dir"
            ) from None
        self._cond = threading.Condition()
        self._pending: list[_Ticket] = []
        self._flushing = False
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._day = ""
        self.lines_written = 0
        self._resume()

    @property
    def current_path(self) -> Path | None:
        return self._path

    def append(self, line: bytes) -> None:
        """Write one line (ending in a newline) and return once it is fsync'ed; raises
        OSError when it could not be written (nothing of it stays in the file)."""
        ticket = _Ticket(line)
        with self._cond:
            self._pending.append(ticket)
            while not ticket.done:
                if self._flushing:
                    self._cond.wait()
                    continue
                batch, self._pending = self._pending, []
                self._flushing = True
                self._cond.release()
                try:
                    error = self._write(batch)
                finally:
                    self._cond.acquire()
                    self._flushing = False
                for item in batch:
                    item.done, item.error = True, error
                self._cond.notify_all()
        if ticket.error is not None:
            raise ticket.error

    def close(self) -> None:
        with self._cond:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        self._lock_handle.close()

    # -- inside ----------------------------------------------------------------------------

    def _write(self, batch: list[_Ticket]) -> OSError | None:
        data = b"".join(t.line for t in batch)
        try:
            fd = self._file_for(len(data))
        except OSError as exc:
            return exc
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError as exc:
            try:  # keep the file ending on a whole line
                os.ftruncate(fd, self._size)
                os.fsync(fd)
            except OSError:
                self._drop_file()  # the next write starts a new file
            return exc
        self._size += len(data)
        self.lines_written += len(batch)
        return None

    def _file_for(self, incoming: int) -> int:
        day = datetime.fromtimestamp(self._clock(), timezone.utc).strftime("%Y-%m-%d")
        if self._fd is not None and (
            day != self._day or (self._size and self._size + incoming > self.rotate_bytes)
        ):
            self._drop_file()
        if self._fd is None:
            self._open(day, self._next_sequence(day), new=True)
        assert self._fd is not None
        return self._fd

    def _open(self, day: str, sequence: int, new: bool) -> None:
        path = self.directory / f"spans-{day}-{sequence:04d}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        if new:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._fd, self._path, self._day = fd, path, day
        self._size = os.fstat(fd).st_size

    def _drop_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._path, self._size = None, None, 0

    def _files(self) -> list[tuple[str, int, Path]]:
        found = []
        for entry in self.directory.iterdir():
            match = _NAME.fullmatch(entry.name)
            if match and entry.is_file():
                found.append((match.group(1), int(match.group(2)), entry))
        return sorted(found)

    def _next_sequence(self, day: str) -> int:
        same_day = [seq for d, seq, _ in self._files() if d == day]
        return max(same_day, default=0) + 1

    def _resume(self) -> None:
        """Cut an unfinished last line (never acknowledged) off the newest file, and keep
        appending to it when it is today's and has room."""
        files = self._files()
        if not files:
            return
        day, sequence, path = files[-1]
        _cut_unfinished_tail(path)
        today = datetime.fromtimestamp(self._clock(), timezone.utc).strftime("%Y-%m-%d")
        if day == today and path.stat().st_size < self.rotate_bytes:
            self._open(day, sequence, new=False)


def _cut_unfinished_tail(path: Path) -> None:
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "r+b") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        handle.truncate(last_line_start(handle, size))
        handle.flush()
        os.fsync(handle.fileno())
