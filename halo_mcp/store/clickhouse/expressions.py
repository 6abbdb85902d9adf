"""The normalized span fields as ClickHouse expressions over an exporter row.

Mirrors, in SQL, what ingestion does in Python for every span of a file
(:func:`halo_mcp.store.formats.conventions.semantics` and
:func:`halo_mcp.store.formats.spans.error_outcome`), from the same key tables, so that a
span in ClickHouse gets the same kind, agent, model, tool, tokens, status and error
message as the same span in a file. The equivalence tests hold the two together.

Known limits of the translation: a map cannot tell a missing attribute from an empty
string, so an attribute set to "" counts as absent here (ingestion would keep "").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from halo_mcp.store.formats import conventions as conv
from halo_mcp.store.formats import payload as pl

ATTRS = "SpanAttributes"


def lit(value: str) -> str:
    """A ClickHouse string literal (for constants of this module, never user input)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _array(values: Iterable[str]) -> str:
    return "[" + ", ".join(lit(v) for v in values) + "]"


def attr(key: str) -> str:
    return f"{ATTRS}[{lit(key)}]"


def first_of(keys: Sequence[str], extra: str | None = None) -> str:
    """The first non-empty attribute of `keys` (then `extra`), or NULL."""
    parts = [f"nullIf({attr(key)}, '')" for key in keys]
    if extra is not None:
        parts.append(extra)
    if len(parts) == 1:
        return f"CAST({parts[0]} AS Nullable(String))"
    return f"coalesce({', '.join(parts)})"


# -- HALO's inference.* keys not listed in the conventions, classified by their suffix --

_REST = "lower(substring(k, 11))"
_TOKEN = f"position({_REST}, 'token') > 0"
_IN = f"(position({_REST}, 'input') > 0 OR position({_REST}, 'prompt') > 0)"
_OUT = f"(position({_REST}, 'output') > 0 OR position({_REST}, 'completion') > 0)"


def _ends(*suffixes: str) -> str:
    return "(" + " OR ".join(f"endsWith({_REST}, {lit(s)})" for s in suffixes) + ")"


_AGENT_SUFFIX = f"({_ends('agent_name', 'agent.name')} OR {_REST} = 'agent')"
_MODEL_SUFFIX = f"({_ends('model_name', 'model')} AND position({_REST}, 'embedding') = 0)"
_TOOL_SUFFIX = _ends("tool_name", "tool.name")
_SESSION_SUFFIX = _ends("session_id", "session.id", "conversation_id", "thread_id")
_KIND_SUFFIX = _ends("span_kind", "span.kind", "observation_kind", "kind")
# In the order _classify_inference_key tries them: a key is in the first class it fits.
_SUFFIX_ORDER = (
    ("tokens_in", f"{_TOKEN} AND {_IN}"),
    ("tokens_out", f"{_TOKEN} AND NOT {_IN} AND {_OUT}"),
    ("agent", f"NOT {_TOKEN} AND {_AGENT_SUFFIX}"),
    ("model", f"NOT {_TOKEN} AND NOT {_AGENT_SUFFIX} AND {_MODEL_SUFFIX}"),
    (
        "tool",
        f"NOT {_TOKEN} AND NOT {_AGENT_SUFFIX} AND NOT {_MODEL_SUFFIX} AND {_TOOL_SUFFIX}",
    ),
    (
        "session",
        f"NOT {_TOKEN} AND NOT {_AGENT_SUFFIX} AND NOT {_MODEL_SUFFIX} AND NOT {_TOOL_SUFFIX} "
        f"AND {_SESSION_SUFFIX}",
    ),
    (
        "kind",
        f"NOT {_TOKEN} AND NOT {_AGENT_SUFFIX} AND NOT {_MODEL_SUFFIX} AND NOT {_TOOL_SUFFIX} "
        f"AND NOT {_SESSION_SUFFIX} AND {_KIND_SUFFIX}",
    ),
)
_KNOWN_KEYS = _array(sorted(conv._SLOTS))


def _by_suffix(slot: str) -> str:
    condition = dict(_SUFFIX_ORDER)[slot]
    key = (
        f"arrayFirst(k -> startsWith(k, 'inference.') AND NOT has({_KNOWN_KEYS}, k) "
        f"AND {condition}, arraySort(mapKeys({ATTRS})))"
    )
    return f"nullIf({ATTRS}[{key}], '')"


def _int(text: str) -> str:
    return f"toInt64OrNull(toString(toInt64OrNull(replaceRegexpOne({text}, '\\\\.0+$', ''))))"


AGENT_OWN = first_of(conv._AGENT_KEYS, _by_suffix("agent"))
MODEL = first_of(conv._MODEL_KEYS, _by_suffix("model"))
TOOL = first_of(conv._TOOL_KEYS, _by_suffix("tool"))
TOKENS_IN = _int(first_of(conv._INPUT_TOKEN_KEYS, _by_suffix("tokens_in")))
TOKENS_OUT = _int(first_of(conv._OUTPUT_TOKEN_KEYS, _by_suffix("tokens_out")))
SESSION = first_of(conv._SESSION_KEYS, _by_suffix("session"))

_WORDS = sorted(conv._KIND_WORDS.items())
_WORD_KEYS = _array(word for word, _ in _WORDS)
_WORD_KINDS = _array(kind for _, kind in _WORDS)
_OI = sorted(conv.OPENINFERENCE_KINDS.items())


def _kind_word(text: str) -> str:
    """conventions.kind_word in SQL: '' when the word is not a kind word."""
    return f"transform(lower(ifNull({text}, '')), {_WORD_KEYS}, {_WORD_KINDS}, '')"


def _name_has(*words: str) -> str:
    return (
        "(" + " OR ".join(f"positionCaseInsensitive(SpanName, {lit(w)}) > 0" for w in words) + ")"
    )


KIND_FROM_NAME = (
    "multiIf("
    f"{_name_has('guardrail')}, 'guardrail', "
    f"{_name_has('handoff')}, 'chain', "
    f"{_name_has('agent')}, if({_name_has('workflow')}, 'chain', 'agent'), "
    f"{_name_has('tool', 'function')}, 'tool', "
    f"{_name_has('llm', 'chat', 'completion', 'generation', 'generate')} OR "
    "startsWith(lower(SpanName), 'openai.') OR startsWith(lower(SpanName), 'anthropic.') OR "
    "startsWith(lower(SpanName), 'response'), 'llm', "
    f"{_name_has('chain', 'workflow', 'pipeline')}, 'chain', 'other')"
)

_OI_VALUE = attr("openinference.span.kind")
_KIND_OI = (
    f"if({_OI_VALUE} = '', '', transform({_OI_VALUE}, {_array(k for k, _ in _OI)}, "
    f"{_array(v for _, v in _OI)}, {_kind_word(_OI_VALUE)}))"
)
_KIND_GENAI = _kind_word(f"nullIf({attr('gen_ai.operation.name')}, '')")
_KIND_SDK = _kind_word(first_of(conv._AGENTS_SDK_TYPE_KEYS))
_KIND_HALO = _kind_word(_by_suffix("kind"))

KIND = (
    "multiIf(_kind_oi != '', _kind_oi, _kind_genai != '', _kind_genai, "
    "_kind_sdk != '', _kind_sdk, _kind_halo != '', _kind_halo, "
    "tool_name IS NOT NULL, 'tool', "
    "model IS NOT NULL AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL), 'llm', "
    f"{KIND_FROM_NAME})"
)

# -- status and error message (spans.error_outcome) --------------------------------------

_EXC_INDEX_EXPR = (
    "arrayFirstIndex((n, a) -> n = 'exception' OR a['exception.message'] != '' "
    "OR a['exception.type'] != '', `Events.Name`, `Events.Attributes`)"
)
_EXC_INDEX = "_exception"
_EXC_ATTRS = f"`Events.Attributes`[{_EXC_INDEX}]"
_EXC_MESSAGE = (
    f"if({_EXC_INDEX} = 0, NULL, multiIf("
    f"{_EXC_ATTRS}['exception.type'] != '' AND {_EXC_ATTRS}['exception.message'] != '', "
    f"concat({_EXC_ATTRS}['exception.type'], ': ', {_EXC_ATTRS}['exception.message']), "
    f"{_EXC_ATTRS}['exception.message'] != '', {_EXC_ATTRS}['exception.message'], "
    f"nullIf({_EXC_ATTRS}['exception.type'], '')))"
)
_ERROR_TYPE = f"nullIf({attr('error.type')}, '')"
_CODE = "lower(toString(StatusCode))"
_BASE_STATUS = (
    f"multiIf({_CODE} IN ('error', 'status_code_error', '2'), 'error', "
    f"{_CODE} IN ('ok', 'status_code_ok', '1'), 'ok', 'unset')"
)
STATUS = f"if({_EXC_INDEX} > 0 OR {_ERROR_TYPE} IS NOT NULL, 'error', {_BASE_STATUS})"
#: The status message, or the exception's "Type: message" when the status only repeats the
#: exception's message and the type is not a bare Error (formats.spans.typed_message).
_TYPED_MESSAGE = (
    f"if(StatusMessage != '' AND ifNull(endsWith({_EXC_MESSAGE}, concat(': ', StatusMessage))"
    f" AND {_EXC_MESSAGE} != StatusMessage AND substring({_EXC_MESSAGE}, 1, "
    f"length({_EXC_MESSAGE}) - length(StatusMessage) - 2) NOT IN ('Error', 'Exception'), 0), "
    f"{_EXC_MESSAGE}, nullIf(StatusMessage, ''))"
)
ERROR_MESSAGE = (
    f"if(status = 'error', coalesce({_TYPED_MESSAGE}, {_EXC_MESSAGE}, {_ERROR_TYPE}), NULL)"
)

START_NS = "toUnixTimestamp64Nano(Timestamp)"
END_NS = f"({START_NS} + toInt64(Duration))"
PARENT = "nullIf(ParentSpanId, '')"
SERVICE_OWN = "nullIf(toString(ServiceName), '')"

#: The normalized columns, named as in the file index (agent and service before
#: inheritance: see `inherited_spans`), in dependency order: later expressions use the
#: aliases of earlier ones, which keeps the SQL small enough to analyse fast.
NORMALIZED: tuple[tuple[str, str], ...] = (
    ("trace_id", "TraceId"),
    ("span_id", "SpanId"),
    ("parent_span_id", PARENT),
    ("name", "toString(SpanName)"),
    ("own_agent", AGENT_OWN),
    ("model", MODEL),
    ("tool_name", TOOL),
    ("input_tokens", TOKENS_IN),
    ("output_tokens", TOKENS_OUT),
    ("session_id", SESSION),
    ("_kind_oi", _KIND_OI),
    ("_kind_genai", _KIND_GENAI),
    ("_kind_sdk", _KIND_SDK),
    ("_kind_halo", _KIND_HALO),
    ("kind", KIND),
    ("_exception", _EXC_INDEX_EXPR),
    ("status", STATUS),
    ("error_message", ERROR_MESSAGE),
    ("start_ns", START_NS),
    ("end_ns", END_NS),
    ("own_service", SERVICE_OWN),
)


def _needed(names: Iterable[str], more: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The NORMALIZED entries that `names` and the `more` expressions use, with what they
    use in turn, in NORMALIZED's order."""
    wanted = set(names)
    pending = [expr for _, expr in more] + [e for n, e in NORMALIZED if n in wanted]
    while pending:
        expr = pending.pop()
        for name, other in NORMALIZED:
            if name not in wanted and re.search(rf"\b{name}\b", expr):
                wanted.add(name)
                pending.append(other)
    return [(n, e) for n, e in NORMALIZED if n in wanted]


def normalized_select(
    table: str,
    where: str,
    matches: str = "1",
    more: Sequence[tuple[str, str]] = (),
    columns: Iterable[str] | None = None,
) -> str:
    """SELECT of the normalized columns (agent/service not yet inherited), plus `matched`:
    `matches`, a condition over the raw columns (attributes, text) evaluated per span, and
    `more` ((name, expression) over raw and normalized columns).

    `columns` (default: all) limits the normalized columns to those named and what they
    and `more` depend on: ClickHouse analyses every expression of a subquery, and the
    whole set costs a few hundred ms of planning per statement."""
    chosen = list(NORMALIZED) if columns is None else _needed(columns, more)
    listed = ", ".join(f"{expr} AS {name}" for name, expr in (*chosen, *more))
    return f"SELECT {listed}, {matches} AS matched FROM {table} WHERE {where}"


#: Columns of normalized_select that callers read (helper aliases start with '_').
NORMALIZED_NAMES = (*(name for name, _ in NORMALIZED if not name.startswith("_")), "matched")


#: Pointer-jumping rounds: each doubles the ancestors looked at, so 8 reach 255 levels up
#: (ingestion walks at most 256).
ANCESTOR_ROUNDS = 8


def _inherit(own: str) -> str:
    """Per trace: each span's own value ('' is none), else its nearest ancestor's.

    Pointer jumping over (values, ancestor positions): after round k a span without a value
    has looked at its first 2^k - 1 ancestors and points at the 2^k-th."""
    return (
        f"arrayFold((acc, step) -> (arrayMap((v, p) -> if(v != '' OR p = 0, v, acc.1[p]), "
        f"acc.1, acc.2), arrayMap((v, p) -> if(v != '' OR p = 0, p, acc.2[p]), acc.1, acc.2)), "
        f"range({ANCESTOR_ROUNDS}), ({own}, pidx)).1"
    )


def inherited_spans(
    table: str,
    where: str,
    matches: str = "1",
    columns: Sequence[str] | None = None,
    more: Sequence[tuple[str, str]] = (),
) -> str:
    """Normalized spans with agent and service inherited from ancestors, as ingestion does.

    Spans are gathered per trace (an array of row tuples), parents resolved by position,
    and each step of the fold lets a value travel one level down. `where` must keep whole
    traces (narrow by TraceId, never by a span's own fields). `columns` (default: all)
    are the normalized columns carried along besides agent and service: fewer make a
    lighter pass over a big window; `more` as for normalized_select."""
    needed = ("trace_id", "span_id", "parent_span_id", "own_agent", "own_service")
    names = list(NORMALIZED_NAMES) if columns is None else list(dict.fromkeys((*needed, *columns)))
    inner = normalized_select(
        table, where, matches, more, columns=None if columns is None else names
    )
    names += [name for name, _ in more]
    if "matched" not in names:
        names.append("matched")
    position = {name: i + 1 for i, name in enumerate(names)}
    row = "tuple(" + ", ".join(names) + ")"
    own = "arrayMap(r -> ifNull(r.{0}, ''), rows)"
    picks = ", ".join(f"z.1.{position[n]} AS {n}" for n in names)
    return (
        f"SELECT {picks}, nullIf(z.2, '') AS agent, nullIf(z.3, '') AS service FROM ("
        f"SELECT rows, arrayMap(r -> r.{position['span_id']}, rows) AS ids, "
        f"arrayMap(r -> if(r.{position['parent_span_id']} IS NULL, 0, "
        f"indexOf(ids, assumeNotNull(r.{position['parent_span_id']}))), rows) AS pidx, "
        f"{_inherit(own.format(position['own_agent']))} AS agents, "
        f"{_inherit(own.format(position['own_service']))} AS services "
        f"FROM (SELECT groupArray({row}) AS rows FROM ({inner}) "
        f"GROUP BY trace_id)) ARRAY JOIN arrayZip(rows, agents, services) AS z"
    )


# -- content: the payload's input and output (formats.payload._content) ------------------


def _prefixed(prefix: str) -> str:
    """The attributes under `prefix` as one text ('' when none): flattened messages, which
    the payload renders line by line; the same set of keys and values gives the same text."""
    return (
        f"arrayStringConcat(arraySort(arrayFilter(x -> startsWith(x, {lit(prefix)}), "
        f"arrayMap((k, v) -> concat(k, '\\t', v), mapKeys({ATTRS}), mapValues({ATTRS})))), "
        "'\\n')"
    )


def _event_bodies(names: Sequence[str]) -> str:
    """The bodies of the events named `names` as one text ('' when none)."""
    body = "concat(a['content'], a['message'], a['gen_ai.event.content'])"
    return (
        f"arrayStringConcat(arrayFilter(x -> x != '', arrayMap((n, a) -> if(has("
        f"{_array(names)}, n) AND {body} != '', concat(n, ': ', {body}), ''), "
        "`Events.Name`, `Events.Attributes`)), '\\n')"
    )


def content_text(keys: Sequence[str], prefixes: Sequence[str], events: Sequence[str]) -> str:
    """What the payload reader takes as a span's input or output, as one nullable text:
    the first non-empty key, else the flattened messages, else the event bodies. Equal
    payload texts give equal texts here (the rendering of messages and events differs from
    the payload's, which only hashes and emptiness tests read)."""
    parts = [f"nullIf({attr(key)}, '')" for key in keys]
    parts += [f"nullIf({_prefixed(prefix)}, '')" for prefix in prefixes]
    parts.append(f"nullIf({_event_bodies(events)}, '')")
    return f"coalesce({', '.join(parts)})"


#: A span's input text and output text (formats.payload.otel_payload's input and output).
INPUT_TEXT = content_text(pl._INPUT_KEYS, pl._INPUT_MESSAGE_PREFIXES, pl._INPUT_EVENTS)
OUTPUT_TEXT = content_text(pl._OUTPUT_KEYS, pl._OUTPUT_MESSAGE_PREFIXES, pl._OUTPUT_EVENTS)
#: A 63-bit hash of a tool span's input, NULL without input: groups identical calls the
#: way the file index's input_hash does (the hash function differs; equal texts agree).
INPUT_HASH = f"if(kind = 'tool', bitShiftRight(sipHash64({INPUT_TEXT}), 1), NULL)"
#: Whether the output is non-blank (Python's str.strip: whitespace, \v included).
ANSWERED = f"ifNull(match({OUTPUT_TEXT}, '[^\\\\s\\\\x0b]'), 0)"
#: Whether a root leaves the run's answer to its last LLM call: it records no content
#: (neither input nor output) and did not fail (store/aggregates.py, `_answer_in_calls`).
ANSWER_IN_CALLS = f"({INPUT_TEXT} IS NULL AND {OUTPUT_TEXT} IS NULL AND status != 'error')"
#: Whether an LLM call's output answers: non-blank and no tool call (payload.is_answer).
GIVES_ANSWER = f"({ANSWERED} AND NOT ifNull(match({OUTPUT_TEXT}, {lit(pl.TOOL_CALL_PATTERN)}), 0))"

#: Per-span values some reads need besides the normalized columns, by name.
EXTRAS: dict[str, str] = {
    "input_hash": INPUT_HASH,
    "answered": ANSWERED,
    "answer_in_calls": ANSWER_IN_CALLS,
    "gives_answer": GIVES_ANSWER,
}


def last_call_answers(calls: str) -> str:
    """(trace_id, answered) per trace of `calls` (normalized spans with `gives_answer`):
    whether its last LLM call (latest end, then start, then span id) ended without error
    with an answer."""
    return (
        "SELECT trace_id, argMax(if(status = 'error', 0, gives_answer), (end_ns, start_ns, "
        f"span_id)) FROM ({calls}) WHERE kind = 'llm' GROUP BY trace_id"
    )
