"""Triage on traces recorded from real agent frameworks (tests/data/frameworks).

Each directory holds traces one framework wrote while running a small agent against the
fake OpenAI server with failure modes planted at known counts
(bench/record_frameworks/record.py recorded them), its ground truth and the library
versions. For every framework: each planted mode is one triage item, counted exactly,
of the right category, titled with the error's name; and no other item is reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from halo_mcp.findings.models import Finding
from halo_mcp.store import open_store
from halo_mcp.triage import TriageReport, run_triage

DATA = Path(__file__).parent / "data" / "frameworks"
FRAMEWORKS = sorted(p.name for p in DATA.iterdir() if (p / "ground_truth.json").exists())
_reports: dict[str, tuple[TriageReport, dict]] = {}


def _triage(framework: str, cache: Path) -> tuple[TriageReport, dict]:
    """The framework's triage report and ground truth (each triaged once per session)."""
    if framework not in _reports:
        folder = DATA / framework
        truth = json.loads((folder / "ground_truth.json").read_text())
        with open_store([folder / "traces.jsonl.gz"], cache_dir=cache / framework) as store:
            _reports[framework] = (run_triage(store), truth)
    return _reports[framework]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("frameworks-cache")


def _items_of(report: TriageReport, category: str) -> list[Finding]:
    return [item for item in report.items if item.category == category]


def test_every_framework_has_a_recording_with_versions() -> None:
    assert len(FRAMEWORKS) >= 5, FRAMEWORKS
    for framework in FRAMEWORKS:
        versions = json.loads((DATA / framework / "versions.json").read_text())
        assert versions.get("python"), framework
        assert any(v != "not installed" for k, v in versions.items() if k != "python")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_trace_and_span_is_read(framework: str, cache: Path) -> None:
    report, truth = _triage(framework, cache)
    assert report.traces == truth["traces"]
    assert report.spans > report.traces


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_each_planted_mode_is_found_at_its_count_and_titled_by_its_error(
    framework: str, cache: Path
) -> None:
    report, truth = _triage(framework, cache)
    for mode, planted in truth["planted"].items():
        category = truth["category"][mode]
        items = _items_of(report, category)
        assert len(items) == 1, (mode, [(i.category, i.title) for i in report.items])
        item = items[0]
        assert item.prevalence.traces_matched == planted, (mode, item.title)
        words = truth["title_words"][mode]
        assert any(word.lower() in item.title.lower() for word in words), (mode, item.title)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_nothing_is_invented(framework: str, cache: Path) -> None:
    """One item per planted mode, nothing else (no split clusters, no made-up outliers)."""
    report, truth = _triage(framework, cache)
    expected = sorted(truth["category"][mode] for mode in truth["planted"])
    found = sorted(item.category for item in report.items)
    assert found == expected, [(i.category, i.title) for i in report.items]
    assert not report.truncated
