"""The history window over a real SQLite history: sorting, filters, search, hostile text, export."""

from __future__ import annotations

import csv
import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from camguard.core.clock import FrozenClock
from camguard.core.models import Device, DeviceKind, EventType, ProcessRef, Usage, UsageEvent
from camguard.core.text import json_safe, literal
from camguard.store.history import HistoryStore
from camguard.store.history_record import SessionRecord
from camguard.store.tamper import RunLog
from camguard.ui.history_model import SORT_ROLE, Column
from camguard.ui.history_window import CUSTOM, HistoryPage, HistoryWindow, history_query

NOW = 1_800_000_000.0
CAM = Device(DeviceKind.CAMERA, "/dev/video0", "Integrated Camera")
MIC = Device(DeviceKind.MICROPHONE, "pulse:alsa_input.usb", "USB Mic")
# What a hostile process can choose: a formula, markup, a terminal escape, a byte that is not
# UTF-8 (a lone surrogate, as surrogateescape hands it over) and a 64 KB argument.
HOSTILE_NAME = '=HYPERLINK("http://x")<b>bold</b>\x1b[2J\udcff'
HOSTILE_EXE = "/tmp/<i>evil</i>\udcfe/cam\nera"
BIG_ARG = "A" * 65536 + "-needle-in-64k"
HOSTILE_CMDLINE = (HOSTILE_NAME, "--x=<script>alert(1)</script>", BIG_ARG)


def proc(pid: int, name: str, exe: str, cmdline: tuple[str, ...] = (), user: str = "alice"
         ) -> ProcessRef:
    return ProcessRef(pid, 1_700_000_000.0 + pid, name, exe, cmdline or (exe,), user)


def session(store: HistoryStore, device: Device, p: ProcessRef, start: float,
            duration: float | None) -> int:
    usage = Usage(device, p, via="fd")
    sid = store.record_event(UsageEvent(EventType.STARTED, usage, start))
    if duration is not None:
        store.record_event(UsageEvent(EventType.STOPPED, usage, start + duration, start))
    return sid


@dataclass
class Filled:
    store: HistoryStore
    ids: dict[str, int]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Filled]:
    clock = FrozenClock(NOW)
    s = HistoryStore(tmp_path / "history.sqlite3", clock, hash_exes=False)
    # A run that was killed, then the next one: a real gap "not monitored from X to Y".
    RunLog(s.db, FrozenClock(NOW - 1800)).begin(111)
    RunLog(s.db, FrozenClock(NOW - 900)).begin(222)
    filled = Filled(s, {
        "zoom": session(s, CAM, proc(10, "zoom", "/usr/bin/zoom",
                                     ("zoom", "--meeting-id=777")), NOW - 3600, 300),
        "firefox": session(s, MIC, proc(20, "firefox", "/usr/lib/firefox/firefox"),
                           NOW - 7200, 40),
        "hostile": session(s, CAM, proc(30, HOSTILE_NAME, HOSTILE_EXE, HOSTILE_CMDLINE,
                                        user="<u>root</u>"), NOW - 600, 5),
        "obs": session(s, CAM, proc(40, "obs", "/usr/bin/obs"), NOW - 10 * 86400, 3600),
        "arecord": session(s, MIC, proc(50, "arecord", "/usr/bin/arecord"), NOW - 60, None),
    })
    yield filled
    s.close()


@pytest.fixture
def window(qtbot: QtBot, store: Filled) -> Iterator[HistoryWindow]:
    w = HistoryWindow(history_query(store.store), FrozenClock(NOW))
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.loaded, timeout=10_000):
        w.range_choice.setCurrentIndex(3)  # "All"
    yield w
    w.shutdown()


def ids(store: Filled, *names: str) -> list[int]:
    return [store.ids[n] for n in names]


def shown(w: HistoryWindow) -> list[int]:
    return [r.id for r in w.visible_records()]


def row_of(w: HistoryWindow, session_id: int) -> int:
    return shown(w).index(session_id)


def test_loads_every_session_newest_first(window: HistoryWindow, store: Filled) -> None:
    assert shown(window) == ids(store, "arecord", "hostile", "zoom", "firefox", "obs")
    assert "5 of 5 session(s) shown" in window.status.text()


def test_showing_the_window_loads_the_last_7_days(qtbot: QtBot, store: Filled) -> None:
    w = HistoryWindow(history_query(store.store), FrozenClock(NOW))
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.loaded, timeout=10_000):
        w.show()
    assert w.time_range() == (NOW - 7 * 86400, None)
    assert shown(w) == ids(store, "arecord", "hostile", "zoom", "firefox")  # not 10 days old
    w.shutdown()


def test_sorts_by_real_values_not_strings(window: HistoryWindow, store: Filled) -> None:
    window.table.sortByColumn(Column.DURATION, Qt.SortOrder.AscendingOrder)
    # 5 s, 40 s, 60 s (still open, counted to now), 5 min, 1 h. As strings ("1h", "1m",
    # "40s", "5m", "5s") the order would be different.
    assert shown(window) == ids(store, "hostile", "firefox", "arecord", "zoom", "obs")
    durations = [window.proxy.index(i, Column.DURATION).data(SORT_ROLE) for i in range(5)]
    assert durations == [5.0, 40.0, 60.0, 300.0, 3600.0]
    window.table.sortByColumn(Column.START, Qt.SortOrder.AscendingOrder)
    assert shown(window) == ids(store, "obs", "firefox", "zoom", "hostile", "arecord")
    window.table.sortByColumn(Column.END, Qt.SortOrder.DescendingOrder)
    assert shown(window)[0] == ids(store, "arecord")[0]  # an open session ends last
    window.table.sortByColumn(Column.PID, Qt.SortOrder.DescendingOrder)
    assert shown(window) == ids(store, "arecord", "obs", "hostile", "firefox", "zoom")


def test_filters_by_kind_app_and_search(window: HistoryWindow, store: Filled) -> None:
    window.kind_filter.setCurrentIndex(2)  # microphone
    assert sorted(shown(window)) == sorted(ids(store, "firefox", "arecord"))
    window.kind_filter.setCurrentIndex(1)  # camera
    assert sorted(shown(window)) == sorted(ids(store, "zoom", "hostile", "obs"))
    window.app_filter.setText("ZOO")  # a part of the name, any case
    assert shown(window) == ids(store, "zoom")
    window.kind_filter.setCurrentIndex(0)
    window.app_filter.setText("/usr/lib/firefox/")  # a part of the executable path
    assert shown(window) == ids(store, "firefox")
    window.app_filter.clear()
    window.search_box.setText("meeting-id=777")  # the command line
    assert shown(window) == ids(store, "zoom")
    window.search_box.setText("needle-in-64k")  # the end of a 64 KB argument
    assert shown(window) == ids(store, "hostile")
    window.search_box.setText("usb mic")  # the device name
    assert sorted(shown(window)) == sorted(ids(store, "firefox", "arecord"))
    window.search_box.setText("nothing like this")
    assert shown(window) == []
    assert "0 of 5" in window.status.text()


def test_date_range_reloads_from_the_store(qtbot: QtBot, window: HistoryWindow,
                                           store: Filled) -> None:
    with qtbot.waitSignal(window.loaded, timeout=10_000):
        window.set_range(NOW - 7300, NOW - 3000)
    assert window.range_choice.currentIndex() == CUSTOM
    assert window.time_range() == (NOW - 7300, NOW - 3000)
    assert sorted(shown(window)) == sorted(ids(store, "zoom", "firefox"))
    with qtbot.waitSignal(window.loaded, timeout=10_000):
        window.range_choice.setCurrentIndex(0)  # last 24 hours: not the 10-day-old one
    assert ids(store, "obs")[0] not in shown(window) and len(shown(window)) == 4


def test_hostile_text_is_shown_literally(window: HistoryWindow, store: Filled) -> None:
    row = row_of(window, ids(store, "hostile")[0])
    app = window.proxy.index(row, Column.APP)
    text = app.data(Qt.ItemDataRole.DisplayRole)
    assert text == literal(HOSTILE_NAME, 48)
    assert "\x1b" not in text and "\\x1b" in text and "\\xff" in text
    exe = window.proxy.index(row, Column.EXE).data(Qt.ItemDataRole.DisplayRole)
    assert "\n" not in exe and "\\n" in exe and "\\xfe" in exe
    tip = app.data(Qt.ItemDataRole.ToolTipRole)
    assert "<b>" not in tip and "&lt;b&gt;bold&lt;/b&gt;" in tip  # escaped, not bold
    assert "<script>" not in tip and "&lt;script&gt;" in tip
    user = window.proxy.index(row, Column.USER).data(Qt.ItemDataRole.ToolTipRole)
    assert "&lt;u&gt;root&lt;/u&gt;" in user
    window.table.selectRow(row)
    details = window.details.toPlainText()
    assert BIG_ARG in details  # the whole 64 KB argument, in a plain-text pane
    assert literal(HOSTILE_NAME) in details and "\x1b" not in details


def test_gaps_are_shown_unless_a_filter_narrows(window: HistoryWindow) -> None:
    assert window.banner.isVisible()
    assert "not monitored from" in window.banner.text()
    window.kind_filter.setCurrentIndex(1)
    assert not window.banner.isVisible()


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_export_csv_and_json_round_trip(tmp_path: Path, window: HistoryWindow,
                                        store: Filled) -> None:
    hostile_id = ids(store, "hostile")[0]
    out_csv, out_json = tmp_path / "out" / "h.csv", tmp_path / "out" / "h.json"
    assert window.export_to(out_csv, "csv") == 5
    assert window.export_to(out_json, "json") == 5
    for path in (out_csv, out_json):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        path.read_bytes().decode("utf-8")  # strict: valid UTF-8 despite the lone surrogates

    rows = _csv_rows(out_csv)
    assert len(rows) == 5
    [bad] = [r for r in rows if r["pid"] == "30"]
    # Formula injection guard: the cell starts with a quote, then the name exactly.
    assert bad["name"] == "'" + json_safe(HOSTILE_NAME)
    assert bad["exe"] == json_safe(HOSTILE_EXE)  # newline and all, quoted by csv
    assert json.loads(bad["cmdline"]) == [json_safe(a) for a in HOSTILE_CMDLINE]
    assert not any(v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())

    entries = json.loads(out_json.read_text(encoding="utf-8"))
    sessions = [e for e in entries if e["kind"] in ("camera", "microphone")]
    gaps = [e for e in entries if e["kind"] == "gap"]
    assert sorted(e["id"] for e in sessions) == sorted(shown(window))
    assert len(gaps) == 1 and "not monitored" in gaps[0]["message"]
    [h] = [e for e in sessions if e["id"] == hostile_id]
    assert h["name"] == json_safe(HOSTILE_NAME) and h["name"].startswith("=")
    assert h["cmdline"][2] == BIG_ARG and h["user"] == "<u>root</u>"
    assert h["duration_s"] == 5.0


def test_export_writes_only_the_rows_shown(tmp_path: Path, window: HistoryWindow,
                                           store: Filled) -> None:
    window.kind_filter.setCurrentIndex(2)
    assert window.export_to(tmp_path / "mic.csv", "csv") == 2
    assert sorted(int(r["pid"]) for r in _csv_rows(tmp_path / "mic.csv")) == [20, 50]
    window.export_to(tmp_path / "mic.json", "json")
    entries = json.loads((tmp_path / "mic.json").read_text(encoding="utf-8"))
    assert [e["kind"] for e in entries] == ["microphone", "microphone"]  # no gap: narrowed
    with pytest.raises(ValueError, match="unknown export format"):
        window.export_to(tmp_path / "x.xml", "xml")


def test_a_failing_query_is_reported_not_raised(qtbot: QtBot) -> None:
    def broken(since: float | None, until: float | None) -> HistoryPage:
        raise OSError("disk on fire <b>")

    w = HistoryWindow(broken, FrozenClock(NOW))
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.load_failed, timeout=10_000) as sig:
        w.refresh()
    assert "disk on fire <b>" in sig.args[0] and not w.loading
    assert w.status.textFormat() == Qt.TextFormat.PlainText
    w.shutdown()


def test_the_newest_query_wins(qtbot: QtBot, store: Filled) -> None:
    calls: list[tuple[float | None, float | None]] = []
    real = history_query(store.store)

    def query(since: float | None, until: float | None) -> HistoryPage:
        calls.append((since, until))
        return real(since, until)

    w = HistoryWindow(query, FrozenClock(NOW))
    qtbot.addWidget(w)
    w.range_choice.setCurrentIndex(3)
    w.set_range(NOW - 7300, NOW - 3000)
    qtbot.waitUntil(lambda: not w.loading and len(calls) >= 2, timeout=10_000)
    assert sorted(r.id for r in w.visible_records()) == sorted(ids(store, "zoom", "firefox"))
    assert all(isinstance(r, SessionRecord) for r in w.visible_records())
    w.shutdown()


def test_the_decision_is_on_screen_without_scrolling(window: HistoryWindow) -> None:
    # issue 12: the Decision column sat off-screen to the right of the executable path.
    window.resize(1000, 600)
    table = window.table
    right = table.columnViewportPosition(Column.DECISION) + table.columnWidth(Column.DECISION)
    assert table.columnViewportPosition(Column.DECISION) >= 0 and \
        right <= table.viewport().width(), (right, table.viewport().width())


def test_a_13_ms_session_reads_the_same_as_in_the_cli(qtbot: QtBot, tmp_path: Path) -> None:
    s = HistoryStore(tmp_path / "h.sqlite3", FrozenClock(NOW), hash_exes=False)
    try:
        session(s, CAM, proc(60, "flash", "/usr/bin/flash"), NOW - 5, 0.013)
        w = HistoryWindow(history_query(s), FrozenClock(NOW))
        qtbot.addWidget(w)
        w.show()
        with qtbot.waitSignal(w.loaded, timeout=10_000):
            w.range_choice.setCurrentIndex(3)  # "All"
        assert w.proxy.index(0, Column.DURATION).data() == "<1s"
    finally:
        s.close()


def test_details_speak_a_persons_words(window: HistoryWindow, store: Filled) -> None:
    window.table.selectRow(row_of(window, store.ids["zoom"]))
    details = window.details.toPlainText()
    assert details.splitlines()[0] == "Camera: Integrated Camera (/dev/video0)"
    assert "how camguard saw it: found holding the device in a scan of open files" in details
    assert "via: fd" not in details
