"""The SQL of history reads: a filtered list of sessions, the gaps and policy changes in the
same time range, and how the two are cut to one limit.

Imports nothing heavy: the stores (:mod:`camguard.store.history`, :mod:`camguard.store.tamper`)
and the lean ``history --json`` reader (:mod:`camguard.store.history_json`, issue 16) run the
same statements from here.
"""

from __future__ import annotations

from camguard.store.textcols import to_db

# Not typing's: importing typing costs ~2 ms at start-up (mypy knows the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from camguard.core.models import DeviceKind

COLUMNS = ("id, device_kind, device_id, device_name, via, app_name, exe, exe_sha256, pid, "
           "create_time, user, cmdline, parents, started_at, ended_at, duration_s, decision, "
           "decided_by, note, end_reason, origin")

# core.models.DeviceKind's values (tests/unit/test_history_json.py holds them equal), here so
# that filtering by kind needs no model classes.
KINDS = ("camera", "microphone", "screen", "location")

# The audit entries history shows among the sessions (store/tamper.py writes them).
GAP = "gap"
POLICY_CHANGED = "policy-changed"

# Filters that narrow sessions to one app, device or text: gaps say nothing about those.
SESSION_FILTERS = ("kind", "app", "device", "search")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like(text: str) -> str:
    return f"%{_escape_like(text)}%"


def kind_value(kind: DeviceKind | str) -> str:
    """``DeviceKind(kind).value`` without the enum: ValueError for an unknown kind."""
    value = str(kind)  # a DeviceKind is a StrEnum: its str is its value
    if value not in KINDS:
        raise ValueError(f"{kind!r} is not a valid DeviceKind")
    return value


def sessions_query(*, since: float | None = None, until: float | None = None,
                   kind: DeviceKind | str | None = None, device: str | None = None,
                   app: str | None = None, search: str | None = None,
                   limit: int | None = None, users: Collection[str] | None = None
                   ) -> tuple[str, list[object]]:
    """The SQL ``HistoryStore.sessions`` runs, and its parameters (tests check its plan)."""
    where: list[str] = []
    params: list[object] = []
    if users is not None:
        names = sorted(users)
        where.append(f"user IN ({', '.join('?' for _ in names)})" if names else "0")
        params += [to_db(n) for n in names]
    if since is not None:
        where.append("(ended_at IS NULL OR ended_at >= ?)")
        params.append(since)
    if until is not None:
        where.append("started_at <= ?")
        params.append(until)
    if kind is not None:
        where.append("device_kind = ?")
        params.append(kind_value(kind))
    if device is not None:
        where.append("(device_id = ? OR device_name = ?)")
        params += [to_db(device), to_db(device)]
    if app is not None and "/" in app:  # a path names one executable exactly
        where.append("(app_name = ? COLLATE NOCASE OR exe = ?)")
        params += [to_db(app), to_db(app)]
    elif app is not None:  # a name: the app's own, or its executable's file name
        where.append("(app_name = ? COLLATE NOCASE OR exe LIKE ? ESCAPE '\\')")
        params += [to_db(app), to_db("%/" + _escape_like(app))]
    if search:
        fields = ("app_name", "exe", "cmdline", "user", "device_id", "device_name",
                  "note", "decision", "decided_by", "end_reason", "exe_sha256")
        where.append("(" + " OR ".join(f"{f} LIKE ? ESCAPE '\\'" for f in fields) + ")")
        params += [_like(search)] * len(fields)
    sql = f"SELECT {COLUMNS} FROM sessions"  # noqa: S608 - only constant fragments
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started_at DESC, id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(max(0, int(limit)))
    return sql, params


def audit_query(*, since: float | None = None, until: float | None = None,
                types: Sequence[str] = (GAP, POLICY_CHANGED)) -> tuple[str, list[object]]:
    """Gaps and policy changes overlapping ``[since, until]``, newest first: the SQL and its
    parameters (columns id, type, started_at, ended_at, message)."""
    where = [f"type IN ({', '.join('?' for _ in types)})"]
    params: list[object] = list(types)
    if since is not None:
        where.append("coalesce(ended_at, started_at) >= ?")
        params.append(since)
    if until is not None:
        where.append("started_at <= ?")
        params.append(until)
    sql = ("SELECT id, type, started_at, ended_at, message FROM audit WHERE "  # noqa: S608
           + " AND ".join(where) + " ORDER BY started_at DESC, id DESC")
    return sql, params


def newest(sessions: Sequence[tuple[float, int]], audits: Sequence[tuple[float, int]],
           limit: int) -> tuple[list[int], list[int]]:
    """Which of both kinds together are the ``limit`` newest by (start, id), a session before
    an audit entry of the same (start, id): the indexes of each kind's share, newest first."""
    both = [(start, id_, 0, n) for n, (start, id_) in enumerate(sessions)]
    both += [(start, id_, 1, n) for n, (start, id_) in enumerate(audits)]
    both.sort(key=lambda t: (t[0], t[1]), reverse=True)  # stable: sessions first on a tie
    kept = both[:max(0, limit)]
    return [n for _s, _i, k, n in kept if k == 0], [n for _s, _i, k, n in kept if k == 1]
