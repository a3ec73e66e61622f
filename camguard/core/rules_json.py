"""Rules as JSON: the rules file, export and import (validated rule by rule, never crashing)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from camguard.core.decision import Decision
from camguard.core.rules import (
    AppMatch,
    Duration,
    MatchBy,
    Mode,
    Origin,
    Rule,
    RuleError,
    make_rule,
)
from camguard.core.text import json_safe, literal

FORMAT_VERSION = 1


def rule_to_json(rule: Rule) -> dict[str, Any]:
    app: dict[str, Any] = {"match": rule.app.by.value}
    if rule.app.by is MatchBy.NAME:
        app["name"] = json_safe(rule.app.value)
    elif rule.app.by is MatchBy.ORIGIN:
        app["origin"] = json_safe(rule.app.value)
    elif rule.app.by is not MatchBy.ANY:
        app["path"] = json_safe(rule.app.value)
    if rule.app.sha256 is not None:
        app["sha256"] = rule.app.sha256
    return {
        "id": rule.id,
        "label": json_safe(rule.label),
        "verdict": rule.verdict.value,
        "app": app,
        "device": rule.kind.value if rule.kind else "any",
        "user": None if rule.user is None else json_safe(rule.user),
        "window": None if rule.window is None else str(rule.window),
        "duration": rule.duration.value,
        "created_at": rule.created_at,
    }


_RULE_KEYS = frozenset({"id", "label", "verdict", "app", "device", "user", "window", "duration",
                        "created_at"})
_APP_KEYS = {MatchBy.ANY: set(), MatchBy.EXE: {"path", "sha256"}, MatchBy.PATH: {"path"},
             MatchBy.NAME: {"name"}, MatchBy.ORIGIN: {"origin"},
             MatchBy.SCRIPT: {"path", "sha256"}}


def rule_from_json(obj: Any, origin: Origin = Origin.USER) -> Rule:
    """One rule from its JSON object; raises :class:`RuleError` saying what is wrong.

    Unknown keys are refused rather than dropped: a condition this version does not know,
    silently ignored, would make the rule match more than its author meant.
    """
    if not isinstance(obj, Mapping):
        raise RuleError("a rule must be an object")
    unknown = set(obj) - _RULE_KEYS
    if unknown:
        raise RuleError(f"unknown key(s) {', '.join(sorted(map(repr, unknown)))}")
    label = _opt_str(obj, "label") or ""
    app_doc = obj.get("app", {"match": "any"})
    if not isinstance(app_doc, Mapping):
        raise RuleError("'app' must be an object")
    try:
        by = MatchBy(str(app_doc.get("match")))
    except ValueError:
        raise RuleError(f"unknown app match {literal(str(app_doc.get('match')), 40)!r} "
                        "(use exe, script, origin, path, name or any)") from None
    extra = set(app_doc) - {"match"} - _APP_KEYS[by]
    if extra:
        raise RuleError(f"app match {by.value!r} takes no {', '.join(sorted(extra))}")
    field = {MatchBy.NAME: "name", MatchBy.ORIGIN: "origin"}.get(by, "path")
    value = _opt_str(app_doc, field) or ""
    sha = _opt_str(app_doc, "sha256")
    app = AppMatch(by, value, sha.lower() if sha else None)
    created = obj.get("created_at", None)
    duration = obj.get("duration", "always")
    if created is None:
        if duration in (Duration.MIN15.value, Duration.HOUR.value):
            raise RuleError("a timed rule (15m, 1h) needs created_at")
        created = 0.0
    if isinstance(created, bool) or not isinstance(created, int | float):
        raise RuleError("created_at must be a number (seconds since 1970)")
    rule = make_rule(obj.get("verdict", ""), app=app, kind=obj.get("device", "any"),
                     user=_opt_str(obj, "user"), window=_opt_str(obj, "window"),
                     duration=str(duration),
                     created_at=float(created), label=label, origin=origin)
    given = obj.get("id")
    if given is not None:
        if not isinstance(given, str) or not re.fullmatch(r"[0-9a-z_-]{1,64}", given):
            raise RuleError("'id' must be 1-64 characters of a-z, 0-9, '-' or '_'")
        rule = replace(rule, id=given)
    return rule


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise RuleError(f"{key!r} must be text")
    return value


def rules_to_json(rules: Iterable[Rule], mode: Mode | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": FORMAT_VERSION}
    if mode is not None:
        doc["mode"] = mode.value
    doc["rules"] = [rule_to_json(r) for r in rules]
    return doc


def rules_from_json(doc: Any, origin: Origin = Origin.USER) -> tuple[list[Rule], list[str]]:
    """The valid rules of a rules document and one error line per rule that is not.

    Never raises: a document of the wrong shape gives no rules and one error.
    """
    if isinstance(doc, list):  # a bare list of rules (hand-written, or another tool)
        items: Any = doc
    elif isinstance(doc, Mapping):
        if doc.get("version", FORMAT_VERSION) != FORMAT_VERSION:
            return [], [f"unsupported rules format version {literal(str(doc['version']), 20)}"]
        items = doc.get("rules", [])
    else:
        return [], ["not a rules document (expected an object with a 'rules' list)"]
    if not isinstance(items, list):
        return [], ["'rules' must be a list"]
    rules: list[Rule] = []
    errors: list[str] = []
    seen: set[str] = set()
    for n, item in enumerate(items, 1):
        try:
            rule = rule_from_json(item, origin)
        except (RuleError, ValueError, TypeError, RecursionError) as exc:
            label = item.get("label") if isinstance(item, Mapping) else None
            named = f" ({literal(label, 60)!r})" if isinstance(label, str) and label else ""
            errors.append(f"rule {n}{named}: {exc}")
            continue
        if rule.id in seen:
            errors.append(f"rule {n}: duplicate id {rule.id!r}")
            continue
        seen.add(rule.id)
        rules.append(rule)
    return rules, errors


def decision_dict(d: Decision) -> dict[str, Any]:
    """The JSON shape of a decision (events, ``--json`` output)."""
    return {
        "verdict": d.verdict.value,
        "would": None if d.would is None else d.would.value,
        "mode": d.mode.value,
        "rule_id": None if d.rule is None else d.rule.id,
        "rule_label": None if d.rule is None else json_safe(d.rule.label),
        "rule_origin": None if d.rule is None else d.rule.origin.value,
        "explanation": json_safe(d.explanation),
        "notes": [json_safe(n) for n in d.notes],
    }
