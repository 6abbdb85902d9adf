"""Building, reusing and extending the on-disk index of a set of trace files.

One SQLite database per input set lives in the cache dir. Opening checks each file's
fingerprint: unchanged files are reused as is (no read beyond a few KB), files that only
grew are extended (only the new bytes are parsed), other changed files are re-parsed.
A lock file serializes builders across processes; a first build happens in a temporary
database renamed into place, so no reader ever sees a half-built index; later updates
happen in place in one transaction (WAL mode: readers keep a consistent snapshot).

Big inputs are parsed by a pool of worker processes over byte ranges cut at line ends.
In a fresh build each worker also inserts its rows into a scratch SQLite file that the
main process copies in C (ATTACH + INSERT SELECT), so both cores parse and insert while
the main process does almost nothing per row; extensions get the rows pickled back.
`.gz` files cannot be read back by offset, so their lines are also kept zlib-compressed
in the index (`gz_lines`), and a `.gz` file that changed in any way is parsed again
rather than extended.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import logging
import os
import signal
import sqlite3
import threading
import time
from array import array
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from halo_mcp.store import derive
from halo_mcp.store.files import HASH_BYTES, FileState, file_state, hash_range, set_key
from halo_mcp.store.ingest import (
    MAX_BAD_EXAMPLES,
    SliceResult,
    parse_gz_block,
    parse_range,
    parse_range_to_db,
)
from halo_mcp.store.schema import INDEXES, SCHEMA_VERSION, SPAN_COLUMNS, TABLES

if TYPE_CHECKING:  # the pool machinery is imported when a build needs it (cold start)
    from concurrent.futures import Executor

log = logging.getLogger(__name__)

SLICE_BYTES = 8 << 20
#: Inputs smaller than this are parsed in-process (a worker pool costs more than it saves).
PARALLEL_MIN_BYTES = 16 << 20
WORKERS = max(1, min(4, os.cpu_count() or 1))
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


def index_path(cache_dir: Path, files: list[Path]) -> Path:
    return cache_dir / "indexes" / f"{set_key(files)}.sqlite"


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=60)
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


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
            and state.size > indexed
            and state.inode == inode
            and head == hash_range(state.path, 0, min(HASH_BYTES, indexed))
            and tail == hash_range(state.path, indexed - HASH_BYTES, indexed)
        ):
            plans.append(Plan(state, "grow", file_id, indexed, lines))
        else:
            plans.append(Plan(state, "rebuild", file_id))
    return plans


@contextlib.contextmanager
def build_lock(db_path: Path) -> Iterator[None]:
    """Exclusive lock across processes (flock on a side file) for building or extending."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(db_path) + ".lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_index(files: list[Path], cache_dir: Path) -> tuple[Path, bool]:
    """The index for `files`, built or brought up to date. Returns (path, reused as is)."""
    db_path = index_path(cache_dir, files)
    states = [file_state(p) for p in files]
    if db_path.exists():
        with contextlib.closing(connect(db_path)) as conn:
            plans = plan_updates(conn, states)
        if plans is not None and all(p.action == "same" for p in plans):
            return db_path, True
    with build_lock(db_path):
        states = [file_state(p) for p in files]
        plans = None
        if db_path.exists():
            with contextlib.closing(connect(db_path)) as conn:
                plans = plan_updates(conn, states)
            if plans is None:
                log.warning("index %s is stale or unreadable: rebuilding it", db_path)
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(str(db_path) + suffix)
        if plans is None:
            _build_fresh(db_path, states)
            return db_path, False
        if all(p.action == "same" for p in plans):
            return db_path, True
        with contextlib.closing(connect(db_path)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            _update(conn, plans, fresh=False)
    return db_path, False


def _build_fresh(db_path: Path, states: list[FileState]) -> None:
    tmp = db_path.with_name(f"{db_path.name}.tmp{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        conn = connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("PRAGMA cache_size=-65536")
            conn.executescript(TABLES)
            _update(conn, [Plan(s, "new") for s in states], fresh=True)
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
        os.replace(tmp, db_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        for leftover in tmp.parent.glob(f"{tmp.name}.w*"):  # scratch files of a failed build
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _update(conn: sqlite3.Connection, plans: list[Plan], fresh: bool) -> None:
    """Parse what the plans ask for and refresh the derived tables, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        old_max = _last_id(conn)
        if not fresh:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS affected(trace_id TEXT PRIMARY KEY)")
            conn.execute("DELETE FROM temp.affected")
        work = [p for p in plans if p.action != "same"]
        pending = sum(p.state.size - p.from_offset for p in work)
        pool = _pool() if pending >= PARALLEL_MIN_BYTES and WORKERS > 1 else None
        began = time.perf_counter()
        groups: derive.Groups = {}
        orphaned_names = 0
        try:
            for plan in work:
                _prepare_file(conn, plan)
                orphaned_names += _ingest_file(
                    conn, plan, pool, groups, scratch=fresh and pool is not None
                )
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        log.debug("parsed and inserted in %.2fs", time.perf_counter() - began)
        if fresh:
            for statement in INDEXES.split(";"):
                if statement.strip():
                    conn.execute(statement)
        log.debug("indexes at %.2fs", time.perf_counter() - began)
        removed = derive.remove_duplicates(conn, None if fresh else old_max)
        log.debug("duplicates at %.2fs", time.perf_counter() - began)
        if not fresh:
            conn.execute(
                "INSERT OR IGNORE INTO temp.affected "
                "SELECT DISTINCT trace_id FROM spans WHERE id > ?",
                (old_max,),
            )
        changes = derive.refresh_traces(
            conn, all_traces=fresh, inherit=not fresh or orphaned_names > 0
        )
        log.debug("traces at %.2fs", time.perf_counter() - began)
        # Span-group counts from the parsers are exact for a fresh build without duplicates
        # (adjusted for inherited agent/service); otherwise recount them in SQL.
        if fresh and not removed:
            derive.merge_groups(groups, changes)
            derive.refresh_aggregates(conn, groups)
        else:
            derive.refresh_aggregates(conn)
        log.debug("aggregates at %.2fs", time.perf_counter() - began)
        conn.execute("INSERT OR REPLACE INTO meta VALUES('schema', ?)", (str(SCHEMA_VERSION),))
        conn.execute("INSERT OR REPLACE INTO meta VALUES('complete', '1')")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _last_id(conn: sqlite3.Connection) -> int:
    """The last span id ever given (ids are never reused, so new rows are id > this)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'spans'").fetchone()
    return row[0] if row else 0


def _pool() -> Executor:
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
        WORKERS, mp_context=multiprocessing.get_context(method), initializer=_worker_init
    )


def _worker_init() -> None:
    """Workers ignore Ctrl-C: the parent gets it, cancels the build and shuts them down
    (otherwise every worker dies with its own KeyboardInterrupt traceback)."""
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
    size = plan.state.size
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


def _gz_blocks(path: Path) -> Iterator[tuple[bytes, int]]:
    """Decompressed blocks cut after a newline, with their offset in the stream.

    A corrupt or truncated gzip stream ends the iteration after what could be read; the
    caller reports it as a bad line."""
    offset = 0
    rest = b""
    with gzip.open(path, "rb") as handle:
        while True:
            try:
                chunk = handle.read(SLICE_BYTES)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                log.warning("%s: gzip stream unreadable after %d bytes: %s", path, offset, exc)
                chunk = b""
            if not chunk:
                if rest:
                    yield rest, offset
                return
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            yield data[:cut], offset
            offset += cut
            rest = data[cut:]


def _results(
    plan: Plan, pool: Executor | None, scratch: str | None = None
) -> Iterator[SliceResult]:
    """Slice results in file order; with a pool, at most WINDOW slices are in flight.

    With `scratch` (a path prefix), plain-file slices write their rows to scratch SQLite
    files instead of returning them. If the pool breaks (a worker could not start or
    died), the rest is parsed in-process."""
    path = str(plan.state.path)
    if plan.state.gz:
        tasks = ((parse_gz_block, (data, off)) for data, off in _gz_blocks(plan.state.path))
    elif scratch is not None:
        tasks = (
            (parse_range_to_db, (path, a, b, f"{scratch}.{i}"))
            for i, (a, b) in enumerate(_slices(plan))
        )
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


def _insert_sql(file_id: int, line_base: int) -> str:
    """The bulk insert of SliceResult rows (SPAN_COLUMNS order); SQL adds the file id, the
    absolute line number, the duration and the token total."""
    n = len(SPAN_COLUMNS)
    values = [f"?{i}" for i in range(1, n + 1)]
    col = {name: i + 1 for i, name in enumerate(SPAN_COLUMNS)}
    values[col["line"] - 1] = f"?{col['line']} + {int(line_base) + 1}"
    start, end = col["start_ns"], col["end_ns"]
    tin, tout = col["input_tokens"], col["output_tokens"]
    return (
        f"INSERT INTO spans({', '.join(SPAN_COLUMNS)}, file_id, duration_ns, tokens) "
        f"VALUES({', '.join(values)}, {int(file_id)}, "
        f"MAX(0, COALESCE(?{end}, 0) - COALESCE(?{start}, 0)), "
        f"COALESCE(?{tin}, 0) + COALESCE(?{tout}, 0))"
    )


def _merge_scratch(
    conn: sqlite3.Connection, db_path: str, file_id: int, line_base: int, first_id: int
) -> None:
    """Copy a worker's scratch table into `spans` (ids from `first_id`, in order), in C.

    ATTACH/DETACH cannot happen inside the build's transaction, so this is only used for
    a fresh build (a temporary database nobody reads until it is complete and renamed):
    the open transaction is committed and a new one begun."""
    names = ", ".join(SPAN_COLUMNS)
    picks = ", ".join(
        f"line + {int(line_base) + 1}" if name == "line" else name for name in SPAN_COLUMNS
    )
    conn.execute("COMMIT")
    conn.execute("ATTACH ? AS scratch", (db_path,))
    try:
        conn.execute(
            f"INSERT INTO main.spans(id, {names}, file_id, duration_ns, tokens) "
            f"SELECT rowid + {int(first_id) - 1}, {picks}, {int(file_id)}, "
            "MAX(0, COALESCE(end_ns, 0) - COALESCE(start_ns, 0)), "
            "COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0) "
            "FROM scratch.spans ORDER BY rowid"
        )
    finally:
        conn.execute("DETACH scratch")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(db_path)
        conn.execute("BEGIN IMMEDIATE")


def _ingest_file(
    conn: sqlite3.Connection,
    plan: Plan,
    pool: Executor | None,
    groups: derive.Groups,
    scratch: bool = False,
) -> int:
    """Parse and insert what `plan` asks for. Returns how many of the new spans have a
    parent but lack an agent or a service (see derive.refresh_traces)."""
    fid = plan.file_id
    line_base = plan.from_line
    next_id = _last_id(conn) + 1
    seq = conn.execute(
        "SELECT COALESCE(MAX(seq), -1) + 1 FROM line_index WHERE file_id=?", (fid,)
    ).fetchone()[0]
    kept_bad = conn.execute("SELECT COUNT(*) FROM bad_lines").fetchone()[0]
    spans = bad = orphaned_names = 0
    fmt = None
    prefix = None
    if scratch and not plan.state.gz:
        main_path = conn.execute("PRAGMA database_list").fetchone()[2]
        prefix = f"{main_path}.w{fid}"
    for result in _results(plan, pool, prefix):
        rows = result.row_count if result.db_path else len(result.rows)
        if result.db_path:
            _merge_scratch(conn, result.db_path, fid, line_base, next_id)
        elif result.rows:
            conn.executemany(_insert_sql(fid, line_base), result.rows)
        if rows:
            offsets = array("q", result.line_offsets)
            firsts = array("q", (next_id + i for i in result.line_first_row))
            conn.execute(
                "INSERT INTO line_index VALUES(?,?,?,?)",
                (fid, seq, offsets.tobytes(), firsts.tobytes()),
            )
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
        next_id += rows
        spans += rows
        orphaned_names += result.orphaned_names
        bad += result.bad_lines
        line_base += result.lines
    state = plan.state
    indexed = state.size
    conn.execute(
        "UPDATE files SET size=?, mtime_ns=?, inode=?, head_hash=?, tail_hash=?, "
        "bytes_indexed=?, lines_indexed=?, spans=spans+?, bad_lines=bad_lines+?, "
        "format=COALESCE(format, ?) WHERE file_id=?",
        (
            state.size,
            state.mtime_ns,
            state.inode,
            state.head_hash,
            hash_range(state.path, indexed - HASH_BYTES, indexed),
            indexed,
            line_base,
            spans,
            bad,
            fmt,
            fid,
        ),
    )
    return orphaned_names
