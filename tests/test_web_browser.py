"""The report and the viewer in a real browser: Debian's Chromium, headless, driven by
Playwright with the system executable. Clicks a finding, sees the waterfall with the
evidence span highlighted, opens a span's attributes, and keeps screenshots under
tests/artifacts/ (ignored by git).

Needs `apt-get install -y chromium` and `pip install -e '.[browser]'` (or '.[test]');
the tests fail, naming those commands, when either is missing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from halo_mcp.web.report import run_report_html
from tests.web_support import WebEnv, make_web_env, serve_viewer, viewer_settings

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "Chromium is not installed: run `apt-get update && apt-get install -y chromium` "
        "(Debian) so the browser tests can drive it headless"
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: run `pip install -e '.[browser]'`")
    executable = chromium_path()
    profile = tempfile.mkdtemp(prefix="halo-chromium-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> WebEnv:
    return make_web_env(tmp_path_factory.mktemp("webbrowser"), traces=80)


def page_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return errors


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000, "the screenshot holds a drawn page"
    return path


def test_the_report_opens_offline_and_a_finding_shows_its_evidence_waterfall(
    browser: Any, web: WebEnv, tmp_path: Path
):
    report = tmp_path / "report.html"
    report.write_text(run_report_html(web.run, cache_dir=web.cache_dir))
    page = browser.new_page()
    errors = page_errors(page)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri())
    page.wait_for_selector("body[data-ready='1']")
    rows = page.locator("tr.finding-row")
    assert rows.count() == len(web.run.findings)
    assert page.locator("#findings-table svg.prev-bar").count() == len(web.run.findings)
    first = web.run.findings and page.locator("tr.finding-row").first
    finding_id = first.get_attribute("data-finding-id")
    first.click()
    section = page.locator(f"section.finding[data-finding-id='{finding_id}']")
    waterfall = section.locator(".wf").first
    waterfall.wait_for()
    assert waterfall.locator(".wf-row").count() > 1
    highlighted = section.locator(".wf-row.hl").first
    assert highlighted.is_visible()
    assert section.locator("svg.rate-chart rect.rate-bar").count() >= 1
    assert section.locator("blockquote.excerpt").count() >= 1
    # The evidence span is selected first: its details are shown.
    evidence_span = highlighted.get_attribute("data-span-id")
    details = section.locator(".span-details").first
    details.wait_for()
    assert details.get_attribute("data-span-id") == evidence_span
    # Clicking another span shows its attributes.
    other = waterfall.locator(".wf-row:not(.hl)").first
    other.click()
    assert details.get_attribute("data-span-id") != evidence_span
    section.locator(".span-details").first.wait_for()
    assert section.locator(".span-details table.attrs tr").count() >= 1
    shot(page, "report-finding.png")
    assert [u for u in requests if not u.startswith("file:")] == []
    assert errors == []
    page.close()


def test_the_viewer_lists_traces_filters_them_and_draws_a_trace(browser: Any, web: WebEnv):
    with serve_viewer(viewer_settings(web)) as base:
        page = browser.new_page()
        errors = page_errors(page)
        page.goto(base + "/#/traces")
        page.wait_for_selector("tr.trace-row")
        assert page.locator("tr.trace-row").count() == 50  # one page
        assert "80 matching" in page.locator("#trace-total").inner_text()
        page.locator("#live").filter(has_text="80 traces").wait_for()
        page.check("#trace-filters input[name=errors_only]")
        page.click("#trace-filters button[type=submit]")
        page.locator("#trace-total").filter(has_text="matching").wait_for()
        page.wait_for_function(
            "() => !document.querySelector('#trace-total').textContent.startsWith('80 ')"
        )
        shot(page, "viewer-traces.png")
        assert page.locator("tr.trace-row").count() >= 1
        page.locator("tr.trace-row").first.click()
        page.wait_for_selector(".wf .wf-row")
        error_row = page.locator(".wf-row.error").first
        error_row.click()
        details = page.locator(".span-details")
        details.wait_for()
        assert details.get_attribute("data-span-id") == error_row.get_attribute("data-span-id")
        assert page.locator(".span-details table.attrs tr").count() >= 1
        shot(page, "viewer-trace.png")
        assert errors == []
        page.close()


def test_the_viewer_shows_runs_findings_and_links_evidence_to_traces(browser: Any, web: WebEnv):
    with serve_viewer(viewer_settings(web)) as base:
        page = browser.new_page()
        errors = page_errors(page)
        page.goto(base + "/#/runs")
        page.locator(f"tr.run-row[data-run-id='{web.run.id}']").click()
        page.wait_for_selector(".finding[data-finding-id]")
        assert page.locator(".finding[data-finding-id]").count() == len(web.run.findings)
        assert page.locator("#html-report").get_attribute("href").endswith("/report.html")
        shot(page, "viewer-run.png")
        # A finding's evidence opens its trace with the evidence span highlighted.
        link = page.locator(".finding .evidence-link a").first
        span_id = link.get_attribute("href").split("span=")[-1]
        link.click()
        highlighted = page.locator(f".wf-row.hl[data-span-id='{span_id}']")
        highlighted.wait_for()
        # Its matcher lists the matching traces.
        matcher = web.run.findings[0].matcher
        assert matcher is not None
        flt = json.dumps(matcher.model_dump(mode="json", exclude_defaults=True))
        page.goto(base + "/#/traces?f=" + quote(flt))
        page.locator("#trace-total").filter(has_text="matching").wait_for()
        prevalence = web.run.findings[0].prevalence
        assert prevalence is not None
        total = page.locator("#trace-total").inner_text()
        assert total == f"{prevalence.traces_matched} matching"
        page.goto(base + "/#/triage")
        page.wait_for_selector("#triage-items .finding")
        shot(page, "viewer-triage.png")
        assert errors == []
        page.close()
