"""The history window: every camera and microphone session, sortable, filterable, exportable.

The window never touches the store: it is handed a :class:`HistoryQuery` (see
:func:`history_query` for the one over a :class:`~camguard.store.history.HistoryStore`)
and runs it on a worker thread, so a slow disk never freezes the GUI. Export writes the rows
shown through camguard.store.export (CSV with the formula-injection guard, JSON in the
shape of ``camguard history --json``). Gaps in monitoring ("not monitored from X to Y") and
policy changes in the chosen time range are shown in a banner above the table.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QDateTime, QItemSelection, Qt, Signal, Slot
from PySide6.QtGui import QGuiApplication, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from camguard.core.clock import Clock
from camguard.core.models import DeviceKind
from camguard.core.text import literal
from camguard.store.export import write_csv
from camguard.store.files import write_private
from camguard.store.history_record import SessionRecord
from camguard.store.tamper import GAP, AuditRecord, entry_dicts
from camguard.ui.alert import plain_label
from camguard.ui.bridge import Worker
from camguard.ui.history_model import (
    RECORD_ROLE,
    Column,
    HistoryFilterProxy,
    HistoryTableModel,
    details_text,
    local_time,
)
from camguard.ui.history_query import DEFAULT_LIMIT, HistoryPage, HistoryQuery, history_query

# The query moved to history_query.py; these names stay importable from here.
__all__ = ["CUSTOM", "DEFAULT_LIMIT", "RANGES", "HistoryPage", "HistoryQuery", "HistoryWindow",
           "history_query"]

log = logging.getLogger(__name__)

RANGES = (("Last 24 hours", 86400.0), ("Last 7 days", 7 * 86400.0),
          ("Last 30 days", 30 * 86400.0), ("All", None), ("Custom range", None))
CUSTOM = len(RANGES) - 1
BANNER_LINES = 5


class HistoryWindow(QWidget):
    """Sessions in a table; ``loaded`` fires each time a query's rows are in the table.

    Showing the window (or Refresh, or changing the date range) runs the query again.
    """

    loaded = Signal()
    load_failed = Signal(str)

    def __init__(self, query: HistoryQuery, clock: Clock, parent: QWidget | None = None, *,
                 own_session: Callable[[SessionRecord], bool] | None = None) -> None:
        super().__init__(parent)
        self._query = query
        # Tells camguard's own checks (its self-test) apart; hidden unless asked for.
        self._own = own_session
        self._clock = clock
        self._worker = Worker("camguard-history", 1, self)
        self._generation = 0
        self._page = HistoryPage(())
        self.loading = False
        self.setWindowTitle("camguard — history")
        screen = QGuiApplication.primaryScreen()
        room = screen.availableGeometry() if screen is not None else None
        self.resize(min(1100, room.width() - 40) if room else 1100,
                    min(600, room.height() - 80) if room else 600)
        self.model = HistoryTableModel(self)
        self.proxy = HistoryFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.hide_sessions(own_session)
        box = QVBoxLayout(self)
        box.addLayout(self._filter_row())
        self.banner = plain_label()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("QLabel { background: #fff3cd; color: #5c4400; "
                                  "padding: 4px; }")
        self.banner.hide()
        box.addWidget(self.banner)
        self.table = self._make_table()
        self.details = QPlainTextEdit()  # plain text: nothing a process chose is interpreted
        self.details.setReadOnly(True)
        self.details.setPlaceholderText("Select a session to see everything about it.")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.details)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        box.addWidget(split, 1)
        box.addLayout(self._bottom_row())
        self._update_range_edits()

    # -- layout ------------------------------------------------------------------------
    def _filter_row(self) -> QVBoxLayout:
        # Two rows, so the window fits a 1024-pixel-wide screen.
        rows = QVBoxLayout()
        row = QHBoxLayout()
        when = QHBoxLayout()
        self.kind_filter = QComboBox()
        # Item data holds the kind's value: Qt hands a str subclass back as a plain str.
        for text, kind in (("All sensors", ""), ("Camera", DeviceKind.CAMERA.value),
                           ("Microphone", DeviceKind.MICROPHONE.value),
                           ("Screen", DeviceKind.SCREEN.value),
                           ("Location", DeviceKind.LOCATION.value)):
            self.kind_filter.addItem(text, kind)
        self.app_filter = QLineEdit()
        self.app_filter.setPlaceholderText("App name or path")
        self.app_filter.setClearButtonEnabled(True)
        self.search_box = QLineEdit()
        self.search_box.setPlaceholderText("Search name, executable, device, command line")
        self.search_box.setClearButtonEnabled(True)
        self.range_choice = QComboBox()
        for text, _seconds in RANGES:
            self.range_choice.addItem(text)
        self.range_choice.setCurrentIndex(1)
        now = QDateTime.fromSecsSinceEpoch(int(self._clock.now()))
        self.from_edit = QDateTimeEdit(now.addDays(-7))
        self.to_edit = QDateTimeEdit(now)
        for edit in (self.from_edit, self.to_edit):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd HH:mm")
            edit.editingFinished.connect(self.refresh)
        self.refresh_button = QPushButton("Refresh")
        for label, widget in (("Show", self.kind_filter), ("App", self.app_filter),
                              ("Search", self.search_box)):
            row.addWidget(QLabel(label))
            row.addWidget(widget, 2 if isinstance(widget, QLineEdit) else 0)
        when.addWidget(QLabel("When"))
        when.addWidget(self.range_choice)
        when.addWidget(self.from_edit)
        when.addWidget(QLabel("to"))
        when.addWidget(self.to_edit)
        when.addStretch(1)
        self.own_toggle = QCheckBox("Show camguard's own checks")
        self.own_toggle.setToolTip("The self-test opens each camera and microphone to prove "
                                   "camguard sees them; those sessions are hidden unless this "
                                   "is ticked.")
        self.own_toggle.setVisible(self._own is not None)
        self.own_toggle.toggled.connect(
            lambda on: self.proxy.hide_sessions(None if on else self._own))
        self.own_toggle.toggled.connect(lambda _on: self._update_status())
        when.addWidget(self.own_toggle)
        when.addWidget(self.refresh_button)
        rows.addLayout(row)
        rows.addLayout(when)
        self.kind_filter.currentIndexChanged.connect(self._filters_changed)
        self.app_filter.textChanged.connect(self._filters_changed)
        self.search_box.textChanged.connect(self._filters_changed)
        self.range_choice.currentIndexChanged.connect(self._range_changed)
        self.refresh_button.clicked.connect(self.refresh)
        return rows

    def _make_table(self) -> QTableView:
        table = QTableView()
        table.setModel(self.proxy)
        table.setSortingEnabled(True)
        table.sortByColumn(Column.START, Qt.SortOrder.DescendingOrder)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setWordWrap(False)
        table.verticalHeader().hide()
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for col, width in ((Column.START, 150), (Column.DURATION, 70), (Column.KIND, 90),
                           (Column.APP, 140), (Column.DEVICE, 160), (Column.DECISION, 150),
                           (Column.USER, 90), (Column.PID, 70), (Column.END, 150)):
            table.setColumnWidth(col, width)
        table.selectionModel().selectionChanged.connect(self._selection_changed)
        return table

    def _bottom_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.status = plain_label()
        self.status.setWordWrap(True)
        row.addWidget(self.status, 1)
        self.csv_button = QPushButton("Export CSV…")
        self.json_button = QPushButton("Export JSON…")
        close = QPushButton("Close")
        self.csv_button.clicked.connect(lambda _=False: self._export_dialog("csv"))
        self.json_button.clicked.connect(lambda _=False: self._export_dialog("json"))
        close.clicked.connect(self.close)
        for button in (self.csv_button, self.json_button, close):
            row.addWidget(button)
        return row

    # -- loading -----------------------------------------------------------------------
    def time_range(self) -> tuple[float | None, float | None]:
        """The ``(since, until)`` the range controls ask for, from the clock's now."""
        index = self.range_choice.currentIndex()
        if index == CUSTOM:
            since = float(self.from_edit.dateTime().toSecsSinceEpoch())
            until = float(self.to_edit.dateTime().toSecsSinceEpoch())
            return (since, until) if since <= until else (until, since)
        seconds = RANGES[index][1]
        return (None if seconds is None else self._clock.now() - seconds), None

    def set_range(self, since: float, until: float) -> None:
        """Show a custom range (whole seconds) and load it."""
        for edit, ts in ((self.from_edit, since), (self.to_edit, until)):
            edit.blockSignals(True)
            edit.setDateTime(QDateTime.fromSecsSinceEpoch(int(ts)))
            edit.blockSignals(False)
        if self.range_choice.currentIndex() == CUSTOM:
            self.refresh()
        else:
            self.range_choice.setCurrentIndex(CUSTOM)  # refreshes

    @Slot()
    def refresh(self) -> None:
        """Run the query for the chosen range off the GUI thread; the newest call wins."""
        self._generation += 1
        generation = self._generation
        since, until = self.time_range()
        self.loading = True
        self.status.setText("Loading…")
        query = self._query
        submitted = self._worker.submit(lambda: query(since, until),
                                        lambda page: self._loaded(generation, page),
                                        lambda exc: self._failed(generation, exc))
        if not submitted:
            self.loading = False

    def _loaded(self, generation: int, page: HistoryPage) -> None:
        if generation != self._generation:
            return  # an older query finished after a newer one was asked for
        self._page = page
        self.model.set_records(page.sessions, self._clock.now())
        self.loading = False
        self._update_banner()
        self._update_status()
        self.loaded.emit()

    def _failed(self, generation: int, exc: BaseException) -> None:
        if generation != self._generation:
            return
        self.loading = False
        text = f"Cannot read the history: {literal(str(exc) or type(exc).__name__, 300)}"
        self.status.setText(text)
        self.load_failed.emit(text)

    def showEvent(self, event: QShowEvent) -> None:
        # Each time the window is opened it shows the history as it is now.
        super().showEvent(event)
        if not event.spontaneous():
            self.refresh()

    def shutdown(self) -> None:
        """Stop the query thread (when camguard quits)."""
        self._worker.shutdown(wait=True)

    # -- filters -----------------------------------------------------------------------
    @Slot()
    def _filters_changed(self) -> None:
        kind = self.kind_filter.currentData()
        self.proxy.set_filters(DeviceKind(kind) if kind else None,
                               self.app_filter.text(), self.search_box.text())
        self._update_banner()
        self._update_status()

    @Slot()
    def _range_changed(self) -> None:
        self._update_range_edits()
        self.refresh()

    def _update_range_edits(self) -> None:
        custom = self.range_choice.currentIndex() == CUSTOM
        self.from_edit.setEnabled(custom)
        self.to_edit.setEnabled(custom)

    def _update_banner(self) -> None:
        audits = self.shown_audits()
        if not audits:
            self.banner.hide()
            return
        gaps = [a for a in audits if a.type == GAP]
        lines = [f"camguard was not monitoring {len(gaps)} time(s) in this range:"
                 if gaps else "The managed policy changed in this range:"]
        lines += [f"• {a.describe()}" for a in audits[:BANNER_LINES]]
        if len(audits) > BANNER_LINES:
            lines.append(f"… and {len(audits) - BANNER_LINES} more (export JSON for all)")
        self.banner.setText("\n".join(lines))
        self.banner.show()

    def _update_status(self) -> None:
        page = self._page
        parts = [f"{self.proxy.rowCount()} of {len(page.sessions)} session(s) shown"]
        own = self._own
        if own is not None and not self.own_toggle.isChecked():
            hidden = sum(1 for r in page.sessions if own(r))
            if hidden:
                parts.append(f"{hidden} of camguard's own checks hidden")
        if page.truncated:
            parts.append(f"only the newest {len(page.sessions)} were loaded; narrow the "
                         "date range to see older ones")
        if page.warning:
            parts.append(literal(page.warning, 300))
        self.status.setText("; ".join(parts))

    # -- reading what is shown ---------------------------------------------------------
    def visible_records(self) -> list[SessionRecord]:
        """The sessions shown, in the order shown."""
        return self.proxy.records()

    def shown_audits(self) -> list[AuditRecord]:
        """Gaps and policy changes for the range, unless a filter narrows the rows to one
        kind, app or text (they say nothing about one app; ``camguard history`` agrees)."""
        return [] if self.proxy.narrowed else list(self._page.audits)

    @Slot(QItemSelection, QItemSelection)
    def _selection_changed(self, *_: object) -> None:
        rows = self.table.selectionModel().selectedRows()
        rec = rows[0].data(RECORD_ROLE) if rows else None
        self.details.setPlainText(details_text(rec) if isinstance(rec, SessionRecord) else "")

    # -- export ------------------------------------------------------------------------
    def export_to(self, path: Path, fmt: str) -> int:
        """Write the sessions shown to ``path`` as ``"csv"`` or ``"json"`` (0600, atomic);
        return how many sessions. Raises OSError when the file cannot be written."""
        records = self.visible_records()
        if fmt == "csv":
            out = io.StringIO(newline="")
            write_csv(records, out)
            data = out.getvalue().encode("utf-8")
        elif fmt == "json":
            entries = entry_dicts(records, self.shown_audits())
            data = (json.dumps(entries, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        else:
            raise ValueError(f"unknown export format {fmt!r} (csv or json)")
        write_private(path, data)
        log.info("exported %d session(s) to %s", len(records), path)
        return len(records)

    def _export_dialog(self, fmt: str) -> None:
        stamp = local_time(self._clock.now()).replace(":", "").replace(" ", "-")
        name, _ = QFileDialog.getSaveFileName(
            self, f"Export history as {fmt.upper()}",
            str(Path.home() / f"camguard-history-{stamp}.{fmt}"),
            "CSV files (*.csv)" if fmt == "csv" else "JSON files (*.json)")
        if not name:
            return
        try:
            count = self.export_to(Path(name), fmt)
        except OSError as exc:
            self.status.setText(f"Export failed: {literal(str(exc), 300)}")
            return
        self.status.setText(f"Exported {count} session(s) to {literal(name, 300)}")

