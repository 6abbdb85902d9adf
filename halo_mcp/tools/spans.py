"""query_spans and get_trace: the store's deterministic queries, no LLM involved.

Results are kept under RESULT_BUDGET_CHARS: strings are clipped at `max_chars` by the store,
and a page that would still be too large is fetched again with fewer spans (the cursor then
continues exactly where that shorter page ends).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import orjson
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field, ValidationError

from halo_mcp.store import InvalidFilterError, Overview, SpanView, UnknownIdError
from halo_mcp.store.api import TraceReader
from halo_mcp.store.models import (
    DEFAULT_SPAN_FIELDS,
    SPAN_FIELDS,
    SPAN_SORTS,
    SpanFilter,
    SpanSort,
    filter_help,
)
from halo_mcp.text import clip
from halo_mcp.tools.models import (
    READ_ONLY,
    Cursor,
    FilterArg,
    Limit,
    MaxChars,
    OverviewResult,
    Sort,
    SpanFields,
    SpanQueryResult,
    TracePaths,
    TraceResult,
)
from halo_mcp.tools.paths import resolve_paths
from halo_mcp.tools.results import RESULT_BUDGET_CHARS, dump, tool_result
from halo_mcp.tools.state import server_state
from halo_mcp.tools.window import Since, Until, window_arg

_FILTER_FIELDS = ", ".join(SpanFilter.model_fields)


def parse_filter(raw: dict[str, Any] | None) -> SpanFilter | None:
    """A SpanFilter from the tool argument, or a ToolError naming the valid fields."""
    if raw is None:
        return None
    try:
        return SpanFilter.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'filter'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise ToolError(f"Invalid filter ({problems}). {filter_help()}") from None


def scans_content(span_filter: SpanFilter | None) -> bool:
    """Whether answering needs the span content read from the files (a text or attribute
    filter): such calls run in the store cache's heavy pool."""
    if span_filter is None:
        return False
    return span_filter.text is not None or bool(span_filter.attributes)


def _invalid_query(exc: Exception) -> ToolError:
    return ToolError(
        f"{exc} Valid filter fields: {_FILTER_FIELDS}. Valid span fields: "
        f"{', '.join(SPAN_FIELDS)}. Sorts: {', '.join(SPAN_SORTS)}."
    )


def _fit(sizes: Sequence[int], budget: int) -> int:
    """How many leading items fit in `budget` characters (at least one)."""
    total, count = 0, 0
    for size in sizes:
        total += size
        if total > budget:
            break
        count += 1
    return max(1, count)


def _span_size(span: SpanView) -> int:
    """Characters one span adds to a result (only its chosen fields are sent)."""
    return len(orjson.dumps(span.model_dump(mode="json", exclude_none=True))) + 1


def query_page(
    store: TraceReader,
    span_filter: SpanFilter | None,
    *,
    fields: Sequence[str],
    sort: SpanSort,
    limit: int,
    cursor: str | None,
    max_chars: int,
    trace_paths: list[str],
    budget: int = RESULT_BUDGET_CHARS,
) -> SpanQueryResult:
    """One page as the tool result, measured as sent, within the budget."""
    reduced: int | None = None
    for _ in range(4):
        try:
            page = store.query_spans(
                span_filter,
                sort=sort,
                limit=limit,
                cursor=cursor,
                fields=fields,
                max_chars=max_chars,
            )
        except InvalidFilterError as exc:
            raise _invalid_query(exc) from None
        result = SpanQueryResult(
            **page.model_dump(), trace_paths=trace_paths, limit_reduced_to=reduced
        )
        size = len(dump(result))
        if size <= budget:
            return result
        if len(page.spans) > 1:
            sizes = [_span_size(span) for span in page.spans]
            limit = min(len(page.spans) - 1, _fit(sizes, budget - (size - sum(sizes)) - 500))
            reduced = limit
        else:  # one span too large: cut its strings harder
            max_chars = max(50, max_chars // 4)
    return result


_OVERVIEW_LISTS = ("files", "services", "agents", "models", "tools", "span_kinds")


def bounded_overview(overview: Overview, trace_paths: list[str]) -> OverviewResult:
    """The overview with long lists cut (most frequent first, as the store orders them)."""
    data = overview.model_dump()
    for cap in (50, 20, 5):
        cut = any(len(data[name]) > cap for name in (*_OVERVIEW_LISTS, "error_signatures"))
        result = OverviewResult(
            **{
                **data,
                **{name: data[name][:cap] for name in _OVERVIEW_LISTS},
                "error_signatures": [
                    {**sig, "message": clip(sig["message"], 300)[0]}
                    for sig in data["error_signatures"][:cap]
                ],
            },
            trace_paths=trace_paths,
            lists_cut_at=cap if cut else None,
        )
        if len(dump(result)) <= RESULT_BUDGET_CHARS:
            break
    return result


def register(server: MCPServer) -> None:
    @server.tool(title="Query spans", annotations=READ_ONLY)
    async def query_spans(
        trace_paths: TracePaths,
        ctx: Context,
        filter: FilterArg = None,
        fields: SpanFields = None,
        sort: Sort = "start_time",
        limit: Limit = 20,
        cursor: Cursor = None,
        max_chars: MaxChars = 1000,
        since: Since = None,
        until: Until = None,
    ) -> Annotated[CallToolResult, SpanQueryResult]:
        """Find spans in trace files with a deterministic filter (no LLM, milliseconds once
        indexed; the first call on new files builds an index). Use it to see concrete cases of
        a finding: pass the finding's `matcher` as `filter`. Filter fields combine with AND:
        trace_ids, span_ids, name (glob), kind (agent/llm/tool/chain/guardrail/other),
        errors_only, service, agent, model, tool_name, min/max_duration_ms,
        start_after/start_before, attributes (exact values), text (regex over content).
        Returns one page; pass `next_cursor` back as `cursor` for the next. Add 'input',
        'output', 'attributes' or 'events' to `fields` for content (clipped at max_chars).
        since/until keep the traces that started in a time window (e.g. since "24h").
        For one trace's full tree use get_trace."""
        state = server_state(ctx)
        paths = await resolve_paths(trace_paths, state.roots)
        span_filter = parse_filter(filter)
        window = window_arg(since, until)
        chosen = list(dict.fromkeys(fields)) if fields else list(DEFAULT_SPAN_FIELDS)
        # The result is built in the store's thread too: the event loop serves every client.
        return await state.stores.call(
            paths,
            lambda store: tool_result(
                query_page(
                    store,
                    span_filter,
                    fields=chosen,
                    sort=sort,
                    limit=limit,
                    cursor=cursor,
                    max_chars=max_chars,
                    trace_paths=[str(p) for p in paths],
                )
            ),
            window,
            heavy=scans_content(span_filter),
        )

    @server.tool(title="Overview of trace files", annotations=READ_ONLY)
    async def trace_overview(
        trace_paths: TracePaths, ctx: Context, since: Since = None, until: Until = None
    ) -> Annotated[CallToolResult, OverviewResult]:
        """What the trace files hold, without an LLM: trace, span and error counts, time range,
        services, agents, models, tools (calls and errors), span kinds, tokens, and the top
        error signatures (grouped messages with example trace and span ids). Use it to pick
        names and ids for query_spans filters. since/until: only traces that started in that
        window (e.g. since "24h")."""
        state = server_state(ctx)
        paths = await resolve_paths(trace_paths, state.roots)
        window = window_arg(since, until)
        return await state.stores.call(
            paths,
            lambda store: tool_result(bounded_overview(store.overview(), [str(p) for p in paths])),
            window,
        )

    @server.tool(title="Get one trace as a span tree", annotations=READ_ONLY)
    async def get_trace(
        trace_paths: TracePaths,
        trace_id: Annotated[str, Field(min_length=1, max_length=200, description="The trace id.")],
        ctx: Context,
        fields: SpanFields = None,
        max_chars: MaxChars = 500,
        limit: Annotated[
            int, Field(ge=1, le=1000, description="Maximum number of spans in the tree.")
        ] = 300,
    ) -> Annotated[CallToolResult, TraceResult]:
        """One trace as a depth-first span tree (each span with its depth), plus the trace's
        summary (root, agents, models, errors, tokens, duration). Use it to follow what the
        agent did around a failing span found with query_spans or cited by a finding."""
        state = server_state(ctx)
        paths = await resolve_paths(trace_paths, state.roots)
        chosen = list(dict.fromkeys(fields)) if fields else list(DEFAULT_SPAN_FIELDS)

        def tree(store: TraceReader) -> CallToolResult:
            nonlocal limit, max_chars
            for _ in range(4):
                try:
                    found = store.trace_tree(
                        trace_id, fields=chosen, max_chars=max_chars, limit=limit
                    )
                except InvalidFilterError as exc:
                    raise _invalid_query(exc) from None
                except UnknownIdError:
                    raise ToolError(
                        f"Trace id {trace_id!r} is not in {', '.join(str(p) for p in paths)}. "
                        "Find trace ids with query_spans (every span has trace_id), e.g. "
                        'filter {"errors_only": true}, or take them from a finding\'s evidence.'
                    ) from None
                result = TraceResult(**found.model_dump(), trace_paths=[str(p) for p in paths])
                size = len(dump(result))
                if size <= RESULT_BUDGET_CHARS:
                    break
                sizes = [
                    len(dump(node)) - len(dump(node.span)) + _span_size(node.span)
                    for node in found.nodes
                ]
                if len(found.nodes) > 1:
                    room = RESULT_BUDGET_CHARS - (size - sum(sizes)) - 500
                    limit = min(len(found.nodes) - 1, _fit(sizes, room))
                else:
                    max_chars = max(50, max_chars // 4)
            return tool_result(result)

        return await state.stores.call(paths, tree)
