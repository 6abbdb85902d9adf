"""The run store: runs, findings and a compact event log in one SQLite file.

Runs outlive the process that ran them: the CLI, the MCP server and a later session all
read the same file. Every call opens its own short connection (WAL mode), so the store is
safe to use from several threads and processes at once. Secrets never get here: the
config saved is ``EngineSettings.public_dict()``.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from halo_mcp import settings as halo_settings
from halo_mcp.engine.errors import UnknownFindingError, UnknownRunError
from halo_mcp.engine.ids import new_run_id
from halo_mcp.engine.models import Progress, RunRecord, RunStatus, Usage
from halo_mcp.engine.settings import EngineSettings
from halo_mcp.findings.models import Finding

log = logging.getLogger(__name__)

DB_NAME = "runs.sqlite3"
#: Events kept per run; older ones are dropped (the log is for following a run, not audit).
MAX_EVENTS_PER_RUN = 2000
_SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    prompt TEXT NOT NULL,
    trace_paths TEXT NOT NULL,
    config TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    usage TEXT NOT NULL,
    progress TEXT NOT NULL,
    error TEXT,
    report TEXT,
    owner TEXT,
    pid INTEGER,
    proc_marker TEXT,
    updated_at TEXT NOT NULL,
    ending TEXT
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);
CREATE TABLE IF NOT EXISTS findings (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_run ON findings (run_id, seq);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def process_marker(pid: int) -> str | None:
    """Something that tells this process apart from a later one reusing its pid.

    On Linux: the process start time from /proc (field 22 of /proc/<pid>/stat).
    Elsewhere None, and liveness falls back to the pid alone.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after the last ')' are fixed.
    rest = raw.rsplit(")", 1)[-1].split()
    return rest[19] if len(rest) > 19 else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _process_is_gone(pid: int | None, marker: str | None) -> bool:
    if not pid:
        return True
    if not _pid_alive(pid):
        return True
    if marker is not None:
        current = process_marker(pid)
        return current is not None and current != marker
    return False


class RunStore:
    """Runs and findings on disk. Cheap to construct; open one wherever it is needed."""

    def __init__(self, data_dir: str | Path | None = None) -> None:
        self.data_dir = Path(data_dir) if data_dir else halo_settings.data_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_NAME
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version < _SCHEMA_VERSION:
                db.executescript(_SCHEMA)
                _add_column(db, "runs", "ending", "TEXT")  # version 2: outcome, warning
                db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA synchronous=NORMAL")
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # ------------------------------------------------------------------ runs

    def create(
        self,
        prompt: str,
        trace_paths: Sequence[str | Path],
        config: dict[str, Any],
        *,
        owner: str | None = None,
        run_id: str | None = None,
        status: RunStatus = RunStatus.queued,
    ) -> RunRecord:
        """Record a new run (queued by default) and return it."""
        run = RunRecord(
            id=run_id or new_run_id(),
            status=status,
            prompt=prompt,
            trace_paths=[str(p) for p in trace_paths],
            config=config,
            created_at=_now(),
            owner=owner,
        )
        pid = os.getpid()  # a queued run belongs to the process that will execute it
        with self._write() as db:
            db.execute(
                "INSERT INTO runs (id, status, prompt, trace_paths, config, created_at,"
                " usage, progress, owner, updated_at, pid, proc_marker)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run.id,
                    run.status.value,
                    run.prompt,
                    _dumps(run.trace_paths),
                    _dumps(run.config),
                    run.created_at.isoformat(),
                    run.usage.model_dump_json(),
                    run.progress.model_dump_json(),
                    owner,
                    _now().isoformat(),
                    pid,
                    process_marker(pid),
                ),
            )
        return run

    def mark_running(self, run_id: str) -> RunRecord:
        """Claim a run for this process: status running, our pid, start time.

        A run that is queued or running reads as interrupted once the process that owns
        it (its pid, told apart from a reused pid by the process start time) is gone.
        """
        pid = os.getpid()
        with self._write() as db:
            self._require(db, run_id)
            db.execute(
                "UPDATE runs SET status=?, started_at=?, pid=?, proc_marker=?, updated_at=?"
                " WHERE id=?",
                (
                    RunStatus.running.value,
                    _now().isoformat(),
                    pid,
                    process_marker(pid),
                    _now().isoformat(),
                    run_id,
                ),
            )
        return self.get(run_id)

    def save(self, run: RunRecord) -> None:
        """Write the run's status, timings, usage, progress, report, error and findings."""
        with self._write() as db:
            self._require(db, run.id)
            db.execute(
                "UPDATE runs SET status=?, started_at=?, finished_at=?, usage=?, progress=?,"
                " error=?, report=?, updated_at=?, ending=? WHERE id=?",
                (
                    run.status.value,
                    run.started_at.isoformat() if run.started_at else None,
                    run.finished_at.isoformat() if run.finished_at else None,
                    run.usage.model_dump_json(),
                    run.progress.model_dump_json(),
                    run.error,
                    run.report_markdown,
                    _now().isoformat(),
                    _ending_json(run),
                    run.id,
                ),
            )
            db.execute("DELETE FROM findings WHERE run_id=?", (run.id,))
            db.executemany(
                "INSERT OR REPLACE INTO findings (id, run_id, seq, data) VALUES (?,?,?,?)",
                [(f.id, run.id, i, f.model_dump_json()) for i, f in enumerate(run.findings)],
            )

    def save_findings(self, run_id: str, findings: Sequence[Finding]) -> None:
        """Replace the run's findings (written as they are accepted, so that a run whose
        process dies still has them)."""
        with self._write() as db:
            db.execute("DELETE FROM findings WHERE run_id=?", (run_id,))
            db.executemany(
                "INSERT OR REPLACE INTO findings (id, run_id, seq, data) VALUES (?,?,?,?)",
                [(f.id, run_id, i, f.model_dump_json()) for i, f in enumerate(findings)],
            )

    def update_progress(self, run_id: str, progress: Progress, usage: Usage) -> None:
        """The cheap write made while a run goes, so pollers elsewhere see it move."""
        with self._write() as db:
            db.execute(
                "UPDATE runs SET progress=?, usage=?, updated_at=? WHERE id=?",
                (progress.model_dump_json(), usage.model_dump_json(), _now().isoformat(), run_id),
            )

    def get(self, run_id: str) -> RunRecord:
        """The run, with its findings. A running run whose process died reads as interrupted."""
        with self._connect() as db:
            row = db.execute(_SELECT_RUN + " WHERE id=?", (run_id,)).fetchone()
            if row is None:
                raise UnknownRunError(self._unknown_run_message(db, run_id))
            return self._run_from_row(db, row)

    def list(
        self, limit: int = 20, owner: str | None = None, *, status: RunStatus | None = None
    ) -> list[RunRecord]:
        """The most recent runs first (with findings), optionally only one owner's."""
        sql, params = _SELECT_RUN, list[object]()
        clauses = []
        if owner is not None:
            clauses.append("owner=?")
            params.append(owner)
        if status is not None and (not status.done or status == RunStatus.interrupted):
            clauses.append("status IN ('queued', 'running', 'interrupted')")  # decided on read
        elif status is not None:
            clauses.append("status=?")
            params.append(status.value)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        params.append(max(1, limit))
        with self._connect() as db:
            rows = db.execute(sql, params).fetchall()
            runs = [self._run_from_row(db, row) for row in rows]
        if status is not None:
            runs = [r for r in runs if r.status == status]
        return runs

    def get_finding(self, finding_id: str) -> Finding:
        with self._connect() as db:
            row = db.execute("SELECT data FROM findings WHERE id=?", (finding_id,)).fetchone()
        if row is None:
            raise UnknownFindingError(
                f"No finding with id {finding_id!r}. Finding ids come from a run's findings"
                " (e.g. 'f_...'); read the run (get_run, or `halo-mcp show RUN_ID`) to"
                " list them."
            )
        return Finding.model_validate_json(row[0])

    # ---------------------------------------------------------------- events

    def append_events(self, run_id: str, events: Sequence[dict[str, Any]]) -> None:
        """Append events to the run's log, keeping only the last MAX_EVENTS_PER_RUN."""
        if not events:
            return
        with self._write() as db:
            last = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id=?", (run_id,)
            ).fetchone()[0]
            db.executemany(
                "INSERT INTO events (run_id, seq, data) VALUES (?,?,?)",
                [(run_id, last + i + 1, _dumps(e)) for i, e in enumerate(events)],
            )
            newest = last + len(events)
            if newest > MAX_EVENTS_PER_RUN:
                db.execute(
                    "DELETE FROM events WHERE run_id=? AND seq<=?",
                    (run_id, newest - MAX_EVENTS_PER_RUN),
                )

    def events(
        self, run_id: str, after: int = 0, limit: int = 100
    ) -> builtins.list[dict[str, Any]]:
        """Events after sequence number `after`, oldest first; each carries its `seq`."""
        with self._connect() as db:
            self._require(db, run_id)
            rows = db.execute(
                "SELECT seq, data FROM events WHERE run_id=? AND seq>? ORDER BY seq LIMIT ?",
                (run_id, after, max(1, min(limit, MAX_EVENTS_PER_RUN))),
            ).fetchall()
        return [{"seq": seq, **orjson.loads(data)} for seq, data in rows]

    # --------------------------------------------------------------- helpers

    def _require(self, db: sqlite3.Connection, run_id: str) -> None:
        if db.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is None:
            raise UnknownRunError(self._unknown_run_message(db, run_id))

    def _unknown_run_message(self, db: sqlite3.Connection, run_id: str) -> str:
        recent = [
            r[0]
            for r in db.execute("SELECT id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 5")
        ]
        hint = f" Recent runs: {', '.join(recent)}." if recent else " No runs recorded yet."
        return (
            f"No run with id {run_id!r} in {self.path}.{hint} List runs with the list_runs"
            " tool (MCP) or `halo-mcp runs` (CLI)."
        )

    def _run_from_row(self, db: sqlite3.Connection, row: tuple) -> RunRecord:
        (
            run_id,
            status,
            prompt,
            trace_paths,
            config,
            created_at,
            started_at,
            finished_at,
            usage,
            progress,
            error,
            report,
            owner,
            pid,
            marker,
            ending,
        ) = row
        findings = [
            Finding.model_validate_json(d)
            for (d,) in db.execute(
                "SELECT data FROM findings WHERE run_id=? ORDER BY seq", (run_id,)
            )
        ]
        run_status = RunStatus(status)
        if not run_status.done and _process_is_gone(pid, marker):
            was = "running" if run_status == RunStatus.running else "queued"
            run_status = RunStatus.interrupted
            error = error or (
                f"The process that had this analysis {was} ended before it finished (pid"
                f" {pid}). Start the analysis again; findings recorded so far are kept."
            )
        return RunRecord(
            id=run_id,
            status=run_status,
            prompt=prompt,
            trace_paths=orjson.loads(trace_paths),
            config=orjson.loads(config),
            created_at=datetime.fromisoformat(created_at),
            started_at=datetime.fromisoformat(started_at) if started_at else None,
            finished_at=datetime.fromisoformat(finished_at) if finished_at else None,
            usage=Usage.model_validate_json(usage),
            progress=Progress.model_validate_json(progress),
            findings=findings,
            report_markdown=report,
            error=error,
            owner=owner,
            **(orjson.loads(ending) if ending else {}),
        )


_SELECT_RUN = (
    "SELECT id, status, prompt, trace_paths, config, created_at, started_at, finished_at,"
    " usage, progress, error, report, owner, pid, proc_marker, ending FROM runs"
)


#: The RunRecord fields kept in the `ending` column (set when a run ends).
_ENDING_FIELDS = ("outcome", "warning", "usage_by_agent")


def _ending_json(run: RunRecord) -> str:
    return run.model_dump_json(include=set(_ENDING_FIELDS))


def _add_column(db: sqlite3.Connection, table: str, column: str, kind: str) -> None:
    """Add a column to a table made by an older version (another process may race us)."""
    columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    if column not in columns:
        with contextlib.suppress(sqlite3.OperationalError):  # added meanwhile
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def open_run_store(settings: EngineSettings | None = None) -> RunStore:
    """The run store for these EngineSettings (their data_dir, else the default)."""
    return RunStore(settings.data_dir if settings is not None else None)
