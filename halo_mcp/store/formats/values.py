"""Scalar coercions shared by every format: timestamps, ids, integers, strings.

These run once or more per span while indexing gigabytes, so they avoid regexes and
datetime objects on the common path: an ISO timestamp's "YYYY-MM-DDTHH:MM:SS" head is
parsed once and cached, and the fraction and offset are added by hand.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta, timezone
from typing import Any

INT64_MAX = (1 << 63) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CACHE_LIMIT = 100_000

_head_cache: dict[str, int] = {}
_offset_cache: dict[str, int] = {"Z": 0, "z": 0, "+00:00": 0, "-00:00": 0, "": 0}


def _parse_head(head: str) -> int:
    """'YYYY-MM-DDTHH:MM:SS' (T or space) -> Unix seconds, as UTC."""
    if len(head) != 19 or head[4] != "-" or head[7] != "-" or head[10] not in "Tt ":
        raise ValueError(head)
    if head[13] != ":" or head[16] != ":":
        raise ValueError(head)
    dt = datetime(
        int(head[0:4]),
        int(head[5:7]),
        int(head[8:10]),
        int(head[11:13]),
        int(head[14:16]),
        int(head[17:19]),
        tzinfo=timezone.utc,
    )
    return (dt - _EPOCH) // timedelta(seconds=1)


def _parse_offset(text: str) -> int:
    """'+02:00', '-0530', '+02', 'Z' -> seconds east of UTC."""
    seconds = _offset_cache.get(text)
    if seconds is not None:
        return seconds
    if len(text) < 3 or text[0] not in "+-":
        raise ValueError(text)
    digits = text[1:].replace(":", "")
    if not digits.isdigit() or len(digits) not in (2, 4):
        raise ValueError(text)
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(text)
    seconds = (hours * 3600 + minutes * 60) * (1 if text[0] == "+" else -1)
    if len(_offset_cache) < 1000:
        _offset_cache[text] = seconds
    return seconds


# Heads cached only within a range where "+ fraction - offset" stays inside int64.
_MAX_CACHED_SECONDS = INT64_MAX // 1_000_000_000 - 86_400
_FRACTION_SCALE = tuple(10 ** (9 - digits) for digits in range(10))


def iso_to_ns(text: str) -> int:
    """ISO-8601 timestamp -> Unix ns. Naive times are UTC. Raises ValueError.

    Fast path for "…SS[.fffffffff](Z|±HH:MM)"; anything else goes to the slow parser.
    """
    base = _head_cache.get(text[:19])
    if base is None:
        base = _parse_head(text[:19])
        if not 0 <= base < _MAX_CACHED_SECONDS:
            return _iso_slow(text, base) if len(text) > 19 else base * 1_000_000_000
        if len(_head_cache) >= _CACHE_LIMIT:
            _head_cache.clear()
        _head_cache[text[:19]] = base
    size = len(text)
    if size == 19:
        return base * 1_000_000_000
    last = text[-1]
    offset: int | None
    if last == "Z" or last == "z":
        fraction = text[20:-1]
        offset = 0
    elif size >= 25 and text[-3] == ":" and (text[-6] == "+" or text[-6] == "-"):
        fraction = text[20:-6]
        offset = _offset_cache.get(text[-6:])
        if offset is None:
            offset = _parse_offset(text[-6:])
    else:
        return _iso_slow(text, base)
    if fraction:
        if not fraction.isdigit() or text[19] not in ".,":
            return _iso_slow(text, base)
        digits = len(fraction)
        frac_ns = int(fraction) * _FRACTION_SCALE[digits] if digits <= 9 else int(fraction[:9])
    elif size > 19 and text[19] not in "Zz+-":
        return _iso_slow(text, base)
    else:
        frac_ns = 0
    return (base - offset) * 1_000_000_000 + frac_ns


def time_ns(value: Any) -> int | None:
    """:func:`to_ns` with shortcuts for HALO's "YYYY-MM-DDTHH:MM:SS.fffffffffZ" strings
    and OTLP's 19-digit nanosecond strings."""
    if type(value) is str:
        size = len(value)
        if size == 30 and value[29] == "Z" and value[19] == "." and value[16] == ":":
            # Cached per hour: nearly every span starts in a new second, rarely a new hour.
            hour = _hour_cache.get(value[:14])
            if hour is None:
                hour = _cache_hour(value[:14])
            minute = _SIXTY.get(value[14:16])
            second = _SIXTY.get(value[17:19])
            fraction = value[20:29]
            if hour >= 0 and minute is not None and second is not None and fraction.isdigit():
                return (hour + minute * 60 + second) * 1_000_000_000 + int(fraction)
            base = _head_cache.get(value[:19]) if fraction.isdigit() else None
            if base is not None:  # (int() alone would take "+1234567", unlike to_ns)
                return base * 1_000_000_000 + int(fraction)
        elif size == 19 and value.isdigit():
            try:
                ns = int(value)  # epoch ns from 2001-09-09 on
            except ValueError:
                return None
            return ns if ns <= INT64_MAX else None
    return to_ns(value)


_hour_cache: dict[str, int] = {}
_SIXTY = {f"{i:02d}": i for i in range(60)}


def _cache_hour(head: str) -> int:
    """Unix seconds of an hour's start from 'YYYY-MM-DDTHH:' (cached), or -1 when the
    hour is not understood or out of the cached range (the general path decides)."""
    try:
        base = _parse_head(head + "00:00")
    except ValueError:
        base = -1
    if not 0 <= base < _MAX_CACHED_SECONDS:
        base = -1
    if len(_hour_cache) >= _CACHE_LIMIT:
        _hour_cache.clear()
    _hour_cache[head] = base
    return base


def _iso_slow(text: str, base: int) -> int:
    """The tail after the seconds in any other shape: '.5+0200', '.123', '+02'."""
    rest = text[19:]
    frac_ns = 0
    if rest[0] in ".,":
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        digits = rest[1:end]
        if digits:
            frac_ns = int((digits + "000000000")[:9])
        rest = rest[end:]
    offset = _offset_cache.get(rest)
    if offset is None:
        offset = _parse_offset(rest)
    return (base - offset) * 1_000_000_000 + frac_ns


def _number_to_ns(value: float) -> int:
    """Epoch number in s, ms, us or ns (guessed from its magnitude) -> ns."""
    magnitude = abs(value)
    if magnitude >= 1e17:
        return int(value)
    if magnitude >= 1e14:
        return int(value * 1_000)
    if magnitude >= 1e11:
        return int(value * 1_000_000)
    return int(value * 1_000_000_000)


def to_ns(value: Any) -> int | None:
    """A timestamp in any form seen in the wild -> Unix ns in int64 range, else None.

    Accepts ISO-8601 strings, epoch numbers (s/ms/us/ns by magnitude) and numeric strings.
    """
    kind = type(value)
    try:
        if kind is str:
            if not value:
                return None
            if len(value) >= 19 and value[4] == "-":
                try:
                    ns = iso_to_ns(value)
                except ValueError:
                    ns = _parse_loose(value)
            elif value.isdigit():
                ns = _number_to_ns(int(value))
            else:
                ns = _parse_loose(value)
        elif kind is int or kind is float:
            ns = _number_to_ns(value)  # inf and nan raise
        else:
            return None
    except (ValueError, OverflowError, IndexError):
        return None
    return ns if 0 <= ns <= INT64_MAX else None


def _parse_loose(text: str) -> int:
    """Slow path: numbers with signs or dots, short ISO forms ('2025-01-01T12:00Z')."""
    text = text.strip()
    try:
        return _number_to_ns(float(text))
    except ValueError:
        pass
    if text[-1:] in "Zz":
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def ns_to_iso(ns: int) -> str:
    """Unix ns -> '2025-01-01T12:00:00.123456789Z' (nanoseconds kept)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    dt = _EPOCH + timedelta(seconds=seconds)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


def to_int(value: Any) -> int | None:
    """Token counts and the like: ints, floats, numeric strings -> non-negative int64."""
    kind = type(value)
    try:
        if kind is int:
            number = value
        elif kind is float:
            number = int(value)  # inf and nan raise
        elif kind is str:
            try:
                number = int(value)
            except ValueError:
                number = int(float(value))
        else:
            return None
    except (ValueError, OverflowError):
        return None
    return number if 0 <= number <= INT64_MAX else None


def to_str(value: Any) -> str | None:
    """A name-like value -> non-empty str, else None. Numbers become their text."""
    kind = type(value)
    if kind is str:
        return value or None
    if kind is int or kind is float:
        return str(value)
    return None


_HEX = frozenset("0123456789abcdefABCDEF")


def _is_hex(text: str) -> bool:
    return _HEX.issuperset(text)


def norm_id(value: Any) -> str | None:
    """An id as written by the source; hex ids are lowercased. Empty/zero ids -> None."""
    if type(value) is not str:
        if type(value) is int and value > 0:
            return str(value)
        return None
    if value.islower():  # the common case: lowercase hex (an all-zero id has no letters)
        return value
    if not value:
        return None
    if _is_hex(value):
        value = value.lower()
        if value.count("0") == len(value):
            return None
    return value


def _base64_hex(text: str) -> str | None:
    """Base64 (standard or URL-safe, padded or not) of an 8- or 16-byte id -> hex."""
    padded = text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) in (8, 16) else None


def otlp_id(value: Any) -> str | None:
    """OTLP ids: hex (32/16 chars) as lowercase hex; base64 (protobuf JSON) converted to hex."""
    if type(value) is str and (len(value) == 32 or len(value) == 16) and value.islower():
        return value
    if type(value) is str and len(value) in (24, 22, 12, 11) and not _is_hex(value):
        value = _base64_hex(value) or value
    return norm_id(value)
