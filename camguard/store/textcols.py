"""Columns that hold text a process chose: TEXT, or a BLOB when it is not UTF-8.

Imports nothing: ``history --json`` reads rows with these and no more (issue 16).
"""

from __future__ import annotations


def to_db(text: str | None) -> str | bytes | None:
    """Text for a column that holds what a process chose: TEXT, or a BLOB if not UTF-8.

    Process names and paths may carry undecodable bytes (lone surrogates from
    ``surrogateescape``) that sqlite3 cannot bind as TEXT. Such strings are stored as a BLOB
    encoded with ``surrogatepass``, which gives back exactly the same ``str``. Anything
    valid stays plain TEXT so the database stays readable with the ``sqlite3`` shell.
    """
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")
    return text


def from_db(value: object) -> str | None:
    """The inverse of :func:`to_db`; anything unexpected (a hand-edited row) becomes text."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogatepass")
    return value if isinstance(value, str) else str(value)
