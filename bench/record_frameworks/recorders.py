"""One recorder per framework: the same small file-reading agent, written the way that
framework's users write it, traced the way its users trace it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import plan

if TYPE_CHECKING:
    from record import Context

FAKE_KEY = "sk-fake-recording-0000"


@dataclass
class Recorder:
    record: Callable[[Context], None]
    description: str
    packages: list[str]
    otel: bool = True  # False: the framework writes its own file (Agents SDK native)
    modes: dict[str, int] | None = None  # None: every mode of plan.PLANTED
    #: Whether the root span carries the run's answer (so runs ending without one count).
    answers_on_root: bool = True


def _async_client(ctx: Context) -> Any:
    from openai import AsyncOpenAI

    return AsyncOpenAI(
        base_url=ctx.base_url, api_key=FAKE_KEY, max_retries=0, timeout=plan.CLIENT_TIMEOUT
    )


def _sync_client(ctx: Context) -> Any:
    from openai import OpenAI

    return OpenAI(
        base_url=ctx.base_url, api_key=FAKE_KEY, max_retries=0, timeout=plan.CLIENT_TIMEOUT
    )


# -- OpenAI Agents SDK --------------------------------------------------------------------


def _agents_run(ctx: Context) -> None:
    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool

    def tell_model(_ctx: Any, error: Exception) -> str:
        # A custom failure function: with the SDK's default one, traces say only "Tool
        # execution failed. Error details are redacted."
        return f"{type(error).__name__}: {error}"

    @function_tool(failure_error_function=tell_model)
    def read_file(path: str) -> str:
        """Read a text file and return its contents."""
        return plan.read_file(path)

    model = OpenAIChatCompletionsModel(model=plan.MODEL, openai_client=_async_client(ctx))
    agent = Agent(
        name="File assistant",
        instructions="Answer with what the file says.",
        model=model,
        tools=[read_file],
    )

    async def one(run: plan.PlannedRun) -> None:
        if run.streamed:
            result = Runner.run_streamed(agent, plan.PROMPT, max_turns=plan.TURN_LIMIT)
            async for _ in result.stream_events():
                pass
        else:
            await Runner.run(agent, plan.PROMPT, max_turns=plan.TURN_LIMIT)

    loop = asyncio.new_event_loop()
    ctx.each(lambda run: loop.run_until_complete(one(run)))


def record_agents_openinference(ctx: Context) -> None:
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    OpenAIAgentsInstrumentor().instrument(tracer_provider=ctx.tracer_provider)
    _agents_run(ctx)


def record_agents_native(ctx: Context) -> None:
    """The SDK's own trace export (what its default processor uploads), one JSON a line."""
    from agents import set_trace_processors
    from agents.tracing.processor_interface import TracingProcessor

    handle = open(ctx.out_dir / "traces.jsonl", "w", encoding="utf-8")  # noqa: SIM115

    class JsonLines(TracingProcessor):
        def _write(self, item: Any) -> None:
            exported = item.export()
            if exported:
                handle.write(json.dumps(exported, separators=(",", ":"), default=str) + "\n")

        def on_trace_start(self, trace: Any) -> None:
            pass

        def on_trace_end(self, trace: Any) -> None:
            self._write(trace)

        def on_span_start(self, span: Any) -> None:
            pass

        def on_span_end(self, span: Any) -> None:
            self._write(span)

        def shutdown(self) -> None:
            if not handle.closed:
                handle.flush()

        def force_flush(self) -> None:
            if not handle.closed:
                handle.flush()

    set_trace_processors([JsonLines()])
    try:
        _agents_run(ctx)
    finally:
        handle.close()


# -- pydantic-ai ----------------------------------------------------------------------


def _pydantic_ai(version: int | None, logfire: bool = False) -> Callable[[Context], None]:
    def record(ctx: Context) -> None:
        from pydantic_ai import Agent
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider
        from pydantic_ai.usage import UsageLimits

        if logfire:
            import logfire as lf
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            exporter = ctx.tracer_provider._active_span_processor._span_processors[0]
            assert isinstance(exporter, BatchSpanProcessor)
            lf.configure(
                send_to_logfire=False,
                console=False,
                service_name=f"{ctx.name}-agent",
                additional_span_processors=[exporter],
            )
            lf.instrument_pydantic_ai()
            instrument: Any = True
        else:
            from pydantic_ai import InstrumentationSettings

            instrument = InstrumentationSettings(
                tracer_provider=ctx.tracer_provider, version=version, include_content=True
            )
        Agent.instrument_all(instrument)
        model = OpenAIChatModel(plan.MODEL, provider=OpenAIProvider(openai_client=_async_client(ctx)))
        agent = Agent(
            model,
            name="file_agent",
            instructions="Answer with what the file says.",
        )

        @agent.tool_plain
        def read_file(path: str) -> str:
            """Read a text file and return its contents."""
            return plan.read_file(path)

        limits = UsageLimits(request_limit=plan.TURN_LIMIT)

        async def one(run: plan.PlannedRun) -> None:
            if run.streamed:
                async with agent.run_stream(plan.PROMPT, usage_limits=limits) as result:
                    async for _ in result.stream_text():
                        pass
            else:
                await agent.run(plan.PROMPT, usage_limits=limits)

        loop = asyncio.new_event_loop()
        ctx.each(lambda run: loop.run_until_complete(one(run)))

    return record


# -- LangGraph (OpenInference LangChain instrumentor) --------------------------------------


def record_langgraph(ctx: Context) -> None:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition
    from openinference.instrumentation.langchain import LangChainInstrumentor

    LangChainInstrumentor().instrument(tracer_provider=ctx.tracer_provider)

    @tool
    def read_file(path: str) -> str:
        """Read a text file and return its contents."""
        return plan.read_file(path)

    llm = ChatOpenAI(
        model=plan.MODEL,
        base_url=ctx.base_url,
        api_key=FAKE_KEY,
        max_retries=0,
        timeout=plan.CLIENT_TIMEOUT,
    )
    # A hand-built graph (model node <-> tool node), as the LangGraph tutorials build it:
    # past recursion_limit steps it raises GraphRecursionError. (The prebuilt
    # create_react_agent stops quietly with "Sorry, need more steps" instead.)
    model = llm.bind_tools([read_file])

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", call_model)
    graph.add_node("tools", ToolNode([read_file]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    agent = graph.compile(name="file_agent")
    # Each step is one node (model or tools): TURN_LIMIT model calls ~ 2 * TURN_LIMIT steps.
    config = {"recursion_limit": 2 * plan.TURN_LIMIT}

    def one(run: plan.PlannedRun) -> None:
        messages = {"messages": [("user", plan.PROMPT)]}
        if run.streamed:
            for _ in agent.stream(messages, config=config, stream_mode="values"):
                pass
        else:
            agent.invoke(messages, config=config)

    ctx.each(one)


# -- OpenInference openai instrumentor, hand-written loop -------------------------------


def record_openai_oi(ctx: Context) -> None:
    """An agent written directly on the openai client: the instrumentor traces each call;
    the loop opens its own agent and tool spans with OpenInference attributes."""
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.trace import Status, StatusCode

    OpenAIInstrumentor().instrument(tracer_provider=ctx.tracer_provider)
    tracer = ctx.tracer_provider.get_tracer("file-agent")
    client = _sync_client(ctx)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "description": plan.TOOL_DESCRIPTION,
                "parameters": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}},
                    "required": ["path"],
                },
            },
        }
    ]

    class TooManyTurns(RuntimeError):
        pass

    def one(run: plan.PlannedRun) -> None:
        with tracer.start_as_current_span("file_agent") as root:
            root.set_attribute("openinference.span.kind", "AGENT")
            root.set_attribute("agent.name", "file_agent")
            root.set_attribute("input.value", plan.PROMPT)
            messages: list[dict[str, Any]] = [{"role": "user", "content": plan.PROMPT}]
            for _ in range(plan.TURN_LIMIT):
                kwargs: dict[str, Any] = {"model": plan.MODEL, "messages": messages, "tools": tools}
                if run.streamed:
                    message = _streamed_message(client.chat.completions.create(stream=True, **kwargs))
                else:
                    message = client.chat.completions.create(**kwargs).choices[0].message.model_dump()
                messages.append(message)
                if not message.get("tool_calls"):
                    root.set_attribute("output.value", message.get("content") or "")
                    return
                for call in message["tool_calls"]:
                    args = call["function"]["arguments"]
                    with tracer.start_as_current_span("read_file") as span:
                        span.set_attribute("openinference.span.kind", "TOOL")
                        span.set_attribute("tool.name", "read_file")
                        span.set_attribute("input.value", args)
                        try:
                            result = plan.read_file(**json.loads(args))
                        except FileNotFoundError as exc:
                            span.record_exception(exc)
                            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                            result = f"error: {exc}"
                        span.set_attribute("output.value", result)
                    messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
            raise TooManyTurns(f"Max turns ({plan.TURN_LIMIT}) exceeded")

    ctx.each(one)


def _streamed_message(stream: Any) -> dict[str, Any]:
    content, calls = "", {}
    for chunk in stream:
        for choice in chunk.choices:
            delta = choice.delta
            content += delta.content or ""
            for call in delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": call.id, "type": "function",
                                                     "function": {"name": "", "arguments": ""}})
                if call.id:
                    slot["id"] = call.id
                if call.function and call.function.name:
                    slot["function"]["name"] = call.function.name
                if call.function and call.function.arguments:
                    slot["function"]["arguments"] += call.function.arguments
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message


_OTEL = ["opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http", "openai"]

RECORDERS: dict[str, Recorder] = {
    "openai_agents_oi": Recorder(
        record_agents_openinference,
        "OpenAI Agents SDK traced by OpenInference's openai-agents instrumentor",
        ["openai-agents", "openinference-instrumentation-openai-agents", *_OTEL],
        answers_on_root=False,  # the root "Agent workflow" span has no output
    ),
    "openai_agents_native": Recorder(
        record_agents_native,
        "OpenAI Agents SDK, its own trace export (span.export() JSON, one a line)",
        ["openai-agents", "openai"],
        otel=False,
        answers_on_root=False,  # no span carries the final output
    ),
    **{
        f"pydantic_ai_v{v}": Recorder(
            _pydantic_ai(v),
            f"pydantic-ai with InstrumentationSettings(version={v})",
            ["pydantic-ai-slim", *_OTEL],
        )
        for v in (2, 3, 4, 5, 6)
    },
    "langgraph_oi": Recorder(
        record_langgraph,
        "LangGraph prebuilt ReAct agent traced by OpenInference's LangChain instrumentor",
        ["langgraph", "langchain-core", "langchain-openai",
         "openinference-instrumentation-langchain", *_OTEL],
    ),
    "openai_oi": Recorder(
        record_openai_oi,
        "A loop on the openai client traced by OpenInference's openai instrumentor",
        ["openinference-instrumentation-openai", *_OTEL],
    ),
}
