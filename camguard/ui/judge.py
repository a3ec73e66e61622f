"""The tray's :class:`~camguard.ui.ports.RulesPort`: the user's rules and the managed policy's,
decided by core.decision for each new usage (Qt-free; runs on the controller's io thread).

The rules file, the settings file (for the mode) and the policy are read again for each
usage, so a rule added in the settings window or with ``camguard rules add`` applies to the
next usage without a restart (a few small files: about a millisecond). A "once" rule is spent
by the decision it makes, in memory, as the service does.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from camguard.core.clock import Clock
from camguard.core.decision import Decision, OriginOf, decided_by, evaluate
from camguard.core.models import Usage
from camguard.core.rules import Mode, Rule, Verdict
from camguard.store.eventlog import EventLog
from camguard.store.hashing import ExeHasher, Hasher, ScriptHasher
from camguard.store.policy import PolicyStatus, effective_settings, load_user_settings
from camguard.store.rules import RuleFile
from camguard.ui.ports import Gate, RuleOutcome

log = logging.getLogger(__name__)

_GATES = {Verdict.ALLOW: Gate.ALLOW, Verdict.ASK: Gate.ASK, Verdict.FREEZE: Gate.FREEZE,
          Verdict.KILL: Gate.KILL, Verdict.BLOCK_DEVICE: Gate.BLOCK}


class RuleJudge:
    """Decides each usage from the rules in force. Thread-safe (one lock for spent rules)."""

    def __init__(self, rules: RuleFile, policy: Callable[[], PolicyStatus], clock: Clock, *,
                 settings_path: Path, tz: _dt.tzinfo = _dt.UTC,
                 hasher: Hasher | None = None, events: EventLog | None = None,
                 origin_of: OriginOf | None = None,
                 script_hasher: Hasher | None = None) -> None:
        self._rules = rules
        self._policy = policy
        self._clock = clock
        self._settings = settings_path
        self._tz = tz
        self._hash = hasher or ExeHasher()
        self._origin_of = origin_of
        self._script_hash = script_hasher or ScriptHasher()
        self._events = events
        self._spent: set[str] = set()
        self._lock = threading.Lock()

    def current(self) -> tuple[Sequence[Rule], Mode]:
        """The rules and mode in force now (a core.decision.RuleSource): the policy's and
        the user's, the rules file's mode winning over the settings file's."""
        status = self._policy()
        contents = self._rules.load()
        user, _problems = load_user_settings(self._settings)
        if contents.mode is not None:
            user["mode"] = contents.mode.value  # the rules file's mode wins, as in the CLI
        eff = effective_settings(user, status.policy, contents.rules)
        with self._lock:
            return [r for r in eff.rules if r.id not in self._spent], eff.mode

    def spend(self, rule: Rule) -> None:
        with self._lock:
            self._spent.add(rule.id)

    def decision(self, usage: Usage) -> Decision:
        """What core.decision decides for ``usage`` now (a "once" rule it uses is spent)."""
        d = evaluate(self, usage, self._clock, self._tz, self._hash, origin_of=self._origin_of,
                     script_hasher=self._script_hash)
        for note in d.notes:
            log.warning("%s", note)
        return d

    def judge(self, usage: Usage) -> RuleOutcome:
        d = self.decision(usage)
        if self._events is not None and (d.rule is not None or d.verdict is not Verdict.ASK
                                         or d.would is not None):
            # Only what the rules did (plain "no rule, ask" is every alert: alert.shown).
            self._events.decided(d, usage)
        return RuleOutcome(_GATES[d.verdict], d.explanation, decided_by(d),
                           notify=d.would is not None, notes=d.notes)
