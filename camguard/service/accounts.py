"""Each account's own rules, as its tray (or ``camguard rules``) sent them: kept in memory
by uid, applied only to that uid's processes (service/enforcement.py asks
authorization.rules_apply), never read from the account's files.

Why pushed and not read: the service runs as root, and a path in a user's home is the
user's to point anywhere (a symlink to /etc/shadow, a FIFO that never answers, a file
that changes between check and read). The account sends the rules as text over the
socket; the kernel says whose they are (SO_PEERCRED); the service checks them as it
checks the rules file (core.rules_json) and keeps at most
:data:`~camguard.service.protocol.MAX_ACCOUNT_RULES` per account for at most
:data:`MAX_ACCOUNTS` accounts. They last until the account sends others (an empty list
forgets them) or the service stops; the tray sends them again whenever it connects.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from camguard.core.rules import Origin, Rule, durable, prune
from camguard.core.rules_json import FORMAT_VERSION, rules_from_json
from camguard.core.text import literal
from camguard.service.protocol import MAX_ACCOUNT_RULES

MAX_ACCOUNTS = 1024


class AccountRulesError(ValueError):
    """Rules that cannot be kept as sent (the message says why)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_rules(text: str, now: float) -> tuple[list[Rule], list[str]]:
    """The rules of a rules document (the rules file's JSON) and one line per rule left
    out. Raises AccountRulesError for text that is not a rules document or holds too many.
    Only durable, unexpired rules are kept: "once" rules live in the tray that made them."""
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise AccountRulesError(f"the rules are not valid JSON: {literal(str(exc), 200)}") \
            from None
    items = doc.get("rules", []) if isinstance(doc, dict) else doc
    if not isinstance(items, list) or (
            isinstance(doc, dict) and doc.get("version", FORMAT_VERSION) != FORMAT_VERSION):
        raise AccountRulesError("not a rules document of this version (an object with a "
                                "'rules' list, as the rules file holds)")
    if len(items) > MAX_ACCOUNT_RULES:
        raise AccountRulesError(f"{len(items)} rules sent; an account may have at most "
                                f"{MAX_ACCOUNT_RULES} enforced by the service")
    # Only the rules: the mode stays the service's.
    rules, problems = rules_from_json(items, Origin.USER)
    return prune(durable(rules), now), problems


class AccountRules:
    """uid -> that account's rules. Thread-safe (connection threads write, the
    enforcement worker reads)."""

    def __init__(self, max_accounts: int = MAX_ACCOUNTS) -> None:
        self._max = max_accounts
        self._rules: dict[int, tuple[Rule, ...]] = {}
        self._lock = threading.Lock()

    def set(self, uid: int, rules: Sequence[Rule]) -> None:
        """Replace ``uid``'s rules (none: forget them). AccountRulesError when the service
        keeps rules for as many accounts as it may already."""
        with self._lock:
            if not rules:
                self._rules.pop(uid, None)
                return
            if uid not in self._rules and len(self._rules) >= self._max:
                raise AccountRulesError(f"the service keeps the rules of {self._max} "
                                        "accounts already")
            self._rules[uid] = tuple(rules)

    def of(self, uid: int) -> tuple[Rule, ...]:
        with self._lock:
            return self._rules.get(uid, ())

    def any(self) -> bool:
        with self._lock:
            return bool(self._rules)
