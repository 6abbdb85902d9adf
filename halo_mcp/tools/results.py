"""Tool results: structured content plus a compact JSON text copy and resource links.

Tools return `CallToolResult` built here instead of a bare model so that (a) the text copy is
compact JSON (the SDK's default is indented, nearly doubling the size a client counts) and
(b) results can link the large artifacts (report, findings) as resources.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from mcp_types import CallToolResult, ResourceLink, TextContent
from pydantic import BaseModel

#: Claude Code saves tool results over 50,000 characters to a file. Every tool here keeps its
#: structured JSON under this budget, so no tool needs `anthropic/maxResultSizeChars`.
RESULT_BUDGET_CHARS = 40_000


def dump(model: BaseModel) -> str:
    """The exact text a tool result carries for `model` (compact JSON, nulls included), so a
    budget measured with it bounds what is sent."""
    return orjson.dumps(model.model_dump(mode="json")).decode()


def tool_result(model: BaseModel, links: Sequence[ResourceLink] = ()) -> CallToolResult:
    """`model` as structured content and its `dump` text (one model_dump for both)."""
    data = model.model_dump(mode="json")
    text = orjson.dumps(data).decode()
    return CallToolResult(
        content=[TextContent(type="text", text=text), *links],
        structured_content=data,
    )


def link(uri: str, name: str, description: str, mime_type: str) -> ResourceLink:
    return ResourceLink(
        type="resource_link", uri=uri, name=name, description=description, mime_type=mime_type
    )


def report_uri(run_id: str) -> str:
    return f"halo://runs/{run_id}/report"


def report_html_uri(run_id: str) -> str:
    return f"halo://runs/{run_id}/report.html"


def finding_uri(finding_id: str) -> str:
    return f"halo://findings/{finding_id}"
