"""A painted timeline: one lane per sensor, one bar per session of the last 24 h or 7 days.

The sessions come from the History window's query (the same store, or the service's
history); the widget only paints what it is handed. App names drawn on a bar and the
tooltip are process-controlled text: drawn as text (QPainter.drawText never reads markup)
and the tooltip escaped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QPoint, QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetrics, QHelpEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from camguard.core.models import DeviceKind
from camguard.core.text import literal
from camguard.core.timefmt import session_length
from camguard.store.history_record import SessionRecord
from camguard.ui.history_model import rich_tooltip
from camguard.ui.sensors import SENSORS, TITLES

COLOURS = {DeviceKind.CAMERA: "#e0201b", DeviceKind.MICROPHONE: "#ff8c00",
           DeviceKind.SCREEN: "#7b2fbe", DeviceKind.LOCATION: "#1e6fd9"}
LABEL_W = 96
LANE_H = 30
AXIS_H = 22
MIN_BAR = 3.0  # a 13 ms probe is still a visible mark


@dataclass(frozen=True, slots=True)
class Bar:
    kind: DeviceKind
    start: float
    end: float  # clipped to the range; an open session ends at "now"
    name: str  # literal
    record: SessionRecord


def bars(records: Sequence[SessionRecord], since: float, until: float) -> list[Bar]:
    """The sessions that overlap ``[since, until]``, clipped to it, oldest first."""
    out = []
    for r in records:
        end = until if r.end is None else r.end
        if end < since or r.start > until:
            continue
        name = "an app camguard cannot see" if r.pid is None else literal(r.name or "?", 40)
        if r.pid is not None and r.origin is not None and r.origin.sandboxed:
            name = r.origin.label(name)
        out.append(Bar(r.kind, max(r.start, since), min(end, until), name, r))
    out.sort(key=lambda b: b.start)
    return out


def ticks(since: float, until: float) -> list[tuple[float, str]]:
    """Axis marks: every 3 hours over a day or less, every day over longer ranges."""
    span = until - since
    step = 3 * 3600 if span <= 2 * 86400 else 86400
    lt = time.localtime(since)
    first = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 0, 0, 0, 0, 0, -1))
    out = []
    t = first
    while t <= until:
        if t >= since:
            fmt = "%H:%M" if step < 86400 else "%a %d"
            out.append((t, time.strftime(fmt, time.localtime(t))))
        t += step
        if step == 86400:  # days of 23 or 25 hours: back to midnight
            lt = time.localtime(t + 3 * 3600)
            t = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 0, 0, 0, 0, 0, -1))
    return out


class TimelineWidget(QWidget):
    """Lanes for camera, microphone, screen and location; hover a bar for its session."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.since = 0.0
        self.until = 1.0
        self.bars: list[Bar] = []
        self.empty_text = "Loading…"
        self.blind: set[DeviceKind] = set()  # lanes camguard cannot see: hatched, said
        # When camguard was not watching at all (the history's gaps): hatched over every
        # lane, so a quiet stretch is not read as "nothing happened".
        self.gaps: list[tuple[float, float]] = []
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(360)

    def sizeHint(self) -> QSize:
        return QSize(640, AXIS_H + LANE_H * len(SENSORS) + 4)

    def minimumSizeHint(self) -> QSize:
        return QSize(360, AXIS_H + LANE_H * len(SENSORS) + 4)

    def set_blind(self, kinds: set[DeviceKind]) -> None:
        self.blind = set(kinds)
        self.update()

    def set_sessions(self, records: Sequence[SessionRecord], since: float, until: float,
                     empty_text: str, gaps: Sequence[tuple[float, float | None]] = ()) -> None:
        self.since, self.until = since, max(until, since + 1)
        self.bars = bars(records, since, self.until)
        self.gaps = [(max(a, since), min(b if b is not None else self.until, self.until))
                     for a, b in gaps if (b is None or b > since) and a < self.until]
        self.empty_text = empty_text
        self.update()

    # -- geometry ----------------------------------------------------------------------
    def _x(self, t: float) -> float:
        width = max(1, self.width() - LABEL_W - 8)
        return LABEL_W + (t - self.since) / (self.until - self.since) * width

    def _lane_rect(self, i: int) -> QRectF:
        return QRectF(LABEL_W, i * LANE_H, self.width() - LABEL_W - 8, LANE_H)

    def bar_rect(self, bar: Bar) -> QRectF:
        lane = self._lane_rect(SENSORS.index(bar.kind))
        x0, x1 = self._x(bar.start), self._x(bar.end)
        return QRectF(x0, lane.top() + 5, max(MIN_BAR, x1 - x0), lane.height() - 10)

    def gap_at(self, x: float) -> tuple[float, float] | None:
        return next(((a, b) for a, b in self.gaps if self._x(a) - 1 <= x <= self._x(b) + 1),
                    None)

    def bars_at(self, pos: QPoint) -> list[Bar]:
        return [b for b in self.bars if self.bar_rect(b).adjusted(-2, 0, 2, 0).contains(pos)]

    # -- painting ----------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        text = pal.windowText().color()
        grid = QColor(text)
        grid.setAlpha(40)
        metrics = QFontMetrics(self.font())
        for i, kind in enumerate(SENSORS):
            lane = self._lane_rect(i)
            band = QColor(text)
            band.setAlpha(10 if i % 2 else 22)
            p.fillRect(lane, band)
            if kind in self.blind:
                # Never an empty lane that reads as "not used": camguard cannot see it.
                p.fillRect(lane, QBrush(QColor("#d9a400"), Qt.BrushStyle.BDiagPattern))
                p.setPen(QColor("#8a5a00"))
                p.drawText(lane.adjusted(8, 0, -8, 0),
                           int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
                           "camguard cannot see this here: any use is missing")
            p.setPen(text)
            p.drawText(QRectF(4, lane.top(), LABEL_W - 8, lane.height()),
                       int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
                       TITLES[kind])
        axis_y = LANE_H * len(SENSORS)
        taken = 0.0  # where the last axis label ends: labels never overlap
        for t, label in ticks(self.since, self.until):
            x = self._x(t)
            p.setPen(QPen(grid, 1))
            p.drawLine(int(x), 0, int(x), axis_y)
            w = metrics.horizontalAdvance(label) + 8
            left = min(max(x - w / 2, LABEL_W - w / 2), self.width() - w)
            if left < taken:
                continue
            taken = left + w
            p.setPen(text)
            p.drawText(QRectF(left, axis_y + 2, w, AXIS_H - 4),
                       int(Qt.AlignmentFlag.AlignCenter), label)
        for start, end in self.gaps:
            x0, x1 = self._x(start), self._x(end)
            rect = QRectF(x0, 0, max(2.0, x1 - x0), axis_y)
            p.fillRect(rect, QColor(128, 128, 128, 60))
            p.fillRect(rect, QBrush(QColor("#707070"), Qt.BrushStyle.FDiagPattern))
            if rect.width() > 90:
                p.setPen(text)
                p.drawText(rect, int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap),
                           "camguard was not running")
        for bar in self.bars:
            rect = self.bar_rect(bar)
            colour = QColor(COLOURS[bar.kind])
            p.setPen(QPen(colour.darker(140), 1))
            p.setBrush(colour)
            p.drawRoundedRect(rect, 3, 3)
            if rect.width() > 40:
                p.setPen(QColor("#ffffff"))
                shown = metrics.elidedText(bar.name, Qt.TextElideMode.ElideRight,
                                           int(rect.width() - 8))
                p.drawText(rect.adjusted(4, 0, -4, 0),
                           int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
                           shown)
        if not self.bars and not self.gaps and len(self.blind) < len(SENSORS):
            p.setPen(text)
            p.drawText(QRectF(LABEL_W, 0, self.width() - LABEL_W - 8, axis_y),
                       int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap),
                       self.empty_text)
        p.end()

    def event(self, e: QEvent) -> bool:
        if e.type() == QEvent.Type.ToolTip and isinstance(e, QHelpEvent):
            hit = self.bars_at(e.pos())
            gap = self.gap_at(e.pos().x())
            if hit:
                QToolTip.showText(e.globalPos(), rich_tooltip(tooltip_text(hit)), self)
            elif gap is not None:
                QToolTip.showText(e.globalPos(), rich_tooltip(gap_text(*gap)), self)
            else:
                QToolTip.hideText()
                e.ignore()
            return True
        return super().event(e)


def tooltip_text(hit: Sequence[Bar], limit: int = 8) -> str:
    """The sessions under the pointer, one line each (literal text; the caller escapes)."""
    lines = []
    for b in hit[:limit]:
        r = b.record
        start = time.strftime("%a %H:%M", time.localtime(r.start))
        length = "still in use" if r.end is None else session_length(r.end - r.start)
        what = literal(r.device_name or r.device_id, 48)
        decision = f", {literal(r.decision, 40)}" if r.decision else ""
        lines.append(f"{b.name}: {r.kind.value} {what}, {start}, {length}{decision}")
    if len(hit) > limit:
        lines.append(f"… and {len(hit) - limit} more (see History)")
    return "\n".join(lines)


def gap_text(start: float, end: float) -> str:
    fmt = "%a %H:%M"
    return (f"camguard was not running from {time.strftime(fmt, time.localtime(start))} "
            f"to {time.strftime(fmt, time.localtime(end))}: any use then is not known")
