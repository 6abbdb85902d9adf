"""conventions.semantics compiled to straight-line code, one function per attribute key set.

Why: `semantics` interprets a per-key-tuple plan with loops; on tiny spans that loop is
a third of the normalization cost. Here each plan becomes a closure whose body is
generated once per plan *shape* (how many candidate keys each slot has), so keys from
the data are never written into source code: they are bound as closure variables.
A compiled function returns (semantics' Facts, the `error.type` attribute or None): the
row needs that attribute too. Results must equal `semantics` exactly
(tests/test_formats_fastpath.py checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from halo_mcp.store.formats.conventions import (
    INVOCATION,
    KIND_GENAI,
    KIND_HALO,
    KIND_OI,
    KIND_SDK,
    OPENINFERENCE_KINDS,
    Facts,
    Plan,
    _plan,
    _requested_model,
    kind_from_facts,
    kind_word,
    oi_agent_name,
)
from halo_mcp.store.formats.values import INT64_MAX, to_int, to_str

Semantics = Callable[[dict, str], tuple[Facts, Any]]
Shape = tuple[int, ...]

_CACHE_LIMIT = 4_096
_SHAPE_LIMIT = 256  # distinct shapes are few in practice; past this, use the interpreter
_SLOT_COUNT = 11
_MAX_CANDIDATES = 16  # keys competing for one slot; more is junk, left to the interpreter
_STR_SLOTS = ("agent", "model", "tool")
_NAMES = ("agent", "model", "tool", "tin", "tout", "session")

# Attribute key tuple -> compiled semantics (None: shape limit reached, interpret).
_compiled: dict[tuple, Semantics | None] = {}
# Plan shape -> factory taking the candidate keys and returning the closure.
_factories: dict[Shape, Callable[..., Semantics]] = {}


def _pick_lines(var: str, keys: list[str], indent: str) -> list[str]:
    """`var = attrs[k0]`, then each next candidate while the value is still None."""
    lines = [f"{indent}{var} = attrs[{keys[0]}]"]
    for key in keys[1:]:
        lines.append(f"{indent}if {var} is None:")
        lines.append(f"{indent}    {var} = attrs[{key}]")
    return lines


def _fallback_lines(var: str, keys: list[str], convert: str) -> list[str]:
    """While `var` is still None: the first of `keys` holding a value, through `convert`."""
    return [
        f"        if {var} is None:",
        *_pick_lines("v", keys, "            "),
        "            if v is not None:",
        f"                {var} = {convert}(v)",
    ]


def _source(shape: Shape) -> str:
    """Python source of the factory for one plan shape (only names, never data)."""
    params: list[str] = []
    body: list[str] = []
    keys_of: list[list[str]] = []
    for slot, count in enumerate(shape[:_SLOT_COUNT]):
        names = [f"k{slot}_{i}" for i in range(count)]
        params.extend(names)
        keys_of.append(names)
    for slot, name in enumerate(_NAMES):
        if not keys_of[slot]:
            body.append(f"        {name} = None")
            continue
        body.extend(_pick_lines("v", keys_of[slot], "        "))
        if slot in (3, 4):  # token counts: to_int, inlined for plain ints
            body.append(
                f"        {name} = v if type(v) is int and 0 <= v <= INT64_MAX else to_int(v)"
            )
        else:  # names: to_str, inlined for strings
            body.append(f"        {name} = (v or None) if type(v) is str else to_str(v)")
    if keys_of[INVOCATION]:
        body.extend(_fallback_lines("model", keys_of[INVOCATION], "requested_model"))
    body.append("        kind = None")
    if keys_of[KIND_OI]:
        body.extend(_pick_lines("v", keys_of[KIND_OI], "        "))
        body.append("        oi = v")
        body.append("        if v is not None:")
        body.append("            kind = OPENINFERENCE_KINDS.get(v) if type(v) is str else None")
        body.append("            if kind is None:")
        body.append("                kind = kind_word(v)")
    for slot in (KIND_GENAI, KIND_SDK, KIND_HALO):
        if keys_of[slot]:
            body.extend(_fallback_lines("kind", keys_of[slot], "kind_word"))
    body.append("        if kind is None:")
    body.append("            kind = kind_from_facts(tool, model, tin, tout, name)")
    if keys_of[KIND_OI]:  # an OpenInference agent span without a name: node or span name
        body.append("        if agent is None and kind == 'agent' and oi is not None:")
        body.append("            agent = oi_agent_name(attrs, name)")
    if shape[_SLOT_COUNT]:
        params.append("k_error")
        body.append("        return (kind, agent, model, tool, tin, tout, session), attrs[k_error]")
    else:
        body.append("        return (kind, agent, model, tool, tin, tout, session), None")
    head = [f"def factory({', '.join(params)}):", "    def run(attrs, name):"]
    return "\n".join(head + body + ["    return run", ""])


_GLOBALS = {
    "OPENINFERENCE_KINDS": OPENINFERENCE_KINDS,
    "INT64_MAX": INT64_MAX,
    "kind_from_facts": kind_from_facts,
    "kind_word": kind_word,
    "oi_agent_name": oi_agent_name,
    "requested_model": _requested_model,
    "to_int": to_int,
    "to_str": to_str,
}


def _factory(shape: Shape) -> Callable[..., Semantics]:
    namespace: dict[str, Any] = dict(_GLOBALS)
    exec(compile(_source(shape), f"<semantics {shape}>", "exec"), namespace)
    return namespace["factory"]


def _compile(keys: tuple, plan: Plan) -> Semantics | None:
    by_slot: list[tuple[str, ...]] = [()] * _SLOT_COUNT
    for slot, candidates in plan:
        by_slot[slot] = candidates
    error_keys = ("error.type",) if "error.type" in keys else ()
    shape = (*(len(candidates) for candidates in by_slot), len(error_keys))
    factory = _factories.get(shape)
    if factory is None:
        if len(_factories) >= _SHAPE_LIMIT or max(shape) > _MAX_CANDIDATES:
            return None  # odd key sets (e.g. hundreds of inference.* keys): interpret
        factory = _factories[shape] = _factory(shape)
    return factory(*(key for candidates in by_slot for key in candidates), *error_keys)


def compiled_semantics(keys: tuple) -> Semantics | None:
    """The compiled `semantics` (+ error.type) for attributes with exactly these keys, in
    this order; None when it cannot be compiled (the caller then uses semantics)."""
    try:
        return _compiled[keys]
    except KeyError:
        pass
    if len(_compiled) >= _CACHE_LIMIT:
        _compiled.clear()
    found = _compiled[keys] = _compile(keys, _plan(keys))
    return found
