"""One rule as ``rules list`` and ``policy show`` print it: a line, or a JSON object."""

from __future__ import annotations

from typing import Any

from camguard.core.rules import Origin, Rule
from camguard.core.rules_json import rule_to_json
from camguard.core.serialize import rfc3339
from camguard.core.text import literal


def rule_json(rule: Rule, now: float) -> dict[str, Any]:
    out = rule_to_json(rule)
    out["origin"] = rule.origin.value
    out["expires_at"] = rfc3339(rule.expires_at)
    out["active"] = rule.active(now)
    return out


def rule_line(rule: Rule, now: float) -> str:
    parts = [f"{rule.id:<12}", f"{rule.verdict.value:<12}",
             f"{rule.kind.value if rule.kind else 'any':<10}", rule.app.describe()]
    if rule.user is not None:
        parts.append(f"user {literal(rule.user, 64)}")
    if rule.window is not None:
        parts.append(str(rule.window))
    if rule.expires_at is not None:
        left = rule.expires_at - now
        parts.append("expired" if left <= 0 else f"for {int(left // 60) + 1} more min")
    if rule.label:
        parts.append(f"\"{literal(rule.label, 200)}\"")
    if rule.origin is not Origin.USER:
        parts.append(f"[{rule.origin.value}]")
    return "  ".join(parts)
