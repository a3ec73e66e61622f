"""Decoding ``reg export`` files ("Windows Registry Editor Version 5.00", UTF-16 LE with a
BOM, CRLF): pure code that runs on every OS, for ``camguard forensics windows-consent``.

A file is read whole or not at all: anything the format does not allow (a cut-off last
line, an odd byte count, a bad hex pair, a value outside a key, a name given twice) raises
:class:`RegFileError` naming the line, so a truncated or hostile export is never half-read.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER = "Windows Registry Editor Version 5.00"
MAX_BYTES = 64 * 1024 * 1024  # a whole ConsentStore export is a few hundred KB
MAX_LINE = 1024 * 1024  # one logical line (a value with its continuation lines)
HIVES = ("HKEY_LOCAL_MACHINE", "HKEY_CURRENT_USER", "HKEY_USERS", "HKEY_CLASSES_ROOT",
         "HKEY_CURRENT_CONFIG")
REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD, REG_MULTI_SZ, REG_QWORD = 1, 2, 3, 4, 7, 11

Data = str | int | bytes | list[str]


class RegFileError(ValueError):
    """The file is not a complete ``reg export``; the message names the line."""


@dataclass(frozen=True, slots=True)
class RegKey:
    path: str  # as written, hive first: HKEY_CURRENT_USER\SOFTWARE\...
    values: dict[str, tuple[Data, int]]  # name ("" for the default value) -> (data, type)
    line: int


def decode_text(raw: bytes) -> str:
    """The text of an export: UTF-16 LE after its BOM (what ``reg export`` and regedit
    write), or UTF-8 (an export someone converted)."""
    if len(raw) > MAX_BYTES:
        raise RegFileError(f"larger than {MAX_BYTES // (1024 * 1024)} MiB: not a registry export")
    try:
        if raw.startswith(b"\xff\xfe"):
            if len(raw) % 2:
                raise RegFileError("truncated: an odd number of bytes in UTF-16 text")
            return raw[2:].decode("utf-16-le")
        return raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegFileError(f"not valid UTF-16 LE or UTF-8 text (byte {exc.start})") from None


CUT_SHORT = ("the file does not end with the blank line `reg export` writes: it may have "
             "been cut at a line end (what it holds is shown)")


def parse(raw: bytes, warnings: list[str] | None = None) -> list[RegKey]:
    """Every key of an export with its values, in file order. A cut at a line end cannot
    be told from a smaller export; when the final blank line is missing, ``warnings``
    gets CUT_SHORT."""
    text = decode_text(raw)
    if not text.endswith("\n"):
        raise RegFileError("truncated: the last line has no line end")
    if warnings is not None and not text.endswith(("\r\n\r\n", "\n\n")):
        warnings.append(CUT_SHORT)
    lines = text.split("\n")[:-1]
    if not lines or lines[0].rstrip("\r") != HEADER:
        raise RegFileError(f"line 1: expected {HEADER!r}")
    keys: list[RegKey] = []
    seen: set[str] = set()
    current: RegKey | None = None
    for number, line in _logical_lines(lines):
        if not line or line.startswith(";"):
            continue
        if line.startswith("["):
            current = RegKey(_key_path(line, number), {}, number)
            if current.path.casefold() in seen:
                raise RegFileError(f"line {number}: key given twice: {current.path!r}")
            seen.add(current.path.casefold())
            keys.append(current)
            continue
        if current is None:
            raise RegFileError(f"line {number}: a value before any [key]")
        name, data = _value(line, number)
        if name.casefold() in {n.casefold() for n in current.values}:
            raise RegFileError(f"line {number}: value {name!r} given twice in one key")
        current.values[name] = data
    return keys


def _logical_lines(lines: list[str]) -> list[tuple[int, str]]:
    """(first line number, text) with hex continuations (a trailing backslash, then lines
    indented by two spaces) joined, as regedit wraps long binary values."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    pending_len = start = 0
    for index, physical in enumerate(lines[1:], start=2):
        line = physical.removesuffix("\r")
        if pending:
            line = line.lstrip(" ")
        else:
            start = index
        if line.endswith("\\") and (pending or _after_name(line).startswith("hex")):
            pending.append(line[:-1])
            pending_len += len(line)
            if pending_len > MAX_LINE:
                raise RegFileError(f"line {start}: a value longer than {MAX_LINE} characters")
            continue
        out.append((start, "".join(pending) + line))
        pending, pending_len = [], 0
    if pending:
        raise RegFileError(f"truncated: line {start} continues past the end of the file")
    return out


def _after_name(line: str) -> str:
    """The data part of a value line ("" when the line is not one): only hex data wraps; a
    string value ending in a backslash is written "...\\\\"."""
    if line.startswith("@="):
        return line[2:]
    if not line.startswith("\""):
        return ""
    try:
        _name, end = _quoted(line, 0, 0)
    except RegFileError:
        return ""
    return line[end + 1:] if line[end:end + 1] == "=" else ""


def _key_path(line: str, number: int) -> str:
    if not line.endswith("]") or len(line) < 3:
        raise RegFileError(f"line {number}: a key line must end with ']'")
    path = line[1:-1]
    if path.startswith("-"):
        raise RegFileError(f"line {number}: a key deletion ([-...]) is not part of an export")
    if path.split("\\", 1)[0].upper() not in HIVES:
        raise RegFileError(f"line {number}: unknown hive in {path!r}")
    return path


def _quoted(line: str, start: int, number: int) -> tuple[str, int]:
    """The string starting with the quote at ``start`` (``\\\\`` and ``\\"`` unescaped) and
    the index just past its closing quote."""
    out: list[str] = []
    i = start + 1
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) and line[i + 1] in "\\\"":
            out.append(line[i + 1])
            i += 2
            continue
        if ch == "\"":
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise RegFileError(f"line {number}: a string without its closing quote")


def _value(line: str, number: int) -> tuple[str, tuple[Data, int]]:
    if line.startswith("@="):
        name, rest = "", line[2:]
    elif line.startswith("\""):
        name, end = _quoted(line, 0, number)
        if line[end:end + 1] != "=":
            raise RegFileError(f"line {number}: expected '=' after the value name")
        rest = line[end + 1:]
    else:
        raise RegFileError(f"line {number}: expected a [key] or a \"name\"=value line")
    return name, _data(rest, number)


def _data(text: str, number: int) -> tuple[Data, int]:
    if text.startswith("\""):
        value, end = _quoted(text, 0, number)
        if end != len(text):
            raise RegFileError(f"line {number}: text after a string value")
        return value, REG_SZ
    if text.startswith("dword:"):
        digits = text[6:]
        if len(digits) != 8 or not _is_hex(digits):
            raise RegFileError(f"line {number}: dword: needs exactly 8 hex digits")
        return int(digits, 16), REG_DWORD
    if text == "-":
        raise RegFileError(f"line {number}: a value deletion (=-) is not part of an export")
    kind_text, colon, hexes = text.partition(":")
    if not colon or not (kind_text == "hex" or (kind_text.startswith("hex(")
                                                  and kind_text.endswith(")"))):
        raise RegFileError(f"line {number}: unknown value format {text[:20]!r}")
    type_digits = kind_text[4:-1] if kind_text != "hex" else "3"
    if not type_digits or len(type_digits) > 8 or not _is_hex(type_digits):
        raise RegFileError(f"line {number}: bad value type in {kind_text!r}")
    return _typed(_hex_bytes(hexes, number), int(type_digits, 16), number), int(type_digits, 16)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _hex_bytes(text: str, number: int) -> bytes:
    if not text:
        return b""
    pairs = text.split(",")
    if any(len(p) != 2 or not _is_hex(p) for p in pairs):
        raise RegFileError(f"line {number}: hex data must be two-digit pairs separated by ','")
    return bytes(int(p, 16) for p in pairs)


def _typed(raw: bytes, kind: int, number: int) -> Data:
    try:
        if kind == REG_QWORD:
            if len(raw) != 8:
                raise RegFileError(f"line {number}: a QWORD (hex(b):) has 8 bytes, not "
                                   f"{len(raw)}")
            return int.from_bytes(raw, "little")
        if kind == REG_DWORD:
            if len(raw) != 4:
                raise RegFileError(f"line {number}: a DWORD has 4 bytes, not {len(raw)}")
            return int.from_bytes(raw, "little")
        if kind == REG_EXPAND_SZ:
            return raw.decode("utf-16-le").split("\x00", 1)[0]
        if kind == REG_MULTI_SZ:
            return [s for s in raw.decode("utf-16-le").split("\x00") if s]
    except UnicodeDecodeError:
        raise RegFileError(f"line {number}: a text value that is not UTF-16 LE") from None
    return raw
