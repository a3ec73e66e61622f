"""Render text that a process controls so that it is shown literally and safely.

A process picks its own name and command line: they may hold terminal escape sequences,
markup, newlines, 64 KB of padding or bytes that are not UTF-8 (which Python hands us as
lone surrogates through ``surrogateescape``). Everything a process controls goes through
:func:`literal` before a human sees it.
"""

from __future__ import annotations

import json
import re
import unicodedata

# Not typing's: importing typing costs ~2 ms at start-up (mypy knows the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
# The patterns below are compiled on first use (re caches them): ~0.3 ms each at import
# that a command writing ASCII never needs (issue 16).
_SURROGATE = "[\ud800-\udfff]"


def literal(text: str, limit: int | None = None) -> str:
    """Return ``text`` with every invisible or dangerous character made visible.

    Control characters (C0, DEL, C1), bidi overrides and other format characters become
    ``\\xNN`` / ``\\uNNNN``; undecodable bytes (lone surrogates U+DC80..U+DCFF from
    ``surrogateescape``) become ``\\xNN`` of the original byte. A backslash is doubled so the
    output is unambiguous. With ``limit``, the result is cut to that many characters and
    ends in an ellipsis saying how much was left out.
    """
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif unicodedata.category(ch) in ("Cf", "Zl", "Zp", "Co", "Cn"):
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
        if limit is not None and len(out) > limit:
            break
    rendered = "".join(out)
    if limit is not None and len(rendered) > limit:
        return rendered[:limit] + f"… ({len(text)} characters)"
    return rendered


def json_safe(text: str) -> str:
    """Make ``text`` encodable as UTF-8 JSON without losing what it said.

    Valid characters (controls included: JSON escapes them itself) are kept as they are;
    undecodable bytes, which Python carries as lone surrogates, become the visible text
    ``\\xNN`` so a log collector gets valid UTF-8 and a reader still sees the byte.
    """
    if text.isascii() or not re.search(_SURROGATE, text):
        return text
    return "".join(
        (f"\\x{ord(ch) - 0xDC00:02x}" if 0xDC80 <= ord(ch) <= 0xDCFF else f"\\u{ord(ch):04x}")
        if 0xD800 <= ord(ch) <= 0xDFFF
        else ch
        for ch in text
    )


# What must never leave camguard raw, even inside a JSON string: C0 and C1 controls (U+0085
# ends a line for str.splitlines and many log tools), DEL, the line and paragraph separators
# U+2028/U+2029 (line breaks to JavaScript and splitlines), the bidi marks, embeddings,
# overrides and isolates (U+061C, U+200E/F, U+202A-202E, U+2066-2069: they reorder what a
# terminal or log viewer shows), and lone surrogates (not encodable as UTF-8).
_BEYOND_C0 = ("\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
              "\ud800-\udfff")
_UNSAFE = f"[\x00-\x1f{_BEYOND_C0}]"
# The JSON encoder escapes C0 inside strings itself; a raw one is its own line break.
_UNSAFE_IN_JSON = f"[{_BEYOND_C0}]"


def _u_escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def escape_unsafe(text: str) -> str:
    """``text`` with every unsafe character (see ``_UNSAFE``) as visible ``\\xNN`` (C0, C1)
    or ``\\uNNNN`` text, everything else kept: for values that leave camguard as plain
    text (syslog structured data). Undecodable bytes become ``\\xNN`` as in json_safe."""
    def sub(m: re.Match[str]) -> str:
        code = ord(m.group())
        if 0xDC80 <= code <= 0xDCFF:
            return f"\\x{code - 0xDC00:02x}"
        return f"\\x{code:02x}" if code < 0xA0 else f"\\u{code:04x}"

    return re.sub(_UNSAFE, sub, text)


def json_text(obj: Any, *, indent: int | None = None,
              separators: tuple[str, str] | None = None,
              default: Callable[[Any], Any] | None = None) -> str:
    """``obj`` as JSON for a file, a pipe or a log: non-ASCII text stays readable, and every
    unsafe character (line separators, C1, bidi controls, lone surrogates) becomes a JSON
    ``\\uNNNN`` escape. A JSON parser reads back exactly the same text; a reader that splits
    lines sees one line per record (with ``indent``: only the encoder's own line breaks).

    The one way camguard writes JSON that leaves it (event log, watch/history/status
    --json, hook events). JSON's structure is ASCII, so these characters only ever occur
    inside strings, where the escape means the same character.
    """
    text = None
    if isinstance(indent, int) and separators is None and default is None:
        import contextlib

        from camguard.core.jsonindent import Unsupported, dumps_indented

        with contextlib.suppress(Unsupported):  # then json.dumps: its text or its error
            text = dumps_indented(obj, indent)
    if text is None:
        text = json.dumps(obj, ensure_ascii=False, indent=indent, separators=separators,
                          default=default)
    return escape_unsafe_json(text)


def escape_unsafe_json(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``'s) with every unsafe character
    beyond C0 as a ``\\uNNNN`` escape: what :func:`json_text` does to the encoder's text."""
    if text.isascii() and "\x7f" not in text:  # DEL is the only unsafe ASCII (~100x faster)
        return text
    return re.sub(_UNSAFE_IN_JSON, _u_escape, text)
