"""query_sql: read-only SQL over the trace views, for what span filters cannot answer.

The store runs it (store/sql.py: read-only index, authorizer, time limit, budgets); this
module turns its refusals into ToolErrors that show the schema, and keeps the result
under the tool budget.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import BaseModel, Field

from halo_mcp.store.sql import MAX_ROW_LIMIT, SQL_SCHEMA, SqlError
from halo_mcp.tools.models import READ_ONLY, TracePaths
from halo_mcp.tools.paths import resolve_paths
from halo_mcp.tools.results import RESULT_BUDGET_CHARS, tool_result
from halo_mcp.tools.state import server_state
from halo_mcp.tools.window import Since, Until, window_arg

SQL_TIME_LIMIT_S = 20.0


class SqlQueryResult(BaseModel):
    """Rows of one read-only SELECT, bounded."""

    columns: list[str]
    rows: list[list[Any]]
    returned: int
    truncated: bool = Field(description="More rows existed or the size budget cut them.")
    note: str | None = Field(None, description="What was cut and how to narrow the query.")
    elapsed_ms: float
    trace_paths: list[str]


DESCRIPTION = (
    "Read-only SQL over trace files (no LLM): one SQLite SELECT over the views `spans`, "
    "`traces` and `span_counts` (pre-counted groups), for what query_spans filters cannot "
    "answer: error rates per agent, model, tool or hour, joins between spans of a trace "
    "(a tool's errors against the next LLM call), when a failure first and last happened. "
    "Rows (`limit`), characters and time are bounded; no writes, ATTACH, PRAGMA or file "
    "functions. Span content (inputs, outputs, attributes) is not in the views: use "
    "query_spans/get_trace for it. since/until keep the traces that started in a time "
    "window (e.g. since '24h').\n" + SQL_SCHEMA
)


def register(server: MCPServer) -> None:
    @server.tool(title="SQL over traces", description=DESCRIPTION, annotations=READ_ONLY)
    async def query_sql(
        trace_paths: TracePaths,
        sql: Annotated[str, Field(min_length=1, max_length=20_000, description="One SELECT.")],
        ctx: Context,
        limit: Annotated[
            int, Field(ge=1, le=MAX_ROW_LIMIT, description="Maximum rows to return.")
        ] = 100,
        since: Since = None,
        until: Until = None,
    ) -> Annotated[CallToolResult, SqlQueryResult]:
        state = server_state(ctx)
        paths = await resolve_paths(trace_paths, state.roots)
        window = window_arg(since, until)

        def run(store: Any) -> Any:
            try:
                return store.query_sql(
                    sql,
                    limit=limit,
                    max_chars=RESULT_BUDGET_CHARS - 4000,
                    time_limit_s=SQL_TIME_LIMIT_S,
                )
            except SqlError as exc:
                raise ToolError(str(exc)) from None

        result = await state.stores.call(paths, run, window)
        return tool_result(
            SqlQueryResult(**result.model_dump(), trace_paths=[str(p) for p in paths])
        )
