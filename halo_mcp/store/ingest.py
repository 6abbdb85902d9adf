"""Parsing a slice of a trace file into packed index rows (runs in worker processes).

A slice is a byte range of a plain file, or a block of decompressed bytes of a `.gz` file;
both start and end on line boundaries. The result holds plain tuples only, so it pickles
cheaply, and nothing outlives the slice: memory is bounded by the slice size.
"""

from __future__ import annotations

import hashlib
import sqlite3
import zlib
from array import array
from dataclasses import dataclass, field

from halo_mcp.store.files import HASH_BYTES, FileState, hash_range
from halo_mcp.store.formats import BadLineError, detect_format, parse_line, span_payload
from halo_mcp.store.formats.lines import ROW_FIELDS, parsed_object
from halo_mcp.store.schema import SPAN_COLUMNS

BOM = b"\xef\xbb\xbf"
_KIND = ROW_FIELDS.index("kind")
_SPAN_ID = ROW_FIELDS.index("span_id")
_PARENT = ROW_FIELDS.index("parent_span_id")
_AGENT = ROW_FIELDS.index("agent")
_SERVICE = ROW_FIELDS.index("service")
MAX_BAD_EXAMPLES = 20


@dataclass
class SliceResult:
    """Rows of one slice. `rows` hold ROW_FIELDS + (line, offset, length, input_hash) where
    `line` is relative to the slice's first line (0-based); `lines` counts the slice's lines."""

    rows: list[tuple] = field(default_factory=list)
    line_offsets: list[int] = field(default_factory=list)
    line_first_row: list[int] = field(default_factory=list)
    lines: int = 0
    bad_lines: int = 0
    bad_examples: list[tuple[int, str]] = field(default_factory=list)
    format: str | None = None
    gz_lines: list[tuple[int, bytes]] = field(default_factory=list)
    #: (kind, service, agent, model, tool, is_error) -> [spans, input tokens, output tokens]
    groups: dict[tuple, list[int]] = field(default_factory=dict)
    #: Spans with a parent but no agent or service: only then must a build look for
    #: values to inherit from ancestors.
    orphaned_names: int = 0


_FLAT_INPUT_KEYS = (
    "input.value",
    "gen_ai.tool.call.arguments",
    "tool_arguments",
    "ai.toolCall.args",
)


def _flat_input(line: bytes) -> str | None:
    """A HALO flat span's input string, read from the JSON parse_line just made (no second
    parse); None when the line has another shape (the payload reader then decides)."""
    obj = parsed_object(line)
    if type(obj) is not dict:
        return None
    attrs = obj.get("attributes")
    if type(attrs) is not dict:
        return None
    for key in _FLAT_INPUT_KEYS:
        value = attrs.get(key)
        if value is None or value == "":
            continue
        return value if type(value) is str else None
    return None


def input_hash(line: bytes, span_id: str) -> int | None:
    """A 63-bit hash of a tool span's input (arguments), so identical calls group in SQL.

    The hash is over the decoded input text, the same whichever path reads it: a HALO
    flat line's string attribute directly, other shapes through the payload reader."""
    value = _flat_input(line)
    if value is None:
        try:
            value = span_payload(line, span_id).input
        except Exception:
            return None
        if value is None:
            return None
    data = value.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") >> 1


def parse_block(data: bytes, base_offset: int, keep_raw: bool = False) -> SliceResult:
    """Parse every line of `data` (which starts at `base_offset` of the decompressed stream).
    See parse_lines."""
    lines = data.split(b"\n")  # one C pass; the offsets follow from the lengths
    if lines[-1] == b"":
        lines.pop()
    return parse_lines(lines, base_offset, keep_raw, newlines=False)


def parse_lines(
    lines: list[bytes], base_offset: int, keep_raw: bool = False, newlines: bool = True
) -> SliceResult:
    """Parse consecutive lines of a stream, the first at `base_offset`; `newlines` says
    whether each still ends with its "\n" (as file.readlines gives them: no copy).

    Bad lines are counted and the first few kept with their reason; nothing raises.
    `keep_raw` stores each good line compressed (for `.gz` files, whose lines cannot be
    read back by offset).
    """
    out = SliceResult()
    rows = out.rows
    add_row = rows.append
    add_offset = out.line_offsets.append
    add_first = out.line_first_row.append
    groups = out.groups
    orphaned = 0
    step = 0 if newlines else 1
    next_start = base_offset
    for line_no, line in enumerate(lines):
        offset = next_start
        length = len(line)
        next_start += length + step
        if line[-1:] == b"\n":
            length -= 1
        if line[length - 1 : length] == b"\r":
            length -= 1
        if offset == 0 and line[:3] == BOM:
            line = line[3:]
            offset = 3
            length -= 3
        # JSON parsers take the line with its line break; stored lengths leave it out.
        if line[:1] != b"{" and not line.strip():  # strip() copies: only for odd lines
            continue
        try:
            parsed = parse_line(line)
        except BadLineError as exc:
            _bad(out, line_no, str(exc) or "not a span")
            continue
        except Exception as exc:  # a parser bug must not stop ingestion
            _bad(out, line_no, f"unreadable line ({type(exc).__name__}: {exc})")
            continue
        if not parsed:
            _bad(out, line_no, "no span in this line")
            continue
        if out.format is None:
            try:
                out.format = detect_format(line)
            except Exception:
                out.format = "unknown"
        add_offset(offset)
        add_first(len(rows))
        for fields in parsed:
            digest = input_hash(line, fields[_SPAN_ID]) if fields[_KIND] == "tool" else None
            add_row((*fields, line_no, offset, length, digest))
            key = (fields[4], fields[9], fields[10], fields[11], fields[12], fields[5] == "error")
            slot = groups.get(key)
            if slot is None:
                groups[key] = [1, fields[13] or 0, fields[14] or 0]
            else:
                slot[0] += 1
                if fields[13]:
                    slot[1] += fields[13]
                if fields[14]:
                    slot[2] += fields[14]
            if fields[_PARENT] is not None and (fields[_AGENT] is None or fields[_SERVICE] is None):
                orphaned += 1
        if keep_raw:
            out.gz_lines.append((offset, zlib.compress(line[:length], 1)))
    out.orphaned_names = orphaned
    out.lines = len(lines)
    return out


def _bad(out: SliceResult, line_no: int, reason: str) -> None:
    out.bad_lines += 1
    if len(out.bad_examples) < MAX_BAD_EXAMPLES:
        out.bad_examples.append((line_no, reason[:300]))


def parse_range(path: str, start: int, stop: int) -> SliceResult:
    """Parse bytes [start, stop) of a plain file (a worker reads them itself: no copy)."""
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(stop - start)
    return parse_block(data, start)


def insert_sql(file_id: int, line_base: int) -> str:
    """The bulk insert of SliceResult rows (SPAN_COLUMNS order); SQL adds the file id, the
    absolute line number, the duration and the token total."""
    n = len(SPAN_COLUMNS)
    values = [f"?{i}" for i in range(1, n + 1)]
    col = {name: i + 1 for i, name in enumerate(SPAN_COLUMNS)}
    values[col["line"] - 1] = f"?{col['line']} + {int(line_base) + 1}"
    start, end = col["start_ns"], col["end_ns"]
    tin, tout = col["input_tokens"], col["output_tokens"]
    return (
        f"INSERT INTO main.spans({', '.join(SPAN_COLUMNS)}, file_id, duration_ns, tokens) "
        f"VALUES({', '.join(values)}, {int(file_id)}, "
        f"MAX(0, COALESCE(?{end}, 0) - COALESCE(?{start}, 0)), "
        f"COALESCE(?{tin}, 0) + COALESCE(?{tout}, 0))"
    )


def insert_rows(
    conn: sqlite3.Connection, block: SliceResult, file_id: int, line_base: int, first_id: int
) -> tuple[bytes, bytes] | None:
    """Insert a block's rows (ids from `first_id`, in order; `line_base` lines of the file
    before the block) and return its line_index entry: the line offsets and the id of each
    line's first span, packed. None for a block without spans."""
    if not block.rows:
        return None
    conn.executemany(insert_sql(file_id, line_base), block.rows)
    return (
        array("q", block.line_offsets).tobytes(),
        array("q", (first_id + i for i in block.line_first_row)).tobytes(),
    )


def record_file(
    conn: sqlite3.Connection,
    file_id: int,
    state: FileState,
    lines: int,
    spans: int,
    bad_lines: int,
    fmt: str | None,
) -> None:
    """Record in `files` that `state`'s file is indexed up to `state.end` (`lines` lines in
    all), with `spans` and `bad_lines` more than before. The tail hash is taken there, so
    a file that only grew past it (an unfinished line completed, spans appended) is
    extended from there."""
    conn.execute(
        "UPDATE files SET size=?, mtime_ns=?, inode=?, head_hash=?, tail_hash=?, "
        "bytes_indexed=?, lines_indexed=?, spans=spans+?, bad_lines=bad_lines+?, "
        "format=COALESCE(format, ?) WHERE file_id=?",
        (
            state.size,
            state.mtime_ns,
            state.inode,
            state.head_hash,
            hash_range(state.path, state.end - HASH_BYTES, state.end),
            state.end,
            lines,
            spans,
            bad_lines,
            fmt,
            file_id,
        ),
    )


def parse_gz_block(data: bytes, base_offset: int) -> SliceResult:
    return parse_block(data, base_offset, keep_raw=True)
