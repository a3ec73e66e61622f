"""The service's wire protocol: one JSON object per line each way, checked field by field.

A request is ``{"op": NAME, ...fields}`` on one line of UTF-8 of at most :data:`MAX_LINE`
bytes; the answer is ``{"ok": true, ...}`` or ``{"ok": false, "error": TEXT, "code": CODE}``.
``watch`` answers once and then streams one event object per line until the client goes.
Every field is declared below with its type; anything else (an unknown field such as a
``uid``, a wrong type, a non-finite number, nesting) is refused with a message saying
what was wrong. Who asks is never part of a request: the kernel says (SO_PEERCRED).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from camguard.core.blocks import MAX_DURATION, MAX_TIMESTAMP
from camguard.core.text import literal
from camguard.service import wire

MAX_LINE = 64 * 1024
PROTOCOL_VERSION = 1

# Error codes a client can act on, and reading an answer line: service/wire.py, which the
# client imports without this module's field checks and their types (issue 16).
BAD_REQUEST = wire.BAD_REQUEST
BUSY = wire.BUSY
DENIED = wire.DENIED
FAILED = wire.FAILED
INTERNAL = wire.INTERNAL
LOCKED_OUT = wire.LOCKED_OUT
NOT_FOUND = wire.NOT_FOUND
PASSWORD_REQUIRED = wire.PASSWORD_REQUIRED
TOO_LONG = wire.TOO_LONG
UNAVAILABLE = wire.UNAVAILABLE
UNKNOWN_OP = wire.UNKNOWN_OP
WRONG_PASSWORD = wire.WRONG_PASSWORD
decode_response = wire.decode_response
encode = wire.encode

# Linux's PID_MAX_LIMIT on 64-bit (include/linux/threads.h): no pid is larger.
MAX_PID = 4 * 1024 * 1024
MAX_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class Field:
    types: tuple[str, ...]  # "str", "int", "num", "bool", "null"
    required: bool = False
    max_chars: int = 4096
    # Every number has bounds (docs/security.md): lo <= value <= hi, or lo < value with
    # ``above``; a number outside them is refused before any operation sees it.
    lo: float = 0.0
    hi: float = 0.0
    above: bool = False
    unit: str = ""


_STR = Field(("str",))
_OPT_STR = Field(("str", "null"))
_TIME = Field(("num", "null"), hi=MAX_TIMESTAMP, unit=" (seconds since 1970)")
_DURATION = Field(("num", "null"), hi=MAX_DURATION, above=True,
                  unit=f" seconds ({MAX_DURATION / 86400:.0f} days)")
_BOOL = Field(("bool",))
_PASSWORD = Field(("str", "null"), max_chars=1024)

# An account's own rules (``user-rules``) travel as one JSON text, the rules file's shape
# (core.rules_json), inside the request line: at most this many characters and rules.
MAX_RULES_TEXT = 60_000
MAX_ACCOUNT_RULES = 256
_WORD = Field(("str",), required=True, max_chars=64)

OPS: dict[str, dict[str, Field]] = {
    "hello": {},
    "status": {},
    "watch": {"answers": _BOOL},  # a tray that asks its person (service/answers.py)
    "history": {"since": _TIME, "until": _TIME, "kind": _OPT_STR, "app": _OPT_STR,
                "device": _OPT_STR, "search": _OPT_STR,
                "limit": Field(("int", "null"), hi=MAX_LIMIT), "user": _OPT_STR},
    "kill": {"pid": Field(("int",), required=True, lo=1, hi=MAX_PID), "create_time": _TIME,
             "force": _BOOL},
    "block": {"target": Field(("str",), required=True), "seconds": _DURATION,
              "unbind_usb": _BOOL, "persistent": _BOOL},
    "unblock": {"target": Field(("str",), required=True), "password": _PASSWORD},
    "blocks": {},
    "pause": {"seconds": _DURATION, "password": _PASSWORD},
    "resume": {},
    "rules": {},
    "lock-status": {},
    "lock-set": {"password": Field(("str",), required=True, max_chars=1024),
                 "current": _PASSWORD},
    "lock-clear": {"current": _PASSWORD},
    # A person's answer to an alert about one usage (its kind, device and process: the
    # usage's key), recorded on the service's session of it.
    "decide": {"kind": _WORD, "device": Field(("str",), required=True),
               "pid": Field(("int", "null"), lo=1, hi=MAX_PID), "create_time": _TIME,
               "decision": _WORD, "decided_by": _WORD},
    "user-rules": {"rules": Field(("str",), required=True, max_chars=MAX_RULES_TEXT)},
    # The caller's tray answers again, or not (its alerts paused): service/answers.py.
    "asking": {"on": Field(("bool",), required=True)},
}


class RequestError(Exception):
    """A request that cannot be served as sent; ``code`` is one of the codes above."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Request:
    op: str
    fields: Mapping[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        value = self.fields.get(name)
        return default if value is None else value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_request(line: bytes) -> Request:
    """Decode and check one request line (without its newline); raises RequestError."""
    if len(line) > MAX_LINE:
        raise RequestError(TOO_LONG, f"request longer than {MAX_LINE} bytes")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(BAD_REQUEST, f"request is not valid UTF-8 (byte {exc.start})") \
            from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise RequestError(BAD_REQUEST, "request is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, NaN, an integer with thousands of digits
        raise RequestError(BAD_REQUEST, f"request is not valid JSON: {literal(str(exc), 200)}") \
            from None
    if not isinstance(doc, dict):
        raise RequestError(BAD_REQUEST, "a request must be a JSON object")
    op = doc.get("op")
    if not isinstance(op, str):
        raise RequestError(BAD_REQUEST, "a request needs an \"op\" (text)")
    spec = OPS.get(op)
    if spec is None:
        raise RequestError(UNKNOWN_OP, f"unknown op {literal(op, 40)!r} "
                           f"(known: {', '.join(sorted(OPS))})")
    fields: dict[str, Any] = {}
    for name, value in doc.items():
        if name == "op":
            continue
        field = spec.get(name)
        if field is None:
            why = " (the service knows who you are from the kernel)" if name in (
                "uid", "gid", "pid_of_caller", "user_id", "admin", "caller") else ""
            raise RequestError(BAD_REQUEST, f"unknown field {literal(name, 40)!r} for "
                               f"{op!r}{why}")
        fields[name] = _check(op, name, field, value)
    for name, field in spec.items():
        if field.required and name not in fields:
            raise RequestError(BAD_REQUEST, f"{op!r} needs the field {name!r}")
    return Request(op, fields)


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "num"
    if isinstance(value, str):
        return "str"
    return "list" if isinstance(value, list) else "object"


def _check(op: str, name: str, field: Field, value: Any) -> Any:
    kind = _type_of(value)
    if kind == "int" and "num" in field.types and "int" not in field.types:
        value, kind = float(value), "num"
    if kind not in field.types:
        raise RequestError(BAD_REQUEST, f"{op}.{name} must be {' or '.join(field.types)}, "
                           f"not {kind}")
    if kind == "num" and not math.isfinite(value):
        raise RequestError(BAD_REQUEST, f"{op}.{name} must be a finite number")
    if kind in ("int", "num") and not (
            (field.lo < value if field.above else field.lo <= value) and value <= field.hi):
        low = f"more than {field.lo:g}" if field.above else f"at least {field.lo:g}"
        raise RequestError(BAD_REQUEST, f"{op}.{name} must be {low} and at most "
                           f"{field.hi:.0f}{field.unit}")
    if kind == "str" and (len(value) > field.max_chars or "\x00" in value):
        raise RequestError(BAD_REQUEST, f"{op}.{name} is longer than {field.max_chars} "
                           "characters or holds a NUL")
    return value


def ok(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}


def error(code: str, message: str, **fields: Any) -> dict[str, Any]:
    return {"ok": False, "error": message, "code": code, **fields}
