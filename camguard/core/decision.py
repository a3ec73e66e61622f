"""Deciding one usage against the rules: matching, which rule wins, and the verdict (pure).

Which rule wins:

1. specificity, compared field by field: the app (exe path + SHA-256 = a checked origin,
   such as a Debian package whose md5sum still matches, > exact path > folder
   > process name > any app), then the user (named > any), then the device kind (named >
   any), then the time window (windowed > always);
2. severity at equal specificity: block-device > kill > freeze > ask > allow (deny beats
   allow; "freeze" asks with the app paused);
3. the newest rule, then the id (only decides which rule is named; the verdict is equal).

This picks a winner among the policy's rules (IT, the parental lock) and one among the
user's; the policy's winner decides unless the user's is stricter: a user may block what
IT allows, never allow what IT blocks.

Time comes from an injected :class:`~camguard.core.clock.Clock` and a ``tzinfo`` for local
time, so every schedule is tested with a frozen clock.

The one decision engine of camguard: the tray (ui/judge.py) and the service
(service/enforcement.py) both decide through :func:`evaluate`, record a decision in the one
vocabulary (:class:`Choice`) and name who decided in one format (:func:`decided_by`).
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from camguard.core.clock import Clock
from camguard.core.models import DeviceKind, ProcessRef, Usage
from camguard.core.origin import ExeOrigin
from camguard.core.rules import AppMatch, Duration, MatchBy, Mode, Origin, Rule, Verdict
from camguard.core.text import literal

# Deny beats allow: a rule that switches the device off protects everyone, so it outranks
# ending one process, which outranks asking, which outranks allowing.
# Asking with the app paused (freeze) is stricter than asking.
_SEVERITY = {Verdict.ALLOW: 0, Verdict.ASK: 1, Verdict.FREEZE: 2, Verdict.KILL: 3,
             Verdict.BLOCK_DEVICE: 4}
_DONE = {Verdict.ALLOW: "allowed", Verdict.ASK: "asking",
         Verdict.FREEZE: "paused while asking", Verdict.KILL: "killed",
         Verdict.BLOCK_DEVICE: "blocked"}


# -- what the engine knows about one usage ----------------------------------------------------
@dataclass(frozen=True, slots=True)
class UsageFacts:
    kind: DeviceKind
    exe: str = ""
    sha256: str | None = None  # of the binary the process runs now; None: unknown
    name: str = ""
    user: str = ""
    pid: int | None = None
    origin: ExeOrigin | None = None  # where the binary comes from; None: unknown
    script: str = ""  # the script an interpreter runs (ProcessRef.script)
    script_sha256: str | None = None  # of that script now; None: unknown

    @classmethod
    def from_usage(cls, usage: Usage, sha256: str | None = None,
                   origin: ExeOrigin | None = None, script_sha256: str | None = None
                   ) -> UsageFacts:
        p = usage.process
        if p is None:  # a process camguard cannot see: only "any app" rules can match it
            return cls(usage.device.kind)
        return cls(usage.device.kind, p.exe, sha256, p.name, p.user, p.pid, origin,
                   p.script, script_sha256)


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict  # what camguard does
    rule: Rule | None  # the rule that decided (None: the mode did)
    explanation: str
    mode: Mode = Mode.ASK
    # notify-only: what the rule (or the mode) would have done had it been enforced.
    would: Verdict | None = None
    notes: tuple[str, ...] = ()  # rules that nearly matched (a changed binary...)


def _app_matches(app: AppMatch, facts: UsageFacts) -> bool:
    if app.by is MatchBy.ANY:
        return True
    if app.by is MatchBy.NAME:
        return bool(facts.name) and facts.name == app.value
    if app.by is MatchBy.ORIGIN:
        o = facts.origin
        return o is not None and o.key == app.value and o.trusted
    if app.by is MatchBy.SCRIPT:
        return bool(facts.script) and facts.script == app.value \
            and facts.script_sha256 == app.sha256
    if app.by is MatchBy.PATH and facts.exe:
        return facts.exe == app.value or (app.rank == 2 and facts.exe.startswith(app.value))
    return facts.exe == app.value and facts.sha256 == app.sha256


def matches(rule: Rule, facts: UsageFacts, weekday: int, minute: int) -> bool:
    """Whether ``rule`` covers this usage at this local weekday (0 = Monday) and minute."""
    return ((rule.kind is None or rule.kind is facts.kind)
            and (rule.user is None or rule.user == facts.user)
            and (rule.window is None or rule.window.contains(weekday, minute))
            and _app_matches(rule.app, facts))


def _origin_miss(rule: Rule, facts: UsageFacts) -> str | None:
    named, now = rule.app.origin, facts.origin
    if named is None or now is None:
        return None
    if now.key == named.key:
        problem = now.problem()
        return None if problem is None else f"rule '{rule.name}' not applied: {problem}"
    if now.name.rpartition("/")[2] == named.name and now.kind is not named.kind:
        return (f"rule '{rule.name}' not applied: this {literal(named.name, 200)} comes from "
                f"the {now.describe()}, not the {named.describe()} the rule trusts")
    return None


def _near_miss(rule: Rule, facts: UsageFacts) -> str | None:
    if rule.app.by is MatchBy.ORIGIN:
        return _origin_miss(rule, facts)
    if rule.app.by is MatchBy.SCRIPT:
        path, sha, what = facts.script, facts.script_sha256, "script"
    elif rule.app.by is MatchBy.EXE:
        path, sha, what = facts.exe, facts.sha256, "binary"
    else:
        return None
    if not path or path != rule.app.value:
        return None
    if sha is None:
        return (f"rule '{rule.name}' not applied: {literal(path, 200)} could not be "
                f"read, so it is not known to be the {what} the rule names")
    if sha != rule.app.sha256:
        return (f"rule '{rule.name}' not applied: the {what} at {literal(path, 200)} "
                f"changed (sha256 {sha[:12]}…, the rule names "
                f"{(rule.app.sha256 or '')[:12]}…)")
    return None


def local_time(now: float, tz: _dt.tzinfo) -> tuple[int, int]:
    """(weekday, minute of the day) of ``now`` in ``tz``."""
    t = _dt.datetime.fromtimestamp(now, tz)
    return t.weekday(), t.hour * 60 + t.minute


def _rank(r: Rule) -> tuple[tuple[int, int, int, int], int, float, str]:
    return (r.specificity, _SEVERITY[r.verdict], r.created_at, r.id)


def _winner(hits: Sequence[Rule]) -> Rule | None:
    """The most specific policy rule, unless the most specific user rule is stricter.

    The user may always be stricter than the policy (block what IT allows), never more
    lenient (allow what IT blocks).
    """
    mine = [r for r in hits if r.origin is Origin.USER]
    theirs = [r for r in hits if r.origin is not Origin.USER]
    user = max(mine, key=_rank, default=None)
    policy = max(theirs, key=_rank, default=None)
    if policy is None or user is None:
        return policy or user
    return user if _SEVERITY[user.verdict] > _SEVERITY[policy.verdict] else policy


def decide(rules: Iterable[Rule], facts: UsageFacts, mode: Mode, clock: Clock,
           tz: _dt.tzinfo = _dt.UTC) -> Decision:
    """What to do about one usage: the winning rule (see the module docstring), or the mode.

    Expired rules are ignored. In notify-only mode nothing is ever killed, blocked or asked:
    the verdict is allow and ``would`` says what the rule or the mode would have done.
    """
    now = clock.now()
    weekday, minute = local_time(now, tz)
    live = [r for r in rules if r.active(now)]
    hits = [r for r in live if matches(r, facts, weekday, minute)]
    notes = tuple(n for r in live if r not in hits and (n := _near_miss(r, facts)))
    kind = facts.kind.value
    best = _winner(hits)
    if best is not None:
        verdict = best.verdict
        said = f"{_DONE[verdict]} by rule '{best.name}'"
        if best.origin is not Origin.USER:
            said += f" ({best.origin.value})"
        if verdict is Verdict.BLOCK_DEVICE:
            said = f"{kind} {said}"
    else:
        verdict = Verdict.BLOCK_DEVICE if mode is Mode.BLOCK_ALL else Verdict.ASK
        said = (f"no rule allows it; {kind} blocked (mode {mode.value})"
                if verdict is Verdict.BLOCK_DEVICE else f"no rule matches; asking (mode {mode})")
    if verdict is Verdict.BLOCK_DEVICE and facts.kind in (DeviceKind.SCREEN,
                                                          DeviceKind.LOCATION):
        # A screen cast or a location client has no device node to switch off: ending the
        # app is the block.
        verdict = Verdict.KILL
        said += f"; {kind} has no device to block, so the app is ended"
    if mode is Mode.NOTIFY_ONLY:
        if verdict is Verdict.ALLOW:
            return Decision(verdict, best, said, mode, None, notes)
        what = f"rule '{best.name}'" if best else "the default"
        return Decision(Verdict.ALLOW, best,
                        f"notify-only: {what} would have {_WOULD[verdict]}; only reporting",
                        mode, verdict, notes)
    return Decision(verdict, best, said, mode, None, notes)


_WOULD = {Verdict.ASK: "asked", Verdict.FREEZE: "paused it and asked",
          Verdict.KILL: "killed it",
          Verdict.BLOCK_DEVICE: "blocked the device", Verdict.ALLOW: "allowed it"}


# -- after a decision ------------------------------------------------------------------------
def consume(rules: Sequence[Rule], decision: Decision) -> list[Rule]:
    """The rules after ``decision``: a "once" rule is spent by the decision it made."""
    spent = decision.rule
    if spent is None or spent.duration is not Duration.ONCE:
        return list(rules)
    return [r for r in rules if r != spent]


# -- the one vocabulary ------------------------------------------------------------------------
class Choice(enum.StrEnum):
    """What was done about a usage, by a person, the countdown or a rule; the value is what
    the history records (camguard.store.history.KNOWN_DECISIONS)."""

    ALLOW_ONCE = "allowed-once"
    ALWAYS_ALLOW = "always-allowed"
    KILL = "killed"
    BLOCK = "blocked"


class DecidedBy(enum.StrEnum):
    """Who decided, when not a rule or the mode (see :func:`decided_by` for those)."""

    POPUP = "user:popup"
    NOTIFICATION = "user:notification"
    TRAY = "user:tray"
    TIMEOUT = "timeout"
    ALLOW_LIST = "allow-list"


_CHOICE = {Verdict.ALLOW: Choice.ALLOW_ONCE, Verdict.KILL: Choice.KILL,
           Verdict.BLOCK_DEVICE: Choice.BLOCK}


def choice_of(decision: Decision) -> Choice | None:
    """What the history records for a rule's (or the mode's) decision; None for "ask" and
    "freeze" (the person asked decides)."""
    return _CHOICE.get(decision.verdict)


def decided_by(decision: Decision) -> str:
    """Who decided, as the history records it: ``rule:<label>`` (the id when unlabelled),
    `` (policy)`` added for an administrator's rule; ``mode:<mode>`` when no rule matched."""
    rule = decision.rule
    if rule is None:
        return f"mode:{decision.mode.value}"
    who = f"rule:{literal(rule.label, 200) if rule.label else rule.id}"
    return who if rule.origin is Origin.USER else f"{who} ({rule.origin.value})"


# -- the one evaluator ---------------------------------------------------------------------------
class RuleSource(Protocol):
    """The rules in force and the mode, read again for each usage."""

    def current(self) -> tuple[Sequence[Rule], Mode]: ...

    def spend(self, rule: Rule) -> None:
        """A "once" rule made its decision and is gone."""
        ...


Hasher = Callable[[ProcessRef], "str | None"]
OriginOf = Callable[[ProcessRef], "ExeOrigin | None"]


def evaluate(source: RuleSource, usage: Usage, clock: Clock, tz: _dt.tzinfo,
             hasher: Hasher | None = None, *, origin_of: OriginOf | None = None,
             script_hasher: Hasher | None = None,
             account: Sequence[Rule] = ()) -> Decision:
    """Decide one usage from the rules in force now; a "once" rule that decides is spent.
    The binary is hashed only when a rule names one (hashing a browser takes most of a
    second), its origin looked up only when a rule names an origin, and the script an
    interpreter runs (``script_hasher``) hashed only when a rule names a script.

    ``account``: the rules of the account whose process this is, kept apart from
    ``source`` (the service: its rules are the administrator's, an account's are pushed by
    that account's tray); they decide only as :func:`stricter_or_asked` allows."""
    rules, mode = source.current()
    p = usage.process
    sha = None
    origin = None
    if p is not None and hasher is not None and p.exe.startswith("/") \
            and any(r.app.by is MatchBy.EXE for r in (*rules, *account)):
        sha = hasher(p)
    if p is not None and origin_of is not None and p.exe.startswith("/") \
            and any(r.app.by is MatchBy.ORIGIN for r in (*rules, *account)):
        origin = origin_of(p)
    script_sha = None
    if p is not None and script_hasher is not None and p.script.startswith("/") \
            and any(r.app.by is MatchBy.SCRIPT for r in (*rules, *account)):
        script_sha = script_hasher(p)
    facts = UsageFacts.from_usage(usage, sha, origin, script_sha)
    decision = decide(rules, facts, mode, clock, tz)
    if decision.rule is not None and decision.rule.duration is Duration.ONCE:
        source.spend(decision.rule)
    if account:
        decision = stricter_or_asked(decision, decide(account, facts, Mode.ASK, clock, tz))
    return decision


def stricter_or_asked(base: Decision, mine: Decision) -> Decision:
    """An account's own rules next to the administrator's decision ``base``: the account's
    winning rule decides where ``base`` would only ask the person (no rule matched and the
    mode asks: a rule is an answer given in advance), or where it is stricter; never where
    it is more lenient than an administrator's rule, the mode's block-all or notify-only's
    "would have" (a person may always be stricter about their own programs)."""
    if mine.rule is None:
        return base
    asked = base.rule is None and base.verdict is Verdict.ASK
    if asked or _SEVERITY[mine.verdict] > _SEVERITY[base.verdict]:
        return Decision(mine.verdict, mine.rule, mine.explanation, base.mode, None,
                        base.notes + mine.notes)
    return Decision(base.verdict, base.rule, base.explanation, base.mode, base.would,
                    base.notes + mine.notes)
