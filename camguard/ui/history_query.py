"""What the History window and the main window's timeline read: a query over the history
(the user's store here, or the service's in app/service_feed.py), run on a worker thread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from camguard.store.history import HistoryStore
from camguard.store.history_record import SessionRecord
from camguard.store.tamper import AuditRecord, audit_records

# The most sessions one window loads; older ones are reached by narrowing the date range.
DEFAULT_LIMIT = 20_000


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """What one query returned: sessions newest first, gaps and policy changes."""

    sessions: tuple[SessionRecord, ...]
    audits: tuple[AuditRecord, ...] = ()
    truncated: bool = False  # more sessions matched than were loaded
    warning: str | None = None  # the store's own problem (a damaged file moved aside)


class HistoryQuery(Protocol):
    """Sessions overlapping ``[since, until]`` (None: open-ended). Runs on a worker thread;
    may block for the time of a SQLite query (milliseconds); raising shows the error."""

    def __call__(self, since: float | None, until: float | None) -> HistoryPage: ...


def history_query(store: HistoryStore, limit: int = DEFAULT_LIMIT) -> HistoryQuery:
    """The query over a real history store (thread-safe, see HistoryStore)."""

    def query(since: float | None, until: float | None) -> HistoryPage:
        records = store.sessions(since=since, until=until, limit=limit + 1)
        audits = audit_records(store.db, since=since, until=until)
        return HistoryPage(tuple(records[:limit]), tuple(audits), len(records) > limit,
                           store.warning)

    return query
