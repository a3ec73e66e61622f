"""The tray as a client of the camguard service: its events instead of a Monitor, its kill
switch instead of the local one (the service watches every account and holds the privileges),
and its history instead of the user's database (:func:`service_history`).

:class:`ServiceFeed` has the Monitor's ``add_sink``/``start``/``stop``, so the tray's shell
takes it in the Monitor's place: a thread reads the service's ``watch`` stream and calls the
sinks with the same core events a Monitor would. It first learns who uses a device already
(``status``), and after a lost connection it reconnects and reports what changed meanwhile,
so the tray never shows a user that is gone or misses one that came.

Everything here rides on :class:`~camguard.app.guard_service.ServiceGuard`, the same
requests and the same reading of the answers as the commands (``camguard watch``,
``status``, ``history``): one client side of the service.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Set
from pathlib import Path
from typing import Any

from camguard.app.guard import GuardError, Reply, Watching, WatchItem
from camguard.app.guard_service import ServiceGuard
from camguard.app.service_decode import audit_from_dict, coverage_from_doc
from camguard.core.blocks import ActionResult, BlockOptions, BlockTarget, Outcome
from camguard.core.clock import Clock
from camguard.core.coverage import Coverage
from camguard.core.decision import DecidedBy
from camguard.core.freeze import MAX_FREEZE
from camguard.core.models import (
    Degraded,
    DeviceKind,
    EventType,
    HealthEvent,
    MonitorEvent,
    ProcessRef,
    Usage,
    UsageEvent,
)
from camguard.core.rules import Mode, Rule
from camguard.core.state import GuardState, UsageKey
from camguard.core.text import literal
from camguard.monitor import Sink
from camguard.store.rules import RuleFile
from camguard.ui.history_window import DEFAULT_LIMIT, HistoryPage, HistoryQuery
from camguard.ui.ports import Gate, RuleOutcome

log = logging.getLogger(__name__)
_PEOPLE = frozenset(d.value for d in DecidedBy)

SOURCE = "service"  # the degraded source shown while the service cannot be reached
RETRY_MAX = 5.0


class ServiceFeed:
    """Usage and health events from the service, on a thread of its own."""

    def __init__(self, guard: ServiceGuard, clock: Clock, *, retry_max: float = RETRY_MAX,
                 on_connect: Callable[[], None] | None = None,
                 verdicts: ServiceVerdicts | None = None,
                 answers: Callable[[], bool] | None = None) -> None:
        self._guard = guard
        self._answers = answers  # whether this tray answers now (app/service_asking.py)
        self._verdicts = verdicts  # the service's decisions, for the tray's rules port
        self._on_connect = on_connect  # each time a watch stream opens (send own rules)
        self._clock = clock
        self._retry_max = retry_max
        self._sinks: list[Sink] = []
        self._live: dict[UsageKey, tuple[Usage, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: Watching | None = None
        self._lock = threading.Lock()
        self._down: str | None = None  # why the service cannot be reached (None: it can)
        self.connected = threading.Event()  # set while a watch stream is open (tests)

    def add_sink(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="camguard-service-feed",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            watch = self._watch
        if watch is not None:
            watch.close()  # wakes the thread out of its read
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # -- the feed thread -------------------------------------------------------------------
    def _run(self) -> None:
        wait = 0.2
        while not self._stop.is_set():
            try:
                self._session()
                wait = 0.2
            except GuardError as exc:
                self._health(literal(str(exc), 300))
            except Exception:  # a bug must not end the feed for good
                log.exception("reading the service's events failed")
                self._health("internal error reading the service's events (see the log)")
            self.connected.clear()
            if self._stop.wait(wait):
                return
            wait = min(self._retry_max, wait * 2)

    def _session(self) -> None:
        # Subscribe first, then ask who is live: nothing can fall between the two (an event
        # also in the answer is recognised below and not reported twice).
        watch = self._guard.watch(self._answers is not None and self._answers())
        with self._lock:
            if self._stop.is_set():
                watch.close()
                return
            self._watch = watch
        try:
            self._sync(self._guard.status().state)
            self._health(None)
            if self._on_connect is not None:
                try:
                    self._on_connect()
                except Exception:
                    log.exception("after connecting to the service")
            self.connected.set()
            for item in watch:
                self._handle(item)
            if not self._stop.is_set():
                raise GuardError("the service closed the event stream")
        finally:
            with self._lock:
                self._watch = None
            watch.close()

    def _sync(self, state: GuardState) -> None:
        now = self._clock.now()
        current = {u.key: u for u in state.usages}
        for key in [k for k in self._live if k not in current]:
            usage, since = self._live.pop(key)
            self._emit(UsageEvent(EventType.STOPPED, usage, now, since))
        for key, usage in current.items():
            if key not in self._live:
                since = state.first_seen.get(key, now)
                self._live[key] = (usage, since)
                if self._verdicts is not None:
                    self._verdicts.settled(key)  # decided before this tray connected
                self._emit(UsageEvent(EventType.STARTED, usage, since))

    def _handle(self, item: WatchItem) -> None:
        ev, doc = item.event, item.doc
        if ev is None:
            if doc.get("event") == "decision" and self._verdicts is not None:
                self._verdicts.heard(doc)
            if doc.get("event") == "decision":
                log.info("service rule: %s (%s)", literal(str(doc.get("explanation")), 300),
                         doc.get("outcome") or "no action")
            return
        if isinstance(ev, UsageEvent):
            key = ev.usage.key
            if ev.type is EventType.STARTED:
                if key in self._live:
                    return  # already reported from the status answer
                self._live[key] = (ev.usage, ev.at)
            elif ev.type is EventType.STOPPED and self._live.pop(key, None) is None:
                return  # never reported as started
        self._emit(ev)

    def _health(self, why: str | None) -> None:
        if why == self._down:
            return
        if why is not None:
            log.warning("camguard service: %s", why)
        self._down = why
        self._emit(HealthEvent(SOURCE, None if why is None else Degraded(SOURCE, why),
                               self._clock.now()))

    def _emit(self, ev: MonitorEvent) -> None:
        for sink in self._sinks:
            try:
                sink(ev)
            except Exception:
                log.exception("an event sink failed")


def _result(reply: Reply) -> ActionResult:
    """The tray's ActionResult from the Guard's Reply to a kill, block or unblock."""
    text = "; ".join(f"{p.kind}: {p.message}" for p in reply.parts)
    return ActionResult(reply.outcome, literal(text or reply.message or reply.outcome.value,
                                               2000))


class ServiceActions:
    """The tray's kill switch through the service (an :class:`~camguard.ui.ports.ActionsPort`)
    over the same :class:`~camguard.app.guard_service.ServiceGuard` the commands use.
    Worker threads; each call is one request (the service may take seconds to end a
    process). The service allows only what the caller's account may do."""

    def __init__(self, guard: ServiceGuard) -> None:
        self._guard = guard
        self._blocked: frozenset[DeviceKind] = frozenset()

    def _call(self, op: str, fn: Callable[[], Reply]) -> ActionResult:
        try:
            return _result(fn())
        except GuardError as exc:
            outcome = Outcome.REFUSED if exc.outcome == Outcome.REFUSED.value \
                else Outcome.FAILED
            return ActionResult(outcome, f"{op}: {literal(str(exc), 300)}")

    def kill(self, process: ProcessRef) -> ActionResult:
        return self._call("kill", lambda: self._guard.kill(process.pid, process.create_time,
                                                           force=False))

    def block_device(self, kind: DeviceKind, duration: float | None = None) -> ActionResult:
        return self._call("block", lambda: self._guard.block(
            BlockTarget(kind.value), duration, BlockOptions()))

    def unblock_device(self, kind: DeviceKind, password: str | None = None) -> ActionResult:
        # The tray asked for the password already (LockGate): it is the answer when the
        # service asks for one.
        return self._call("unblock", lambda: self._guard.unblock(BlockTarget(kind.value),
                                                                 lambda: password))

    def blocked(self) -> Set[DeviceKind]:
        try:
            blocks = self._guard.blocks()
        except GuardError as exc:
            # What was last known stays shown: the service being away unblocks nothing.
            log.warning("blocks: %s", exc)
            return self._blocked
        kinds = set()
        for b in blocks.blocks:
            with contextlib.suppress(ValueError):
                kinds.add(DeviceKind(b.kind))
        self._blocked = frozenset(kinds)
        return self._blocked

    def lock_is_set(self) -> bool:
        """Whether the service's parental lock is set (unblock then needs its password)."""
        return self._guard.lock_status().doc.get("set") is True


# How long the tray waits for the service's decision about a usage before asking the person
# itself: the service announces it once it acted (ending a process waits up to ~8 s).
DECISION_WAIT = 10.0
_GATES = {"allow": Gate.ALLOW, "ask": Gate.ASK, "freeze": Gate.FREEZE, "kill": Gate.KILL,
          "block-device": Gate.BLOCK}
_MAX_HEARD = 512


class ServiceVerdicts:
    """The tray's :class:`~camguard.ui.ports.RulesPort` in service mode: the service decides
    each usage (the administrator's rules and this account's own, core.decision) and acts;
    the tray waits for that decision (the ``decision`` events of its watch stream) instead
    of deciding a second time. A rule's allow, kill or block is then only told to the
    person (``done``: the service acted and recorded it); "ask" raises the alert."""

    def __init__(self, wait: float = DECISION_WAIT) -> None:
        self._wait = wait
        self._heard: dict[UsageKey, Mapping[str, Any] | None] = {}
        self._cond = threading.Condition()

    def heard(self, doc: Mapping[str, Any]) -> None:
        """A decision event from the service (the feed's thread)."""
        pid = doc.get("pid")
        key: UsageKey = (str(doc.get("kind")), str(doc.get("device")), pid,
                         doc.get("create_time") if pid is not None else None)
        self._keep(key, doc)

    def settled(self, key: UsageKey) -> None:
        """A usage the service decided before the tray was connected: no event will come."""
        self._keep(key, None)

    def _keep(self, key: UsageKey, doc: Mapping[str, Any] | None) -> None:
        with self._cond:
            self._heard[key] = doc
            while len(self._heard) > _MAX_HEARD:
                self._heard.pop(next(iter(self._heard)))
            self._cond.notify_all()

    def judge(self, usage: Usage) -> RuleOutcome:
        with self._cond:
            self._cond.wait_for(lambda: usage.key in self._heard, self._wait)
            doc = self._heard.get(usage.key)
        if doc is None:
            return RuleOutcome(Gate.ASK, "the service did not decide; asking")
        gate = _GATES.get(str(doc.get("verdict")), Gate.ASK)
        label = doc.get("rule_label") or doc.get("rule_id")
        by = f"rule:{label}" if label else f"mode:{doc.get('mode')}"
        return RuleOutcome(gate, literal(str(doc.get("explanation") or gate.value), 500), by,
                           notify=doc.get("would") is not None,
                           done=gate in (Gate.KILL, Gate.BLOCK),
                           paused=doc.get("paused") is True,
                           paused_until=_paused_until(doc))


class ServiceDecisions:
    """The tray's :class:`~camguard.ui.ports.HistoryPort` in service mode: a person's
    answer to an alert is recorded on the service's session of that usage (``decide``),
    in the one history there is. The service records only what the caller may (its own
    sessions; an admin any) and never over a rule's decision."""

    def __init__(self, guard: ServiceGuard) -> None:
        self._guard = guard

    def record_decision(self, usage: Usage, decision: str, decided_by: str) -> None:
        if decided_by not in _PEOPLE:
            return  # a rule's or the mode's: the service decided and recorded it itself
        try:
            answer = self._guard.decide(usage, decision, decided_by)
        except GuardError as exc:
            log.warning("the service did not record %s by %s: %s", decision, decided_by,
                        literal(str(exc), 300))
            return
        if answer.get("ok") is not True:
            log.warning("the service did not record %s by %s: %s", decision, decided_by,
                        literal(str(answer.get("error")), 300))


class ServiceRuleFile(RuleFile):
    """The rules file the settings window edits, in service mode: each save also hands the
    rules to the service (on a thread of its own: the window never waits for the socket),
    which enforces them on this account's processes. :meth:`send` is what the feed calls
    each time it connects."""

    def __init__(self, guard: ServiceGuard, path: Path | None = None) -> None:
        super().__init__(path)
        self._guard = guard

    def save(self, rules: Iterable[Rule], mode: Mode | None = None,
             now: float | None = None) -> None:
        super().save(rules, mode, now)
        threading.Thread(target=self.send, name="camguard-send-rules", daemon=True).start()

    def send(self) -> None:
        contents = self.load()
        try:
            answer = self._guard.send_own_rules(contents)
        except GuardError as exc:
            log.warning("could not hand your rules to the service: %s", literal(str(exc), 300))
            return
        if answer.get("ok") is not True:
            log.warning("the service did not take your rules: %s",
                        literal(str(answer.get("error")), 300))
        for problem in answer.get("problems") or []:
            log.warning("the service left out a rule: %s", literal(str(problem), 300))


def service_history(guard: ServiceGuard, limit: int = DEFAULT_LIMIT) -> HistoryQuery:
    """The History window's query in service mode: the service's history (what the caller
    may see), the one copy there is, read as ``camguard history`` reads it. Raises
    GuardError when the service cannot answer (the window shows why)."""

    def query(since: float | None, until: float | None) -> HistoryPage:
        got = guard.history({"since": since, "until": until}, limit + 1)
        return HistoryPage(tuple(got.records[:limit]), tuple(map(audit_from_dict, got.gaps)),
                           len(got.records) > limit or bool(got.warnings))

    return query


def service_coverage(guard: ServiceGuard) -> Callable[[], list[Coverage] | None]:
    """The main window's coverage in service mode: what the service's sources can see, from
    its ``status`` answer (as ``camguard status --json`` reads it); None when the service
    does not report it. Raises GuardError when the service cannot answer."""

    def coverage() -> list[Coverage] | None:
        return coverage_from_doc(guard.status().doc)

    return coverage


def _paused_until(doc: Mapping[str, Any]) -> float | None:
    """When the service lets the app it paused go at the latest (its freezer's limit)."""
    until = doc.get("paused_until")
    if doc.get("paused") is not True:
        return None
    if isinstance(until, int | float) and not isinstance(until, bool):
        return float(until)
    return time.time() + MAX_FREEZE  # a service that did not say: its default limit
