"""The tray icon: one look per state, a tooltip and a menu naming every live user.

Shows the controller's :class:`~camguard.ui.controller.Snapshot`; every menu entry is an
intent signal. Process-controlled text is rendered through ``literal()``; menu entries
double ``&`` (else Qt reads a mnemonic) and the tooltip is escaped HTML (Qt renders a
tooltip as rich text whenever it looks like markup: Qt::mightBeRichText).
"""

from __future__ import annotations

import html
import logging
import os
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QRect, QTimer, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from camguard.core.blocks import format_duration
from camguard.core.clock import Clock
from camguard.core.decision import Choice
from camguard.core.models import UNSEEN_PROCESS_NOTE, DeviceKind
from camguard.core.text import literal
from camguard.ui.assets import state_icon
from camguard.ui.model import Feedback, Level, LiveUser, Snapshot, TrayState

log = logging.getLogger(__name__)

PAUSES = (("Pause alerts for 15 min", 15 * 60.0), ("Pause alerts for 1 h", 3600.0))
# How long a block from the tray lasts (None: until the person unblocks it).
BLOCK_TIMES: tuple[tuple[str, float | None], ...] = (
    ("for 15 min", 15 * 60.0), ("for 1 h", 3600.0), ("until I unblock it", None))
PANIC = "Panic: turn camera and microphone off now"
ANSWER = "Answer the alert… (keys: Enter, Esc, Alt+A/W/K/B)"
_KINDS = (DeviceKind.CAMERA, DeviceKind.MICROPHONE)
# The sensors with no kill switch: said in the headline as what is being done to them.
_OTHER_SENSORS = ((DeviceKind.SCREEN, "being recorded by"), (DeviceKind.LOCATION, "used by"))


def headline(snap: Snapshot) -> str:
    """What is live, in one line: what is in use and by whom, what is blocked and until
    when, whether alerts are paused. A blocked device is never also "in use"."""
    live: dict[DeviceKind, list[str]] = {}
    for u in snap.users:
        kind = u.usage.device.kind
        if kind not in snap.blocked:
            p = u.usage.process
            name = "an app camguard cannot see" if p is None else literal(
                p.name or os.path.basename(p.exe or "") or f"process {p.pid}", 32)
            if name not in live.setdefault(kind, []):
                live[kind].append(name)
    parts = []
    if set(_KINDS) & set(live):
        kinds = " and ".join(k.value for k in _KINDS if k in live)
        names = [n for k in _KINDS for n in live.get(k, [])]
        parts.append(f"{kinds.capitalize()} in use by {_who(names)}")
    for kind, verb in _OTHER_SENSORS:
        if kind in live:
            parts.append(f"{kind.value} {verb} {_who(live[kind])}")
    for kind in _KINDS:
        if kind in snap.blocked:
            end = snap.block_end(kind)
            until = f" until {_clock_time(end)}" if end is not None else ""
            parts.append(f"{kind.value} blocked{until}")
    if snap.paused_until is not None:
        parts.append(f"alerts paused until {_clock_time(snap.paused_until)}")
    if not parts:
        parts.append("no camera or microphone in use")
    if snap.degraded and not live:
        parts.append("not fully working")
    line = " · ".join(parts)
    return line[0].upper() + line[1:]


def _who(names: list[str]) -> str:
    return names[0] if len(set(names)) == 1 else f"{len(set(names))} apps"


def describe_user(user: LiveUser, now: float, blocked: frozenset[DeviceKind] = frozenset()
                  ) -> str:
    """One line for a live user: app, pid, device, for how long (already literal)."""
    p = user.usage.process
    name = "" if p is None else literal(
        p.name or os.path.basename(p.exe or "") or "an unnamed app", 40)
    if p is not None and user.origin is not None and user.origin.sandboxed:
        name = user.origin.label(name)  # "bwrap (Flatpak org.telegram.desktop (stable))"
    who = UNSEEN_PROCESS_NOTE if p is None else f"{name} (pid {p.pid})"
    device = user.usage.device
    where = literal(device.name or device.id, 48)
    allowed = ", allowed" if user.allowed else ""
    cut_off = ", blocked" if device.kind in blocked else ""
    return (f"{who}: {device.kind.value} {where}, "
            f"{format_duration(max(0.0, now - user.since))}{allowed}{cut_off}")


def summary_lines(snap: Snapshot, now: float) -> list[str]:
    """The status in plain lines (tooltip, status window): the headline, then each user."""
    lines = [headline(snap)]
    lines += [describe_user(u, now, snap.blocked) for u in snap.users]
    for d in snap.degraded:
        lines.append(f"degraded: {d.source}: {literal(d.reason, 160)}")
    return lines


def _clock_time(ts: float) -> str:
    return time.strftime("%H:%M", time.localtime(ts))


def _menu_text(text: str) -> str:
    return text.replace("&", "&&")


class TrayIcon(QObject):
    """The system tray entry. ``state`` and ``tooltip_lines`` are what it shows now."""

    act_requested = Signal(object, str)  # usage key, Choice value
    block_requested = Signal(object)  # DeviceKind, until unblocked
    block_for_requested = Signal(object, float)  # DeviceKind, seconds
    panic_requested = Signal()
    unblock_requested = Signal(object)  # DeviceKind
    pause_requested = Signal(float)  # seconds
    resume_requested = Signal()
    history_requested = Signal()
    settings_requested = Signal()
    show_requested = Signal()
    quit_requested = Signal()
    answer_requested = Signal()  # "Answer the alert…": the popup takes the keyboard

    def __init__(self, clock: Clock, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._clock = clock
        self.snapshot = Snapshot(TrayState.IDLE, (), (), frozenset(), None)
        self.tooltip_lines: list[str] = []
        # Who else decides here: "Managed by policy …" or "Parental lock on" (shell.py).
        self.managed = ""
        # Whether an alert waits on the popup (shell.py): the menu then offers to answer it
        # from the keyboard, the one way to reach the popup without a pointer.
        self.alert_waiting: Callable[[], bool] = lambda: False
        self.icon = QSystemTrayIcon(self)
        self.menu = QMenu()
        self._switch = QMenu("Kill switch", self.menu)
        self._user_menus: list[QMenu] = []
        self.menu.aboutToShow.connect(self.rebuild_menu)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        # Durations in the tooltip go stale; refresh them only while something is live.
        self._refresh = QTimer(self)
        self._refresh.setInterval(10_000)
        self._refresh.timeout.connect(self._render)
        # The menu is rebuilt once the events waiting in the queue are handled, not once per
        # event: a storm of camera uses queued thousands of rebuilds, the tray fell seconds
        # behind and SIGTERM waited behind them (the soak in tests/gui/test_tray_soak.py).
        self._menu_due = QTimer(self)
        self._menu_due.setSingleShot(True)
        self._menu_due.setInterval(0)
        self._menu_due.timeout.connect(self._rebuild_if_hidden)
        self.show_snapshot(self.snapshot)

    @property
    def state(self) -> TrayState:
        return self.snapshot.state

    def geometry(self) -> QRect | None:
        rect = self.icon.geometry()
        return rect if rect.isValid() else None

    def show(self) -> None:
        self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    @Slot(object)
    def show_snapshot(self, snap: Snapshot) -> None:
        self.snapshot = snap
        self.icon.setIcon(state_icon(snap.state.value, snap.is_degraded))
        self._render()
        if snap.users:
            self._refresh.start()
        else:
            self._refresh.stop()
        self._menu_due.start()

    @Slot()
    def _rebuild_if_hidden(self) -> None:
        if not self.menu.isVisible():  # an open menu is rebuilt when it opens again
            self.rebuild_menu()

    @Slot(str, str)
    def show_message(self, title: str, text: str) -> None:
        # Title constant-ish and text plain: Qt's own balloon shows the message as plain
        # text; the values come from the controller, already through literal().
        self.icon.showMessage(title, text, QSystemTrayIcon.MessageIcon.Information, 8000)

    @Slot(object)
    def show_feedback(self, fb: Feedback) -> None:
        """Feedback in the tray's own balloon (no notification daemon): a failure shows
        the warning or error icon, not the information one."""
        icon = {Level.INFO: QSystemTrayIcon.MessageIcon.Information,
                Level.WARNING: QSystemTrayIcon.MessageIcon.Warning,
                Level.ERROR: QSystemTrayIcon.MessageIcon.Critical}[fb.level]
        self.icon.showMessage(fb.title, fb.text, icon, 8000)

    @Slot()
    def _render(self) -> None:
        self.tooltip_lines = summary_lines(self.snapshot, self._clock.now())
        self.icon.setToolTip("<qt>" + "<br>".join(html.escape(line, quote=False)
                                                 for line in self.tooltip_lines) + "</qt>")

    @Slot()
    def rebuild_menu(self) -> None:
        snap = self.snapshot
        now = self._clock.now()
        menu = self.menu
        menu.clear()
        if self.alert_waiting():  # first: the first item the keyboard reaches
            self._add(menu, ANSWER, self.answer_requested.emit)
        head = menu.addAction(_menu_text(headline(snap)))
        head.setEnabled(False)
        if self.managed:
            menu.addAction(_menu_text(self.managed)).setEnabled(False)
        for i, user in enumerate(snap.users):
            sub = self._submenu(i)
            sub.setTitle(_menu_text(describe_user(user, now, snap.blocked)))
            menu.addMenu(sub)
            self._user_actions(sub, user)
        for d in snap.degraded:
            item = menu.addAction(_menu_text(f"⚠ {d.source}: {literal(d.reason, 80)}"))
            item.setEnabled(False)
        menu.addSeparator()
        switch = self._switch
        switch.clear()
        menu.addMenu(switch)
        for kind in _KINDS:
            if kind in snap.blocked:
                end = snap.block_end(kind)
                until = f" (blocked until {_clock_time(end)})" if end is not None else ""
                self._add(switch, f"Unblock {kind.value}{until}", self.unblock_requested.emit,
                          kind)
                continue
            for text, seconds in BLOCK_TIMES:
                if seconds is None:
                    self._add(switch, f"Block {kind.value} {text}", self.block_requested.emit,
                              kind)
                else:
                    self._add(switch, f"Block {kind.value} {text}",
                              self.block_for_requested.emit, kind, seconds)
            switch.addSeparator()
        if not set(_KINDS) <= snap.blocked:
            self._add(menu, PANIC, self.panic_requested.emit)
        if snap.paused_until is not None:
            self._add(menu, f"Resume alerts (paused until {_clock_time(snap.paused_until)})",
                      self.resume_requested.emit)
        else:
            for text, seconds in PAUSES:
                self._add(menu, text, self.pause_requested.emit, seconds)
        menu.addSeparator()
        self._add(menu, "Open camguard…", self.show_requested.emit)
        self._add(menu, "History…", self.history_requested.emit)
        self._add(menu, "Settings…", self.settings_requested.emit)
        menu.addSeparator()
        self._add(menu, "Quit camguard", self.quit_requested.emit)

    def _submenu(self, i: int) -> QMenu:
        """The i-th user's submenu, reused across rebuilds.

        QMenu.clear() deletes the actions a menu owns but not the submenus addMenu() made
        (only their menuAction goes): made anew on every state change they piled up at
        ~35 KB per camera use (issue 10, the tray soak), and deleting them while Qt's tray
        code may still point at them crashed the tray at exit. So submenus are made once
        (one per user shown at the same time) and cleared for reuse.
        """
        while len(self._user_menus) <= i:
            self._user_menus.append(QMenu(self.menu))
        sub = self._user_menus[i]
        sub.clear()
        return sub

    def _user_actions(self, sub: QMenu, user: LiveUser) -> None:
        seen = user.usage.process is not None
        kind = user.usage.device.kind
        kill = self._add(sub, "Kill app", self.act_requested.emit, user.key, Choice.KILL.value)
        kill.setEnabled(seen)
        self._add(sub, f"Block {kind.value}", self.act_requested.emit, user.key,
                  Choice.BLOCK.value)
        allow = self._add(sub, "Always allow", self.act_requested.emit, user.key,
                          Choice.ALWAYS_ALLOW.value)
        allow.setEnabled(seen and not user.allowed)

    @staticmethod
    def _add(menu: QMenu, text: str, slot: object, *args: object) -> QAction:
        action = menu.addAction(text)
        action.triggered.connect(lambda _=False: slot(*args))  # type: ignore[operator]
        return action

    @Slot(QSystemTrayIcon.ActivationReason)
    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger,
                      QSystemTrayIcon.ActivationReason.DoubleClick):
            self.show_requested.emit()
