"""Two pieces of the system service that only its composition needs: the rules it enforces
(the managed policy's, then its own file's) and the kill switch made safe for many threads."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from camguard.core.blocks import (
    ActionResult,
    ActiveBlock,
    BlockManager,
    BlockOptions,
    BlockReport,
    BlockTarget,
    Outcome,
    ProcessKiller,
)
from camguard.core.rules import Mode, Rule
from camguard.core.rules_json import rule_to_json
from camguard.core.text import json_safe
from camguard.service.enforcement import NO_OPTIONS, EndCheck
from camguard.store.policy import ManagedPolicy, effective_settings
from camguard.store.rules import RuleFile


class ServiceRules:
    """The rules the service enforces: the managed policy's, then its own file's (root
    writes it; an unprivileged account cannot). Read again for each decision, so an edit
    takes effect at the next usage. "once" rules are spent in memory."""

    def __init__(self, rule_file: RuleFile, policy: ManagedPolicy) -> None:
        self._file = rule_file
        self._policy = policy
        self._spent: set[str] = set()
        self._lock = threading.Lock()

    def _load(self) -> tuple[list[Rule], Mode, list[str], str | None]:
        status = self._policy.load()
        contents = self._file.load()
        user = {} if contents.mode is None else {"mode": contents.mode.value}
        eff = effective_settings(user, status.policy, contents.rules)
        with self._lock:
            rules = [r for r in eff.rules if r.id not in self._spent]
        return rules, eff.mode, [*eff.problems, *contents.problems], status.error

    def current(self) -> tuple[Sequence[Rule], Mode]:
        rules, mode, _problems, _error = self._load()
        return rules, mode

    def spend(self, rule: Rule) -> None:
        with self._lock:
            self._spent.add(rule.id)

    def users_may_block(self) -> bool:
        """The managed policy's ``users_may_block`` (default true: blocking is stricter)."""
        return self._policy.load().policy.settings.get("users_may_block", True) is not False

    def freeze_while_asking(self) -> bool:
        """The managed policy's ``freeze_while_asking`` (default off)."""
        return self._policy.load().policy.settings.get("freeze_while_asking") is True

    def listing(self) -> dict[str, Any]:
        rules, mode, problems, error = self._load()
        return {"mode": mode.value,
                "rules": [{**rule_to_json(r), "origin": r.origin.value} for r in rules],
                "problems": [json_safe(p) for p in problems], "policy_error": error}


class GatedKiller:
    """The blocker's killer: while a block asked for by an ordinary account runs, each
    holder it would end is checked first (camguard.service.authorization decides)."""

    def __init__(self, inner: ProcessKiller) -> None:
        self._inner = inner
        self.check: EndCheck | None = None  # set by SerialBlocks, under its lock

    def kill(self, pid: int, create_time: float | None = None, *, force: bool = False
             ) -> ActionResult:
        check = self.check
        if check is not None:
            why = check(pid, 0.0 if create_time is None else create_time)
            if why is not None:
                return ActionResult(Outcome.REFUSED, why)
        return self._inner.kill(pid, create_time, force=force)

    def is_sound_server(self, pid: int) -> bool:
        check = getattr(self._inner, "is_sound_server", None)
        return bool(check(pid)) if check is not None else False


class SerialBlocks:
    """The BlockManager for many threads (connections, the enforcement worker, the main
    loop): it is meant for one thread at a time per process, so calls take turns."""

    def __init__(self, manager: BlockManager, gate: GatedKiller | None = None) -> None:
        self._manager = manager
        self._gate = gate
        self._lock = threading.Lock()

    def block(self, target: BlockTarget, duration: float | None,
              options: BlockOptions = NO_OPTIONS, *, owner: int | None = None,
              may_end: EndCheck | None = None) -> BlockReport:
        with self._lock:
            if self._gate is not None:
                self._gate.check = may_end
            try:
                return self._manager.block(target, duration, options, owner=owner)
            finally:
                if self._gate is not None:
                    self._gate.check = None

    def unblock(self, target: BlockTarget) -> BlockReport:
        with self._lock:
            return self._manager.unblock(target)

    def active(self) -> tuple[list[ActiveBlock], list[str]]:
        with self._lock:
            return self._manager.active()

    def expire_due(self) -> BlockReport:
        with self._lock:
            return self._manager.expire_due()

    def next_expiry(self) -> float | None:
        with self._lock:
            return self._manager.next_expiry()
