"""Render text that a process controls so that it is shown literally and safely.

A process picks its own name and command line: they may hold terminal escape sequences,
markup, newlines, 64 KB of padding or bytes that are not UTF-8 (which Python hands us as
lone surrogates through ``surrogateescape``). Everything a process controls goes through
:func:`literal` before a human sees it.
"""

from __future__ import annotations

import unicodedata

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


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
    if not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return text
    return "".join(
        (f"\\x{ord(ch) - 0xDC00:02x}" if 0xDC80 <= ord(ch) <= 0xDCFF else f"\\u{ord(ch):04x}")
        if 0xD800 <= ord(ch) <= 0xDFFF
        else ch
        for ch in text
    )
