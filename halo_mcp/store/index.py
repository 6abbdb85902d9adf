"""Building, reusing and extending the on-disk index of a set of trace files.

One SQLite database per input set lives in the cache dir. Opening checks each file's
fingerprint: unchanged files are reused as is (no read beyond a few KB), files that only
grew are extended (only the new bytes are parsed), other changed files are re-parsed.
A lock file serializes builders across processes; a first build happens in a temporary
database renamed into place, so no reader ever sees a half-built index; later updates
happen in place in one transaction (WAL mode: readers keep a consistent snapshot).

Big inputs are built in parallel: each worker process turns one contiguous run of the
input into a complete shard file (rows, indexes, duplicates, trace summaries; see
shard_build.py) and the main file lists the shards (see shards.py). Extensions add their
rows to the main file's own `spans` table, parsed by the workers slice by slice.
`.gz` files cannot be read back by offset, so their lines are also kept zlib-compressed
in the index (`gz_lines`), and a `.gz` file that changed in any way is parsed again
rather than extended.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import signal
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from halo_mcp.settings import ensure_dir
from halo_mcp.store import derive
from halo_mcp.store.connections import connect
from halo_mcp.store.files import HASH_BYTES, FileState, file_state, hash_range, set_key
from halo_mcp.store.gzip_stream import StreamDamage, decompressed_chunks
from halo_mcp.store.ingest import (
    MAX_BAD_EXAMPLES,
    SliceResult,
    insert_rows,
    parse_gz_block,
    parse_range,
    record_file,
)
from halo_mcp.store.schema import (
    SCHEMA_VERSION,
    SPAN_INDEXES,
    TABLES,
    TRACE_INDEXES,
    create_indexes,
)
from halo_mcp.store.shard_build import Segment, ShardResult, build_shard
from halo_mcp.store.shard_merge import cut_runs, join_shard_traces, record_shards
from halo_mcp.store.shards import (
    MAX_SHARDS,
    attach_shards,
    remove_shard_files,
    shard_file,
    shard_ids,
    shard_names,
    span_tables,
)

if TYPE_CHECKING:  # the pool machinery is imported when a build needs it (cold start)
    from concurrent.futures import Executor

log = logging.getLogger(__name__)

SLICE_BYTES = 8 << 20
#: Inputs smaller than this are parsed in-process (a worker pool costs more than it saves).
PARALLEL_MIN_BYTES = 16 << 20
WORKERS = max(1, min(4, MAX_SHARDS, os.cpu_count() or 1))
WINDOW = 2 * WORKERS + 1


@dataclass
class Plan:
    """What to do with one file: reuse ("same"), parse from an offset ("grow"/"new"),
    or drop its rows and parse it again ("rebuild")."""

    state: FileState
    action: str
    file_id: int | None = None
    from_offset: int = 0
    from_line: int = 0

    @property
    def fid(self) -> int:
        """The file's id in the index (known once the file is prepared)."""
        if self.file_id is None:
            raise RuntimeError(f"{self.state.path} has no file id yet")
        return self.file_id


def index_path(cache_dir: Path, files: list[Path]) -> Path:
    return cache_dir / "indexes" / f"{set_key(files)}.sqlite"


def plan_updates(conn: sqlite3.Connection, states: list[FileState]) -> list[Plan] | None:
    """Compare the files with what the index holds; None when the index is unusable."""
    try:
        version = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if not version or int(version[0]) != SCHEMA_VERSION:
            return None
        if conn.execute("SELECT value FROM meta WHERE key='complete'").fetchone() is None:
            return None
        rows = {
            r[0]: r
            for r in conn.execute(
                "SELECT path, file_id, size, mtime_ns, inode, head_hash, tail_hash, "
                "bytes_indexed, lines_indexed, gz FROM files"
            )
        }
    except sqlite3.DatabaseError:
        return None
    if set(rows) - {str(state.path) for state in states}:
        return None  # a file left the input set: its rows must go, so build again
    plans = []
    for state in states:
        row = rows.get(str(state.path))
        if row is None:
            plans.append(Plan(state, "new"))
            continue
        _, file_id, size, mtime_ns, inode, head, tail, indexed, lines, _gz = row
        if (size, mtime_ns, inode, head) == (
            state.size,
            state.mtime_ns,
            state.inode,
            state.head_hash,
        ):
            plans.append(Plan(state, "same", file_id))
        elif (
            not state.gz
            and state.end > indexed
            and state.inode == inode
            and head == hash_range(state.path, 0, min(HASH_BYTES, indexed))
            and tail == hash_range(state.path, indexed - HASH_BYTES, indexed)
        ):
            plans.append(Plan(state, "grow", file_id, indexed, lines))
        else:
            plans.append(Plan(state, "rebuild", file_id))
    return plans


@contextlib.contextmanager
def build_lock(db_path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Exclusive lock across processes (flock on a side file) for building or extending.
    `on_wait` is called first when another process holds it."""
    ensure_dir(db_path.parent.parent, "cache")
    db_path.parent.mkdir(exist_ok=True)
    with open(str(db_path) + ".lock", "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_index(
    files: list[Path],
    cache_dir: Path,
    notify: Callable[[str], None] | None = None,
    inputs: list[Path] | None = None,
) -> tuple[Path, bool]:
    """The index for `files`, built or brought up to date. Returns (path, reused as is).

    `inputs` (the paths the caller named, default `files`) name the index: a directory
    keeps one index as it gains files (a collection rotating into new files), which is
    extended with the new files instead of built again under a new name.
    `notify` hears one line before and after work that takes a noticeable time (building
    or updating the index of more than a few MB, waiting for another process's build)."""
    db_path = index_path(cache_dir, inputs or files)
    states = [file_state(p) for p in files]
    if db_path.exists():
        with contextlib.closing(connect(db_path)) as conn:
            plans = plan_updates(conn, states)
        if plans is not None and all(p.action == "same" for p in plans):
            return db_path, True
    say = notify or (lambda _message: None)
    waiting = lambda: say("waiting for another process that is indexing these files...")  # noqa: E731
    with build_lock(db_path, on_wait=waiting):
        states = [file_state(p) for p in files]
        plans = None
        sharded = False
        if db_path.exists():
            with contextlib.closing(connect(db_path)) as conn:
                plans = plan_updates(conn, states)
                sharded = bool(shard_names(conn))
            if plans is None:
                log.warning("index %s is stale or unreadable: rebuilding it", db_path)
        if plans is not None and all(p.action == "same" for p in plans):
            return db_path, True
        began = time.perf_counter()
        # Shard files are written once: a changed (not just grown) file means a new build.
        if plans is None or (sharded and any(p.action == "rebuild" for p in plans)):
            size = sum(s.size for s in states)
            plain = sum(s.size for s in states if not s.gz)
            loud = size >= PARALLEL_MIN_BYTES
            if loud:
                cores = f" on {WORKERS} cores" if _parallel(plain) else ""
                files_word = "1 file" if len(states) == 1 else f"{len(states)} files"
                say(
                    f"indexing {files_word}, {_megabytes(size)}{cores} "
                    "(once: later opens reuse the index)..."
                )
            _build_fresh(db_path, states)
        else:
            pending = sum(p.state.end - p.from_offset for p in plans if p.action != "same")
            loud = pending >= PARALLEL_MIN_BYTES
            if loud:
                say(f"updating the index with {_megabytes(pending)} of new or changed traces...")
            with contextlib.closing(connect(db_path)) as conn:
                conn.execute("PRAGMA main.journal_mode=WAL")
                attach_shards(conn, db_path, readonly=False)
                _update(conn, plans, fresh=False)
        if loud:
            say(f"indexed in {time.perf_counter() - began:.1f} s")
    return db_path, False


def _megabytes(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def _parallel(plain_bytes: int) -> bool:
    """Whether a fresh build of this many plain-file bytes runs on the worker pool."""
    return WORKERS > 1 and plain_bytes > 0 and plain_bytes >= PARALLEL_MIN_BYTES


def _build_fresh(db_path: Path, states: list[FileState]) -> None:
    """Build the index in a temporary file (plus new shard files) and rename it into
    place: readers see the old index or the new one, never a half-built one."""
    tmp = db_path.with_name(f"{db_path.name}.tmp{os.getpid()}")
    token = secrets.token_hex(4)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    done = False
    try:
        conn = connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("PRAGMA cache_size=-65536")
            conn.executescript(TABLES)
            plans = [Plan(s, "new") for s in states]
            if _parallel(sum(s.size for s in states if not s.gz)):
                _build_sharded(conn, plans, db_path, token)
            else:
                _update(conn, plans, fresh=True)
            conn.execute("PRAGMA main.journal_mode=WAL")
        finally:
            conn.close()
        for suffix in ("-wal", "-shm"):  # an old index's WAL must not meet the new file
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(db_path) + suffix)
        os.replace(tmp, db_path)
        done = True
        remove_shard_files(db_path, token, keep=True)  # the shards of the index replaced
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if not done:
            remove_shard_files(db_path, token, keep=False)


def _update(conn: sqlite3.Connection, plans: list[Plan], fresh: bool) -> None:
    """Parse what the plans ask for and refresh the derived tables, in one transaction."""
    with _completing(conn, "BEGIN IMMEDIATE"):
        old_max = _last_id(conn)
        if not fresh:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS affected(trace_id TEXT PRIMARY KEY)")
            conn.execute("DELETE FROM temp.affected")
        work = [p for p in plans if p.action != "same"]
        pending = sum(p.state.end - p.from_offset for p in work)
        pool = worker_pool() if _parallel(pending) else None
        began = time.perf_counter()
        groups: derive.Groups = {}
        orphaned_names = 0
        try:
            for plan in work:
                _prepare_file(conn, plan)
                orphaned_names += _ingest_file(conn, plan, pool, groups)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        log.debug("parsed and inserted in %.2fs", time.perf_counter() - began)
        if fresh:
            create_indexes(conn, SPAN_INDEXES)
            create_indexes(conn, TRACE_INDEXES)
        log.debug("indexes at %.2fs", time.perf_counter() - began)
        if fresh:
            derive.remove_duplicates(conn, groups)
            changes = derive.refresh_traces(conn, all_traces=True, inherit=orphaned_names > 0)
        else:
            conn.execute(
                "INSERT OR IGNORE INTO temp.affected "
                "SELECT DISTINCT trace_id FROM main.spans WHERE id > ?",
                (old_max,),
            )
            derive.gather_scope(conn)
            derive.remove_duplicates(conn, groups, after=old_max, source=derive.SCOPE)
            changes = derive.refresh_traces(conn, all_traces=False, source=derive.SCOPE)
        log.debug("traces at %.2fs", time.perf_counter() - began)
        derive.merge_groups(groups, changes)
        # The parsers' span-group counts cover the new rows (less duplicates, plus
        # inherited names); a re-parsed file's old rows are gone, so recount then.
        if any(p.action == "rebuild" for p in plans):
            groups = derive.count_groups(conn)
        elif not fresh:
            derive.merge_groups(groups, derive.load_groups(conn))
        derive.refresh_aggregates(conn, groups)
        log.debug("aggregates at %.2fs", time.perf_counter() - began)


@contextlib.contextmanager
def _completing(conn: sqlite3.Connection, begin: str = "BEGIN") -> Iterator[None]:
    """One transaction that ends by marking the index complete (readers then trust it);
    any error rolls it all back."""
    conn.execute(begin)
    try:
        yield
        conn.execute("INSERT OR REPLACE INTO meta VALUES('schema', ?)", (str(SCHEMA_VERSION),))
        conn.execute("INSERT OR REPLACE INTO meta VALUES('complete', '1')")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _run_shards(runs: list[list[Segment]], db_path: Path, token: str) -> list[ShardResult]:
    """Build one shard per run on the worker pool (in-process if the pool breaks)."""
    from concurrent.futures.process import BrokenProcessPool

    paths = [shard_file(db_path, token, k) for k in range(1, len(runs) + 1)]
    pool = worker_pool()
    try:
        futures = [
            pool.submit(build_shard, k, str(path), run)
            for k, (path, run) in enumerate(zip(paths, runs, strict=True), 1)
        ]
        results = []
        for k, future in enumerate(futures, 1):
            try:
                results.append(future.result())
            except BrokenProcessPool:
                log.warning("parser worker pool broke; building shard %d in-process", k)
                with contextlib.suppress(FileNotFoundError):
                    paths[k - 1].unlink()
                results.append(build_shard(k, str(paths[k - 1]), runs[k - 1]))
        return results
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _build_sharded(conn: sqlite3.Connection, plans: list[Plan], db_path: Path, token: str) -> None:
    """A fresh parallel build: shards for the plain files, main.spans for `.gz` files."""
    began = time.perf_counter()
    conn.execute("BEGIN")
    for plan in plans:
        _prepare_file(conn, plan)
    conn.execute("COMMIT")
    plain = [p for p in plans if not p.state.gz]
    results = _run_shards(cut_runs(plain, WORKERS), db_path, token)
    log.debug("shards built at %.2fs", time.perf_counter() - began)
    for result in results:
        log.debug(
            "shard %d: %d spans; parse+insert %.2fs, indexes %.2fs, traces %.2fs",
            result.shard,
            result.spans,
            *result.seconds,
        )
    conn.execute("BEGIN")
    groups: derive.Groups = {}
    record_shards(conn, plain, results, db_path, token)
    for result in results:
        derive.merge_groups(groups, result.groups)
    # main.spans ids follow the shards' (ties in a sort break by id): .gz rows, extensions.
    last = shard_ids(len(results) + 1)
    conn.execute("INSERT INTO sqlite_sequence(name, seq) VALUES('spans', ?)", (last,))
    for plan in plans:
        if plan.state.gz:
            _ingest_file(conn, plan, None, groups)
    create_indexes(conn, SPAN_INDEXES)
    conn.execute("COMMIT")
    attach_shards(conn, db_path, readonly=False)
    with _completing(conn):
        for table in span_tables(conn)[1:]:
            schema = table.split(".")[0]
            conn.executemany(
                "UPDATE files SET duplicates = duplicates + ? WHERE file_id = ?",
                conn.execute(
                    f"SELECT duplicates, file_id FROM {schema}.files WHERE duplicates > 0"
                ).fetchall(),
            )
        collected = derive.collect_signatures(conn, "main.spans")
        for result in results:
            derive.merge_signatures(collected, result.signatures)
        signatures: derive.Signatures | None = collected
        if join_shard_traces(conn, groups):
            signatures = None  # duplicates across shards were dropped: scan them all again
        log.debug("traces joined at %.2fs", time.perf_counter() - began)
        create_indexes(conn, TRACE_INDEXES)
        derive.refresh_aggregates(conn, groups, signatures)
        log.debug("aggregates at %.2fs", time.perf_counter() - began)


def _last_id(conn: sqlite3.Connection) -> int:
    """The last span id ever given (ids are never reused, so new rows are id > this)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'spans'").fetchone()
    return row[0] if row else 0


def worker_pool() -> Executor:
    """Parser workers. Fork is instant and re-imports nothing, but is only safe while this
    process runs a single thread (e.g. the CLI); a threaded host (the MCP server) gets
    forkserver workers instead."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        method = "fork"
    else:
        method = "forkserver" if "forkserver" in methods else "spawn"
    return ProcessPoolExecutor(
        WORKERS, mp_context=multiprocessing.get_context(method), initializer=ignore_interrupts
    )


def ignore_interrupts() -> None:
    """Worker processes ignore Ctrl-C: the parent gets it too (a terminal signals the whole
    process group), cancels the work and shuts them down (otherwise every worker dies with
    its own KeyboardInterrupt traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _prepare_file(conn: sqlite3.Connection, plan: Plan) -> None:
    """Create the file's row, or drop its old rows when it must be parsed again."""
    state = plan.state
    if plan.action == "new":
        cur = conn.execute(
            "INSERT INTO files(path, gz, size, mtime_ns, inode, head_hash, tail_hash, "
            "bytes_indexed, lines_indexed, spans, bad_lines) VALUES(?,?,?,?,?,?,?,0,0,0,0)",
            (str(state.path), int(state.gz), 0, 0, 0, b"", b""),
        )
        plan.file_id = cur.lastrowid
    elif plan.action == "rebuild":
        fid = plan.file_id
        conn.execute(
            "INSERT OR IGNORE INTO temp.affected "
            "SELECT DISTINCT trace_id FROM spans WHERE file_id=?",
            (fid,),
        )
        for table in ("spans", "line_index", "gz_lines", "bad_lines"):
            conn.execute(f"DELETE FROM {table} WHERE file_id=?", (fid,))
        conn.execute(
            "UPDATE files SET bytes_indexed=0, lines_indexed=0, spans=0, bad_lines=0, "
            "duplicates=0, format=NULL WHERE file_id=?",
            (fid,),
        )


def _slices(plan: Plan) -> Iterator[tuple[int, int]]:
    """Byte ranges of about SLICE_BYTES that start and end on line boundaries."""
    start = plan.from_offset
    size = plan.state.end
    with open(plan.state.path, "rb") as handle:
        while start < size:
            stop = start + SLICE_BYTES
            if stop >= size:
                yield start, size
                return
            handle.seek(stop)
            handle.readline()
            stop = min(handle.tell(), size)
            yield start, stop
            start = stop


def _gz_tasks(path: Path) -> Iterator[tuple[Callable[..., SliceResult], tuple]]:
    """Parse tasks for the decompressed blocks of a `.gz` file, each cut after a newline.

    A corrupt or truncated gzip stream yields every complete line before the damage; the
    unfinished line at the damage is dropped and a last task reports it as a bad line
    saying where and why the stream stopped (so the report names file:line)."""
    offset = 0
    rest = b""
    damage: list[StreamDamage] = []
    for chunk in decompressed_chunks(path, SLICE_BYTES, damage):
        data = rest + chunk if rest else chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        yield parse_gz_block, (data[:cut], offset)
        offset += cut
        rest = data[cut:]
    if not damage:
        if rest:
            yield parse_gz_block, (rest, offset)
        return
    log.warning("%s: %s after %d decompressed bytes", path, damage[0].reason, damage[0].good_bytes)
    yield damaged_stream, (damage[0].reason, offset)


def damaged_stream(reason: str, offset: int) -> SliceResult:
    """The bad line standing for the damage in a gzip stream at `offset` (decompressed)."""
    result = SliceResult()
    result.bad_lines = 1
    result.bad_examples.append(
        (
            0,
            f"{reason} at byte {offset:,} of the decompressed data: the lines before this "
            "one are indexed, this line and everything after it could not be read",
        )
    )
    return result


def _results(plan: Plan, pool: Executor | None) -> Iterator[SliceResult]:
    """Slice results in file order; with a pool, at most WINDOW slices are in flight.

    If the pool breaks (a worker could not start or died), the rest is parsed in-process."""
    path = str(plan.state.path)
    tasks: Iterator[tuple[Callable[..., SliceResult], tuple[Any, ...]]]
    if plan.state.gz:
        tasks = _gz_tasks(plan.state.path)
    else:
        tasks = ((parse_range, (path, a, b)) for a, b in _slices(plan))
    if pool is None:
        for func, args in tasks:
            yield func(*args)
        return
    from concurrent.futures.process import BrokenProcessPool as BrokenExecutor

    inflight: deque = deque()
    broken = False

    def take() -> SliceResult:
        nonlocal broken
        future, func, args = inflight.popleft()
        if not broken:
            try:
                return future.result()
            except BrokenExecutor:
                log.warning("parser worker pool broke; parsing the rest in-process")
                broken = True
        return func(*args)

    for func, args in tasks:
        if broken:
            inflight.append((None, func, args))
        else:
            try:
                inflight.append((pool.submit(func, *args), func, args))
            except (BrokenExecutor, RuntimeError):
                broken = True
                inflight.append((None, func, args))
        if len(inflight) >= WINDOW:
            yield take()
    while inflight:
        yield take()


def _ingest_file(
    conn: sqlite3.Connection,
    plan: Plan,
    pool: Executor | None,
    groups: derive.Groups,
) -> int:
    """Parse and insert what `plan` asks for. Returns how many of the new spans have a
    parent but lack an agent or a service (see derive.refresh_traces)."""
    fid = plan.fid
    line_base = plan.from_line
    next_id = _last_id(conn) + 1
    seq = conn.execute(
        "SELECT COALESCE(MAX(seq), -1) + 1 FROM line_index WHERE file_id=?", (fid,)
    ).fetchone()[0]
    kept_bad = conn.execute("SELECT COUNT(*) FROM bad_lines").fetchone()[0]
    spans = bad = orphaned_names = 0
    fmt = None
    for result in _results(plan, pool):
        entry = insert_rows(conn, result, fid, line_base, next_id)
        if entry is not None:
            conn.execute("INSERT INTO line_index VALUES(?,?,?,?)", (fid, seq, *entry))
            seq += 1
        if result.gz_lines:
            conn.executemany(
                f"INSERT OR REPLACE INTO gz_lines VALUES({int(fid)}, ?, ?)", result.gz_lines
            )
        for rel_line, reason in result.bad_examples:
            if kept_bad < MAX_BAD_EXAMPLES:
                conn.execute(
                    "INSERT INTO bad_lines VALUES(?,?,?)", (fid, line_base + rel_line + 1, reason)
                )
                kept_bad += 1
        derive.merge_groups(groups, result.groups)
        fmt = fmt or result.format
        next_id += len(result.rows)
        spans += len(result.rows)
        orphaned_names += result.orphaned_names
        bad += result.bad_lines
        line_base += result.lines
    record_file(conn, fid, plan.state, line_base, spans, bad, fmt)
    return orphaned_names
