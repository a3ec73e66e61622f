"""The history table's model and its sort/filter proxy: real values for sorting, literal text.

Process-controlled text (name, exe, cmdline, user, device name) is shown through
:func:`camguard.core.text.literal`, cut to a readable length in the cell; the tooltip holds
much more of it, HTML-escaped (Qt renders a tooltip as rich text whenever it looks like
markup, Qt::mightBeRichText). Sorting uses :data:`SORT_ROLE`, which gives numbers for
times, durations and pids, so "40s" sorts before "5m" and an open session sorts last.
"""

from __future__ import annotations

import datetime as _dt
import enum
import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from camguard.core.models import DeviceKind
from camguard.core.origin import origin_line
from camguard.core.script import script_argument
from camguard.core.text import literal
from camguard.core.timefmt import session_length
from camguard.store.history_record import SessionRecord

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
RECORD_ROLE = Qt.ItemDataRole.UserRole + 2
# Cell text limits: enough to recognise an app, never a wall of text in a table.
LIMITS = {"device": 60, "name": 48, "user": 32, "exe": 120, "decision": 40}
# A tooltip holds this much (the details pane below the table shows everything).
TOOLTIP_LIMIT = 4096
Index = QModelIndex | QPersistentModelIndex


class Column(enum.IntEnum):
    # What a person scans for first stays on screen in a 1000 px window: when, how long,
    # which app on which device, and what was decided (issue 12: Decision was off-screen).
    START = 0
    DURATION = 1
    KIND = 2
    APP = 3
    DEVICE = 4
    DECISION = 5
    USER = 6
    PID = 7
    END = 8
    EXE = 9


HEADERS = ("Start", "Duration", "Kind", "App", "Device", "Decision", "User", "PID", "End",
           "Executable")


def rich_tooltip(text: str) -> str:
    """A tooltip that shows ``text`` literally (escaped, wrapped in an explicit rich-text
    block so Qt never guesses)."""
    return ("<p style='white-space:pre-wrap'>"
            + html.escape(text, quote=False).replace("\n", "<br>") + "</p>")


def local_time(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True, slots=True)
class _Row:
    rec: SessionRecord
    duration: float  # seconds; an open session counts until the moment it was loaded
    app_text: str  # casefolded name and exe, for the app filter
    haystack: str  # casefolded name, exe, device and command line, for the search box


def _row(rec: SessionRecord, now: float) -> _Row:
    if rec.end is None:
        duration = max(0.0, now - rec.start)
    else:
        duration = rec.duration if rec.duration is not None else max(0.0, rec.end - rec.start)
    app = "\n".join((rec.name or "", rec.exe or "")).casefold()
    hay = "\n".join((app, rec.device_id.casefold(), rec.device_name.casefold(),
                     "\n".join(rec.cmdline).casefold()))
    return _Row(rec, duration, app, hay)


class HistoryTableModel(QAbstractTableModel):
    """Sessions as rows (newest first as loaded); read-only."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[_Row] = []

    def set_records(self, records: Sequence[SessionRecord], now: float) -> None:
        self.beginResetModel()
        self._rows = [_row(r, now) for r in records]
        self.endResetModel()

    def record(self, row: int) -> SessionRecord:
        return self._rows[row].rec

    def row_info(self, row: int) -> _Row:
        return self._rows[row]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if (orientation is Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole
                and 0 <= section < len(HEADERS)):
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        col = Column(index.column())
        if role == RECORD_ROLE:
            return row.rec
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if col in (Column.DURATION, Column.PID) else None
        render = _RENDERERS.get(role)
        return None if render is None else render(row, col)


def _opt(text: str | None, limit: int) -> str:
    return literal(text, limit) if text else ""


def _display(row: _Row, col: Column) -> str:
    r = row.rec
    if col is Column.END:
        return "still in use" if r.end is None else local_time(r.end)
    if col is Column.DURATION:
        shown = session_length(row.duration)
        return f"{shown} (open)" if r.end is None else shown
    if col is Column.APP:
        if r.pid is None:
            return "(unseen process)"
        name = _opt(r.name, LIMITS["name"])
        # A sandboxed app by its real name: "bwrap (Flatpak org.telegram.desktop)".
        return name if r.origin is None else r.origin.label(name)
    cells: dict[Column, Callable[[], str]] = {
        Column.START: lambda: local_time(r.start),
        Column.KIND: lambda: r.kind.value,
        Column.DEVICE: lambda: literal(r.device_name or r.device_id, LIMITS["device"]),
        Column.PID: lambda: "" if r.pid is None else str(r.pid),
        Column.USER: lambda: _opt(r.user, LIMITS["user"]),
        Column.EXE: lambda: _opt(r.exe, LIMITS["exe"]),
        Column.DECISION: lambda: _opt(r.decision, LIMITS["decision"]),
    }
    return cells[col]()


def _sort_key(row: _Row, col: Column) -> float | str:
    # One type per column, so Qt compares numbers as numbers (QVariant of a double).
    r = row.rec
    if col is Column.START:
        return r.start
    if col is Column.END:
        return math.inf if r.end is None else r.end
    if col is Column.DURATION:
        return row.duration
    if col is Column.PID:
        return -1.0 if r.pid is None else float(r.pid)
    if col is Column.KIND:
        return r.kind.value
    text = {Column.DEVICE: r.device_name or r.device_id, Column.APP: r.name,
            Column.USER: r.user, Column.EXE: r.exe, Column.DECISION: r.decision}[col]
    return (text or "").casefold()


def _tooltip(row: _Row, col: Column) -> str:
    r = row.rec
    if col is Column.DEVICE:
        text = f"{literal(r.device_name, 200)}\n{literal(r.device_id, TOOLTIP_LIMIT)}" \
            if r.device_name else literal(r.device_id, TOOLTIP_LIMIT)
    elif col is Column.APP:
        lines = [literal(r.name or "?", 256)]
        if r.cmdline:
            lines.append(literal(" ".join(r.cmdline), TOOLTIP_LIMIT))
        text = "\n".join(lines)
    elif col is Column.EXE:
        text = literal(r.exe or "", TOOLTIP_LIMIT)
        if r.exe_sha256:
            text += f"\nsha256 {r.exe_sha256}"
    elif col is Column.USER:
        text = literal(r.user or "", 256)
    elif col is Column.DECISION:
        text = literal(r.decision or "no decision recorded", 200)
        if r.decided_by:
            text += f"\nby {decided_by_words(r.decided_by)}"
    elif col is Column.END and r.end_reason:
        text = literal(r.end_reason, 500)
    else:
        return ""
    return rich_tooltip(text)


_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_RENDERERS: dict[int, Callable[[_Row, Column], object]] = {
    Qt.ItemDataRole.DisplayRole: _display,
    SORT_ROLE: _sort_key,
    Qt.ItemDataRole.ToolTipRole: _tooltip,
}


# How camguard saw a session, in words (the history's ``via``).
VIA_WORDS = {
    "fd": "found holding the device in a scan of open files (/proc)",
    "fanotify": "named by the kernel at the moment it opened the device (fanotify)",
    "inotify": "the kernel said the device was open, but no process camguard can see held it",
    "stream": "a recording stream at the sound server",
    "pulse": "a recording stream at an account's sound server (seen by the service)",
}
# Who decided, in words (the history's ``decided_by``); anything else is shown as recorded.
DECIDED_BY_WORDS = {
    "user:popup": "you, in the alert",
    "user:notification": "you, in the notification",
    "user:tray": "you, from the tray menu",
    "timeout": "the alert's countdown (nobody answered)",
    "allow-list": "your allow list",
}


def device_line(rec: SessionRecord) -> str:
    """``Camera: Integrated Camera (/dev/video0)``, or ``Camera: /dev/video0`` unnamed."""
    kind = rec.kind.value.capitalize()
    name, path = literal(rec.device_name or ""), literal(rec.device_id)
    return f"{kind}: {name} ({path})" if name and name != path else f"{kind}: {path}"


def decided_by_words(decided_by: str) -> str:
    return DECIDED_BY_WORDS.get(decided_by, literal(decided_by))


def details_text(rec: SessionRecord) -> str:
    """Everything about one session, each process-controlled value literal and whole."""
    lines = [
        device_line(rec),
        f"from {local_time(rec.start)} to "
        f"{'(still in use)' if rec.end is None else local_time(rec.end)}",
    ]
    if rec.pid is None:
        lines.append("app: a process camguard could not see")
    else:
        lines.append(f"app: {literal(rec.name or '?')} (pid {rec.pid})")
        lines.append(f"executable: {literal(rec.exe or '?')}")
        script = script_argument(rec.exe or "", rec.cmdline)
        if script:
            lines.append(f"script: {literal(script)}")
        lines.append(f"sha256: {rec.exe_sha256 or 'not known'}")
        if rec.origin is not None:
            lines.append(f"comes from: {origin_line(rec.origin)}")
        lines.append(f"user: {literal(rec.user or '?')}")
        lines.append("command line: " + " ".join(literal(a) for a in rec.cmdline))
        if rec.parents:
            lines.append("started by: " + " < ".join(literal(p) for p in rec.parents))
    lines.append(f"decision: {literal(rec.decision or 'none recorded')}"
                 + (f", by {decided_by_words(rec.decided_by)}" if rec.decided_by else ""))
    if rec.via:
        lines.append(f"how camguard saw it: {VIA_WORDS.get(rec.via, literal(rec.via))}")
    for label, value in (("note", rec.note), ("ended", rec.end_reason)):
        if value:
            lines.append(f"{label}: {literal(value)}")
    return "\n".join(lines)


class HistoryFilterProxy(QSortFilterProxyModel):
    """Sorts on :data:`SORT_ROLE` and filters by device kind, app text and free text.

    The app filter matches a case-insensitive part of the app name or executable path; the
    search matches a part of the name, executable, device or command line. The date range
    is applied by the query (the store), since it decides how much is loaded at all.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)
        self._kind: DeviceKind | None = None
        self._app = ""
        self._search = ""
        # Hides camguard's own checks (the self-test's sessions) while set.
        self._hide: Callable[[SessionRecord], bool] | None = None

    def hide_sessions(self, hide: Callable[[SessionRecord], bool] | None) -> None:
        """Hide the sessions ``hide`` says are camguard's own (None: show every one)."""
        self._begin()
        self._hide = hide
        self._end()

    @property
    def narrowed(self) -> bool:
        """A filter narrows the rows to one kind, app or text (gaps say nothing about it)."""
        return bool(self._kind or self._app or self._search)

    def set_filters(self, kind: DeviceKind | None = None, app: str = "",
                    search: str = "") -> None:
        new = (kind, app.strip().casefold(), search.strip().casefold())
        if new == (self._kind, self._app, self._search):
            return
        self._begin()
        self._kind, self._app, self._search = new
        self._end()

    def _begin(self) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt 6.9+; older Qt re-filters in _end
            self.beginFilterChange()

    def _end(self) -> None:
        if hasattr(self, "endFilterChange"):
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:  # pragma: no cover - Qt < 6.9
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        if not isinstance(model, HistoryTableModel):
            return True
        row = model.row_info(source_row)
        if self._kind is not None and row.rec.kind is not self._kind:
            return False
        if self._app and self._app not in row.app_text:
            return False
        if self._hide is not None and self._hide(row.rec):
            return False
        return not self._search or self._search in row.haystack

    def records(self) -> list[SessionRecord]:
        """The rows shown, in the order shown."""
        out = []
        for i in range(self.rowCount()):
            rec = self.data(self.index(i, 0), RECORD_ROLE)
            if isinstance(rec, SessionRecord):
                out.append(rec)
        return out
