"""A fast path for the common HALO flat span: the same row as spans.span_row, sooner.

Most lines indexed are HALO flat spans with lowercase hex ids, fixed-length ISO times
("YYYY-MM-DDTHH:MM:SS.fffffffffZ"), flat dict attributes and a "STATUS_CODE_*" status.
`halo_row` handles exactly that shape with everything inlined and returns None for
anything else, so the caller falls back to span_row, which stays the reference: both
must give identical rows (tests/test_formats_fastpath.py checks it on varied lines).
"""

from __future__ import annotations

from halo_mcp.store.formats.compiled import Semantics, compiled_semantics
from halo_mcp.store.formats.conventions import nested_dict_matters
from halo_mcp.store.formats.spans import (
    _STATUS_CODES,
    error_outcome,
    row,
    service_of,
    status_parts,
)
from halo_mcp.store.formats.values import _cache_hour, _hour_cache, norm_id

# The string status codes ("STATUS_CODE_OK"...); a non-str code is not the common shape.
_STR_STATUS_CODES = {code: value for code, value in _STATUS_CODES.items() if type(code) is str}
# "MM:SS" -> seconds into the hour.
_MINUTE_SECOND = {f"{m:02d}:{s:02d}": m * 60 + s for m in range(60) for s in range(60)}


# "YYYY-MM-DDTHH:MM:SS." -> Unix ns of that second, or -1 when values.time_ns would not
# take its own fast path for it (the general path then decides). Spans cluster in time,
# so most lookups hit; the cache is dropped when full.
_second_ns: dict[str, int] = {}
_SECOND_CACHE_LIMIT = 100_000


def _cache_second(head: str) -> int:
    """Fill _second_ns for a 20-character head (shorter heads are cached as -1)."""
    seconds = _MINUTE_SECOND.get(head[14:19])
    if len(head) != 20 or head[19] != "." or seconds is None:
        base = -1
    else:
        hour = _hour_cache.get(head[:14])
        if hour is None:
            hour = _cache_hour(head[:14])
        base = -1 if hour < 0 else (hour + seconds) * 1_000_000_000
    if len(_second_ns) >= _SECOND_CACHE_LIMIT:
        _second_ns.clear()
    _second_ns[head] = base
    return base


# Attribute key tuple -> (compiled semantics or None when the interpreter must decide, the
# keys whose values must not be dicts; see nested_dict_matters). Checking only those keys
# matters on spans with many message attributes: a type check of every value cost 1.6 µs.
_plans: dict[tuple, tuple[Semantics | None, tuple[str, ...]]] = {}
_PLAN_CACHE_LIMIT = 4_096


def _plan(keys: tuple) -> tuple[Semantics | None, tuple[str, ...]]:
    plan = (compiled_semantics(keys), tuple(key for key in keys if nested_dict_matters(key)))
    if len(_plans) >= _PLAN_CACHE_LIMIT:
        _plans.clear()
    _plans[keys] = plan
    return plan


def _fixed_iso_ns(value: str) -> int | None:
    """Unix ns of a "YYYY-MM-DDTHH:MM:SS.fffffffffZ" time; None for any other text (other
    types raise, which also sends the span to the general path)."""
    base = _second_ns.get(value[:20])
    if base is None:
        base = _cache_second(value[:20])
    fraction = value[20:29]
    if base < 0 or value[29:] != "Z" or not fraction.isdigit():
        return None
    return base + int(fraction)


def halo_row(span: dict) -> tuple | None:
    """span_row(span, None, False) for the common HALO shape, else None.

    Type checks are left to the operations themselves: a missing key or a value of an
    unexpected type makes a subscript, `.islower()` or a dict lookup raise, which means
    "not the common shape" and hands the span to the general path (so no result can
    differ: the general path decides every unusual case, errors included).
    """
    try:
        get = span.get
        trace_id = span["trace_id"]
        if not trace_id.islower():
            return None
        span_id = span["span_id"]
        if not span_id.islower():
            return None
        parent_id = get("parent_span_id")
        if parent_id is None:
            parent_id = get("parentSpanId")
            if parent_id is None:
                parent_id = get("parent_id")
                if parent_id is not None:
                    parent_id = norm_id(parent_id)
            elif not parent_id.islower():
                parent_id = norm_id(parent_id)
        elif not parent_id.islower():
            parent_id = norm_id(parent_id)

        start = _fixed_iso_ns(span["start_time"])
        end = _fixed_iso_ns(span["end_time"])
        if start is None or end is None:
            return None

        name = span["name"]
        if type(name) is not str or not name:
            return None

        attrs = span["attributes"]
        if type(attrs) is not dict:
            return None
        keys = tuple(attrs)
        plan = _plans.get(keys)
        if plan is None:
            plan = _plan(keys)
        run, watched = plan
        if run is None:
            return None
        for key in watched:
            if type(attrs[key]) is dict:
                return None  # flatten would change what the span means: general path

        status_field = span["status"]
        status = _STR_STATUS_CODES.get(status_field["code"])
        if status is None:
            return None
        facts, error_type = run(attrs, name)
        events = get("events")
        if status != "error" and not events and not error_type:
            message = None  # the usual ok span: no error message to find
        else:
            message = status_field.get("message")
            if type(message) is not str:
                message = status_parts(status_field)[1]
            status, message = error_outcome(status, message, events, error_type)

        resource = get("resource")
        if resource is None:
            service = None
        else:  # a resource not shaped {"attributes": {...}} raises: general path
            service = resource["attributes"]["service.name"]
            if type(service) is not str or not service:
                service = service_of(resource)
    except (AttributeError, TypeError, ValueError, KeyError):
        return None
    return row(trace_id, span_id, parent_id, name, status, message, start, end, service, facts)
