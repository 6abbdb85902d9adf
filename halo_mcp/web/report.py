"""The HTML report of a run: one file, scripts, styles and data inlined, nothing fetched.

The data (see `report_data.py`) goes in as JSON in a non-executed script element, and the
shared components (`assets/halo.js`) draw it, so the report and the viewer show a finding
or a trace the same way. `<` is escaped in the JSON so no span text can close the element.
"""

from __future__ import annotations

import html
import logging
from functools import cache
from importlib import resources
from pathlib import Path

import orjson

from halo_mcp.check.recount import CheckReport
from halo_mcp.engine.models import RunRecord
from halo_mcp.store.errors import StoreError
from halo_mcp.store.store import open_store
from halo_mcp.web.report_data import ReportData, build_report

log = logging.getLogger(__name__)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<main class="page" id="app"><noscript>This report draws its findings with JavaScript;
enable it to see them.</noscript></main>
<script id="halo-data" type="application/json">{data}</script>
<script>{halo_js}</script>
<script>{report_js}</script>
</body>
</html>
"""


#: Nothing may be fetched: inline scripts and styles only.
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"


@cache
def asset(name: str) -> str:
    """A packaged asset's text (halo_mcp/web/assets/NAME)."""
    return (resources.files("halo_mcp.web") / "assets" / name).read_text(encoding="utf-8")


def embed_json(data: ReportData) -> str:
    """The report data as JSON safe inside a script element."""
    raw = orjson.dumps(data.model_dump(mode="json"))
    return raw.replace(b"<", b"\\u003c").decode()


def render_html(data: ReportData) -> str:
    """The page for `data`: self-contained (a CSP forbids any fetch)."""
    return _PAGE.format(
        csp=CSP,
        title=html.escape(f"HALO report {data.run.id}"),
        css=asset("halo.css"),
        data=embed_json(data),
        halo_js=asset("halo.js"),
        report_js=asset("report.js"),
    )


def run_report_html(
    run: RunRecord,
    *,
    check: CheckReport | None = None,
    cache_dir: str | Path | None = None,
) -> str:
    """The HTML report of `run`, opening its trace files for evidence and rates (when they
    can no longer be opened, the report says so and still shows the findings)."""
    try:
        store = open_store(run.trace_paths, cache_dir=cache_dir)
    except StoreError as exc:
        log.warning("report of %s without its traces: %s", run.id, exc)
        return render_html(build_report(run, None, check=check, store_error=str(exc)))
    with store:
        return render_html(build_report(run, store, check=check))
