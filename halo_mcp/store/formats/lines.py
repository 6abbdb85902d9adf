"""One input line -> normalized span rows, whatever the format: the ingestion hot path.

Formats are detected per line, so a file may mix them: HALO flat JSONL (one span), OTLP
JSON envelopes (many spans), single OTLP span objects, OpenAI Agents SDK span objects, a
batch {"data": [...]} of those, or a JSON array of any of them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import orjson

from halo_mcp.store.formats.agents_sdk import agents_row, is_agents_sdk
from halo_mcp.store.formats.errors import BadLineError
from halo_mcp.store.formats.fastpath import halo_row
from halo_mcp.store.formats.spans import _pick, service_of, span_row
from halo_mcp.store.models import Span

logger = logging.getLogger(__name__)

#: The columns of a normalized row: the Span model's fields, but for where its line is.
ROW_FIELDS = tuple(name for name in Span.model_fields if name != "source")

BOM = b"\xef\xbb\xbf"
_BLANK = object()
_OTLP_OTHER_SIGNALS = ("resourceLogs", "resourceMetrics", "resource_logs", "resource_metrics")
_SCOPE_KEYS = (
    "scopeSpans",
    "scope_spans",
    "instrumentationLibrarySpans",
    "instrumentation_library_spans",
)

# Entry flavors produced by walk().
SPAN, OTLP, AGENTS, BAD = "span", "otlp", "agents", "bad"
Entry = tuple[str, Any, Any]


def load_line(line: bytes | bytearray | memoryview | str) -> Any:
    """Parse a line's JSON. Returns _BLANK for blank lines; raises BadLineError otherwise.

    orjson first; on failure the stdlib parser gets a second chance (it accepts NaN and
    integers beyond 64 bits, and invalid UTF-8 is replaced) so one odd value does not
    cost a whole line.
    """
    if isinstance(line, str):
        line = line.encode("utf-8", "replace")
    elif type(line) is not bytes:
        line = bytes(line)
    if line[:3] == BOM:
        line = line[3:]
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        pass
    if not line.strip():
        return _BLANK
    try:
        obj = json.loads(line.decode("utf-8", "replace"))
    except RecursionError:
        raise BadLineError("JSON nested too deeply") from None
    except ValueError:
        raise BadLineError(_json_reason(line)) from None
    if _SURROGATE_ESCAPE.search(line) and _holds_lone_surrogate(obj):
        raise BadLineError(
            "a string holds a lone surrogate escape (like \\ud800), which is not valid "
            "Unicode; fix the writer to escape text as UTF-8"
        )
    return obj


# orjson refuses lone surrogates; the stdlib parser lets them into strings, where they
# would break every later UTF-8 encode (the index, the reports, the MCP results).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _holds_lone_surrogate(obj: Any) -> bool:
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except (ValueError, RecursionError):
        return False
    return False


def _json_reason(line: bytes) -> str:
    stripped = line.strip()
    if stripped[:1] not in (b"{", b"["):
        return "not JSON (line does not start with '{' or '[')"
    return "not valid JSON (truncated?)"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "boolean"
    if type(value) in (int, float):
        return "number"
    return "string" if type(value) is str else type(value).__name__


def _objects(items: list, what: str, out: list[Entry]) -> Iterator[dict]:
    """The objects of an OTLP list; any other item is reported as a BAD entry."""
    for item in items:
        if type(item) is dict:
            yield item
        else:
            out.append((BAD, f"OTLP {what} is not an object", None))


def _walk_otlp(envelope: dict, out: list[Entry]) -> None:
    blocks = _pick(envelope, "resourceSpans", "resource_spans")
    if type(blocks) is not list:
        out.append((BAD, "OTLP resourceSpans is not a list", None))
        return
    for block in _objects(blocks, "resourceSpans entry", out):
        resource = block.get("resource")
        service = service_of(resource)
        scopes = _pick(block, *_SCOPE_KEYS)
        if type(scopes) is not list:
            out.append((BAD, "OTLP resourceSpans entry has no scopeSpans list", None))
            continue
        for scope_block in _objects(scopes, "scopeSpans entry", out):
            spans = scope_block.get("spans")
            if type(spans) is not list:
                out.append((BAD, "OTLP scopeSpans entry has no spans list", None))
                continue
            context = (service, resource, scope_block.get("scope"))
            for span in spans:  # as _objects does, inlined: this runs once per span
                if type(span) is dict:
                    out.append((OTLP, span, context))
                else:
                    out.append((BAD, "OTLP span is not an object", None))


def _walk(obj: Any, out: list[Entry], depth: int = 0) -> None:
    """Collect the spans a parsed line holds (and a reason for each unusable part)."""
    if type(obj) is list:
        if depth > 2:
            out.append((BAD, "arrays nested too deeply", None))
            return
        for item in obj:
            _walk(item, out, depth + 1)
        return
    if type(obj) is not dict:
        out.append((BAD, f"not a span: JSON {_json_type(obj)} instead of an object", None))
        return
    if is_agents_sdk(obj):
        out.append((AGENTS, obj, None))
        return
    if "resourceSpans" in obj or "resource_spans" in obj:
        _walk_otlp(obj, out)
        return
    if "span_id" in obj or "trace_id" in obj:
        out.append((SPAN, obj, None))
        return
    if "spanId" in obj or "traceId" in obj:
        out.append((OTLP, obj, None))
        return
    if obj.get("object") == "trace" or any(key in obj for key in _OTLP_OTHER_SIGNALS):
        return  # trace records and OTLP logs/metrics hold no span: not an error
    data = obj.get("data")
    if type(data) is list and depth <= 2:
        for item in data:
            _walk(item, out, depth + 1)
        return
    keys = ", ".join(str(key)[:40] for key in list(obj)[:5]) or "none"
    out.append((BAD, f"not a span: no trace/span ids (keys: {keys})", None))


# The last line parse_line parsed, with its JSON: ingestion often asks for a payload of
# the line it just parsed (e.g. to hash tool inputs), and this spares a second parse.
# Matched by identity only, so a line read again from disk is always parsed afresh.
_last_parsed: tuple[Any, Any] = (None, None)


def walk_line(line: bytes | str) -> list[Entry]:
    """(flavor, span object, context) for each span on the line; BAD entries carry a reason."""
    last_line, last_obj = _last_parsed
    obj = last_obj if last_line is line else load_line(line)
    out: list[Entry] = []
    if obj is not _BLANK:
        _walk(obj, out)
    return out


def parsed_object(line: bytes | str) -> Any:
    """The JSON parse_line made of this very line object (identity), else None: lets the
    caller read more of the line without parsing it twice."""
    last_line, last_obj = _last_parsed
    return last_obj if last_line is line and last_obj is not _BLANK else None


def _row(flavor: str, item: Any, context: Any) -> tuple:
    if flavor == SPAN:
        row = halo_row(item)
        return row if row is not None else span_row(item, None, False)
    if flavor == OTLP:
        service = context[0] if context is not None else service_of(item.get("resource"))
        return span_row(item, service, True)
    return agents_row(item)


def _safe_row(flavor: str, item: Any, context: Any) -> tuple | str:
    """A row, or the reason it could not be made. Never raises."""
    try:
        return _row(flavor, item, context)
    except BadLineError as exc:
        return exc.reason
    except RecursionError:
        return "span nested too deeply"
    except Exception as exc:  # junk we did not foresee must not stop ingestion
        logger.debug("unexpected %s while normalizing a span", type(exc).__name__, exc_info=True)
        return f"span could not be read ({type(exc).__name__})"


def _report(obj: Any) -> tuple[list[tuple], int, str | None]:
    """Rows of a parsed line, how many of its spans were bad, and the first reason."""
    if type(obj) is dict and "span_id" in obj and "span_data" not in obj:
        result = _safe_row(SPAN, obj, None)  # HALO: one span per line
        return ([], 1, result) if isinstance(result, str) else ([result], 0, None)
    entries: list[Entry] = []
    try:
        _walk(obj, entries)
    except RecursionError:
        return [], 1, "JSON nested too deeply"
    rows: list[tuple] = []
    bad = 0
    first_reason = None
    for flavor, item, context in entries:
        result = item if flavor == BAD else _safe_row(flavor, item, context)
        if isinstance(result, str):
            bad += 1
            if first_reason is None:
                first_reason = result
        else:
            rows.append(result)
    return rows, bad, first_reason


def parse_line_report(line: bytes | str) -> tuple[list[tuple], int, str | None]:
    """(rows, number of bad spans or 1 for a bad line, first reason). Never raises."""
    try:
        obj = load_line(line)
    except BadLineError as exc:
        return [], 1, exc.reason
    if obj is _BLANK:
        return [], 0, None
    return _report(obj)


def parse_line(line: bytes | str) -> list[tuple]:
    """One input line -> normalized row tuples in ROW_FIELDS order.

    A line may hold many spans (OTLP envelopes); unusable spans next to good ones are
    dropped (use parse_line_report to count them). Raises BadLineError when the line
    yields no valid span. Blank lines and span-less records (Agents SDK trace records,
    OTLP logs) give [].
    """
    global _last_parsed
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        obj = load_line(line)  # BOM, NaN, big ints, bad UTF-8, blank; raises BadLineError
        if obj is _BLANK:
            return []
    if type(line) is bytes or type(line) is str:  # immutable: identity means same content
        _last_parsed = (line, obj)
    if type(obj) is dict and "span_id" in obj and "span_data" not in obj:
        try:
            row = halo_row(obj)  # HALO: one span per line, the hot path
            return [row if row is not None else span_row(obj, None, False)]
        except BadLineError:
            raise
        except RecursionError:
            raise BadLineError("span nested too deeply") from None
        except Exception as exc:  # junk we did not foresee must not stop ingestion
            logger.debug("unexpected %s while normalizing a span", type(exc).__name__)
            raise BadLineError(f"span could not be read ({type(exc).__name__})") from None
    rows, bad, reason = _report(obj)
    if not rows and bad:
        raise BadLineError(reason or "no valid span")
    return rows


def detect_format(line: bytes | str) -> str:
    """The line's format, for per-file reports: 'halo-jsonl', 'otlp-json', 'openai-agents',
    'blank', 'invalid' (not JSON) or 'unknown' (JSON but no span)."""
    try:
        obj = load_line(line)
    except BadLineError:
        return "invalid"
    if obj is _BLANK:
        return "blank"
    return _format_of(obj, 0)


def _format_of(obj: Any, depth: int) -> str:
    if type(obj) is list:
        for item in obj[:10]:
            found = _format_of(item, depth + 1) if depth < 2 else "unknown"
            if found != "unknown":
                return found
        return "unknown"
    if type(obj) is not dict:
        return "unknown"
    if is_agents_sdk(obj) or obj.get("object") == "trace":
        return "openai-agents"
    if "resourceSpans" in obj or "resource_spans" in obj or "spanId" in obj or "traceId" in obj:
        return "otlp-json"
    if "span_id" in obj or "trace_id" in obj:
        return "halo-jsonl"
    if any(key in obj for key in _OTLP_OTHER_SIGNALS):
        return "otlp-json-other"
    data = obj.get("data")
    if type(data) is list and depth < 2:
        return _format_of(data, depth + 1)
    return "unknown"
