"""``camguard history --json`` straight from the rows: the same text, a fraction of the start.

The general path (``LocalGuard.history``) opens the store, turns each row into a
:class:`~camguard.store.history_record.SessionRecord`, that into a dict
(:func:`camguard.store.export.session_dict`) and the list into text
(:func:`camguard.core.text.json_text`); loading the model classes and doing that for 1,000
sessions made up most of the command's time (issue 16). Here the rows of the same queries
(:mod:`camguard.store.history_sql`) are written as that text directly, importing no model,
store or dataclass module.

It covers the database as camguard writes it. Anything else (a file that is not there, is
damaged, or has another schema version; a row this reader would have to guess about: an
unknown device kind, a time that is not a number, a value of a type the encoder would
refuse) makes :func:`history_text` return None, and the caller runs the general path, which
prints the same text or fails as before. tests/unit/test_history_json.py holds the two to
the same bytes on hostile rows.
"""

from __future__ import annotations

import json
import sqlite3
import time
from itertools import repeat
from json.encoder import encode_basestring as _string  # what json.dumps uses (C)
from urllib.parse import quote

from camguard.core.jsonindent import dumps_indented, float_text
from camguard.core.text import escape_unsafe_json, json_safe
from camguard.store.history_sql import KINDS, SESSION_FILTERS, audit_query, newest, sessions_query
from camguard.store.textcols import from_db

# Not typing's: importing typing costs ~2 ms at start-up (mypy knows the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path
    from typing import Any

# The schema this reader knows (store/migrations.py's last version) and the wait for a
# writer's lock (store/db.py): tests/unit/test_history_json.py holds them equal.
SCHEMA_VERSION = 5
BUSY_TIMEOUT_S = 5.0

# datetime's range ends with the year 9999: later times are the general path's to refuse.
_END_OF_9999 = 253402300800
_INF = float("inf")
# json.loads's scanner (C): (value, end) of the JSON value at an index (typeshed lacks it).
_scan: Callable[[str, int], tuple[Any, int]] = \
    json.decoder.JSONDecoder().scan_once  # type: ignore[attr-defined]


class Unsupported(Exception):
    """A row only the general path knows how to write (or to refuse)."""


def history_text(path: Path, filters: Mapping[str, Any], limit: int | None) -> str | None:
    """What ``camguard history --json`` prints for the database at ``path`` (no newline),
    with ``filters`` (since, until, kind, app, device, search) and ``limit`` as
    ``LocalGuard.history`` takes them; None when the general path must answer."""
    conn = _open(path)
    if conn is None:
        return None
    try:
        return _document(conn, filters, limit)
    except (sqlite3.Error, Unsupported):
        return None
    finally:
        conn.close()


def _open(path: Path) -> sqlite3.Connection | None:
    """``path`` read-only (as ``Database(read_only=True)`` opens it), when it is a sound
    camguard database of the schema this reader knows."""
    if not path.is_file():
        return None
    uri = "file:" + quote(str(path.absolute())) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        sound = (conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
                 and conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                  "name = 'sessions'").fetchone() is not None
                 and conn.execute("PRAGMA quick_check(1)").fetchone() == ("ok",))
    except sqlite3.Error:
        sound = False
    if not sound:
        conn.close()
        return None
    return conn


def _document(conn: sqlite3.Connection, filters: Mapping[str, Any], limit: int | None) -> str:
    since, until = filters.get("since"), filters.get("until")
    sql, params = sessions_query(since=since, until=until, kind=filters.get("kind"),
                                 device=filters.get("device"), app=filters.get("app"),
                                 search=filters.get("search"), limit=limit)
    rows = conn.execute(sql, params).fetchall()
    audit_rows: list[Any] = []
    if not any(filters.get(k) for k in SESSION_FILTERS):
        sql, params = audit_query(since=since, until=until)
        audit_rows = conn.execute(sql, params).fetchall()
    sessions = _sessions(rows)
    audits = [_audit(r) for r in audit_rows]
    if limit is not None:  # as store/tamper.history_records cuts both to one limit
        mine, theirs = newest([(float(r[13]), r[0]) for r in rows],
                              [(float(r[2]), r[0]) for r in audit_rows], limit)
        sessions = [sessions[n] for n in mine]
        audits = [audits[n] for n in theirs]
    # As cli/history.py sorts session_dict()s and gaps: by the start's text, newest first.
    entries = sorted(sessions + audits, key=_first, reverse=True)
    if not entries:
        return "[]"
    return escape_unsafe_json("[\n" + ",\n".join([text for _start, text in entries]) + "\n]")


def _first(entry: tuple[str, str]) -> str:
    return entry[0]


# session_dict()'s keys in its order, as json_text(indent=2) writes one in the list; every
# value is already JSON text.
_SESSION = "\n".join([
    "  {",
    '    "id": %s,', '    "kind": "%s",', '    "device": %s,', '    "device_name": %s,',
    '    "pid": %s,', '    "create_time": %s,', '    "name": %s,', '    "exe": %s,',
    '    "exe_sha256": %s,', '    "user": %s,', '    "cmdline": %s,', '    "parents": %s,',
    '    "start": "%s",', '    "end": %s,', '    "duration_s": %s,', '    "decision": %s,',
    '    "decided_by": %s,', '    "note": %s,', '    "end_reason": %s,', '    "via": %s,',
    '    "origin": %s',
    "  }"])
_KINDS = frozenset(KINDS)


def _sessions(rows: Sequence[Sequence[Any]]) -> list[tuple[str, str]]:
    """``session_dict(record_of(row))`` of each row as ``json_text(..., indent=2)`` writes it
    in the list, with the start it sorts by. Column by column: most columns hold one type
    throughout, written by one C function each."""
    if not rows:
        return []
    (ids, kinds, devices, device_names, vias, names, exes, sha256s, pids, create_times,
     users, cmdlines, parents, starts, ends, durations, decisions, decided_bys, notes,
     end_reasons, origins) = zip(*rows, strict=True)
    if not _KINDS.issuperset(kinds):
        raise Unsupported("a kind camguard does not know")  # record_of skips it, warning
    if not {int}.issuperset(map(type, ids)):
        raise Unsupported("an id that is not a number")
    start_texts = [rfc3339(float(t) if type(t) is int else t) for t in starts]
    origin_text = _Origins()
    columns = (
        list(map(str, ids)), kinds, _texts(devices, '""'), _texts(device_names, '""'),
        _values(pids), _values(create_times), _texts(names), _texts(exes), _values(sha256s),
        _texts(users), [_list(v) for v in cmdlines], [_list(v) for v in parents],
        start_texts, ["null" if t is None else _string(rfc3339(t)) for t in ends],
        _durations(durations), _texts(decisions), _texts(decided_bys),
        [_note(n) for n in notes], _texts(end_reasons),
        [_string(v) if type(v) is str else _string(from_db(v) or "") for v in vias],
        ["null" if o is None else origin_text(o) for o in origins])
    return list(zip(start_texts, map(_SESSION.__mod__, zip(*columns, strict=True)), strict=True))


def _texts(column: Sequence[Any], none: str = "null") -> Sequence[str]:
    """``json_safe(from_db(v))`` of each value as JSON text, ``none`` for None. A str from
    sqlite3 is valid UTF-8 (it decodes strictly), which json_safe leaves as it is."""
    types = set(map(type, column))
    if types == {str}:
        return list(map(_string, column))
    if types <= {str, type(None)}:
        return [none if v is None else _string(v) for v in column]
    return [none if v is None else _text(v) for v in column]


def _values(column: Sequence[Any]) -> Sequence[str]:
    """The values a session copies as the row holds them (pid, create_time, exe_sha256)."""
    types = set(map(type, column))
    if types == {int}:
        return list(map(str, column))
    if types == {float} and _finite(column):
        return list(map(float.__repr__, column))
    return [_value(v) for v in column]


def _durations(column: Sequence[Any]) -> Sequence[str]:
    """``round(d, 3)`` of each duration (None: null)."""
    if set(map(type, column)) == {float} and _finite(column):
        return list(map(float.__repr__, map(round, column, repeat(3, len(column)))))
    return [_rounded(v) for v in column]


def _finite(floats: Sequence[float]) -> bool:
    """No NaN or infinity among them (their sum would be one; a sum too large for a float
    only sends them the slow way)."""
    return -_INF < sum(floats) < _INF


def rfc3339(ts: object) -> str:
    """``core.serialize.rfc3339(ts)`` for a time between 1970 and 9999 (Unsupported for
    anything else), without building a datetime: the same rounding (to microseconds, half
    to even, as ``datetime.fromtimestamp``), then the millisecond cut."""
    if type(ts) is float and 0.0 <= ts < _END_OF_9999:  # (not NaN)
        seconds = int(ts)
        micro = round((ts - seconds) * 1e6)  # exact fraction; half to even, as pytime.c
        if micro >= 1_000_000:
            micro -= 1_000_000
            seconds += 1
    elif type(ts) is int:
        seconds, micro = ts, 0
    else:
        raise Unsupported(type(ts).__name__)
    minute, second = divmod(seconds, 60)
    prefix = _MINUTES.get(minute)
    if prefix is None:
        if not 0 <= seconds < _END_OF_9999:
            raise Unsupported("a time before 1970 or after 9999")
        tm = time.gmtime(minute * 60)
        prefix = _MINUTES[minute] = (f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T"
                                     f"{tm.tm_hour:02d}:{tm.tm_min:02d}:")
    return f"{prefix}{second:02d}.{micro // 1000:03d}Z"


# "2026-12-02T17:28:" by minutes since 1970
_MINUTES: dict[int, str] = {}


def _text(value: object) -> str:
    """``json_safe(from_db(value))`` as a JSON string (callers pass no None)."""
    return _string(json_safe(value if type(value) is str else from_db(value) or ""))


def _value(value: object) -> str:
    """A column the document copies as it is (pid, create_time, exe_sha256)."""
    if value is None:
        return "null"
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is float:
        return float_text(value)
    if type(value) is str:
        return _string(value)
    raise Unsupported(type(value).__name__)


def _note(value: object) -> str:
    """The note: null when empty (session_dict's ``json_safe(note) if note else None``)."""
    if value is None or value == "":
        return "null"
    text = from_db(value)
    return _string(json_safe(text)) if text else "null"


def _rounded(value: object) -> str:
    """``round(value, 3)`` of a duration (None: null)."""
    if value is None:
        return "null"
    if type(value) is float:
        return float_text(round(value, 3))
    if type(value) is int:
        return int.__repr__(value)
    raise Unsupported(type(value).__name__)


def _list(value: object) -> str:
    """A stored JSON list of text (cmdline, parents) as history_record reads it back."""
    if value == "[]":
        return "[]"
    if type(value) is str and value[:1] == "[" and "\\u" not in value:
        # What camguard writes: json.loads's own scanner without its checks, when the text
        # is one JSON list and nothing else (no white space around it, which json.loads
        # would skip). No \u escape: no lone surrogate for json_safe to show.
        try:
            items, end = _scan(value, 0)
        except StopIteration:
            end = -1
        except RecursionError as exc:  # json.loads's too: record_of fails on it
            raise Unsupported("nested too deep") from exc
        if end == len(value) and {str}.issuperset(map(type, items)):
            if not items:
                return "[]"
            return "[\n      " + ",\n      ".join(map(_string, items)) + "\n    ]"
    text = from_db(value)
    if not text:
        return "[]"
    try:
        items = json.loads(text)
    except ValueError:
        items = [text]
    except RecursionError as exc:
        raise Unsupported("nested too deep") from exc
    else:
        items = [str(i) for i in items] if isinstance(items, list) else [str(items)]
    if not items:
        return "[]"
    return "[\n      " + ",\n      ".join([_string(json_safe(i)) for i in items]) + "\n    ]"


def _audit(row: Sequence[Any]) -> tuple[str, str]:
    """``AuditRecord.to_dict()`` of a gap or policy change, as json_text writes it in the
    list, with the start it sorts by."""
    id_, type_, started, ended, message = row
    if type(id_) is not int or type(started) not in (float, int):
        raise Unsupported("an audit row camguard did not write")
    start_s = float(started)
    start = rfc3339(start_s)
    if ended is None:
        end = duration = "null"
    elif type(ended) in (float, int):
        end = _string(rfc3339(ended))
        duration = float_text(round(max(0.0, ended - start_s), 3))
    else:
        raise Unsupported(type(ended).__name__)
    return start, (
        f'  {{\n    "kind": {_string(str(type_))},\n    "id": {id_},\n'
        f'    "start": "{start}",\n    "end": {end},\n    "duration_s": {duration},\n'
        f'    "message": {_string(json_safe(from_db(message) or ""))}\n  }}')


class _Origins:
    """Stored origins as the document writes them, by core.origin's own functions (loaded
    only when a session has one), each distinct text once."""

    def __init__(self) -> None:
        self._done: dict[object, str] = {}

    def __call__(self, value: object) -> str:
        text = self._done.get(value) if type(value) is str else None
        if text is None:
            from camguard.core.origin import origin_dict, origin_from_json

            shape = origin_dict(origin_from_json(value))
            # One level deeper than dumps_indented writes it: its strings hold no raw
            # newline.
            text = "null" if shape is None else dumps_indented(shape, 2).replace("\n",
                                                                                "\n    ")
            if type(value) is str:
                self._done[value] = text
        return text
