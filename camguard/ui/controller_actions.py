"""The controller's actions and what it says about them: kill, block (for a while, until
unblocked, or everything at once), always allow, and the feedback in plain words.

A mixin of :class:`~camguard.ui.controller.AppController` (its state and queues live there);
split out so each file stays readable.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QTimer, Slot

from camguard.core.blocks import ActionResult, Outcome
from camguard.core.clock import Clock
from camguard.core.decision import Choice
from camguard.core.freeze import FreezeWhileAsking
from camguard.core.models import DeviceKind, Usage
from camguard.core.state import UsageKey
from camguard.core.text import literal
from camguard.ui.bridge import Worker
from camguard.ui.model import AlertKey, Feedback, Level, LiveUser, alert_key
from camguard.ui.ports import ActionsPort, AlertSettings, AllowPort, Gate, RuleOutcome

log = logging.getLogger("camguard.ui.controller")


class ActionsMixin:
    """Needs the controller's clock, ports, lanes, block state and signals."""

    clock: Clock
    io: Worker
    workers: Worker
    message: Any  # Signal(str, str)
    feedback: Any  # Signal(object)
    _actions: ActionsPort
    _allow: AllowPort
    _blocked: set[DeviceKind]
    _block_ends: dict[DeviceKind, float]
    settings: AlertSettings
    _freeze: FreezeWhileAsking | None
    _thaw_after_block: dict[DeviceKind, list[AlertKey]]
    _users: dict[UsageKey, LiveUser]

    def refresh_blocks(self) -> None:
        raise NotImplementedError

    def _record(self, usage: Usage, decision: Choice, decided_by: str) -> None:
        raise NotImplementedError

    def _remember(self, akey: AlertKey) -> None:
        raise NotImplementedError

    def _mark_allowed(self, akey: AlertKey) -> None:
        raise NotImplementedError

    def _changed(self) -> None:
        raise NotImplementedError

    def _ask_about(self, usage: Usage, at: float, storm: bool = False, note: str = "") -> None:
        raise NotImplementedError

    @Slot(object)
    def block_kind(self, kind: DeviceKind, seconds: float | None = None) -> None:
        """Switch ``kind`` off for ``seconds`` (None: until the person unblocks it)."""
        until = None if seconds is None else self.clock.now() + seconds
        self.workers.submit(lambda: self._actions.block_device(kind, seconds),
                            lambda r: self._block_done(kind, r, until=until),
                            self._failed(f"Could not block the {kind.value}", kind))

    @Slot(object, float)
    def block_kind_for(self, kind: DeviceKind, seconds: float) -> None:
        self.block_kind(kind, seconds)

    @Slot()
    def panic(self) -> None:
        """Everything off at once, until the person turns it back on."""
        for kind in (DeviceKind.CAMERA, DeviceKind.MICROPHONE):
            if kind not in self._blocked:
                self.block_kind(kind)

    @Slot(object)
    def unblock_kind(self, kind: DeviceKind, password: str | None = None) -> None:
        """Switch ``kind`` back on (the shell asks for the parental lock first)."""
        def done(result: ActionResult) -> None:
            if result.ok:
                self._blocked.discard(kind)
                self._block_ends.pop(kind, None)
                self._changed()
            self._report(result, f"{kind.value.capitalize()} unblocked",
                         f"Apps can use the {kind.value} again.",
                         f"Could not unblock the {kind.value}", kind)

        self.workers.submit(lambda: self._actions.unblock_device(kind, password), done,
                            self._failed(f"Could not unblock the {kind.value}", kind))

    # -- freeze while asking (core/freeze.py) ---------------------------------------------
    def _hold(self, akey: AlertKey, usage: Usage, verdict: object, rule_says: bool
              ) -> float | None:
        """Pause the app an alert is about to ask about, when the setting or a "freeze"
        rule wants it (unless the service paused it: ``verdict`` says so); None when it is
        not paused, else the wall time the freezer lets it go by at the latest. The io
        lane (a signal and a small file)."""
        if isinstance(verdict, RuleOutcome) and verdict.paused:
            return verdict.paused_until
        if self._freeze is None or not (rule_says or self.settings.freeze):
            return None
        result = self._freeze.hold(akey, usage.process)
        if not result.ok:
            log.info("%s", literal(result.message, 300))
            return None
        return self._freeze.paused_until(akey)

    def _ask_later(self, usage: Usage, at: float) -> None:
        """An open by a probe-storming app (core/probes.py) that the rules left to the
        person: asked about only if it is still open ``storm_wait`` seconds after it began.
        One that closed sooner was a probe, already in history; the storm alert named it."""
        wait = max(0.0, at + self.settings.storm_wait - self.clock.now())
        QTimer.singleShot(int(wait * 1000) + 1, lambda: self._storm_due(usage, at))

    def _storm_due(self, usage: Usage, at: float) -> None:
        user = self._users.get(usage.key)
        if user is not None and self.clock.now() - at < self.settings.storm_wait:
            self._ask_later(usage, at)  # Qt's coarse timers may fire up to 5% early
            return
        if user is not None and user.since == at:  # the same session, still open
            kind = usage.device.kind.value
            self._ask_about(usage, at, note=f"It probed the {kind} again and again; this "
                            f"time it kept it open for {self.settings.storm_wait:g} s")

    def _release(self, akey: AlertKey, choice: str | None) -> None:
        """Continue (``choice`` "killed": end) the app paused for ``akey``, on the io lane."""
        freeze = self._freeze
        if freeze is not None:
            self.io.submit(lambda: freeze.release(akey, choice))

    # -- applying decisions ------------------------------------------------------------
    def _ruled(self, usage: Usage, outcome: RuleOutcome) -> None:
        """Carry out a rule's allow, kill or block (no alert; the user is told which app and
        which rule)."""
        text = literal(outcome.explanation, 500)
        log.info("rule for %s on %s: %s", app_name(usage), usage.device.kind.value, text)
        app, kind = plain_name(usage), usage.device.kind
        if outcome.gate is Gate.ALLOW:
            akey = alert_key(usage)
            self._remember(akey)
            self._mark_allowed(akey)
            self._record(usage, Choice.ALLOW_ONCE, outcome.decided_by)
            if outcome.notify:
                self.say(f"{app} is using the {kind.value}", sentence(text), kind=kind)
            return
        stopped = "closed" if outcome.gate is Gate.KILL else "stopped"
        self.say(f"{app} was {stopped}: it may not use the {kind.value}", sentence(text),
                 Level.WARNING, kind)
        if outcome.done:
            return  # the service ended it or blocked the device itself, and recorded it
        self._apply(usage, Choice.KILL if outcome.gate is Gate.KILL else Choice.BLOCK,
                    outcome.decided_by, quiet=True)

    def _apply(self, usage: Usage, decision: Choice, decided_by: str, *,
               quiet: bool = False) -> None:
        """Carry out ``decision``; ``quiet``: say only what failed (a rule's own action,
        already announced with the rule's name)."""
        akey = alert_key(usage)
        name = app_name(usage)
        app = plain_name(usage)
        log.info("decision %s by %s for %s on %s", decision.value, decided_by, name,
                 usage.device.kind.value)
        self._record(usage, decision, decided_by)
        process, kind = usage.process, usage.device.kind
        if decision in (Choice.ALLOW_ONCE, Choice.ALWAYS_ALLOW):
            self._remember(akey)
        if decision is Choice.ALWAYS_ALLOW:
            if process is None:
                self._report(ActionResult(
                    Outcome.FAILED, "camguard cannot see that app, so it cannot allow it"),
                    "", "", "Could not always allow that app", kind)
                return

            def allowed(result: ActionResult) -> None:
                if result.ok:
                    self._mark_allowed(akey)
                self._report(result, f"{app} may always use the {kind.value}",
                             "camguard will not ask about this program again.",
                             f"Could not always allow {app}", kind)

            self.io.submit(lambda: self._allow.allow(process, kind), allowed,
                           self._failed(f"Could not always allow {app}", kind))
        elif decision is Choice.KILL:
            if process is None:
                self._report(ActionResult(
                    Outcome.NOT_FOUND, "camguard cannot see that process, so it cannot end it"),
                    "", "", "Could not close that app", kind)
                return
            self.workers.submit(
                lambda: self._actions.kill(process),
                lambda r: self._report(r, f"{app} was closed",
                                       f"It no longer has the {kind.value}.",
                                       f"Could not close {app}", kind, quiet=quiet),
                self._failed(f"Could not close {app}", kind))
        elif decision is Choice.BLOCK and kind in (DeviceKind.SCREEN, DeviceKind.LOCATION):
            self._report(ActionResult(
                Outcome.REFUSED, f"{kind.value} has no device to block: use Kill app"),
                "", "", f"Could not block the {kind.value}", kind)
        elif decision is Choice.BLOCK:
            self.workers.submit(lambda: self._actions.block_device(kind),
                                lambda r: self._block_done(kind, r, quiet=quiet),
                                self._failed(f"Could not block the {kind.value}", kind))

    def _block_done(self, kind: DeviceKind, result: ActionResult, *,
                    quiet: bool = False, until: float | None = None) -> None:
        for akey in self._thaw_after_block.pop(kind, []):  # paused until the block held
            self._release(akey, None)
        if result.ok:
            self._blocked.add(kind)
            self._block_ends.pop(kind, None)
            if until is not None:
                self._block_ends[kind] = until
                # Lifted on time (the minute's check would be up to a minute late).
                QTimer.singleShot(max(0, int((until - self.clock.now()) * 1000)) + 500,
                                  self.refresh_blocks)
            self._changed()
        when = ("until you unblock it" if until is None else
                "until " + time.strftime("%H:%M", time.localtime(until)))
        # Without root or the helper only this account's apps are kept off: say so.
        said = "; ".join((result.message, *result.details))
        at = said.find("other accounts are not covered")
        caveat = said[at:].split("; ")[0].rstrip(".") if at >= 0 else ""
        ok_text = (f"Your apps cannot use the {kind.value} {when}. "
                   f"{caveat[0].upper()}{caveat[1:]}." if caveat else
                   f"No app can use the {kind.value} {when}.")
        self._report(result, f"{kind.value.capitalize()} blocked", ok_text,
                     f"Could not block the {kind.value}", kind, quiet=quiet)

    def say(self, title: str, text: str, level: Level = Level.INFO,
            kind: DeviceKind | None = None) -> None:
        """Tell the person something (the shell shows it; ``message`` carries the words)."""
        self.message.emit(title, text)
        self.feedback.emit(Feedback(title, text, level, kind))

    def _report(self, result: ActionResult, ok_title: str, ok_text: str, failed_title: str,
                kind: DeviceKind | None = None, *, quiet: bool = False) -> None:
        """An action's result in plain words; a failure says why (the action's own words)
        and looks like one."""
        (log.info if result.ok else log.warning)("%s: %s", ok_title if result.ok
                                                 else failed_title, result.message)
        if result.ok:
            if not quiet:
                self.say(ok_title, ok_text, Level.INFO, kind)
            return
        level = Level.WARNING if result.outcome is Outcome.NOT_FOUND else Level.ERROR
        self.say(failed_title, sentence(literal(result.message, 500)), level, kind)

    def _failed(self, title: str, kind: DeviceKind | None = None
                ) -> Callable[[BaseException], None]:
        def failed(exc: BaseException) -> None:
            if kind is not None:  # a block that failed: its paused apps continue
                for akey in self._thaw_after_block.pop(kind, []):
                    self._release(akey, None)
            self._report(ActionResult(Outcome.FAILED, f"internal error: {exc}"), "", "",
                         title, kind)

        return failed


def plain_name(usage: Usage) -> str:
    """The app as a person calls it: its name (no pid), or "An app camguard cannot see"."""
    p = usage.process
    if p is None:
        return "An app camguard cannot see"
    return literal(p.name or os.path.basename(p.exe or "") or f"process {p.pid}", 48)


def sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?", ")")) else text + "."


def app_name(usage: Usage) -> str:
    p = usage.process
    if p is None:
        return "an unseen process"
    return f"{literal(p.name or os.path.basename(p.exe or '') or 'an unnamed app', 48)} " \
        f"(pid {p.pid})"
