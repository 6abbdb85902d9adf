"""A big index is one main SQLite file plus shard files that hold most of its spans.

A parallel build gives each worker process its own shard file: the worker parses its part
of the input, inserts the rows, builds the span indexes and summarizes its traces, all in
parallel with the other workers; nothing is copied into one table afterwards. The main
file holds everything else (files, traces, aggregates, bad lines) and its own `spans`
table, which takes the rows of in-process builds and of later extensions.

Readers attach the shards and see one `spans` relation: a temporary view (UNION ALL of
every span table) that shadows `main.spans`, so ordinary SQL reads all spans. SQLite
pushes plain WHERE terms into each arm and merges ORDER BY ... LIMIT over the arms'
indexes. It does not push subquery terms (``id IN (SELECT ...)``) and does not narrow the
arms to the columns a query uses, so: filters with subqueries read :func:`spans_where`,
counts :func:`count_where`, aggregates over many rows :func:`span_source` (only the named
columns, so covering indexes still apply) or one query per table of :func:`span_tables`
(partials that add up: counts, sums, min/max, per-name groups, never per-trace ones).
Writes name a physical table: :func:`span_tables` lists them.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

#: Schema names of attached shards: s1, s2, ... (at most SQLite's 10 attachments).
SHARD_PREFIX = "s"
MAX_SHARDS = 8
SHARD_BITS = 40


def shard_ids(shard: int) -> int:
    """Span ids of shard k start above this: shards never share ids with each other or
    with the main file, whose rows after a sharded build start at shard_ids(shards + 1)."""
    return shard << SHARD_BITS


def shard_file(db_path: Path, build: str, shard: int) -> Path:
    """Where shard `shard` of build `build` of the index at `db_path` lives (next to it;
    each build names its own, so a new build never overwrites files a reader has open)."""
    return db_path.with_name(f"{db_path.name}.{build}.s{shard}")


def remove_shard_files(db_path: Path, build: str, *, keep: bool) -> None:
    """Delete the shard files of build `build` of the index at `db_path` (keep=False), or
    those of every other build (keep=True)."""
    for path in db_path.parent.glob(f"{db_path.name}.*.s*"):
        if path.name.startswith(f"{db_path.name}.{build}.") != keep:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def shard_names(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    """(shard number, file name) of the shards a main index file lists."""
    try:
        return list(conn.execute("SELECT shard, name FROM main.shards ORDER BY shard"))
    except sqlite3.OperationalError:  # an index without shards (or not an index)
        return []


def line_fixes(conn: sqlite3.Connection) -> dict[int, tuple[int, int]]:
    """Shard -> (file id, lines before). A shard numbers the lines of its first file from
    where its run starts; readers add the lines before (see shard_of) when they show one.
    Kept out of the view: an expression in an arm stops SQLite from merging the arms'
    index orders for ORDER BY ... LIMIT."""
    try:
        rows = conn.execute(
            "SELECT shard, line_file_id, line_base FROM main.shards WHERE line_base > 0"
        ).fetchall()
    except sqlite3.OperationalError:
        return {}
    return {int(shard): (int(file_id), int(base)) for shard, file_id, base in rows}


def shard_of(span_id: int) -> int:
    """The shard holding the span row with this id. Rows of the main file's own table map
    to 0 or, after a parallel build, to one past the last shard: no line fix applies."""
    return span_id >> SHARD_BITS


def attach_shards(conn: sqlite3.Connection, db_path: Path, readonly: bool = True) -> int:
    """Attach the shards of the index at `db_path` and define the `spans` view.

    Returns how many were attached. Shards are opened read-only (a missing one is an
    error, never a new empty file) unless the caller is the builder."""
    shards = shard_names(conn)
    if not shards:
        return 0
    attached = {row[1] for row in conn.execute("PRAGMA database_list")}
    for shard, name in shards:
        schema = f"{SHARD_PREFIX}{int(shard)}"
        if schema in attached:
            continue
        path = db_path.parent / name
        if readonly:
            uri = path.absolute().as_uri() + "?mode=ro"
            conn.execute("ATTACH ? AS " + schema, (uri,))
        else:
            conn.execute("ATTACH ? AS " + schema, (str(path),))
    define_view(conn)
    return len(shards)


def span_tables(conn: sqlite3.Connection) -> list[str]:
    """The physical span tables this connection sees, main first."""
    schemas = [row[1] for row in conn.execute("PRAGMA database_list")]
    shards = sorted(
        (s for s in schemas if s.startswith(SHARD_PREFIX) and s[1:].isdigit()),
        key=lambda s: int(s[1:]),
    )
    return ["main.spans", *(f"{s}.spans" for s in shards)]


def define_view(conn: sqlite3.Connection) -> None:
    """(Re)define temp.spans as the UNION ALL of every span table."""
    tables = span_tables(conn)
    conn.execute("DROP VIEW IF EXISTS temp.spans")
    if len(tables) > 1:
        arms = " UNION ALL ".join(f"SELECT * FROM {t}" for t in tables)
        conn.execute(f"CREATE TEMP VIEW spans AS {arms}")


def spans_where(
    conn: sqlite3.Connection, clauses: list[str], params: list, columns: str = "*"
) -> tuple[str, list]:
    """What follows FROM to read the spans matching every clause (conditions on alias
    `s`), with its parameters; `columns` narrows what each shard arm returns.

    One span table: ``spans s WHERE ...``. Shards: every arm applies the clauses itself,
    because SQLite does not push subquery terms (``s.id IN (SELECT ...)``) into the arms
    of a UNION ALL view: through the view they would test every span."""
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    tables = span_tables(conn)
    if len(tables) == 1:
        return f"spans s{where}", list(params)
    arms = [f"SELECT {columns} FROM {t} s{where}" for t in tables]
    return "(" + " UNION ALL ".join(arms) + ") s", list(params) * len(tables)


def span_source(conn: sqlite3.Connection, columns: str) -> str:
    """A FROM source of every span with only `columns` (comma-separated), e.g.
    ``f"SELECT tool_name, COUNT(*) FROM {span_source(conn, 'tool_name')} GROUP BY 1"``.

    One table: just ``spans``. Shards: a UNION ALL subquery of the named columns, so each
    arm can answer from a covering index instead of reading whole rows."""
    tables = span_tables(conn)
    if len(tables) == 1:
        return "spans"
    return "(" + " UNION ALL ".join(f"SELECT {columns} FROM {t}" for t in tables) + ")"


def count_where(
    conn: sqlite3.Connection, clauses: list[str], params: list, limit: int | None = None
) -> int:
    """How many spans match every clause (alias `s`), counting at most `limit` + 1 per
    table when given. Each table counts on its own (a sum of scalar subqueries), so its
    covering indexes answer without rows flowing through a UNION ALL."""
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    cap = f" LIMIT {int(limit) + 1}" if limit is not None else ""
    tables = span_tables(conn)
    parts = [f"(SELECT COUNT(*) FROM (SELECT 1 FROM {t} s{where}{cap}))" for t in tables]
    row = conn.execute("SELECT " + " + ".join(parts), list(params) * len(tables)).fetchone()
    return int(row[0])
