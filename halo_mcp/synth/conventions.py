"""Span names and attributes under OpenInference and OpenTelemetry GenAI conventions.

Both HALO JSONL and OTLP writers use these; they differ only in how they wrap them.
`genai-legacy` is GenAI with the older names (`gen_ai.system`,
`gen_ai.usage.prompt_tokens|completion_tokens`) that many instrumentations still emit.
HALO's own `inference.*` keys (agent name, model, tokens) ride along on OpenInference
spans, as the HALO tracing exporter writes them.
"""

from __future__ import annotations

from typing import Any

import orjson

from halo_mcp.synth.scenario import SimSpan, SimTrace

_OI_KIND = {"agent": "AGENT", "llm": "LLM", "tool": "TOOL", "guardrail": "GUARDRAIL"}
_IN_KEYS = [
    (f"llm.input_messages.{i}.message.role", f"llm.input_messages.{i}.message.content")
    for i in range(64)
]
_TOOL_CALL_KEYS = [
    (
        f"llm.output_messages.0.message.tool_calls.{i}.tool_call.function.name",
        f"llm.output_messages.0.message.tool_calls.{i}.tool_call.function.arguments",
    )
    for i in range(16)
]


#: The GenAI span name's operation, by span kind (a guardrail span otherwise).
_GENAI_OPERATION = {
    "agent": "invoke_agent",
    "llm": "chat",
    "tool": "execute_tool",
    "handoff": "handoff",
}


def span_name(span: SimSpan, convention: str) -> str:
    if convention == "openinference":
        if span.kind == "agent":
            return "agent run"
        if span.kind == "llm":
            return "ChatCompletion"
        if span.kind == "handoff":
            return f"handoff to {span.name}"
        return span.name
    return f"{_GENAI_OPERATION.get(span.kind, 'guardrail')} {span.name}"


def attributes(span: SimSpan, trace: SimTrace, convention: str, tiny: bool) -> dict[str, Any]:
    if convention == "openinference":
        return _openinference(span, trace, tiny)
    return _genai(span, trace, tiny, legacy=convention == "genai-legacy")


def _openinference(span: SimSpan, trace: SimTrace, tiny: bool) -> dict[str, Any]:
    kind = span.kind
    attrs: dict[str, Any] = {
        "openinference.span.kind": _OI_KIND.get(kind, "CHAIN"),
        "session.id": trace.session_id,
        "inference.agent_name": span.agent,
    }
    if kind == "agent":
        attrs["agent.name"] = span.name
        attrs["user.id"] = trace.user_id
        attrs["input.value"] = span.input_text or ""
        if span.output_text is not None:
            attrs["output.value"] = span.output_text
    elif kind == "llm":
        attrs["llm.model_name"] = span.model
        if span.error is None:
            attrs["llm.token_count.prompt"] = span.input_tokens
            attrs["llm.token_count.completion"] = span.output_tokens
        if not tiny:
            attrs["llm.provider"] = span.provider
            attrs["inference.llm.model_name"] = span.model
            if span.error is None:
                attrs["llm.token_count.total"] = span.input_tokens + span.output_tokens
                attrs["inference.llm.input_tokens"] = span.input_tokens
                attrs["inference.llm.output_tokens"] = span.output_tokens
        messages = span.messages or []
        if tiny:
            attrs["input.value"] = messages[-1]["content"] if messages else ""
            if span.output_text:
                attrs["output.value"] = span.output_text
            elif span.tool_calls:
                attrs["output.value"] = span.tool_calls[0]["name"]
            return attrs
        attrs["llm.invocation_parameters"] = '{"temperature": 0.2, "max_tokens": 4096}'
        for (role_key, content_key), message in zip(_IN_KEYS, messages, strict=False):
            attrs[role_key] = message["role"]
            attrs[content_key] = message["content"]
        attrs["input.value"] = orjson.dumps({"model": span.model, "messages": messages}).decode()
        attrs["input.mime_type"] = "application/json"
        if span.error is None:
            attrs["llm.output_messages.0.message.role"] = "assistant"
            attrs["llm.output_messages.0.message.content"] = span.output_text or ""
            for (name_key, args_key), call in zip(
                _TOOL_CALL_KEYS, span.tool_calls or (), strict=False
            ):
                attrs[name_key] = call["name"]
                attrs[args_key] = call["arguments"]
            output: dict[str, object] = {"role": "assistant", "content": span.output_text or ""}
            if span.tool_calls:
                output["tool_calls"] = span.tool_calls
            attrs["output.value"] = orjson.dumps(output).decode()
            attrs["output.mime_type"] = "application/json"
    elif kind == "tool":
        attrs["tool.name"] = span.name
        attrs["input.value"] = span.input_text or ""
        if not tiny:
            attrs["input.mime_type"] = "application/json"
            attrs["tool_call.id"] = span.call_id
        if span.output_text is not None:
            attrs["output.value"] = span.output_text
    elif kind == "guardrail":
        attrs["guardrail.name"] = span.name
        attrs["input.value"] = span.input_text or ""
        attrs["output.value"] = span.output_text or ""
    else:  # handoff
        attrs["input.value"] = orjson.dumps({"from": span.agent, "to": span.name}).decode()
    return attrs


def _genai(span: SimSpan, trace: SimTrace, tiny: bool, legacy: bool) -> dict[str, Any]:
    kind = span.kind
    attrs: dict[str, Any] = {
        "gen_ai.agent.name": span.agent,
        "gen_ai.conversation.id": trace.session_id,
    }
    if kind == "agent":
        attrs["gen_ai.operation.name"] = "invoke_agent"
        attrs["gen_ai.agent.id"] = f"agt_{span.name}"
        attrs["gen_ai.agent.name"] = span.name
        attrs["gen_ai.request.model"] = trace.agent.model
        attrs["user.id"] = trace.user_id
        if not tiny:
            attrs["gen_ai.input.messages"] = _genai_messages(
                [{"role": "user", "content": span.input_text or ""}]
            )
            if span.output_text is not None:
                attrs["gen_ai.output.messages"] = _genai_messages(
                    [{"role": "assistant", "content": span.output_text}]
                )
    elif kind == "llm":
        attrs["gen_ai.operation.name"] = "chat"
        attrs["gen_ai.system" if legacy else "gen_ai.provider.name"] = span.provider
        attrs["gen_ai.request.model"] = span.model
        if span.error is None:
            attrs["gen_ai.response.model"] = span.model
            if legacy:
                attrs["gen_ai.usage.prompt_tokens"] = span.input_tokens
                attrs["gen_ai.usage.completion_tokens"] = span.output_tokens
            else:
                attrs["gen_ai.usage.input_tokens"] = span.input_tokens
                attrs["gen_ai.usage.output_tokens"] = span.output_tokens
            attrs["gen_ai.response.finish_reasons"] = ["tool_calls" if span.tool_calls else "stop"]
        if not tiny:
            attrs["gen_ai.request.temperature"] = 0.2
            attrs["gen_ai.input.messages"] = _genai_messages(span.messages or [])
            if span.error is None:
                attrs["gen_ai.output.messages"] = _genai_output(span)
    elif kind == "tool":
        attrs["gen_ai.operation.name"] = "execute_tool"
        attrs["gen_ai.tool.name"] = span.name
        attrs["gen_ai.tool.type"] = "function"
        attrs["gen_ai.tool.call.arguments"] = span.input_text or ""
        if not tiny:
            attrs["gen_ai.tool.call.id"] = span.call_id
        if span.output_text is not None:
            attrs["gen_ai.tool.call.result"] = span.output_text
    elif kind == "guardrail":
        attrs["guardrail.name"] = span.name
        attrs["guardrail.triggered"] = False
    else:  # handoff
        attrs["handoff.from_agent"] = span.agent
        attrs["handoff.to_agent"] = span.name
    if span.error_type is not None:
        attrs["error.type"] = span.error_type
    return attrs


def _genai_messages(messages: list[dict[str, str]]) -> str:
    parts = [
        {"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]} for m in messages
    ]
    return orjson.dumps(parts).decode()


def _genai_output(span: SimSpan) -> str:
    parts: list[dict[str, Any]] = []
    if span.output_text:
        parts.append({"type": "text", "content": span.output_text})
    for call in span.tool_calls or ():
        parts.append(
            {
                "type": "tool_call",
                "id": call["id"],
                "name": call["name"],
                "arguments": call["arguments"],
            }
        )
    finish = "tool_call" if span.tool_calls else "stop"
    return orjson.dumps([{"role": "assistant", "parts": parts, "finish_reason": finish}]).decode()
