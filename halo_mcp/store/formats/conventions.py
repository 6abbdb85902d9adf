"""Attribute conventions -> the normalized fields: kind, agent, model, tool, tokens, session.

One function reads a span's flat attributes the way every convention writes them:
OpenInference (`openinference.span.kind`, `llm.*`, `tool.*`), OpenTelemetry GenAI
(`gen_ai.*`), HALO's own `inference.*`, the OpenAI Agents SDK's span types when they
travel as OTel attributes, pydantic-ai's agent run keys and the Vercel AI SDK (`ai.*`).
Plain dict lookups only: this runs for every span indexed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from halo_mcp.store.formats.values import to_int, to_str
from halo_mcp.text import json_object

# Unified kinds are SpanKind values: agent, llm, tool, chain, guardrail, other.
OPENINFERENCE_KINDS = {
    "LLM": "llm",
    "EMBEDDING": "llm",
    "TOOL": "tool",
    "RETRIEVER": "tool",
    "RERANKER": "tool",
    "AGENT": "agent",
    "CHAIN": "chain",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "other",
    "PROMPT": "chain",
}

GENAI_OPERATIONS = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "completion": "llm",
    "embeddings": "llm",
    "embedding": "llm",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "invoke_workflow": "chain",
}

#: OpenAI Agents SDK span_data.type -> kind.
AGENTS_SDK_TYPES = {
    "agent": "agent",
    "generation": "llm",
    "response": "llm",
    "function": "tool",
    "mcp_tools": "tool",
    "handoff": "chain",
    "guardrail": "guardrail",
    "custom": "other",
    "transcription": "llm",
    "speech": "llm",
    "speech_group": "other",
    "task": "chain",
    "turn": "chain",
}

#: Vercel AI SDK `ai.operationId` -> kind: the multi-step call (generateText with tools)
#: is the agent loop, its doGenerate/doStream steps the LLM calls.
VERCEL_AI_OPERATIONS = {
    "ai.generatetext": "agent",
    "ai.streamtext": "agent",
    "ai.generateobject": "agent",
    "ai.streamobject": "agent",
    "ai.generatetext.dogenerate": "llm",
    "ai.streamtext.dostream": "llm",
    "ai.generateobject.dogenerate": "llm",
    "ai.streamobject.dostream": "llm",
    "ai.toolcall": "tool",
    "ai.embed": "chain",
    "ai.embedmany": "chain",
    "ai.embed.doembed": "llm",
    "ai.embedmany.doembed": "llm",
}

# Any kind word a source might use (lowercased) -> kind; used for loose values.
_KIND_WORDS = {
    **{k.lower(): v for k, v in OPENINFERENCE_KINDS.items()},
    **GENAI_OPERATIONS,
    **AGENTS_SDK_TYPES,
    **VERCEL_AI_OPERATIONS,
    "tool_call": "tool",
    "model": "llm",
    "chat_model": "llm",
    "workflow": "chain",
}

_AGENTS_SDK_TYPE_KEYS = (
    "openai.agents.span_type",
    "openai.agents.span.type",
    "openai.agents.span_data.type",
    "openai_agents.span_type",
    "openai_agents.span_data.type",
    "agents.span.type",
    "span_data.type",
    "ai.operationId",  # Vercel AI SDK
)
_AGENT_KEYS = (
    "gen_ai.agent.name",
    "agent.name",
    "inference.agent_name",
    "inference.agent.name",
    "openai.agents.agent.name",
    "openai.agents.agent_name",
    "agent_name",  # pydantic-ai's agent run span
    "ai.telemetry.functionId",  # Vercel AI SDK: the name given to the call
)
_MODEL_KEYS = (
    "gen_ai.request.model",
    "gen_ai.response.model",
    "llm.model_name",
    "inference.llm.model_name",
    "inference.model_name",
    "inference.model",
    "embedding.model_name",
    "ai.model.id",  # Vercel AI SDK
    "model_name",  # pydantic-ai's agent run span
)
_TOOL_KEYS = (
    "gen_ai.tool.name",
    "tool.name",
    "inference.tool_name",
    "inference.tool.name",
    "ai.toolCall.name",  # Vercel AI SDK
)
_INPUT_TOKEN_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "inference.llm.input_tokens",
    "inference.input_tokens",
    "inference.usage.input_tokens",
    "inference.llm.token_count.prompt",
)
_OUTPUT_TOKEN_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "inference.llm.output_tokens",
    "inference.output_tokens",
    "inference.usage.output_tokens",
    "inference.llm.token_count.completion",
)
_SESSION_KEYS = (
    "session.id",
    "gen_ai.conversation.id",
    "conversation.id",
    "thread.id",
    "thread_id",
    "inference.session_id",
    "inference.session.id",
)

#: OpenInference's request parameters (JSON): the model of a call that failed before a
#: response named it (the openai instrumentor takes llm.model_name from the response).
_INVOCATION_KEY = "llm.invocation_parameters"

# Slots of the normalized fields. Kind has three slots, one per convention, tried in order.
(
    AGENT,
    MODEL,
    TOOL,
    TOKENS_IN,
    TOKENS_OUT,
    SESSION,
    KIND_OI,
    KIND_GENAI,
    KIND_SDK,
    KIND_HALO,
    INVOCATION,
) = range(11)
_NO_SLOT = (-1, 0)


def _slot_table() -> dict[str, tuple[int, int]]:
    """Every known attribute key -> (slot, priority); lower priority wins."""
    table: dict[str, tuple[int, int]] = {}
    for slot, keys in (
        (AGENT, _AGENT_KEYS),
        (MODEL, _MODEL_KEYS),
        (TOOL, _TOOL_KEYS),
        (TOKENS_IN, _INPUT_TOKEN_KEYS),
        (TOKENS_OUT, _OUTPUT_TOKEN_KEYS),
        (SESSION, _SESSION_KEYS),
        (KIND_OI, ("openinference.span.kind",)),
        (KIND_GENAI, ("gen_ai.operation.name",)),
        (KIND_SDK, _AGENTS_SDK_TYPE_KEYS),
        (INVOCATION, (_INVOCATION_KEY,)),
    ):
        for priority, key in enumerate(keys):
            table[key] = (slot, priority)
    return table


_SLOTS = _slot_table()


def _dotted_prefixes(keys: Iterable[str]) -> frozenset[str]:
    """Each key and every dotted prefix of it ("gen_ai.usage.input_tokens" -> "gen_ai",
    "gen_ai.usage", "gen_ai.usage.input_tokens")."""
    parts = (key.split(".") for key in keys)
    return frozenset(".".join(words[:end]) for words in parts for end in range(1, len(words) + 1))


# Keys under which a nested dict would flatten into (or replace) a key that semantics or
# the row reads: the known keys, error.type, graph.node.id and their dotted prefixes.
# (Not llm.invocation_parameters: only its JSON string form is read, never a dict.)
_READ_PREFIXES = _dotted_prefixes(
    [*(k for k in _SLOTS if k != _INVOCATION_KEY), "error.type", "graph.node.id"]
)


def nested_dict_matters(key: str) -> bool:
    """Whether a dict value under `key` can change a span's normalized fields.

    `flatten` turns {"llm": {"model_name": "m"}} into "llm.model_name": a dict under a
    known key, a prefix of one, any `inference.*` key (classified by suffix) or "" (its
    keys flatten bare) can; a dict under any other key only adds keys nothing reads."""
    return key in _READ_PREFIXES or key == "" or key.startswith("inference.")


_LATE = 100  # priority of inference.* keys classified by suffix: after every known key
_PLAN_CACHE_LIMIT = 4_096
Plan = tuple[tuple[int, tuple[str, ...]], ...]
# Spans from one instrumentation carry the same attribute keys, so what each key means
# is worked out once per distinct key tuple: (slot, candidate keys by priority) pairs.
_plans: dict[tuple[str, ...], Plan] = {}


def _classify_inference_key(key: str) -> tuple[int, int]:
    """HALO `inference.*` keys not listed above, classified by their suffix."""
    rest = key[10:].lower()
    if "token" in rest:
        if "input" in rest or "prompt" in rest:
            return TOKENS_IN, _LATE
        if "output" in rest or "completion" in rest:
            return TOKENS_OUT, _LATE
        return _NO_SLOT
    if rest.endswith(("agent_name", "agent.name")) or rest == "agent":
        return AGENT, _LATE
    if rest.endswith(("model_name", "model")) and "embedding" not in rest:
        return MODEL, _LATE
    if rest.endswith(("tool_name", "tool.name")):
        return TOOL, _LATE
    if rest.endswith(("session_id", "session.id", "conversation_id", "thread_id")):
        return SESSION, _LATE
    if rest.endswith(("span_kind", "span.kind", "observation_kind", "kind")):
        return KIND_HALO, _LATE
    return _NO_SLOT


def kind_word(value: Any) -> str | None:
    """A convention's kind word ('LLM', 'execute_tool', 'function'...) -> kind, or None."""
    if type(value) is not str:
        return None
    return _KIND_WORDS.get(value.lower())


def kind_from_name(name: str) -> str:
    """Last resort: guess the kind from the span name."""
    low = name.lower()
    if "guardrail" in low:
        return "guardrail"
    if "handoff" in low:
        return "chain"
    if "agent" in low:
        return "chain" if "workflow" in low else "agent"
    if "tool" in low or "function" in low:
        return "tool"
    if (
        "llm" in low
        or "chat" in low
        or "completion" in low
        or "generation" in low
        or "generate" in low
        or low.startswith(("openai.", "anthropic.", "response"))
    ):
        return "llm"
    if "chain" in low or "workflow" in low or "pipeline" in low:
        return "chain"
    return "other"


def kind_from_facts(
    tool: str | None, model: str | None, tokens_in: int | None, tokens_out: int | None, name: str
) -> str:
    """The kind of a span no attribute classifies: a tool call, an LLM call, else the
    kind its name suggests."""
    if tool is not None:
        return "tool"
    if model is not None and (tokens_in is not None or tokens_out is not None):
        return "llm"
    return kind_from_name(name)


def _plan(keys: tuple[str, ...]) -> Plan:
    by_slot: dict[int, list[tuple[int, str]]] = {}
    for key in keys:
        hit = _SLOTS.get(key)
        if hit is None and type(key) is str and key.startswith("inference."):
            hit = _classify_inference_key(key)
        if hit is not None and hit[0] >= 0:
            by_slot.setdefault(hit[0], []).append((hit[1], key))
    return tuple(
        (slot, tuple(key for _, key in sorted(candidates)))
        for slot, candidates in sorted(by_slot.items())
    )


#: What a span's attributes say: (kind, agent, model, tool_name, input_tokens,
#: output_tokens, session_id).
Facts = tuple[str, str | None, str | None, str | None, int | None, int | None, str | None]


def semantics(attrs: dict[str, Any], name: str) -> Facts:
    """The span's Facts, read from its flat attributes by every convention."""
    keys = tuple(attrs)
    plan = _plans.get(keys)
    if plan is None:
        plan = _plan(keys)
        if len(_plans) >= _PLAN_CACHE_LIMIT:
            _plans.clear()
        _plans[keys] = plan
    values: list[Any] = [None] * 11
    for slot, candidates in plan:
        for key in candidates:
            value = attrs[key]
            if value is not None:
                values[slot] = value
                break

    # to_str and to_int map None (a slot no key filled) to None.
    agent, model, tool = to_str(values[0]), to_str(values[1]), to_str(values[2])
    tokens_in, tokens_out, session = to_int(values[3]), to_int(values[4]), to_str(values[5])
    if model is None and values[INVOCATION] is not None:
        model = _requested_model(values[INVOCATION])

    kind = None
    oi_kind = values[KIND_OI]
    if oi_kind is not None:
        kind = OPENINFERENCE_KINDS.get(oi_kind) if type(oi_kind) is str else None
        if kind is None:
            kind = kind_word(oi_kind)
    if kind is None:
        for slot in (KIND_GENAI, KIND_SDK, KIND_HALO):
            if values[slot] is not None:
                kind = kind_word(values[slot])
                if kind is not None:
                    break
    if kind is None:
        kind = kind_from_facts(tool, model, tokens_in, tokens_out, name)
    if agent is None and kind == "agent" and oi_kind is not None:
        agent = oi_agent_name(attrs, name)
    return kind, agent, model, tool, tokens_in, tokens_out, session


def oi_agent_name(attrs: dict[str, Any], name: str) -> str | None:
    """The agent of an OpenInference agent span without an agent attribute: its graph node
    (CrewAI's span "File assistant._execute_core" has node "File assistant"), else the span
    name (LangChain/LangGraph and smolagents name the span after the agent)."""
    node = attrs.get("graph.node.id")
    return (node if type(node) is str and node else None) or name or None


def _requested_model(parameters: Any) -> str | None:
    """The "model" of OpenInference's llm.invocation_parameters (a JSON object in a
    string; a dict there is flattened into other keys, so it is not read)."""
    if type(parameters) is not str or "model" not in parameters:
        return None
    found = json_object(parameters)
    if found is None:
        return None
    model = found.get("model") or found.get("model_name")
    return to_str(model) if model is not None else None
