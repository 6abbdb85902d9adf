"""A big index is one main SQLite file plus shard files that hold most of its spans.

A parallel build gives each worker process its own shard file: the worker parses its part
of the input, inserts the rows, builds the span indexes and summarizes its traces, all in
parallel with the other workers; nothing is copied into one table afterwards. The main
file holds everything else (files, traces, aggregates, bad lines) and its own `spans`
table, which takes the rows of in-process builds and of later extensions.

Readers attach the shards and see one `spans` relation: a temporary view (UNION ALL of
every span table) that shadows `main.spans`, so ordinary SQL reads all spans. SQLite
pushes WHERE terms into each arm and merges ORDER BY ... LIMIT over the arms' indexes.
It does not narrow the arms to the columns a query uses, so aggregates over many rows
should read :func:`span_source` (only the named columns: covering indexes still apply).
Writes name a physical table: :func:`span_tables` lists them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

#: Schema names of attached shards: s1, s2, ... (at most SQLite's 10 attachments).
SHARD_PREFIX = "s"
MAX_SHARDS = 8


def shard_ids(shard: int) -> int:
    """The first span id of a shard: shards never share ids with each other or main."""
    return shard << 40


def shard_names(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    """(shard number, file name) of the shards a main index file lists."""
    try:
        return list(conn.execute("SELECT shard, name FROM main.shards ORDER BY shard"))
    except sqlite3.OperationalError:  # an index without shards (or not an index)
        return []


def _line_fixes(conn: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """Schema -> (file id, lines before): a shard numbers the lines of its first file from
    where its run starts, the main file knows how many lines came before."""
    return {
        f"{SHARD_PREFIX}{int(shard)}": (int(file_id), int(base))
        for shard, file_id, base in conn.execute(
            "SELECT shard, line_file_id, line_base FROM main.shards WHERE line_base > 0"
        )
    }


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


def _all_columns(conn: sqlite3.Connection, table: str, fixes: dict) -> str:
    """Every column of a span table, with the shard's line numbers made absolute."""
    fix = fixes.get(table.split(".")[0])
    if fix is None:
        return "*"
    return ", ".join(
        f"CASE WHEN file_id = {fix[0]} THEN line + {fix[1]} ELSE line END AS line"
        if column == "line"
        else column
        for column in (row[1] for row in conn.execute("PRAGMA main.table_info(spans)"))
    )


def define_view(conn: sqlite3.Connection) -> None:
    """(Re)define temp.spans as the UNION ALL of every span table."""
    tables = span_tables(conn)
    conn.execute("DROP VIEW IF EXISTS temp.spans")
    if len(tables) == 1:
        return
    fixes = _line_fixes(conn)
    arms = " UNION ALL ".join(f"SELECT {_all_columns(conn, t, fixes)} FROM {t}" for t in tables)
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
    fixes = _line_fixes(conn) if columns == "*" else {}
    arms = [
        f"SELECT {_all_columns(conn, t, fixes) if columns == '*' else columns} FROM {t} s{where}"
        for t in tables
    ]
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
