"""Attribute names: OpenTelemetry GenAI conventions, OpenInference, and halo.* extras.

Both conventions are written on every span so any backend (and halo-mcp's own store,
which reads both) classifies them: agent, llm and tool spans with model, tokens and names.
"""

from __future__ import annotations

from typing import Any

import orjson

# OpenTelemetry GenAI
OPERATION = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
SYSTEM = "gen_ai.system"  # older spelling of the provider name, still widely read
AGENT_NAME = "gen_ai.agent.name"
AGENT_ID = "gen_ai.agent.id"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
RESPONSE_MODEL = "gen_ai.response.model"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHED_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
REASONING_TOKENS = "gen_ai.usage.reasoning.output_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
SESSION_ID = "session.id"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"

# OpenInference
OI_KIND = "openinference.span.kind"
OI_AGENT_NAME = "agent.name"
LLM_MODEL = "llm.model_name"
LLM_PROVIDER = "llm.provider"
LLM_SYSTEM = "llm.system"
LLM_PROMPT_TOKENS = "llm.token_count.prompt"
LLM_COMPLETION_TOKENS = "llm.token_count.completion"
LLM_TOTAL_TOKENS = "llm.token_count.total"
LLM_CACHE_READ_TOKENS = "llm.token_count.prompt_details.cache_read"
LLM_REASONING_TOKENS = "llm.token_count.completion_details.reasoning"
OI_TOOL_NAME = "tool.name"
INPUT_VALUE = "input.value"
INPUT_MIME = "input.mime_type"
OUTPUT_VALUE = "output.value"
OUTPUT_MIME = "output.mime_type"

# halo.*
RUN_ID = "halo.run.id"
RUN_STATUS = "halo.run.status"
PROMPT_LENGTH = "halo.run.prompt_length"
TRACE_PATHS_COUNT = "halo.run.trace_paths_count"
MAX_DEPTH = "halo.run.max_depth"
MAX_TURNS = "halo.run.max_turns"
FINDINGS_COUNT = "halo.run.findings_count"
AGENT_DEPTH = "halo.agent.depth"
AGENT_PARENT_ID = "halo.agent.parent_id"
AGENT_TURNS = "halo.agent.turns"
AGENT_TASK_LENGTH = "halo.agent.task_length"
LLM_RETRIES = "halo.llm.retries"
LLM_REFUSAL = "halo.llm.refusal"
LLM_TOOL_CALLS = "halo.llm.tool_calls"
LLM_MESSAGES = "halo.llm.request.messages"
LLM_TOOLS_OFFERED = "halo.llm.request.tools"
LLM_TOOL_CHOICE = "halo.llm.request.tool_choice"
LLM_REASONING_EFFORT = "halo.llm.request.reasoning_effort"
LLM_RETRY_EVENT = "halo.llm.retry"
TOOL_ARGUMENTS_BYTES = "halo.tool.arguments_bytes"
TOOL_RESULT_BYTES = "halo.tool.result_bytes"
TOOL_IS_ERROR = "halo.tool.is_error"

ROOT_AGENT = "halo-root"
SUB_AGENT = "halo-sub-agent"


def to_json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()
