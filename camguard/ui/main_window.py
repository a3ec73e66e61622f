"""The main window (the tray's "Open camguard", and camguard's window when no tray host
exists): each sensor's state now, who is using what with the kill switch (the status
panel), a timeline of the last 24 hours or 7 days, and what camguard can see here.

The timeline reads the History window's query and the coverage comes from the detection
(``TrayOptions.coverage``); both run on this window's worker thread, never the GUI's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QSize, Qt, QTimer, Slot
from PySide6.QtGui import QCloseEvent, QGuiApplication, QHideEvent, QIcon, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from camguard.core.clock import Clock
from camguard.core.coverage import Coverage, CoverageState
from camguard.core.text import literal
from camguard.store.tamper import GAP
from camguard.ui.alert import plain_label
from camguard.ui.assets import load_icon
from camguard.ui.bridge import Worker
from camguard.ui.history_model import rich_tooltip
from camguard.ui.history_query import HistoryPage, HistoryQuery
from camguard.ui.model import Snapshot
from camguard.ui.sensors import Live, SensorView, blind_sensors, coverage_rows, sensor_views
from camguard.ui.status_window import StatusWindow
from camguard.ui.timeline import TimelineWidget

# What camguard can see here; None: not reported (a service that does not say).
CoverageFn = Callable[[], Sequence[Coverage] | None]
SPANS = (("Last 24 hours", 86400.0), ("Last 7 days", 7 * 86400.0))
REFRESH_MS = 60_000
# A session that starts or stops shows on the timeline this soon (one query per burst).
TIMELINE_DUE_MS = 1_500
_CARD_STYLE = {
    Live.IN_USE: "background: #fde2e1; border: 2px solid #e0201b;",
    Live.BLOCKED: "background: #e8e8e8; border: 2px solid #6a6a6a;",
    Live.IDLE: "background: #e6f4ea; border: 1px solid #2e8b57;",
    Live.UNSEEN: "background: #fff3cd; border: 2px dashed #b00020;",
}
_UNKNOWN_STYLE = "background: #eef1f5; border: 1px solid #7a8699;"
_PARTIAL_STYLE = "background: #eef5e6; border: 2px solid #c79a00;"


class SensorCard(QFrame):
    """One sensor: its icon, name, what is happening now and how well it is watched."""

    def __init__(self, view: SensorView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        grid = QGridLayout(self)
        grid.setContentsMargins(8, 6, 8, 6)
        self.icon = QLabel()
        self.title = plain_label(view.title, bold=True)
        self.state = plain_label()
        self.state.setWordWrap(True)
        self.detail = plain_label()
        self.detail.setWordWrap(True)
        font = self.detail.font()
        font.setPointSizeF(font.pointSizeF() * 0.9)
        self.detail.setFont(font)
        grid.addWidget(self.icon, 0, 0, 2, 1, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.title, 0, 1)
        grid.addWidget(self.state, 1, 1)
        grid.addWidget(self.detail, 2, 0, 1, 2)
        grid.setColumnStretch(1, 1)
        self.view = view
        self.show_view(view)

    def show_view(self, view: SensorView) -> None:
        self.view = view
        self.state.setText(view.headline)
        self.detail.setText(view.detail)
        # In colour only while in use: a blocked or unused sensor's icon is greyed.
        mode = QIcon.Mode.Normal if view.live is Live.IN_USE else QIcon.Mode.Disabled
        self.icon.setPixmap(load_icon(view.kind.value).pixmap(QSize(32, 32), mode))
        style = _CARD_STYLE[view.live]
        if view.live is Live.IDLE and view.coverage is None:
            style = _UNKNOWN_STYLE  # not known to be watched: not the reassuring green
        elif view.live is Live.IDLE and view.coverage is CoverageState.PARTIAL:
            style = _PARTIAL_STYLE
        self.setToolTip(rich_tooltip(f"{view.title}: {view.headline}\n{view.detail}"))
        self.setAccessibleName(f"{view.title}: {view.headline}")  # screen readers
        self.setStyleSheet(f"QFrame#card {{ {style} border-radius: 6px; }}")


class MainWindow(QWidget):
    """Closing hides it, unless it is the only way to reach camguard (no tray): then it is
    minimised, so a guard never disappears because of a stray click."""

    def __init__(self, clock: Clock, status: StatusWindow, *,
                 query: HistoryQuery | None = None, coverage: CoverageFn | None = None,
                 keep_open: bool = False) -> None:
        super().__init__()
        self._clock = clock
        self._query = query
        self._coverage_fn = coverage
        self.keep_open = keep_open
        self.coverage: list[Coverage] | None = None  # None: not known (yet, or at all)
        self.coverage_reported = coverage is not None  # False: the source said it cannot
        self.snapshot = status.snapshot
        self._worker = Worker("camguard-main", 1, self)
        self._generation = 0
        self.loading = False
        self.setWindowTitle("camguard")
        screen = QGuiApplication.primaryScreen()
        room = screen.availableGeometry() if screen is not None else None
        self.resize(min(1060, room.width() - 40) if room else 1060,
                    min(760, room.height() - 80) if room else 760)
        box = QVBoxLayout(self)
        cards = QHBoxLayout()
        self.cards = {}
        for view in sensor_views(self.snapshot, None):
            card = SensorCard(view)
            self.cards[view.kind] = card
            cards.addWidget(card, 1)
        box.addLayout(cards)
        middle = QHBoxLayout()
        self.status = status  # the live users and the kill switch, as in the status window
        status.setParent(self)
        status.keep_open = False
        status.setWindowFlags(Qt.WindowType.Widget)
        middle.addWidget(status, 2)
        middle.addLayout(self._timeline_box(), 3)
        box.addLayout(middle, 1)
        box.addWidget(self._section("What camguard can see on this computer"))
        self.coverage_note = plain_label()
        self.coverage_note.setWordWrap(True)
        box.addWidget(self.coverage_note)
        self.coverage_table = self._make_coverage_table()
        box.addWidget(self.coverage_table)
        self._refresh = QTimer(self)
        self._refresh.setInterval(REFRESH_MS)
        self._refresh.timeout.connect(self.refresh)
        self._timeline_due = QTimer(self)
        self._timeline_due.setSingleShot(True)
        self._timeline_due.setInterval(TIMELINE_DUE_MS)
        self._timeline_due.timeout.connect(self.refresh_timeline)
        self._show_coverage()

    @staticmethod
    def _section(text: str) -> QLabel:
        label = plain_label(text, bold=True)
        return label

    def _timeline_box(self) -> QVBoxLayout:
        col = QVBoxLayout()
        head = QHBoxLayout()
        head.addWidget(self._section("When they were used"), 1)
        self.span_choice = QComboBox()
        for text, _seconds in SPANS:
            self.span_choice.addItem(text)
        self.span_choice.currentIndexChanged.connect(lambda _i: self.refresh_timeline())
        head.addWidget(self.span_choice)
        col.addLayout(head)
        self.timeline = TimelineWidget()
        col.addWidget(self.timeline)
        self.timeline_note = plain_label()
        self.timeline_note.setWordWrap(True)
        col.addWidget(self.timeline_note)
        col.addStretch(1)
        return col

    def _make_coverage_table(self) -> QTableWidget:
        table = QTableWidget(0, 4)
        table.setHorizontalHeaderLabels(["Sensor", "Through", "State", "Why"])
        table.verticalHeader().hide()
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        table.setWordWrap(True)
        header = table.horizontalHeader()
        for col in range(3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        return table

    # -- what is live ------------------------------------------------------------------
    @Slot(object)
    def show_snapshot(self, snap: Snapshot) -> None:
        old = self.snapshot
        self.snapshot = snap
        self._show_cards()
        if old.users != snap.users and self.isVisible():
            self._timeline_due.start()  # a session started or ended
        if old.degraded != snap.degraded and self.isVisible():
            self.refresh_coverage()  # a source broke or came back

    def _show_cards(self) -> None:
        for view in sensor_views(self.snapshot, self.coverage):
            self.cards[view.kind].show_view(view)
        self.timeline.set_blind(blind_sensors(self.coverage))

    # -- loading -----------------------------------------------------------------------
    @Slot()
    def refresh(self) -> None:
        self.refresh_timeline()
        self.refresh_coverage()

    def span(self) -> tuple[float, float]:
        now = self._clock.now()
        return now - SPANS[self.span_choice.currentIndex()][1], now

    @Slot()
    def refresh_timeline(self) -> None:
        since, until = self.span()
        query = self._query
        if query is None:
            self.timeline.set_sessions([], since, until, "There is no history to draw: the "
                                       "history database could not be opened.")
            return
        self._generation += 1
        gen = self._generation
        self.loading = True
        self._worker.submit(lambda: query(since, until),
                            lambda page: self._loaded(gen, page, since, until),
                            lambda exc: self._failed(gen, exc, since, until))

    def _loaded(self, gen: int, page: HistoryPage, since: float, until: float) -> None:
        if gen != self._generation:
            return
        self.loading = False
        span = self.span_choice.currentText().lower()
        gaps = [(a.start, a.end) for a in page.audits if a.type == GAP]
        self.timeline.set_sessions(page.sessions, since, until,
                                   f"Nothing used the camera, microphone, screen or "
                                   f"location in the {span}.", gaps)
        count = len(page.sessions)
        note = f"{count} session(s) in the {span}. History… shows each one."
        if gaps:
            note += f" camguard was not running {len(gaps)} time(s) (grey)."
        if page.truncated:
            note += " Only the newest were loaded."
        self.timeline_note.setText(note)

    def _failed(self, gen: int, exc: BaseException, since: float, until: float) -> None:
        if gen != self._generation:
            return
        self.loading = False
        self.timeline.set_sessions([], since, until, "Cannot read the history: "
                                   + literal(str(exc) or type(exc).__name__, 200))

    @Slot()
    def refresh_coverage(self) -> None:
        fn = self._coverage_fn
        if fn is None:
            return

        def look() -> list[Coverage] | None:
            got = fn()
            return None if got is None else list(got)

        self._worker.submit(look, self._got_coverage, self._coverage_failed)

    def _got_coverage(self, coverage: list[Coverage] | None) -> None:
        self.coverage = coverage
        self.coverage_reported = coverage is not None
        self._show_coverage()
        self._show_cards()

    def _coverage_failed(self, exc: BaseException) -> None:
        self.coverage = None
        self.coverage_note.setText("camguard could not tell what it can see here: "
                                   + literal(str(exc) or type(exc).__name__, 200))

    def _show_coverage(self) -> None:
        table = self.coverage_table
        if self.coverage is None:
            table.setRowCount(0)
            table.hide()
            self.coverage_note.setText(
                "Not reported: the camguard service watches this computer and does not yet "
                "tell the tray what it can see." if not self.coverage_reported else "Looking…")
            return
        rows = coverage_rows(self.coverage)
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                item = QTableWidgetItem(text)  # plain text: nothing is interpreted
                item.setToolTip("")
                table.setItem(r, c, item)
        table.resizeRowsToContents()
        height = table.horizontalHeader().height() + 4 + sum(
            table.rowHeight(r) for r in range(len(rows)))
        table.setFixedHeight(min(height, 260))
        table.show()
        blind = sorted({row[0] for row in rows if row[2] == "blind"}
                       - {row[0] for row in rows if row[2] != "blind"})
        self.coverage_note.setText(
            "camguard cannot see: " + ", ".join(blind).lower() + ". An app could use "
            + ("it" if len(blind) == 1 else "them") + " without camguard noticing."
            if blind else "Every sensor is watched through at least one source.")

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not event.spontaneous():
            self.refresh()
        self._refresh.start()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._refresh.stop()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.keep_open:
            event.ignore()
            self.showMinimized()
            return
        event.accept()

    def shutdown(self) -> None:
        """Stop the query thread (when camguard quits)."""
        self._refresh.stop()
        self._timeline_due.stop()
        self._worker.shutdown(wait=True)

