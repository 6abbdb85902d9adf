"""Generated data through the real store: each planted failure mode is found at its rate.

The manifest's matchers are SpanFilters; the store's count for each must equal what the
generator planted, in every format and convention, so findings' re-checks and triage can
be tested against known truth.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from halo_mcp.store import SpanFilter, open_store
from halo_mcp.synth import NO_FAILURES, generate, load_manifest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HALO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HALO_DATA_DIR", str(tmp_path / "data"))


@pytest.mark.parametrize(
    ("fmt", "convention"),
    [
        ("halo", "openinference"),
        ("halo", "mixed"),
        ("otlp", "genai"),
        ("otlp", "mixed"),
        ("agents-sdk", "openinference"),
    ],
)
def test_the_store_counts_each_planted_mode_exactly_as_the_manifest_says(
    tmp_path: Path, fmt: str, convention: str
) -> None:
    path = tmp_path / f"traces-{fmt}.jsonl.gz"
    rates = dict.fromkeys(NO_FAILURES, 0.15)
    manifest = generate(
        path,
        traces=150,
        seed=21,
        format=fmt,
        convention=convention,
        profile="tiny",
        failure_rates=rates,
        bad_lines=3,
    )
    with open_store([path]) as store:
        assert store.report.spans == manifest.spans
        whole = store.count()
        assert (whole.traces, whole.spans) == (manifest.traces, manifest.spans)
        overview = store.overview()
        assert overview.error_spans == manifest.error_spans
        assert overview.error_traces == manifest.error_traces
        for mode in manifest.failure_modes:
            count = store.count(SpanFilter.model_validate(mode.matcher))
            assert mode.planted_traces > 0
            assert (count.traces, count.spans) == (mode.planted_traces, mode.planted_spans), mode
            found, _ = store.known_ids(trace_ids=mode.trace_ids)
            assert found == set(mode.trace_ids)


@pytest.mark.parametrize("fmt", ["halo", "otlp"])
def test_the_store_skips_exactly_the_bad_lines_the_manifest_lists(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "messy.jsonl"
    manifest = generate(path, traces=80, seed=22, format=fmt, convention="mixed", bad_lines=5)
    with open_store([path]) as store:
        assert store.report.spans == manifest.spans
        assert store.report.bad_lines == len(manifest.bad_lines)
        reported = {bad.line for bad in store.report.bad_line_examples}
        assert reported <= {bad.line for bad in manifest.bad_lines}


def test_the_overview_of_a_clean_set_shows_no_error_at_all(tmp_path: Path) -> None:
    path = tmp_path / "clean.jsonl"
    manifest = generate(path, traces=120, seed=23, convention="mixed", failure_rates=NO_FAILURES)
    with open_store([path]) as store:
        overview = store.overview()
    assert overview.traces == manifest.traces
    assert overview.error_spans == 0
    assert overview.error_signatures == []
    assert {tool.name: tool.calls for tool in overview.tools} == {
        name: counts.calls for name, counts in manifest.tools.items()
    }


def test_the_bundled_example_matches_its_manifest_in_the_store() -> None:
    for path in (EXAMPLES / "traces.jsonl", EXAMPLES / "otlp" / "traces.otlp.jsonl"):
        manifest = load_manifest(path)
        with open_store([path]) as store:
            assert store.report.spans == manifest.spans
            assert store.report.bad_lines == 0
            for mode in manifest.failure_modes:
                count = store.count(SpanFilter.model_validate(mode.matcher))
                assert count.traces == mode.planted_traces, (path.name, mode.name)


def test_the_documented_command_regenerates_the_examples_byte_for_byte(tmp_path: Path) -> None:
    readme = (EXAMPLES / "README.md").read_text()
    prefix = "python -m halo_mcp.synth examples/"
    commands = [line.strip() for line in readme.splitlines() if line.startswith(prefix)]
    assert len(commands) == 2
    for command in commands:
        args = command.split()[3:]  # drop "python -m halo_mcp.synth"
        target = Path(args[0])
        out = tmp_path / target.name
        subprocess.run(
            [sys.executable, "-m", "halo_mcp.synth", str(out), *args[1:]],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        assert out.read_bytes() == (ROOT / target).read_bytes(), command
        assert load_manifest(out) == load_manifest(ROOT / target)
