"""The service's operations: what each request does, for whom, and behind which checks.

Everything the service reaches (monitor state, history, kill switch, lock, rules) comes in
through the small interfaces of service/ports.py, so this module knows no store or
platform code; app/service.py wires the real objects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from camguard.core.blocks import (
    ActionResult,
    ActiveBlock,
    BlockOptions,
    BlockReport,
    BlockTarget,
    Outcome,
    ProcessKiller,
)
from camguard.core.clock import Clock
from camguard.core.coverage import Coverage, coverage_list
from camguard.core.models import DeviceKind
from camguard.core.serialize import OriginFor, rfc3339, state_dict
from camguard.core.state import GuardState, UsageKey
from camguard.core.text import json_safe
from camguard.service import protocol as P
from camguard.service.accounts import AccountRules, AccountRulesError, parse_rules
from camguard.service.answers import PEOPLE, asking, decide_problem
from camguard.service.authorization import (
    Caller,
    Lookup,
    block_end_refusal,
    block_owner,
    block_refusal,
    can_see,
    decide_refusal,
    history_users,
    kill_permission,
    lookup_process,
    unblock_kinds,
    unblock_refusal,
    visible_state,
)
from camguard.service.hub import EventHub, Outgoing, Subscription
from camguard.service.ports import (
    Blocks,
    HistoryView,
    Lock,
    LockAnswer,
    Pausable,
    SessionBook,
)

log = logging.getLogger(__name__)

MAX_HISTORY = 10_000
# A person's answer is recorded on a session that started at most this long ago.
DECIDE_WINDOW = 24 * 3600.0


_CODES = {Outcome.FAILED: P.FAILED, Outcome.REFUSED: P.DENIED, Outcome.NOT_FOUND: P.NOT_FOUND}


def action_response(result: ActionResult, **extra: Any) -> dict[str, Any]:
    if result.ok:
        return P.ok(outcome=result.outcome.value, message=json_safe(result.message), **extra)
    return P.error(_CODES[result.outcome], json_safe(result.message),
                   outcome=result.outcome.value, **extra)


def report_response(report: BlockReport) -> dict[str, Any]:
    parts = [{"kind": k.value, "outcome": r.outcome.value, "message": json_safe(r.message)}
             for k, r in report.parts]
    return action_response(report.result, parts=parts,
                           problems=[json_safe(p) for p in report.problems],
                           details=[json_safe(d) for d in report.result.details])


def block_dict(b: ActiveBlock, now: float) -> dict[str, Any]:
    left = b.left(now)
    return {"kind": b.kind.value, "since": rfc3339(b.since), "until": rfc3339(b.until),
            "seconds_left": None if left is None else round(left, 3),
            "how": [{"kind": s.kind.value, "target": json_safe(s.target)} for s in b.steps]}


class ServiceApi:
    """Serves one request at a time per connection thread; every dependency is thread-safe."""

    def __init__(self, *, state: Callable[[], GuardState], history: HistoryView,
                 killer: ProcessKiller, blocks: Blocks, lock: Lock, enforcement: Pausable,
                 hub: EventHub, clock: Clock, rules: Callable[[], dict[str, Any]] | None = None,
                 version: str = "", admin_group: str = "",
                 lookup: Lookup = lookup_process,
                 users_may_block: Callable[[], bool] = lambda: True,
                 origin: OriginFor | None = None,
                 sessions: SessionBook | None = None,
                 accounts: AccountRules | None = None,
                 coverage: Callable[[], Iterable[Coverage]] | None = None) -> None:
        self._state = state
        self._history = history
        self._killer = killer
        self._blocks = blocks
        self._lock = lock
        self._enforcement = enforcement
        self._hub = hub
        self._clock = clock
        self._rules = rules
        self._version = version
        self._admin_group = admin_group
        self._lookup = lookup
        self._users_may_block = users_may_block
        self._origin = origin  # where each user's executable comes from (status)
        self._sessions = sessions
        self._accounts = accounts
        # What the service's sources can see (status's "coverage", as a local status says).
        self._coverage = coverage
        self._ops: dict[str, Callable[[Caller, P.Request], dict[str, Any]]] = {
            "hello": self._hello, "status": self._status, "history": self._history_op,
            "kill": self._kill, "block": self._block, "unblock": self._unblock,
            "blocks": self._blocks_op, "pause": self._pause, "resume": self._resume,
            "rules": self._rules_op, "lock-status": self._lock_status,
            "lock-set": self._lock_set, "lock-clear": self._lock_clear,
            "decide": self._decide, "user-rules": self._user_rules,
            "asking": lambda c, r: asking(hub, c, r.get("on") is True),
        }

    def handle(self, caller: Caller, request: P.Request) -> dict[str, Any]:
        """The answer to one request (``watch`` is streamed by the server: see subscribe)."""
        op = self._ops.get(request.op)
        if op is None:
            return P.error(P.UNKNOWN_OP, f"{request.op!r} cannot be used here")
        try:
            return op(caller, request)
        except Exception:
            log.exception("request %s from uid %d failed", request.op, caller.uid)
            return P.error(P.INTERNAL, "internal error in the service (see its log)")

    def subscribe(self, caller: Caller, answers: bool = False) -> Subscription:
        """A watch queue carrying only what ``caller`` may see; ``answers``: a tray that
        asks its person (service/answers.py)."""
        def accept(item: Outgoing) -> bool:
            return item.usage is None or can_see(caller, item.usage)

        return self._hub.subscribe(accept, answers=answers, owner=(caller.uid, caller.pid))

    def unsubscribe(self, sub: Subscription) -> None:
        self._hub.unsubscribe(sub)

    # -- reading ---------------------------------------------------------------------------
    def _hello(self, caller: Caller, _req: P.Request) -> dict[str, Any]:
        return P.ok(service="camguard", version=self._version, protocol=P.PROTOCOL_VERSION,
                    caller=caller.to_dict(), admin_group=self._admin_group)

    def _status(self, caller: Caller, _req: P.Request) -> dict[str, Any]:
        state = visible_state(caller, self._state())
        paused, until = self._enforcement.paused()
        blocks, _problems = self._blocks.active()
        # The machine's coverage, not an account's: the same for every caller.
        seen = {} if self._coverage is None else {"coverage": coverage_list(self._coverage())}
        return P.ok(**state_dict(state, self._origin), **seen, paused=paused,
                    paused_until=rfc3339(until),
                    blocked=[b.kind.value for b in blocks], lock=self._lock.is_set(),
                    caller=caller.to_dict())

    def _history_op(self, caller: Caller, req: P.Request) -> dict[str, Any]:
        asked = req.get("user")
        if asked is not None and not caller.admin:
            return P.error(P.DENIED, "only an admin may read another account's history")
        kind = req.get("kind")
        if kind is not None and kind not in {k.value for k in DeviceKind}:
            return P.error(P.BAD_REQUEST, "history.kind must be camera or microphone")
        limit = req.get("limit")
        if limit is not None and limit < 0:
            return P.error(P.BAD_REQUEST, "history.limit must be 0 or more")
        cap = MAX_HISTORY if limit is None else min(limit, MAX_HISTORY)
        filters = {k: req.get(k) for k in ("since", "until", "kind", "app", "device", "search")}
        try:
            entries = self._history.entries(filters, history_users(caller, asked), cap + 1)
        except ValueError as exc:
            return P.error(P.BAD_REQUEST, json_safe(str(exc)))
        truncated = limit is None and len(entries) > cap
        return P.ok(entries=entries[:cap], truncated=truncated)

    def _blocks_op(self, _caller: Caller, _req: P.Request) -> dict[str, Any]:
        lifted = self._blocks.expire_due()
        blocks, problems = self._blocks.active()
        now = self._clock.now()
        return P.ok(blocks=[block_dict(b, now) for b in blocks],
                    lifted=[k.value for k, r in lifted.parts if r.ok],
                    problems=[json_safe(p) for p in (*lifted.problems, *problems)])

    def _rules_op(self, _caller: Caller, _req: P.Request) -> dict[str, Any]:
        if self._rules is None:
            return P.error(P.UNAVAILABLE, "this service enforces no rules")
        return P.ok(**self._rules())

    def _lock_status(self, caller: Caller, _req: P.Request) -> dict[str, Any]:
        return P.ok(**self._lock.status(who=caller.uid))

    # -- a person's answers and rules -------------------------------------------------------
    def _decide(self, caller: Caller, req: P.Request) -> dict[str, Any]:
        """Record a person's answer to an alert on the service's session of that usage."""
        if self._sessions is None:
            return P.error(P.UNAVAILABLE, "this service keeps no history")
        kind, decision, by = req.get("kind"), req.get("decision"), req.get("decided_by")
        bad = decide_problem(kind, decision, by)
        if bad is not None:
            return P.error(P.BAD_REQUEST, bad)
        pid, ctime = req.get("pid"), req.get("create_time")
        key: UsageKey = (kind, req.get("device"), pid, None if pid is None else ctime)
        found = self._sessions.find_session(key, self._clock.now() - DECIDE_WINDOW)
        why = decide_refusal(caller, None if found is None else found.user, found is not None,
                             None if found is None else found.decided_by, PEOPLE)
        if why is not None or found is None:
            code = P.NOT_FOUND if caller.admin and found is None else P.DENIED
            log.info("uid %d may not record %s: %s", caller.uid, decision, why)
            return P.error(code, why or "no session", outcome="refused")
        self._enforcement.answered(key, decision)  # a paused app continues (or ends)
        if not self._sessions.record_decision(found.id, decision, by):
            return P.error(P.NOT_FOUND, "that session is no longer in the history")
        log.info("uid %d recorded %s by %s on session %d", caller.uid, decision, by, found.id)
        return P.ok(session=found.id, decision=decision, decided_by=by)

    def _user_rules(self, caller: Caller, req: P.Request) -> dict[str, Any]:
        """Keep the caller's own rules (service/accounts.py): they decide only about its
        own processes."""
        if self._accounts is None:
            return P.error(P.UNAVAILABLE, "this service enforces no rules")
        try:
            rules, problems = parse_rules(req.get("rules"), self._clock.now())
        except AccountRulesError as exc:
            return P.error(P.BAD_REQUEST, json_safe(str(exc)))
        try:
            self._accounts.set(caller.uid, rules)
        except AccountRulesError as exc:
            return P.error(P.BUSY, str(exc))
        log.info("uid %d sent %d rule(s) of its own", caller.uid, len(rules))
        return P.ok(kept=len(rules), problems=[json_safe(p) for p in problems[:20]])

    # -- acting ----------------------------------------------------------------------------
    def _kill(self, caller: Caller, req: P.Request) -> dict[str, Any]:
        pid = int(req.get("pid"))
        if pid <= 0:
            return P.error(P.BAD_REQUEST, "kill.pid must be a positive process id")
        allowed = kill_permission(caller, pid, req.get("create_time"), self._state(),
                                  self._lookup)
        if isinstance(allowed, str):
            code = P.NOT_FOUND if allowed.startswith("no process") else P.DENIED
            return P.error(code, allowed, outcome="not_found" if code == P.NOT_FOUND
                           else "refused")
        log.info("uid %d asks to end pid %d", caller.uid, pid)
        return action_response(self._killer.kill(allowed.pid, allowed.create_time,
                                                  force=bool(req.get("force", False))))

    def _block(self, caller: Caller, req: P.Request) -> dict[str, Any]:
        target = _target(req)
        if isinstance(target, dict):
            return target
        seconds = req.get("seconds")  # bounded by the protocol: (0, MAX_DURATION]
        options = BlockOptions(unbind_usb=bool(req.get("unbind_usb", False)),
                               persistent=bool(req.get("persistent", False)))
        refused = block_refusal(caller, target.kinds, options, self._state().usages,
                                users_may_block=self._users_may_block(),
                                admin_group=self._admin_group)
        if refused is not None:
            log.info("uid %d may not block %s: %s", caller.uid, target.value, refused)
            return P.error(P.DENIED, json_safe(refused), outcome="refused")
        duration = seconds if caller.admin else self._not_shorter(caller, target, seconds)

        def may_end(pid: int, create_time: float) -> str | None:
            return block_end_refusal(caller, pid, create_time, self._lookup)

        log.info("uid %d blocks %s", caller.uid, target.value)
        report = self._blocks.block(target, duration, options, owner=block_owner(caller),
                                    may_end=None if caller.admin else may_end)
        self._enforcement.blocked(target.kinds)  # apps paused until the block continue
        return report_response(report)

    def _not_shorter(self, caller: Caller, target: BlockTarget, seconds: float | None
                     ) -> float | None:
        """An ordinary account's block never ends a block it may not lift sooner."""
        blocks, _problems = self._blocks.active()
        now = self._clock.now()
        for b in blocks:
            if b.kind not in target.kinds or b.owner == caller.uid:
                continue
            if b.until is None or seconds is None:
                return None
            seconds = max(seconds, b.until - now)
        return seconds

    def _unblock(self, caller: Caller, req: P.Request) -> dict[str, Any]:
        target = _target(req)
        if isinstance(target, dict):
            return target
        refused = self._unlock(caller, req.get("password"), f"unblocking the {target.value}")
        if refused is not None:
            return refused
        # Past _unlock with a lock set, a non-root caller gave the parent's password.
        unlocked = not caller.root and self._lock.is_set()
        blocks, _problems = self._blocks.active()
        why = unblock_refusal(caller, blocks, target.kinds, unlocked=unlocked,
                              admin_group=self._admin_group)
        if why is not None:
            log.info("uid %d may not unblock %s: %s", caller.uid, target.value, why)
            return P.error(P.DENIED, json_safe(why), outcome="refused")
        kinds = unblock_kinds(caller, blocks, target.kinds, unlocked=unlocked)
        if not kinds:
            return report_response(BlockReport(ActionResult(
                Outcome.DONE, f"nothing you blocked: the {target.value} is not blocked")))
        lift = target if len(kinds) == len(target.kinds) else BlockTarget(kinds.pop().value)
        log.info("uid %d unblocks %s", caller.uid, lift.value)
        return report_response(self._blocks.unblock(lift))

    def _pause(self, caller: Caller, req: P.Request) -> dict[str, Any]:
        if not caller.admin and not self._lock.is_set():
            return P.error(P.DENIED, "pausing the rules for every account needs an admin "
                           f"(root or the group {self._admin_group!r})")
        refused = self._unlock(caller, req.get("password"), "pausing the rules")
        if refused is not None:
            return refused
        seconds = req.get("seconds")
        if seconds is not None and seconds <= 0:
            return P.error(P.BAD_REQUEST, "pause.seconds must be more than 0")
        until = self._enforcement.pause(seconds)
        log.warning("uid %d paused enforcement until %s", caller.uid, rfc3339(until) or
                    "resumed")
        return P.ok(paused=True, paused_until=rfc3339(until))

    def _resume(self, caller: Caller, _req: P.Request) -> dict[str, Any]:
        self._enforcement.resume()  # being stricter needs no permission
        log.info("uid %d resumed enforcement", caller.uid)
        return P.ok(paused=False)

    def _lock_set(self, caller: Caller, req: P.Request) -> dict[str, Any]:
        if not caller.admin:
            return P.error(P.DENIED, "only an admin may set the parental lock "
                           f"(root or the group {self._admin_group!r})")
        try:
            answer = self._lock.set_password(req.get("password"), req.get("current"),
                                             force=caller.root, who=caller.uid)
        except ValueError as exc:
            return P.error(P.BAD_REQUEST, str(exc))
        return _lock_response(answer, "changing the parental lock",
                              asked=req.get("current") is not None)

    def _lock_clear(self, caller: Caller, req: P.Request) -> dict[str, Any]:
        if not caller.admin:
            return P.error(P.DENIED, "only an admin may clear the parental lock")
        answer = self._lock.clear(req.get("current"), force=caller.root, who=caller.uid)
        return _lock_response(answer, "clearing the parental lock",
                              asked=req.get("current") is not None)

    def _unlock(self, caller: Caller, password: str | None, what: str) -> dict[str, Any] | None:
        """None when ``caller`` may go on; else the refusal. Root needs no password."""
        if caller.root or not self._lock.is_set():
            return None
        answer = self._lock.check(password, who=caller.uid)
        if answer.status == "ok":
            return None
        log.warning("uid %d: %s refused by the parental lock (%s)", caller.uid, what,
                    answer.status)
        return _lock_response(answer, what, asked=password is not None)


def _lock_response(answer: LockAnswer, what: str, *, asked: bool = True) -> dict[str, Any]:
    if answer.status == "ok":
        return P.ok(message=answer.message)
    retry = round(answer.retry_after, 3)
    if answer.status == "locked-out":
        return P.error(P.LOCKED_OUT, f"{what}: {answer.message}", retry_after=retry)
    if not asked:
        return P.error(P.PASSWORD_REQUIRED, f"{what} needs the parental-lock password",
                       retry_after=retry)
    return P.error(P.WRONG_PASSWORD, f"{what}: {answer.message}", retry_after=retry)


def _target(req: P.Request) -> BlockTarget | dict[str, Any]:
    try:
        return BlockTarget(req.get("target"))
    except ValueError:
        return P.error(P.BAD_REQUEST, f"{req.op}.target must be camera, microphone or all")
