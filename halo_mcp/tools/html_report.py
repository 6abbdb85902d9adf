"""The HTML report resource: `halo://runs/{run_id}/report.html`, one self-contained page.

The same page as `halo-mcp report RUN_ID --html` (see `halo_mcp.web.report`): findings
ranked, prevalence with intervals, first/last seen, daily rates, evidence waterfalls. A
client can save it and open it in a browser; nothing in it fetches from the network.
"""

from __future__ import annotations

from pathlib import Path

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from halo_mcp.tools.runs import load_record
from halo_mcp.tools.state import caller_owner, for_resource, server_state


def register(server: MCPServer) -> None:
    @server.resource(
        "halo://runs/{run_id}/report.html",
        name="run-report-html",
        title="Analysis report (HTML)",
        description="A run's report as one self-contained HTML page: ranked findings, "
        "prevalence with 95% intervals, daily rates, evidence traces as span waterfalls.",
        mime_type="text/html",
    )
    async def run_report_html_resource(run_id: str, ctx: Context) -> str:
        # The report builder is imported on first use: the server's start-up does not need it.
        from halo_mcp.web.report import render_html
        from halo_mcp.web.report_data import build_report

        state = server_state(ctx)
        record = await for_resource(load_record(state, run_id, caller_owner(ctx)))
        paths = [Path(p) for p in record.trace_paths]
        try:  # through the server's open stores: a second read of the report is quick
            return await state.stores.call(
                paths, lambda store: render_html(build_report(record, store))
            )
        except ToolError as exc:  # the traces are gone: the findings still deserve a page
            problem = str(exc)
            return await anyio.to_thread.run_sync(
                lambda: render_html(build_report(record, None, store_error=problem))
            )
