"""The tray's brain: live users, the alert queue, pause and blocks; decisions go to the ports.

Lives on the GUI thread. Views (tray icon, alert popup, status window, notifications) only
show what its signals say and send intents back; it never waits for any of them, and every
port call runs on a :class:`~camguard.ui.bridge.Worker` thread.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from camguard.core.clock import Clock
from camguard.core.decision import Choice, DecidedBy, OriginOf
from camguard.core.freeze import FROZEN_MARK, FreezeWhileAsking
from camguard.core.models import (
    Degraded,
    DeviceKind,
    EventType,
    HealthEvent,
    Usage,
    UsageEvent,
)
from camguard.core.origin import ExeOrigin
from camguard.core.state import UsageKey
from camguard.core.text import literal
from camguard.ui.bridge import Worker
from camguard.ui.controller_actions import ActionsMixin
from camguard.ui.model import (
    Alert,
    AlertKey,
    AlertView,
    LiveUser,
    Snapshot,
    alert_key,
    tray_state,
)
from camguard.ui.ports import (
    ActionsPort,
    AlertSettings,
    AllowCheck,
    AllowPort,
    Gate,
    HistoryPort,
    RuleOutcome,
    RulesPort,
)

log = logging.getLogger(__name__)

_MAX_REMEMBERED = 4096


class AppController(QObject, ActionsMixin):
    """State and decisions. All slots run on the GUI thread and return at once."""

    changed = Signal(object)  # Snapshot
    alert_changed = Signal(object)  # AlertView | None: the alert to show now
    alert_raised = Signal(object)  # Alert: a new alert joined the queue
    alert_resolved = Signal(int)  # alert id: answered, dismissed or dropped
    # An alert was answered: Alert, Choice value (or "ignore": dismissed), decided_by.
    alert_decided = Signal(object, str, str)
    message = Signal(str, str)  # title, text: the result of an action, for the user
    feedback = Signal(object)  # the same as a Feedback (level and sensor): what views show
    history_requested = Signal()
    settings_requested = Signal()
    show_requested = Signal()
    quit_requested = Signal()

    def __init__(self, clock: Clock, actions: ActionsPort, history: HistoryPort,
                 allow: AllowPort, settings: AlertSettings | None = None, *,
                 rules: RulesPort | None = None, io: Worker | None = None,
                 workers: Worker | None = None, parent: QObject | None = None,
                 origin_of: OriginOf | None = None,
                 freeze: FreezeWhileAsking | None = None) -> None:
        super().__init__(parent)
        self.clock = clock
        self.settings = settings or AlertSettings()
        self._actions = actions
        self._history = history
        self._allow = allow
        self._rules = rules
        self._origin_of = origin_of  # where an alert's app comes from (io lane; None: not shown)
        self._freeze = freeze  # pauses an app while its alert is open (None: never)
        self._thaw_after_block: dict[DeviceKind, list[AlertKey]] = {}
        # Two lanes: quick store calls (allow checks, history) keep their order and are never
        # stuck behind a kill that waits seconds for a process to end.
        self.io = io or Worker("camguard-io", 1, self)
        self.workers = workers or Worker("camguard-action", 2, self)
        self._users: dict[UsageKey, LiveUser] = {}
        self._degraded: dict[str, Degraded] = {}
        self._blocked: set[DeviceKind] = set()
        self._block_ends: dict[DeviceKind, float] = {}  # timed blocks set from here
        self._alerts: list[Alert] = []
        self._next_id = 1
        self._settled: dict[AlertKey, None] = {}  # answered for this process run: no re-ask
        self._checking: set[AlertKey] = set()
        self._last_stop: dict[AlertKey, float] = {}
        self._paused_until: float | None = None
        self._pause_timer = QTimer(self)
        self._pause_timer.setSingleShot(True)
        self._pause_timer.timeout.connect(self.resume)
        self._block_timer = QTimer(self)
        self._block_timer.timeout.connect(self.refresh_blocks)

    # -- queries -----------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        users = tuple(sorted(self._users.values(), key=lambda u: (u.since, str(u.key))))
        paused = self._paused_until is not None
        return Snapshot(tray_state(users, self._blocked, paused, bool(self._degraded)),
                        users, tuple(self._degraded.values()), frozenset(self._blocked),
                        self._paused_until, tuple(sorted(self._block_ends.items())))

    def current_alert(self) -> AlertView | None:
        if not self._alerts:
            return None
        return AlertView(self._alerts[0], 1, len(self._alerts))

    def pending_alerts(self) -> tuple[Alert, ...]:
        return tuple(self._alerts)

    @property
    def paused(self) -> bool:
        return self._paused_until is not None

    # -- start -------------------------------------------------------------------------
    def start(self, block_check_ms: int = 60_000) -> None:
        """Learn which blocks are in force, and look again every minute: a timed block (set
        from the command line) ends on time, and a block set elsewhere shows in the tray."""
        self.refresh_blocks()
        self._block_timer.start(block_check_ms)

    @Slot()
    def refresh_blocks(self) -> None:
        # The action lane: lifting an expired block restores device nodes (may take seconds).
        self.workers.submit(lambda: frozenset(self._actions.blocked()), self._got_blocked)

    def _got_blocked(self, kinds: frozenset[DeviceKind]) -> None:
        if kinds != self._blocked:
            self._blocked = set(kinds)
            for kind in set(self._block_ends) - kinds:
                del self._block_ends[kind]
            self._changed()

    # -- monitor events ----------------------------------------------------------------
    @Slot(object)
    def handle_event(self, ev: object) -> None:
        if isinstance(ev, HealthEvent):
            if ev.degraded is None:
                self._degraded.pop(ev.source, None)
            else:
                self._degraded[ev.source] = ev.degraded
            self._changed()
        elif isinstance(ev, UsageEvent):
            if ev.type is EventType.STARTED:
                self._started(ev.usage, ev.at, ev.storm)
            elif ev.type is EventType.STOPPED:
                self._stopped(ev.usage, ev.at)
            elif ev.type is EventType.PROBE_STORM:  # once per storm (core/probes.py)
                self._raise(ev.usage, ev.at, why=ev.usage.note, storm=True)
            # a probe: history only, never a popup

    def _started(self, usage: Usage, at: float, storm: bool = False) -> None:
        akey = alert_key(usage)
        allowed = any(u.allowed for u in self._users.values() if alert_key(u.usage) == akey)
        self._users[usage.key] = LiveUser(usage, at, allowed)
        self._changed()
        self._look_up_origin(usage)
        self._ask_about(usage, at, storm)

    def _ask_about(self, usage: Usage, at: float, storm: bool = False, note: str = "") -> None:
        """Judge ``usage`` and ask the person when nothing decides it. ``storm``: its app
        is probe-storming (core/probes.py): the rules act now, the question only if the
        open lasts (:meth:`_ask_later`), and nothing is paused before that. ``note``: why
        it is asked about, shown first."""
        akey = alert_key(usage)
        if akey in self._settled or self._pending(akey) is not None:
            return
        # A pause silences questions, not the rules: a kill or block rule still applies.
        if self.paused and self._rules is None:
            return
        process, rules = usage.process, self._rules
        if process is None and rules is None:
            if storm:
                self._ask_later(usage, at)
            else:
                self._raise(usage, at)
            return
        if akey in self._checking:
            return
        self._checking.add(akey)
        kind = usage.device.kind

        def check() -> tuple[AllowCheck | RuleOutcome | None, str, ExeOrigin | None,
                             float | None]:
            # The allow list first: an app the user allowed is never judged by the mode.
            allowed = None if process is None else self._allow.check(process, kind)
            verdict: AllowCheck | RuleOutcome | None = allowed
            # Why an app the user trusted is asked about again (a changed binary...).
            why = "" if allowed is None else str(getattr(allowed, "asks_again", "") or "")
            if (allowed is None or not allowed.allowed) and rules is not None:
                ruled = rules.judge(usage)
                verdict, why = ruled, why or "; ".join(ruled.notes)
            origin = None
            gate = verdict.gate if isinstance(verdict, RuleOutcome) else None
            asks = verdict is None or gate in (Gate.ASK, Gate.FREEZE) \
                or (not isinstance(verdict, RuleOutcome) and not verdict.allowed)
            if storm:  # asked later if at all: nothing paused, nothing looked up yet
                return verdict, why, None, None
            # Paused (until when) on the io lane before the alert is drawn, or by the service.
            paused = self._hold(akey, usage, verdict, gate is Gate.FREEZE) if asks else None
            if asks and process is not None and self._origin_of is not None:
                origin = self._origin_of(process)  # for the alert only
            return verdict, "; ".join(w for w in (note, why) if w), origin, paused

        self.io.submit(check, lambda v: self._checked(usage, at, v[0], v[1], origin=v[2],
                                                      paused=v[3], storm=storm),
                       lambda _e: self._checked(usage, at, None, storm=storm))

    def _checked(self, usage: Usage, at: float,
                 verdict: AllowCheck | RuleOutcome | None, why: str = "", *,
                 origin: ExeOrigin | None = None, paused: float | None = None,
                 storm: bool = False) -> None:
        akey = alert_key(usage)
        self._checking.discard(akey)
        if isinstance(verdict, RuleOutcome):
            if verdict.gate not in (Gate.ASK, Gate.FREEZE):
                self._ruled(usage, verdict)
                return
            verdict = None
        if verdict is not None and verdict.allowed:
            log.info("allowed by the allow list: %s", literal(verdict.reason, 300))
            self._remember(akey)
            self._mark_allowed(akey)
            self._record(usage, Choice.ALWAYS_ALLOW, DecidedBy.ALLOW_LIST)
            return
        if self.paused or akey in self._settled or self._pending(akey) is not None:
            if paused is not None and self._pending(akey) is None:  # else it keeps its pause
                self._release(akey, None)  # no alert after all: nothing stays paused
            return
        if storm and paused is None:
            self._ask_later(usage, at)
            return
        self._raise(usage, at, why, origin, paused)

    def _look_up_origin(self, usage: Usage) -> None:
        """Where the app comes from, for the status (a sandboxed app by its app id): on the
        io lane, before the allow check, which then finds it cached."""
        p, origin_of = usage.process, self._origin_of
        if p is None or origin_of is None:
            return
        key = usage.key

        def known(origin: ExeOrigin | None) -> None:
            user = self._users.get(key)
            if origin is not None and user is not None:
                self._users[key] = replace(user, origin=origin)
                self._changed()

        self.io.submit(lambda: origin_of(p), known, lambda _e: None)

    def _stopped(self, usage: Usage, at: float) -> None:
        self._users.pop(usage.key, None)
        akey = alert_key(usage)
        still_live = any(alert_key(u.usage) == akey for u in self._users.values())
        if not still_live:
            self._last_stop[akey] = at
            if len(self._last_stop) > _MAX_REMEMBERED:
                self._last_stop.pop(next(iter(self._last_stop)))
            for i, alert in enumerate(self._alerts):
                if alert_key(alert.usage) == akey and alert.stopped_at is None:
                    self._alerts[i] = replace(alert, stopped_at=at)
                    self._alerts_changed()
        self._changed()

    # -- alerts ------------------------------------------------------------------------
    def _raise(self, usage: Usage, at: float, why: str = "",
               origin: ExeOrigin | None = None, paused: float | None = None, *,
               storm: bool = False) -> None:
        akey = alert_key(usage)
        live = any(alert_key(u.usage) == akey for u in self._users.values())
        stopped_at = None if live else self._last_stop.get(akey, self.clock.now())
        alert = Alert(self._next_id, usage, at, stopped_at, why, origin, paused is not None,
                      paused, storm)
        self._next_id += 1
        self._alerts.append(alert)
        self.alert_raised.emit(alert)
        self._alerts_changed()

    def _pending(self, akey: AlertKey) -> Alert | None:
        return next((a for a in self._alerts if alert_key(a.usage) == akey), None)

    def _take(self, alert_id: int, release: bool = True) -> Alert | None:
        """Remove an alert from the queue; ``release``: continue its paused app."""
        for i, alert in enumerate(self._alerts):
            if alert.id == alert_id:
                del self._alerts[i]
                if release and alert.paused:
                    self._release(alert_key(alert.usage), None)
                self.alert_resolved.emit(alert_id)
                self._alerts_changed()
                return alert
        return None

    def _alerts_changed(self) -> None:
        self.alert_changed.emit(self.current_alert())

    @Slot(int, str)
    def decide(self, alert_id: int, decision: str, decided_by: str = DecidedBy.POPUP) -> bool:
        """Apply the answer to an alert; False if it was already answered (another channel
        got there first) or never existed."""
        alert = self._take(alert_id, release=False)
        if alert is None:
            return False
        choice = Choice(decision)
        self.alert_decided.emit(alert, choice.value, decided_by)
        if alert.paused:
            akey, kind = alert_key(alert.usage), alert.usage.device.kind
            if choice is Choice.BLOCK and kind in (DeviceKind.CAMERA, DeviceKind.MICROPHONE):
                self._thaw_after_block.setdefault(kind, []).append(akey)  # _block_done
            else:
                self._release(akey, choice.value)  # a kill: SIGTERM, then SIGCONT
        self._apply(alert.usage, choice, decided_by + (FROZEN_MARK if alert.paused else ""))
        return True

    @Slot(int)
    def time_out(self, alert_id: int) -> None:
        self.decide(alert_id, self.settings.default_decision, DecidedBy.TIMEOUT)

    @Slot(int)
    def dismiss(self, alert_id: int) -> None:
        """Drop an alert without a decision (its app stopped and nobody answered)."""
        alert = self._take(alert_id)
        if alert is not None:
            self.alert_decided.emit(alert, "ignore", DecidedBy.TIMEOUT.value)

    # -- intents from the tray menu and the status window -------------------------------
    @Slot(object, str)
    def act_on_user(self, key: UsageKey, decision: str) -> None:
        user = self._users.get(key)
        if user is None:
            self.say("Nothing to do", "That app already stopped using the device.")
            return
        pending = self._pending(alert_key(user.usage))
        if pending is not None:
            self.decide(pending.id, decision, DecidedBy.TRAY)
        else:
            self._apply(user.usage, Choice(decision), DecidedBy.TRAY)

    @Slot(float)
    def pause(self, seconds: float) -> None:
        """No popups or notifications for ``seconds``; pending alerts are dropped."""
        self._paused_until = self.clock.now() + seconds
        self._pause_timer.start(max(0, int(seconds * 1000)))
        for alert in list(self._alerts):
            self._take(alert.id)
        self._changed()

    @Slot()
    def resume(self) -> None:
        self._pause_timer.stop()
        if self._paused_until is not None:
            self._paused_until = None
            self._changed()

    @Slot()
    def request_history(self) -> None:
        self.history_requested.emit()

    @Slot()
    def request_settings(self) -> None:
        self.settings_requested.emit()

    @Slot()
    def request_show(self) -> None:
        self.show_requested.emit()

    @Slot()
    def request_quit(self) -> None:
        self.quit_requested.emit()

    def _record(self, usage: Usage, decision: Choice, decided_by: str) -> None:
        self.io.submit(lambda: self._history.record_decision(usage, decision.value, decided_by))

    def _remember(self, akey: AlertKey) -> None:
        self._settled[akey] = None
        if len(self._settled) > _MAX_REMEMBERED:
            self._settled.pop(next(iter(self._settled)))

    def _mark_allowed(self, akey: AlertKey) -> None:
        for key, user in list(self._users.items()):
            if alert_key(user.usage) == akey:
                self._users[key] = replace(user, allowed=True)
        self._changed()

    def _changed(self) -> None:
        self.changed.emit(self.snapshot())
