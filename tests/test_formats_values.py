"""Timestamps and ids in the shapes real exporters write them."""

from __future__ import annotations

import pytest

from halo_mcp.store.formats.values import norm_id, ns_to_iso, otlp_id, to_int, to_ns

NOON = 1_735_732_800_000_000_000  # 2025-01-01T12:00:00Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-01T12:00:00.123456789Z", NOON + 123_456_789),
        ("2025-01-01T12:00:00.123456Z", NOON + 123_456_000),
        ("2025-01-01T12:00:00.5Z", NOON + 500_000_000),
        ("2025-01-01T12:00:00Z", NOON),
        ("2025-01-01T12:00:00", NOON),
        ("2025-01-01 12:00:00.25", NOON + 250_000_000),
        ("2025-01-01T14:00:00.000000001+02:00", NOON + 1),
        ("2025-01-01T10:30:00-01:30", NOON),
        ("2025-01-01T14:00:00+0200", NOON),
        ("2025-01-01T14:00:00.5+02", NOON + 500_000_000),
        ("2025-01-01T12:00:00.1234567891234Z", NOON + 123_456_789),
        ("2025-01-01T12:00Z", NOON),
        ("2025-01-01T14:00+02:00", NOON),
        (NOON, NOON),
        (str(NOON), NOON),
        (1_735_732_800, NOON),
        (1_735_732_800.5, NOON + 500_000_000),
        (1_735_732_800_000, NOON),
        (1_735_732_800_000_000, NOON),
        ("1735732800.5", NOON + 500_000_000),
    ],
)
def test_timestamps_in_every_shape(value, expected):
    assert to_ns(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "yesterday",
        "2025-13-01T00:00:00Z",
        "2025-01-01T12:00:00.12x4Z",
        "2025-01-01T12:00:00+99:00",
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        float("nan"),
        float("inf"),
        True,
        [],
        {},
        2**80,
        -5,
    ],
)
def test_unreadable_or_out_of_range_timestamps_are_none(value):
    assert to_ns(value) is None


def test_ns_to_iso_keeps_nanoseconds():
    assert ns_to_iso(NOON + 7) == "2025-01-01T12:00:00.000000007Z"
    assert to_ns(ns_to_iso(NOON + 123_456_789)) == NOON + 123_456_789


def test_ids():
    assert norm_id("ABCDEF") == "abcdef"
    assert norm_id("span_AbC") == "span_AbC"  # not hex: kept as written
    assert norm_id("0000000000000000") is None
    assert norm_id("") is None
    assert norm_id(None) is None
    assert norm_id(255) == "255"
    assert otlp_id("AAAAAAAAAAE=") == "0000000000000001"
    assert otlp_id("4bf92f3577b34da6a3ce929d0e0e4736") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert otlp_id("not-base64!!") == "not-base64!!"


def test_integers():
    assert to_int("12") == 12
    assert to_int("12.7") == 12
    assert to_int(3.0) == 3
    assert to_int(float("nan")) is None
    assert to_int(True) is None
    assert to_int("x") is None
    assert to_int(2**63) is None


def test_an_odd_timestamp_reads_the_same_whatever_was_parsed_before():
    from halo_mcp.store.formats.values import time_ns

    odd = "2031-05-07T09:08:07.+02368517Z"
    first = time_ns(odd)
    assert time_ns("2031-05-07T09:08:07.002368517Z") is not None  # warms the caches
    assert time_ns(odd) == first == to_ns(odd)
