"""What both ends of the service's protocol need to read a line (service/protocol.py checks
requests field by field on the service's side): the error codes a client can act on, and
one JSON object per line each way. Imported by the client without the request checks and
their types, so that a command that asks the service loads no more (issue 16)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

BAD_REQUEST = "bad-request"
TOO_LONG = "too-long"
UNKNOWN_OP = "unknown-op"
DENIED = "denied"
PASSWORD_REQUIRED = "password-required"  # noqa: S105 - an error code, not a password
WRONG_PASSWORD = "wrong-password"  # noqa: S105 - an error code
LOCKED_OUT = "locked-out"
NOT_FOUND = "not-found"
FAILED = "failed"
BUSY = "busy"
UNAVAILABLE = "unavailable"
INTERNAL = "internal"


def encode(obj: Mapping[str, Any]) -> bytes:
    """One line. ASCII-only escapes keep any text (a lone surrogate echoed from a request,
    a process name) encodable; the reader gets the same characters back."""
    return (json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
            + "\n").encode("ascii")


def decode_response(line: bytes) -> dict[str, Any]:
    """The client's side: one answer or event line; ValueError if it is not an object."""
    doc = json.loads(line.decode("utf-8"))
    if not isinstance(doc, dict):
        raise ValueError("the service sent something that is not a JSON object")
    return doc
