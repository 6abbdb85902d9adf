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
from halo_mcp.store import SpanFilter, open_store
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


#: OpenInference's LlamaIndex instrumentor names no agent (its spans are CHAIN spans named
#: after methods, "FunctionAgent.run"). smolagents' instrumentor names its AGENT span after the
#: class ("ToolCallingAgent.run"), but never ends it when a run raises (0.1.43): those runs'
#: spans are orphans under a run span that is never exported, so they have no agent.
NO_AGENT_NAME = {"llama_index_oi", "smolagents_oi"}
#: smolagents' instrumentor writes llm.invocation_parameters "{}" and no model on a call
#: that failed: the span does not name the model at all.
FAILED_CALLS_UNNAMED = {"smolagents_oi"}
#: Agents named by a graph node, not by their span's name (CrewAI's "<role>._execute_core").
AGENT_NAME = {"crewai_oi": "File assistant", "openai_agents_oi": "File assistant"}
#: Frameworks whose agents answer through a tool of their own (smolagents' final_answer).
ANSWER_TOOL = {"smolagents_oi": "final_answer"}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_models_tokens_tools_and_agents_are_recognized(framework: str, cache: Path) -> None:
    folder = DATA / framework
    with open_store([folder / "traces.jsonl.gz"], cache_dir=cache / framework) as store:
        llm = store.query_spans(SpanFilter(kind=["llm"]), limit=500).spans
        tools = store.query_spans(SpanFilter(kind=["tool"]), limit=500).spans
    # Failed calls too: OpenInference's openai instrumentor names the model of a call that
    # got no response only inside llm.invocation_parameters.
    answered = [span for span in llm if span.status != "error"]
    named = answered if framework in FAILED_CALLS_UNNAMED else llm
    assert answered and all(span.model for span in named), [s.name for s in named if not s.model]
    assert any(span.input_tokens and span.output_tokens for span in answered), framework
    tool_names = {"read_file", ANSWER_TOOL.get(framework, "read_file")}
    assert tools and all(span.tool_name in tool_names for span in tools), framework
    assert any(span.tool_name == "read_file" for span in tools), framework
    if framework not in NO_AGENT_NAME:
        assert all(span.agent for span in llm + tools), framework
    if framework in AGENT_NAME:
        assert {span.agent for span in llm + tools} == {AGENT_NAME[framework]}


#: Roots that record no content (the answer is the run's last LLM call's: the Agents SDK,
#: Google ADK) and roots without content that failed (pydantic-ai), read in ClickHouse too.
CLICKHOUSE_CHECKED = ["openai_agents_oi", "google_adk", "pydantic_ai_v3", "crewai_oi"]


@pytest.mark.parametrize("framework", CLICKHOUSE_CHECKED)
def test_clickhouse_finds_the_same_items(framework: str, cache: Path, tmp_path: Path) -> None:
    """The same recording loaded into embedded ClickHouse (chDB) gives the same items."""
    from halo_mcp.store.clickhouse.client import connect
    from halo_mcp.store.clickhouse.load import load_files
    from halo_mcp.store.clickhouse.location import parse_location

    location = parse_location(f"chdb:{tmp_path / 'db'}")
    client = connect(location)
    try:
        load_files([DATA / framework / "traces.jsonl.gz"], client, location)
    finally:
        client.close()
    expected, truth = _triage(framework, cache)
    with open_store([f"chdb:{tmp_path / 'db'}"]) as clickhouse:
        found = run_triage(clickhouse)
    assert "no_final_answer" in truth["planted"]
    assert [(i.category, i.title, i.prevalence.traces_matched) for i in found.items] == [
        (i.category, i.title, i.prevalence.traces_matched) for i in expected.items
    ]


#: (status message, exception type, exception message): a status that repeats the
#: exception's message (OpenInference's CrewAI spans), one that already names the type, a
#: bare JavaScript Error, no status message, a status that says something else.
_STATUS_CASES = [
    (
        "1 validation error for TaskOutput",
        "pydantic_core.ValidationError",
        "1 validation error for TaskOutput",
    ),
    ("RateLimitError: 429", "openai.RateLimitError", "429"),
    ("ENOENT: no such file", "Error", "ENOENT: no such file"),
    ("", "TimeoutError", "timed out"),
    ("the call failed", "ValueError", "bad value"),
]


def test_both_backends_name_the_type_of_an_exception_the_status_only_repeats(
    tmp_path: Path,
) -> None:
    """A status message that only repeats its exception's message gets the exception's
    type (not a bare Error): the file index's rule and ClickHouse's expression agree."""
    from halo_mcp.store.clickhouse import expressions as ex
    from halo_mcp.store.clickhouse.client import connect
    from halo_mcp.store.clickhouse.location import parse_location
    from halo_mcp.store.formats.spans import error_outcome

    events = [
        [{"name": "exception", "attributes": {"exception.type": t, "exception.message": m}}]
        for _, t, m in _STATUS_CASES
    ]
    expected = [
        error_outcome("error", s or None, e, None)[1]
        for (s, _, _), e in zip(_STATUS_CASES, events, strict=True)
    ]
    assert expected[0] == "pydantic_core.ValidationError: 1 validation error for TaskOutput"
    assert expected[1:] == [
        "RateLimitError: 429",
        "ENOENT: no such file",
        "TimeoutError: timed out",
        "the call failed",
    ]

    rows = " UNION ALL ".join(
        f"SELECT {n} AS n, {ex.lit(s)} AS StatusMessage, 'Error' AS StatusCode, "
        f"['exception'] AS `Events.Name`, [map('exception.type', {ex.lit(t)}, "
        f"'exception.message', {ex.lit(m)})] AS `Events.Attributes`, "
        "CAST(map(), 'Map(String, String)') AS SpanAttributes, 'x' AS SpanName"
        for n, (s, t, m) in enumerate(_STATUS_CASES)
    )
    select = ex.normalized_select(f"({rows})", "1", more=(("n", "n"),), columns=("error_message",))
    client = connect(parse_location(f"chdb:{tmp_path / 'db'}"))
    try:
        found = client.rows(f"SELECT error_message FROM ({select}) ORDER BY n")
    finally:
        client.close()
    assert [r[0] for r in found] == expected
