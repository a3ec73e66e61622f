"""Rules enforced for every account: each new usage is decided (core.decision.evaluate) and a
kill or block-device verdict is carried out, on a worker thread so the monitor never waits.

The administrator's rules (the managed policy's, the service's file) decide for everyone;
an account's own rules (service/accounts.py, pushed by its tray) decide only about that
account's processes and only as core.decision.stricter_or_asked allows, and a
block-device verdict of theirs is an ordinary account's block (authorization.py): refused
while another account holds the device, when the program of theirs is ended instead.

Nobody sits at the service to answer an "ask": such a usage is left alone and the decision
is published to watch clients (the tray asks its user and can then request a kill). With a
"freeze" verdict, or "ask" while the policy's ``freeze_while_asking`` is on, the app is
paused (core/freeze.py, as root: anyone's) until the account's answer reaches the service
(:meth:`Enforcement.answered`, the ``decide`` request), the usage ends, the freezer's
limit passes or the service stops; and only while a tray that answers for that account is
connected with its alerts on (service/enforcement_freeze.py).
"""

from __future__ import annotations

import datetime as _dt
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from camguard.core.blocks import (
    ActionResult,
    BlockOptions,
    BlockReport,
    BlockTarget,
    Outcome,
    ProcessKiller,
)
from camguard.core.clock import Clock
from camguard.core.decision import (
    Decision,
    Hasher,
    OriginOf,
    RuleSource,
    choice_of,
    decided_by,
    evaluate,
)
from camguard.core.freeze import FreezeWhileAsking
from camguard.core.models import DeviceKind, EventType, MonitorEvent, Usage, UsageEvent
from camguard.core.rules import Rule, Verdict
from camguard.core.rules_json import decision_dict
from camguard.core.serialize import process_dict, rfc3339
from camguard.core.state import GuardState, UsageKey
from camguard.core.text import json_safe, literal
from camguard.service.accounts import AccountRules
from camguard.service.authorization import (
    CTIME_TOLERANCE,
    Caller,
    Lookup,
    block_end_refusal,
    block_refusal,
    lookup_process,
)
from camguard.service.enforcement_freeze import ServiceFreeze
from camguard.service.hub import EventHub, Outgoing

log = logging.getLogger(__name__)

NO_OPTIONS = BlockOptions()
LET_GO = "let-go"  # the worker's job: let go the apps nobody can answer about now


# Asked for each holder a block finds: why it may not be ended (None: end it).
EndCheck = Callable[[int, float], "str | None"]


class DeviceBlocker(Protocol):
    def block(self, target: BlockTarget, duration: float | None,
              options: BlockOptions = NO_OPTIONS, *, owner: int | None = None,
              may_end: EndCheck | None = None) -> BlockReport: ...


@dataclass(frozen=True)
class Accounts:
    """What deciding by an account's own rules needs: the rules, whose process a usage is
    (its real uid), who holds what now, and whether the policy lets accounts block."""

    rules: AccountRules
    state: Callable[[], GuardState]
    users_may_block: Callable[[], bool] = lambda: True
    lookup: Lookup = lookup_process


class DecisionLog(Protocol):
    """Where decisions are recorded next to their session (HistoryStore)."""

    def session_for(self, key: UsageKey) -> int | None: ...

    def record_decision(self, session_id: int, decision: str | None,
                        decided_by: str | None) -> bool: ...

    def add_note(self, session_id: int, text: str) -> bool: ...




class SystemLocalTime(_dt.tzinfo):
    """The system's local time with its daylight-saving changes (a fixed offset taken at
    start-up would put every schedule an hour off after the clocks change)."""

    def utcoffset(self, dt: _dt.datetime | None) -> _dt.timedelta:
        when = time.time() if dt is None else time.mktime(dt.replace(tzinfo=None).timetuple())
        return _dt.timedelta(seconds=time.localtime(when).tm_gmtoff)

    def dst(self, dt: _dt.datetime | None) -> _dt.timedelta:
        return _dt.timedelta(0)

    def tzname(self, dt: _dt.datetime | None) -> str:
        return time.strftime("%Z")

    def fromutc(self, dt: _dt.datetime) -> _dt.datetime:
        ts = dt.replace(tzinfo=_dt.UTC).timestamp()
        return dt + _dt.timedelta(seconds=time.localtime(ts).tm_gmtoff)


class Enforcement:
    """A Monitor sink that decides each started usage and acts on it.

    Threads: ``__call__`` runs on the monitor thread and only queues; the decision and the
    action (a kill waits up to ~8 s, a block may take seconds) run on this object's worker.
    """

    def __init__(self, rules: RuleSource, killer: ProcessKiller, blocker: DeviceBlocker,
                 clock: Clock, *, hasher: Hasher | None = None,
                 script_hasher: Hasher | None = None,
                 origin_of: OriginOf | None = None,
                 decisions: DecisionLog | None = None,
                 publish: Callable[[Outgoing], None] | None = None,
                 tz: _dt.tzinfo | None = None, accounts: Accounts | None = None,
                 freeze: FreezeWhileAsking | None = None,
                 freeze_on: Callable[[], bool] = lambda: False,
                 answerers: EventHub | None = None) -> None:
        self._rules = rules
        # Freeze while asking; ``freeze_on``: the policy's setting, read per usage;
        # ``answerers``: the watchers, which say whether a tray that answers sees a usage
        # and when one left or paused its alerts (None: assume someone answers).
        self._freeze = None if freeze is None else ServiceFreeze(
            freeze, freeze_on, notes=decisions,
            answerable=None if answerers is None else answerers.answerable)
        if answerers is not None and freeze is not None:
            answerers.on_change = self.let_go_unanswered
        self._accounts = accounts
        self._killer = killer
        self._blocker = blocker
        self._clock = clock
        self._hasher = hasher
        self._script_hasher = script_hasher
        self._origin_of = origin_of
        self._decisions = decisions
        self._publish = publish
        self._tz = tz if tz is not None else SystemLocalTime()
        # (usage, its session, ended): a started usage to decide, or an ended one whose
        # pause is released (in order, on the worker: never before its own hold); or
        # LET_GO: let go what nobody can answer about now.
        self._queue: queue.Queue[tuple[Usage, int | None, bool, bool] | str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._paused_until: float | None = None
        self._paused = False
        # The last pause that ended: [start, end). A usage that started inside it was
        # started while paused, even if its event reaches this sink after the resume (the
        # monitor publishes its state before calling sinks, so a client can see the usage
        # and resume in between).
        self._pause_start = 0.0
        self._last_pause: tuple[float, float] | None = None
        self._lock = threading.Lock()

    # -- pause ---------------------------------------------------------------------------
    def pause(self, seconds: float | None) -> float | None:
        """Stop enforcing for ``seconds`` (None: until resumed); returns the end time."""
        with self._lock:
            if not self._paused:
                self._pause_start = self._clock.now()
            self._paused = True
            self._paused_until = None if seconds is None else self._clock.now() + seconds
            return self._paused_until

    def resume(self) -> None:
        with self._lock:
            if self._paused:
                self._last_pause = (self._pause_start, self._clock.now())
            self._paused, self._paused_until = False, None

    def paused_at(self, at: float) -> bool:
        """Whether enforcement was paused at wall time ``at`` (now, or in the last pause)."""
        if self.paused()[0]:
            return True
        with self._lock:
            last = self._last_pause
        return last is not None and last[0] <= at < last[1]

    def paused(self) -> tuple[bool, float | None]:
        """(paused now, until when: None for until resumed)."""
        with self._lock:
            if self._paused and self._paused_until is not None \
                    and self._clock.now() >= self._paused_until:
                self._last_pause = (self._pause_start, self._paused_until)
                self._paused, self._paused_until = False, None
            return self._paused, self._paused_until

    # -- the sink and its worker -----------------------------------------------------------
    def __call__(self, ev: MonitorEvent) -> None:
        if isinstance(ev, UsageEvent) and ev.type is EventType.STOPPED \
                and self._freeze is not None:
            self._queue.put((ev.usage, None, True, False))
        if isinstance(ev, UsageEvent) and ev.type is EventType.STARTED:
            if self.paused_at(ev.at):  # judged by when the usage started, not when seen
                self._unchecked(ev.usage)
                return
            # The history sink ran before this one on the monitor thread: the session is
            # open now, and may be closed (and forgotten) by the time the worker acts.
            session = None if self._decisions is None else \
                self._decisions.session_for(ev.usage.key)
            self._queue.put((ev.usage, session, False, ev.storm))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="camguard-enforcement",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """End the worker, then continue every app it paused (and stop the freezer)."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._freeze is not None:
            self._freeze.close()

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                if isinstance(job, str):
                    if self._freeze is not None:
                        self._freeze.let_go_unanswered()
                    continue
                usage, session, ended, storm = job
                if ended:
                    self.answered(usage.key, None)  # nothing left to pause
                    continue
                self.enforce(usage, session, storm=storm)
            except Exception:
                log.exception("enforcing the rules for a usage failed")

    def enforce(self, usage: Usage, session: int | None = None, *, storm: bool = False
                ) -> tuple[Decision, ActionResult | None] | None:
        """Decide ``usage`` and act; None while paused. Runs on the worker (tests call it).
        ``session``: its history session (looked up when not given). ``storm``: an open by
        a probe-storming app (core/probes.py): the rules act, but it is not paused while
        asking (it is asked about only if it lasts; pausing each probe would stop the app
        every second)."""
        paused, _until = self.paused()
        if paused:
            self._unchecked(usage)
            return None
        owner, own = self._own_rules(usage)
        decision = evaluate(self._rules, usage, self._clock, self._tz, self._hasher,
                            origin_of=self._origin_of, script_hasher=self._script_hasher,
                            account=own)
        if session is None and self._decisions is not None:
            # Before acting: once the process is ended, the history forgets the session.
            session = self._decisions.session_for(usage.key)
        if owner is not None and any(r is decision.rule for r in own):
            result = self._act_for(owner, usage, decision)
        else:
            result = self._act(usage, decision)
        self._record(session, decision)
        paused = self._freeze is not None and result is None and not storm \
            and self._freeze.hold(usage, decision, session)
        self._announce(usage, decision, result, paused=paused)
        return decision, result

    def let_go_unanswered(self) -> None:
        """A tray that answered left or paused its alerts (service/hub.py's on_change, any
        thread): on the worker, continue each app nobody can answer about now."""
        self._queue.put(LET_GO)

    def answered(self, key: UsageKey, decision: str | None) -> None:
        """A person answered about the usage ``key`` (a Choice value), or it ended (None):
        continue its app if it was paused (end it for "killed"; for "blocked" once the
        block request has run, :meth:`blocked`). Any thread."""
        if self._freeze is not None:
            self._freeze.answered(key, decision)

    def blocked(self, kinds: Sequence[DeviceKind]) -> None:
        """A block of ``kinds`` ran (done or refused): continue the apps paused until it."""
        if self._freeze is not None:
            self._freeze.blocked(kinds)



    def _unchecked(self, usage: Usage) -> None:
        """Paused: not checked against the rules, and watchers (the account's tray) are told
        so at once: the person is asked, as when no rule matches."""
        log.info("enforcement paused: %s not checked against the rules",
                 literal(usage.device.id, 200))
        self._announce(usage, Decision(Verdict.ASK, None, "the rules are paused: not "
                                       "checked; asking"), None)

    def _own_rules(self, usage: Usage) -> tuple[int | None, Sequence[Rule]]:
        """(the uid whose process ``usage`` is, that account's rules) when it has any."""
        p = usage.process
        if self._accounts is None or p is None or not self._accounts.rules.any():
            return None, ()
        target = self._accounts.lookup(p.pid)
        if target is None or abs(target.create_time - p.create_time) > CTIME_TOLERANCE:
            return None, ()  # gone (or its pid reused): nobody's rules decide about it
        own = self._accounts.rules.of(target.uid)
        # Kept by the uid the kernel gave when they were sent: only that uid's own.
        return (target.uid, own) if own else (None, ())

    def _act_for(self, uid: int, usage: Usage, decision: Decision) -> ActionResult | None:
        """An account's own rule decided: a kill ends its own program (the only one its
        rules decide about); a block is that account's block, authorised as if it had asked
        for it (authorization.block_refusal) and ending only its programs; a refused block
        ends the program instead."""
        if decision.verdict is not Verdict.BLOCK_DEVICE:
            return self._act(usage, decision)
        p = usage.process
        if self._accounts is None or p is None:  # not so: _own_rules found its owner
            return self._act(usage, decision)
        caller = Caller(uid, -1, 0, p.user, admin=False)
        target = BlockTarget(usage.device.kind.value)
        why = block_refusal(caller, target.kinds, NO_OPTIONS, self._accounts.state().usages,
                            users_may_block=self._accounts.users_may_block(),
                            admin_group="the admin group")
        if why is not None:
            ended = self._killer.kill(p.pid, p.create_time)
            result = ActionResult(ended.outcome, f"the block by {literal(p.user, 100)}'s rule "
                                  f"was refused ({why}); {ended.message}")
        else:
            lookup = self._accounts.lookup

            def may_end(pid: int, create_time: float) -> str | None:
                return block_end_refusal(caller, pid, create_time, lookup)

            result = self._blocker.block(target, None, NO_OPTIONS, owner=uid,
                                         may_end=may_end).result
        log.info("rule verdict %s (uid %d's own rule) for %s: %s", decision.verdict.value,
                 uid, literal(usage.device.id, 200), literal(result.message, 500))
        return result

    def _act(self, usage: Usage, decision: Decision) -> ActionResult | None:
        p = usage.process
        if decision.verdict is Verdict.KILL:
            if p is None:
                return ActionResult(Outcome.NOT_FOUND, "cannot end a process camguard "
                                    "cannot see")
            result = self._killer.kill(p.pid, p.create_time)
        elif decision.verdict is Verdict.BLOCK_DEVICE:
            result = self._blocker.block(BlockTarget(usage.device.kind.value), None).result
        else:
            return None
        log.info("rule verdict %s for %s: %s", decision.verdict.value,
                 literal(usage.device.id, 200), literal(result.message, 500))
        return result

    def _record(self, session: int | None, decision: Decision) -> None:
        recorded = choice_of(decision)
        if self._decisions is None or recorded is None or session is None:
            return
        try:
            self._decisions.record_decision(session, recorded.value, decided_by(decision))
        except Exception:
            log.exception("could not record the decision")

    def _announce(self, usage: Usage, decision: Decision, result: ActionResult | None, *,
                  paused: bool = False) -> None:
        if self._publish is None:
            return
        payload: dict[str, Any] = {
            "event": "decision", "timestamp": rfc3339(self._clock.now()),
            "kind": usage.device.kind.value, "device": json_safe(usage.device.id),
            **process_dict(usage.process), **decision_dict(decision),
            "outcome": None if result is None else result.outcome.value,
            "message": None if result is None else json_safe(result.message),
            "paused": paused,  # stopped until the answer reaches the service
            # ... and at the latest until then (wall time: the freezer's limit).
            "paused_until": self._freeze.paused_until(usage.key)
            if paused and self._freeze is not None else None,
        }
        self._publish(Outgoing(payload, usage))
