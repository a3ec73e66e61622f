"""``json.dumps(obj, ensure_ascii=False, indent=N)``, the same text, faster.

With ``indent`` the standard library falls back from its C encoder to the pure-Python one,
built of nested generators: for ``history --json`` with 1,000 sessions that is ~15 ms of a
command meant to start in a few tens (issue 16). This encoder writes the same text with one
plain recursion, plain strings, ints, floats, None and booleans written inline, and the C
function for every string. What it does not know (a key that is not a string, an object
``json`` would hand to ``default``, a str/int/float subclass, nesting past 200 levels, so a
cycle too) raises :class:`Unsupported`, and the caller uses ``json.dumps``, which gives the
same text or the same error as before. tests/unit/test_jsonindent.py holds it to
``json.dumps``'s text.
"""

from __future__ import annotations

import json.encoder

# Not typing's: importing typing costs ~2 ms at start-up (mypy knows the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_STRING = json.encoder.encode_basestring  # the C function when the _json module is there
_INF = float("inf")
_MAX_DEPTH = 200
_CONST = {None: "null", True: "true", False: "false"}


class Unsupported(Exception):
    """``obj`` holds something only json.dumps knows how to write (or refuse)."""


def float_text(value: float) -> str:
    """A float as ``json.dumps`` writes it (NaN and the infinities as JavaScript names)."""
    if value != value:  # noqa: PLR0124 (NaN)
        return "NaN"
    if value == _INF:
        return "Infinity"
    if value == -_INF:
        return "-Infinity"
    return float.__repr__(value)


def dumps_indented(obj: Any, indent: int) -> str:
    """``json.dumps(obj, ensure_ascii=False, indent=indent)``; :class:`Unsupported` for what
    it does not cover."""
    step = " " * indent

    def emit(o: Any, pad: str, depth: int) -> str:  # noqa: PLR0911 (one per JSON type)
        t = type(o)
        if t is str:
            return _STRING(o)
        if o is None or t is bool:
            return _CONST[o]
        if t is int:
            return int.__repr__(o)
        if t is float:
            return float_text(o)
        if depth > _MAX_DEPTH:
            raise Unsupported("too deep")
        inner = pad + step
        if t is list or t is tuple:
            if not o:
                return "[]"
            sep = ",\n" + inner
            return "[\n" + inner + sep.join([emit(v, inner, depth + 1) for v in o]) + \
                "\n" + pad + "]"
        if t is dict:
            if not o:
                return "{}"
            items = []
            for key, value in o.items():
                if type(key) is not str:
                    raise Unsupported("a key that is not a string")
                v = type(value)
                if v is str:
                    text = _STRING(value)
                elif value is None or v is bool:
                    text = _CONST[value]
                else:
                    text = emit(value, inner, depth + 1)
                items.append(_STRING(key) + ": " + text)
            return "{\n" + inner + (",\n" + inner).join(items) + "\n" + pad + "}"
        raise Unsupported(t.__name__)

    return emit(obj, "", 0)
