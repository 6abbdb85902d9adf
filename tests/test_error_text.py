"""Error signatures keep the informative part of errors that frameworks wrap (dict and
JSON bodies, exception reprs, tracebacks, "where it surfaced" phrases), mask what varies,
and triage classifies and titles them by what they are."""

from __future__ import annotations

import re

import pytest

from halo_mcp.store.error_text import informative_message
from halo_mcp.store.signatures import normalize_message
from halo_mcp.triage.error_clusters import cluster_signature, error_type, signature_regex

RATE = (
    "Rate limit reached for gpt-4o-mini in organization org-cd384b6bfc9f on requests per min "
    "(RPM): Limit 3, Used 3, Requested 1. Please try again in 20s."
)


@pytest.mark.parametrize(
    ("message", "signature"),
    [
        (  # OpenAI Agents SDK through OpenInference: the error sits in a dict repr
            f"Error in agent run: {{'error': 'Error code: 429 - {RATE}'}}",
            "Error code: 429 - Rate limit reached for gpt-4o-mini in organization org-<ID> on "
            "requests per min (RPM): Limit <N>, Used <N>, Requested <N>. Please try again in "
            "<N>s.",
        ),
        (
            "Error running tool (non-fatal): {'tool_name': 'read_file', 'error': "
            "\"[Errno 2] No such file or directory: '/data/missing-0.txt'\"}",
            "[Errno <N>] No such file or directory: '<S>'",
        ),
        ("Max turns exceeded: {'max_turns': 5}", "Max turns exceeded: {'max_turns': <N>}"),
        (  # LangChain through OpenInference: an exception repr, then its traceback
            "FileNotFoundError(2, 'No such file or directory')Traceback (most recent call "
            'last):\n  File "x.py", line 3\nFileNotFoundError: [Errno 2] No such file',
            "FileNotFoundError … No such file or directory",
        ),
        (  # pydantic-ai's ModelHTTPError: a body dict after the status
            "ModelRateLimitError: status_code: 429, model_name: gpt-4o-mini, body: "
            "{'message': 'Rate limit reached', 'type': 'requests', 'code': 'rate_limit_exceeded'}",
            "ModelRateLimitError: status_code: 429, model_name: gpt-4o-mini, body: … Rate limit "
            "reached",
        ),
        (  # openai<3: the whole JSON error body after the status
            'Error code: 400 - {"error": {"message": "maximum context length is 128000 tokens",'
            ' "type": "invalid_request_error", "code": "context_length_exceeded"}}',
            "Error code: 400 - … maximum context length is <N> tokens",
        ),
        ("Traceback (most recent call last):\n  File x\nKeyError: 'k'", "KeyError: '<S>'"),
        ("plain failure 12 with {not json", "plain failure <N> with {not json"),
    ],
)
def test_wrapped_errors_keep_their_informative_part(message: str, signature: str) -> None:
    assert normalize_message(message) == signature


def test_streaming_and_non_streaming_failures_share_a_signature() -> None:
    """The Agents SDK says where an error surfaced (getting or streaming a response); the
    error itself is the same, so it is one signature, whichever of its exports carries it."""
    wrapped = [
        f"Error getting response: {{'error': 'Error code: 429 - {RATE}'}}",
        f"Error streaming response: {{'error': 'Error code: 429 - {RATE}'}}",
        f"Error streaming response: Error code: 429 - {RATE}",  # the SDK's own export
    ]
    assert len({normalize_message(m) for m in wrapped}) == 1


def test_unwrapping_only_removes_so_matchers_find_the_raw_messages() -> None:
    """Every literal piece of a signature is in the raw message, in order: the matcher
    built from it (split at placeholders and at the elision mark) matches the raw text."""
    messages = [
        "FileNotFoundError(2, 'No such file or directory')Traceback (most recent call last):",
        "ModelRateLimitError: status_code: 429, model_name: m1, body: {'message': 'Slow down'}",
        f"Error in agent run: {{'error': 'Error code: 429 - {RATE}'}}",
    ]
    for message in messages:
        regex = signature_regex(cluster_signature(message, ["gpt-4o-mini", "m1"]))
        assert regex is not None and re.search(regex, message, re.I), (regex, message)


def test_titles_name_the_exception_wherever_the_signature_names_it() -> None:
    assert error_type("UsageLimitExceeded: The next request would exceed") == "UsageLimitExceeded"
    assert error_type("Agent failed: GraphRecursionError … Recursion limit") == (
        "GraphRecursionError"
    )
    assert error_type("Request timed out.") == "Request timed out."
    # A qualified type is named without its module (OpenInference's CrewAI spans).
    assert error_type("pydantic_core._pydantic_core.ValidationError: 1 error") == (
        "ValidationError"
    )
    assert error_type("openai.RateLimitError: Error code: 429") == "RateLimitError"
    assert error_type("gen_ai.tool.error: failed") == "gen_ai.tool.error"


def test_a_message_with_no_wrapper_is_left_as_it_is() -> None:
    for message in ["Timeout after 30s", "KeyError: 'x'", "[Errno 2] No such file", "{}"]:
        assert informative_message(message) == message
