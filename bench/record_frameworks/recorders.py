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
    #: Whether the run's answer is found (on the root span, or on the last LLM call under
    #: a root that records no content), so runs ending without one count.
    answer_found: bool = True
    #: The step cap ends runs quietly (no error): they are runs without a final answer.
    silent_turn_limit: bool = False
    #: npm packages (read from vercel/node_modules) whose versions are recorded.
    node_packages: list[str] = field(default_factory=list)


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
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            # Logfire's own provider, exporting to the local receiver instead of Logfire.
            processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=ctx.endpoint))
            lf.configure(
                send_to_logfire=False,
                console=False,
                service_name=f"{ctx.name}-agent",
                additional_span_processors=[processor],
            )
            lf.instrument_pydantic_ai()
            ctx.on_finish.append(lf.force_flush)
            instrument: Any = True
        else:
            from pydantic_ai import InstrumentationSettings

            instrument = InstrumentationSettings(
                tracer_provider=ctx.tracer_provider, version=version, include_content=True
            )
        Agent.instrument_all(instrument)
        model = OpenAIChatModel(
            plan.MODEL, provider=OpenAIProvider(openai_client=_async_client(ctx))
        )
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


# -- a loop written on the openai client: OpenInference or OTel GenAI instrumentation -----


def record_openai_oi(ctx: Context) -> None:
    """The OpenInference openai instrumentor traces each call; the loop opens its own
    agent and tool spans with OpenInference attributes."""
    from openinference.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=ctx.tracer_provider)
    _openai_loop(ctx, genai=False)


def record_genai_openai_v2(ctx: Context) -> None:
    """The OTel contrib GenAI instrumentor (opentelemetry-instrumentation-openai-v2) traces
    each call (`chat <model>` spans, gen_ai.* attributes, messages as log events); the
    loop opens `invoke_agent` and `execute_tool` spans the way the GenAI semantic
    conventions name them (gen_ai.tool.call.arguments / result)."""
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=ctx.tracer_provider)
    _openai_loop(ctx, genai=True)


def _openai_loop(ctx: Context, genai: bool) -> None:
    from opentelemetry.trace import Status, StatusCode

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
    if genai:
        agent_attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "file_agent"}
        input_key, output_key = "gen_ai.input.messages", "gen_ai.output.messages"
        tool_attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "read_file"}
        args_key, result_key = "gen_ai.tool.call.arguments", "gen_ai.tool.call.result"
        agent_span, tool_span = "invoke_agent file_agent", "execute_tool read_file"
    else:
        agent_attrs = {"openinference.span.kind": "AGENT", "agent.name": "file_agent"}
        input_key, output_key = "input.value", "output.value"
        tool_attrs = {"openinference.span.kind": "TOOL", "tool.name": "read_file"}
        args_key, result_key = "input.value", "output.value"
        agent_span, tool_span = "file_agent", "read_file"

    class TooManyTurns(RuntimeError):
        pass

    def one(run: plan.PlannedRun) -> None:
        with tracer.start_as_current_span(agent_span) as root:
            root.set_attributes(agent_attrs)
            root.set_attribute(input_key, _messages_value(plan.PROMPT, "user", genai))
            messages: list[dict[str, Any]] = [{"role": "user", "content": plan.PROMPT}]
            for _ in range(plan.TURN_LIMIT):
                kwargs: dict[str, Any] = {"model": plan.MODEL, "messages": messages, "tools": tools}
                if run.streamed:
                    stream = client.chat.completions.create(stream=True, **kwargs)
                    message = _streamed_message(stream)
                else:
                    response = client.chat.completions.create(**kwargs)
                    message = response.choices[0].message.model_dump(exclude_none=True)
                messages.append(message)
                if not message.get("tool_calls"):
                    answer = message.get("content") or ""
                    root.set_attribute(output_key, _messages_value(answer, "assistant", genai))
                    return
                for call in message["tool_calls"]:
                    args = call["function"]["arguments"]
                    with tracer.start_as_current_span(tool_span) as span:
                        span.set_attributes(tool_attrs)
                        if genai:
                            span.set_attribute("gen_ai.tool.call.id", call["id"])
                        span.set_attribute(args_key, args)
                        try:
                            result = plan.read_file(**json.loads(args))
                        except FileNotFoundError as exc:
                            span.record_exception(exc)
                            span.set_status(
                                Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
                            )
                            if genai:
                                span.set_attribute("error.type", type(exc).__name__)
                            result = f"error: {exc}"
                        span.set_attribute(result_key, result)
                    messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
            raise TooManyTurns(f"Max turns ({plan.TURN_LIMIT}) exceeded")

    ctx.each(one)


def record_anthropic_oi(ctx: Context) -> None:
    """A tool loop on the real `anthropic` client (Messages API, served by the fake
    server), each call traced by OpenInference's anthropic instrumentor; the loop opens
    its own agent and tool spans with OpenInference attributes."""
    import anthropic
    from openinference.instrumentation.anthropic import AnthropicInstrumentor
    from opentelemetry.trace import Status, StatusCode

    AnthropicInstrumentor().instrument(tracer_provider=ctx.tracer_provider)
    tracer = ctx.tracer_provider.get_tracer("file-agent")
    client = anthropic.Anthropic(
        base_url=ctx.base_url.removesuffix("/v1"),
        api_key=FAKE_KEY,
        max_retries=0,
        timeout=plan.CLIENT_TIMEOUT,
    )
    tools = [
        {
            "name": "read_file",
            "description": plan.TOOL_DESCRIPTION,
            "input_schema": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        }
    ]

    class TooManyTurns(RuntimeError):
        pass

    def one(run: plan.PlannedRun) -> None:
        with tracer.start_as_current_span("file_agent") as root:
            root.set_attributes({"openinference.span.kind": "AGENT", "agent.name": "file_agent"})
            root.set_attribute("input.value", plan.PROMPT)
            messages: list[dict[str, Any]] = [{"role": "user", "content": plan.PROMPT}]
            for _ in range(plan.TURN_LIMIT):
                response = client.messages.create(
                    model=ANTHROPIC_MODEL, max_tokens=1024, messages=messages, tools=tools
                )
                blocks = [block.model_dump(exclude_none=True) for block in response.content]
                messages.append({"role": "assistant", "content": blocks})
                calls = [block for block in blocks if block["type"] == "tool_use"]
                if not calls:
                    answer = "".join(b.get("text", "") for b in blocks if b["type"] == "text")
                    root.set_attribute("output.value", answer)
                    return
                results = []
                for call in calls:
                    with tracer.start_as_current_span("read_file") as span:
                        span.set_attributes(
                            {"openinference.span.kind": "TOOL", "tool.name": "read_file"}
                        )
                        span.set_attribute("input.value", json.dumps(call["input"]))
                        try:
                            result = plan.read_file(**call["input"])
                        except FileNotFoundError as exc:
                            span.record_exception(exc)
                            span.set_status(
                                Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
                            )
                            result = f"error: {exc}"
                        span.set_attribute("output.value", result)
                    results.append(
                        {"type": "tool_result", "tool_use_id": call["id"], "content": result}
                    )
                messages.append({"role": "user", "content": results})
            raise TooManyTurns(f"Max turns ({plan.TURN_LIMIT}) exceeded")

    ctx.each(one, script=plan.anthropic_steps)


ANTHROPIC_MODEL = "claude-sonnet-4-5"


def _messages_value(text: str, role: str, genai: bool) -> str:
    """A message as the convention writes it: GenAI's JSON parts, or OpenInference text."""
    if not genai:
        return text
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def _streamed_message(stream: Any) -> dict[str, Any]:
    content, calls = "", {}
    for chunk in stream:
        for choice in chunk.choices:
            delta = choice.delta
            content += delta.content or ""
            for call in delta.tool_calls or []:
                slot = calls.setdefault(
                    call.index,
                    {"id": call.id, "type": "function", "function": {"name": "", "arguments": ""}},
                )
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


# -- LlamaIndex, smolagents (OpenInference) -------------------------------------------


def record_llama_index(ctx: Context) -> None:
    """A LlamaIndex FunctionAgent (agent workflow); past max_iterations the workflow
    raises. Needs openai<3 (llama-index-llms-openai): run from a separate environment."""
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai import OpenAI
    from openinference.instrumentation.llama_index import LlamaIndexInstrumentor

    LlamaIndexInstrumentor().instrument(tracer_provider=ctx.tracer_provider)

    def read_file(path: str) -> str:
        """Read a text file and return its contents."""
        return plan.read_file(path)

    llm = OpenAI(
        model=plan.MODEL,
        api_base=ctx.base_url,
        api_key=FAKE_KEY,
        max_retries=0,
        timeout=plan.CLIENT_TIMEOUT,
    )
    agent = FunctionAgent(
        name="file_agent",
        tools=[FunctionTool.from_defaults(read_file)],
        llm=llm,
        system_prompt="Answer with what the file says.",
        streaming=False,
    )

    async def one(run: plan.PlannedRun) -> None:
        handler = agent.run(user_msg=plan.PROMPT, max_iterations=plan.TURN_LIMIT)
        if run.streamed:
            async for _ in handler.stream_events():
                pass
        await handler

    loop = asyncio.new_event_loop()
    ctx.each(lambda run: loop.run_until_complete(one(run)))


def record_smolagents(ctx: Context) -> None:
    """A smolagents ToolCallingAgent with max_steps."""
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor
    from opentelemetry import context as otel_context
    from smolagents import OpenAIServerModel, ToolCallingAgent, tool

    SmolagentsInstrumentor().instrument(tracer_provider=ctx.tracer_provider)

    @tool
    def read_file(path: str) -> str:
        """Read a text file and return its contents.

        Args:
            path: The file to read.
        """
        return plan.read_file(path)

    model = OpenAIServerModel(
        model_id=plan.MODEL,
        api_base=ctx.base_url,
        api_key=FAKE_KEY,
        client_kwargs={"max_retries": 0, "timeout": plan.CLIENT_TIMEOUT},
        retry=False,
    )
    agent = ToolCallingAgent(
        tools=[read_file], model=model, max_steps=plan.TURN_LIMIT, verbosity_level=0
    )

    def one(run: plan.PlannedRun) -> None:
        # Each run from an empty OTel context, restored after. The instrumentor (0.1.43)
        # never ends its run span when a run raises: the span stays the current one, and
        # without this the next runs nest into its trace (25 runs gave 3 traces). It is
        # never exported either, so those runs' step spans are orphans, as users get them.
        token = otel_context.attach(otel_context.Context())
        try:
            agent.run(plan.PROMPT, stream=False)
        finally:
            otel_context.detach(token)

    ctx.each(one, final_tool="final_answer")


# -- CrewAI (OpenInference's crewai instrumentor, with its openai one for the LLM calls) ---


def record_crewai(ctx: Context) -> None:
    """A one-agent, one-task Crew with max_iter. The crewai instrumentor writes the crew,
    task and tool spans but no LLM span: users add the instrumentor of the client CrewAI
    calls (its native OpenAI provider: the openai instrumentor)."""
    import os

    os.environ["CREWAI_DISABLE_TELEMETRY"] = "true"  # CrewAI's own usage telemetry
    os.environ["CREWAI_TRACING_ENABLED"] = "false"
    from openinference.instrumentation.crewai import CrewAIInstrumentor
    from openinference.instrumentation.openai import OpenAIInstrumentor

    CrewAIInstrumentor().instrument(tracer_provider=ctx.tracer_provider)
    OpenAIInstrumentor().instrument(tracer_provider=ctx.tracer_provider)
    from crewai import LLM, Agent, Crew, Task
    from crewai.tools import tool

    @tool("read_file")
    def read_file(path: str) -> str:
        """Read a text file and return its contents."""
        return plan.read_file(path)

    def kickoff() -> Any:
        # A new crew per run, as per request in a service: CrewAI summarizes an overflowing
        # context with its async client under asyncio.run, and a client kept from a run
        # before is bound to a closed event loop ("Connection error").
        llm = LLM(
            model=f"openai/{plan.MODEL}",
            base_url=ctx.base_url,
            api_key=FAKE_KEY,
            timeout=plan.CLIENT_TIMEOUT,
            max_retries=0,
        )
        agent = Agent(
            role="File assistant",
            goal="Answer with what the file says.",
            backstory="You read files for the user.",
            tools=[read_file],
            llm=llm,
            max_iter=plan.TURN_LIMIT,
            max_retry_limit=0,
            verbose=False,
        )
        task = Task(description=plan.PROMPT, expected_output="What the file says.", agent=agent)
        return Crew(name="file_crew", agents=[agent], tasks=[task], verbose=False).kickoff()

    def script(run: plan.PlannedRun) -> list[Any]:
        # CrewAI calls again after a failed call (a context overflow: to summarize first):
        # the fault answers every call of the run.
        steps = plan.steps(run)
        return steps * 3 if run.mode in ("rate_limit", "context_overflow") else steps

    ctx.each(lambda run: kickoff(), script=script)


# -- Strands Agents (OTel GenAI semantic conventions, its own tracer) ---------------------


def _strands(latest: bool) -> Callable[[Context], None]:
    def record(ctx: Context) -> None:
        """Strands traces itself with the GenAI conventions, through the global provider;
        `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental` switches from the
        older attributes/events to the current `gen_ai.input.messages` and friends."""
        import os

        if latest:
            os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
        from opentelemetry import trace

        trace.set_tracer_provider(ctx.tracer_provider)
        from strands import Agent, tool
        from strands.models.openai import OpenAIModel

        @tool
        def read_file(path: str) -> str:
            """Read a text file and return its contents.

            Args:
                path: The file to read.
            """
            return plan.read_file(path)

        model = OpenAIModel(
            client_args={
                "base_url": ctx.base_url,
                "api_key": FAKE_KEY,
                "max_retries": 0,
                "timeout": plan.CLIENT_TIMEOUT,
            },
            model_id=plan.MODEL,
        )

        def one(run: plan.PlannedRun) -> None:
            agent = Agent(
                model=model,
                tools=[read_file],
                name="file_agent",
                system_prompt="Answer with what the file says.",
                callback_handler=None,
                retry_strategy=None,  # no retries: one 429 is one failure
            )
            agent(plan.PROMPT)

        ctx.each(one)

    return record


# -- Google ADK (its own OTel GenAI tracing; the model through LiteLLM) -----------------


def record_google_adk(ctx: Context) -> None:
    """A Google ADK LlmAgent whose model is LiteLLM's OpenAI-compatible client pointed at
    the fake server; ADK traces through the global OTel tracer provider. Past
    RunConfig.max_llm_calls ADK raises LlmCallsLimitExceededError. Content (tool
    arguments, messages) goes on the spans in the current GenAI convention, as opted in."""
    import os

    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
    os.environ["ADK_CAPTURE_MESSAGE_CONTENT_IN_SPANS"] = "true"
    from google.adk.agents import LlmAgent
    from google.adk.agents.run_config import RunConfig
    from google.adk.models.lite_llm import LiteLlm
    from google.adk.runners import InMemoryRunner
    from google.genai import types
    from opentelemetry import trace

    trace.set_tracer_provider(ctx.tracer_provider)

    def read_file(path: str) -> str:
        """Read a text file and return its contents.

        Args:
            path: The file to read.
        """
        return plan.read_file(path)

    model = LiteLlm(
        model=f"openai/{plan.MODEL}",
        api_base=ctx.base_url,
        api_key=FAKE_KEY,
        num_retries=0,
        max_retries=0,
        timeout=plan.CLIENT_TIMEOUT,
    )
    agent = LlmAgent(
        name="file_agent",
        model=model,
        instruction="Answer with what the file says.",
        tools=[read_file],
    )
    runner = InMemoryRunner(agent=agent, app_name="files")
    config = RunConfig(max_llm_calls=plan.TURN_LIMIT)

    async def one(run: plan.PlannedRun) -> None:
        session = await runner.session_service.create_session(app_name="files", user_id="u")
        message = types.Content(role="user", parts=[types.Part(text=plan.PROMPT)])
        async for _ in runner.run_async(
            user_id="u", session_id=session.id, new_message=message, run_config=config
        ):
            pass

    loop = asyncio.new_event_loop()
    ctx.each(lambda run: loop.run_until_complete(one(run)))


# -- Vercel AI SDK (Node; ai.* attributes) ------------------------------------------------


def record_vercel_ai(ctx: Context) -> None:
    """generateText / streamText with tools and stopWhen(stepCountIs), telemetry on; one
    Node process per run (vercel/record.mjs). Needs `npm install` in vercel/ first."""
    import os
    import subprocess
    from pathlib import Path

    folder = Path(__file__).parent / "vercel"
    env = {
        **os.environ,
        "FAKE_BASE_URL": ctx.base_url,
        "OTLP_ENDPOINT": ctx.endpoint,
        "TURN_LIMIT": str(plan.TURN_LIMIT),
        "CLIENT_TIMEOUT_MS": str(int(plan.CLIENT_TIMEOUT * 1000)),
        "MODEL": plan.MODEL,
        "PROMPT": plan.PROMPT,
    }

    def one(run: plan.PlannedRun) -> None:
        args = ["node", "record.mjs", run.mode, str(run.number), "1" if run.streamed else "0"]
        done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True)
        if done.returncode == 3:
            raise RuntimeError(done.stdout.strip())
        if done.returncode != 0:
            raise SystemExit(f"node failed: {done.stderr[-2000:]}")

    ctx.each(one)


_OTEL = ["opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http", "openai"]

RECORDERS: dict[str, Recorder] = {
    "openai_agents_oi": Recorder(
        record_agents_openinference,
        "OpenAI Agents SDK traced by OpenInference's openai-agents instrumentor",
        ["openai-agents", "openinference-instrumentation-openai-agents", *_OTEL],
    ),
    "openai_agents_native": Recorder(
        record_agents_native,
        "OpenAI Agents SDK, its own trace export (span.export() JSON, one a line)",
        ["openai-agents", "openai"],
        otel=False,
    ),
    "pydantic_ai_v1": Recorder(
        _pydantic_ai(1),
        "pydantic-ai with InstrumentationSettings(version=1) (messages as GenAI events); "
        "pydantic-ai 2.x offers versions 2-6 only, so this is pydantic-ai 1.x, the last "
        "releases offering it, in its own environment ('.[record-pydantic-ai-v1]')",
        ["pydantic-ai-slim", *_OTEL],
    ),
    **{
        f"pydantic_ai_v{v}": Recorder(
            _pydantic_ai(v),
            f"pydantic-ai with InstrumentationSettings(version={v})",
            ["pydantic-ai-slim", *_OTEL],
        )
        for v in (2, 3, 4, 5, 6)
    },
    "pydantic_ai_logfire": Recorder(
        _pydantic_ai(None, logfire=True),
        "pydantic-ai instrumented through Logfire (logfire.instrument_pydantic_ai), "
        "exported by Logfire's OTel provider to the local receiver",
        ["pydantic-ai-slim", "logfire", *_OTEL],
    ),
    "langgraph_oi": Recorder(
        record_langgraph,
        "LangGraph prebuilt ReAct agent traced by OpenInference's LangChain instrumentor",
        [
            "langgraph",
            "langchain-core",
            "langchain-openai",
            "openinference-instrumentation-langchain",
            *_OTEL,
        ],
    ),
    "openai_oi": Recorder(
        record_openai_oi,
        "A loop on the openai client traced by OpenInference's openai instrumentor",
        ["openinference-instrumentation-openai", *_OTEL],
    ),
    "llama_index_oi": Recorder(
        record_llama_index,
        "LlamaIndex FunctionAgent traced by OpenInference's llama-index instrumentor",
        [
            "llama-index-core",
            "llama-index-llms-openai",
            "openinference-instrumentation-llama-index",
            *_OTEL,
        ],
    ),
    **{
        name: Recorder(
            _strands(latest),
            f"Strands Agents, its own OTel GenAI tracing ({which} message attributes); "
            "Strands has no turn limit, so none is planted",
            ["strands-agents", *_OTEL],
            modes={m: n for m, n in plan.PLANTED.items() if m != "turn_limit"},
        )
        for name, latest, which in (
            ("strands_genai", False, "older"),
            ("strands_genai_latest", True, "current"),
        )
    },
    "anthropic_oi": Recorder(
        record_anthropic_oi,
        "A tool loop on the anthropic client (Messages API) traced by OpenInference's "
        "anthropic instrumentor",
        ["anthropic", "openinference-instrumentation-anthropic", "opentelemetry-sdk"],
    ),
    "google_adk": Recorder(
        record_google_adk,
        "Google ADK LlmAgent (model: LiteLLM's OpenAI-compatible client) with its own "
        "OTel GenAI tracing; needs its own environment ('.[record-adk]'). Its root span "
        "(invoke_workflow) records no content: the answer is the last LLM call's",
        ["google-adk", "litellm", "opentelemetry-sdk"],
    ),
    "smolagents_oi": Recorder(
        record_smolagents,
        "smolagents ToolCallingAgent (max_steps) traced by OpenInference's smolagents "
        "instrumentor; answers come through its final_answer tool. Past max_steps the run "
        "ends quietly (root span ok, output None; AgentMaxStepsError stays in the agent's "
        "memory), and the run span carries no answer, so neither is planted",
        ["smolagents", "openinference-instrumentation-smolagents", *_OTEL],
        answer_found=False,
        silent_turn_limit=True,
    ),
    "crewai_oi": Recorder(
        record_crewai,
        "CrewAI crew (one agent, max_iter) traced by OpenInference's crewai instrumentor "
        "with its openai instrumentor for the LLM calls; needs its own environment "
        "(bench/record_frameworks/requirements-crewai.txt)",
        [
            "crewai",
            "openinference-instrumentation-crewai",
            "openinference-instrumentation-openai",
            *_OTEL,
        ],
    ),
    "vercel_ai": Recorder(
        record_vercel_ai,
        "Vercel AI SDK generateText/streamText with experimental_telemetry (ai.* spans), "
        "OTel Node SDK and OTLP/HTTP exporter; stopWhen ends a run quietly, so runs cut by "
        "the step cap count as runs without a final answer",
        [],
        silent_turn_limit=True,
        node_packages=[
            "ai",
            "@ai-sdk/openai",
            "@opentelemetry/sdk-trace-node",
            "@opentelemetry/exporter-trace-otlp-http",
        ],
    ),
    "genai_openai_v2": Recorder(
        record_genai_openai_v2,
        "A loop on the openai client traced by the OTel GenAI openai-v2 instrumentor "
        "(older convention: messages in events), agent and tool spans in GenAI names",
        ["opentelemetry-instrumentation-openai-v2", *_OTEL],
    ),
}
