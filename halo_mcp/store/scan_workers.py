"""Text scans in worker processes, for a server that many clients share.

A text scan is CPU work in Python (decoding and testing every line the raw match hits:
half a second for a common word in 100 MB). In the server's own process it holds the GIL
that every other client's quick call needs, so a burst of scans queues indexed queries
behind it for as long. Run in a worker process, at a lower CPU priority, the scan costs
the quick calls nothing but a share of a core; the thread that asked waits without the
GIL.

The worker opens the index read-only itself and keeps, per store (its `key`), a
connection and the files' line indexes, for the latest STORES_KEPT stores. A request's
time limit travels with the job: the worker stops the scan when it runs out, like a scan
in the thread would. A worker that dies (killed, out of memory) is replaced and the scan
run once more; a second failure is reported to the caller.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sqlite3
import threading
from array import array
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path

from halo_mcp.store.connections import open_reader
from halo_mcp.store.content import compile_text
from halo_mcp.store.errors import StoreError
from halo_mcp.store.index import ignore_interrupts
from halo_mcp.store.text_scan import LineIndexes, scan_files
from halo_mcp.store.time_limit import Deadline, install_deadline

log = logging.getLogger(__name__)

#: How much lower than the server a worker runs (os.nice): under load, the quick calls'
#: process gets the CPU first and the scans take what is left.
WORKER_NICENESS = 10
#: Stores whose connection and line indexes a worker keeps open (the latest used).
STORES_KEPT = 4
#: How often a thread waiting for a worker checks its request's time limit.
WAIT_STEP_S = 0.05


@dataclass(frozen=True)
class ScanJob:
    """One scan, as sent to a worker (picklable)."""

    key: str  # the store's identity: a new store (its files changed) gets a new key
    index_path: Path
    files: Mapping[int, tuple[Path, bool]]  # file id -> (path, gzipped)
    pattern: str
    raw: bytes  # the pattern's raw-safe form (content.raw_safe)
    seconds: float | None  # what is left of the request's time limit


class ScanWorkers:
    """A pool of `processes` worker processes running text scans (see the module doc).
    Start it before serving (:meth:`start`), close it when done."""

    def __init__(self, processes: int = 1) -> None:
        if processes < 1:
            raise ValueError("ScanWorkers needs at least one process")
        self.processes = processes
        #: False once the workers could not start: the stores then scan in their threads.
        self.usable = True
        self._pool: ProcessPoolExecutor | None = None
        self._guard = threading.Lock()

    def start(self) -> None:
        """Start the workers now (and import what they need) rather than on the first
        scan, which would then wait for it. Workers that cannot start (a host program that
        cannot be re-imported, as "spawn" needs: see the multiprocessing docs) leave
        the scans in the stores' threads, with a warning, rather than failing the host."""
        try:
            for future in [self._executor().submit(_ready) for _ in range(self.processes)]:
                future.result()
        except (BrokenProcessPool, OSError) as exc:
            self.usable = False
            self.close()
            log.warning(
                "text-scan worker processes could not start (%s); text scans run in the "
                "server's threads instead",
                exc,
            )

    def scan(
        self,
        key: str,
        index_path: Path,
        files: Mapping[int, tuple[Path, bool]],
        pattern: str,
        raw: bytes,
        deadline: Deadline,
    ) -> array[int]:
        """Row ids of the spans whose text matches `pattern` (see text_scan.scan_files),
        found by a worker within what is left of `deadline`."""
        for _ in range(2):  # a worker that died is replaced, and the scan run once more
            pool = self._executor()
            job = ScanJob(key, index_path, files, pattern, raw, deadline.remaining())
            try:
                found = _wait(pool.submit(run_scan, job), deadline)
                break
            except BrokenProcessPool:
                self._replace(pool)
                log.warning("a text-scan worker process stopped; it is replaced")
        else:
            raise StoreError(
                "the text scan's worker process stopped unexpectedly twice (out of "
                "memory?); try a more specific text pattern, or narrow the query"
            )
        ids = array("q")
        ids.frombytes(found)
        return ids

    def close(self) -> None:
        """Stop the workers now: a scan still running is only reading (its caller gets
        an error), so there is nothing to wait for."""
        with self._guard:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        # ProcessPoolExecutor has no public way to stop a busy worker before Python 3.14.
        processes: dict[int, BaseProcess] = getattr(pool, "_processes", None) or {}
        for process in list(processes.values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)

    def _executor(self) -> ProcessPoolExecutor:
        with self._guard:
            if self._pool is None:
                # spawn: a fresh interpreter, never a fork of a process running threads.
                self._pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker,
                )
            return self._pool

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._guard:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)


def _wait(future: Future[bytes], deadline: Deadline) -> bytes:
    """The job's result; past the deadline, the time-limit error (the worker stops the
    scan itself at the same moment)."""
    while True:
        try:
            return future.result(timeout=WAIT_STEP_S)
        except TimeoutError:
            if deadline.expired():
                future.cancel()
                deadline.check()


# -- in the worker process -------------------------------------------------------------------

_stores: OrderedDict[str, tuple[sqlite3.Connection, LineIndexes, Deadline]] = OrderedDict()


def _init_worker() -> None:
    ignore_interrupts()
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)


def _ready() -> None:
    """Nothing: a job that makes the pool start its worker."""


def run_scan(job: ScanJob) -> bytes:
    """In a worker: the ids `job` asks for, as the bytes of an array("q")."""
    conn, lines, deadline = _store(job.key, job.index_path)
    with deadline.running(job.seconds):
        found = scan_files(conn, job.files, lines, compile_text(job.pattern), job.raw, deadline)
        return array("q", found).tobytes()


def _store(key: str, index_path: Path) -> tuple[sqlite3.Connection, LineIndexes, Deadline]:
    kept = _stores.get(key)
    if kept is not None:
        _stores.move_to_end(key)
        return kept
    conn = open_reader(index_path)
    deadline = Deadline()
    install_deadline(conn, deadline)
    kept = _stores[key] = (conn, LineIndexes(), deadline)
    while len(_stores) > STORES_KEPT:
        _, (old, _, _) = _stores.popitem(last=False)
        old.close()
    return kept
