"""Rules as JSON: round trip, per-rule validation errors, and no input that crashes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from camguard.core.rules import AppMatch, MatchBy, Mode, Origin, make_rule
from camguard.core.rules_json import rule_from_json, rule_to_json, rules_from_json, rules_to_json

HASH = "c" * 64
RULES = [
    make_rule("allow", app=AppMatch(MatchBy.EXE, "/usr/bin/zoom", HASH), kind="camera",
              label="zoom", created_at=1_700_000_000.25),
    make_rule("block-device", kind="camera", window="daily 21:00-24:00",
              label="no camera after 21:00", created_at=1_700_000_001.0),
    make_rule("kill", app=AppMatch(MatchBy.NAME, "spy\udcff"), user="kid", duration="1h",
              created_at=1_700_000_002.0),
    make_rule("ask", app=AppMatch(MatchBy.PATH, "/opt/"), kind="microphone", duration="15m",
              window="mon-fri 16:00-19:00", created_at=1_700_000_003.0),
]


def test_round_trip_through_json_text() -> None:
    text = json.dumps(rules_to_json(RULES, Mode.NOTIFY_ONLY))
    doc = json.loads(text)
    assert doc["mode"] == "notify-only" and doc["version"] == 1
    back, errors = rules_from_json(doc)
    assert errors == []
    # The undecodable byte becomes visible text; everything else is exact.
    assert back[:2] == RULES[:2] and back[3] == RULES[3]
    assert back[2].app.value == "spy\\xff" and back[2].id == RULES[2].id


def test_shape_of_one_rule() -> None:
    assert rule_to_json(RULES[0]) == {
        "id": RULES[0].id, "label": "zoom", "verdict": "allow",
        "app": {"match": "exe", "path": "/usr/bin/zoom", "sha256": HASH},
        "device": "camera", "user": None, "window": None, "duration": "always",
        "created_at": 1_700_000_000.25}


def test_minimal_rule_and_policy_origin() -> None:
    rule = rule_from_json({"verdict": "block-device", "device": "camera",
                           "app": {"match": "path", "path": "/usr/bin/cheese"}},
                          Origin.POLICY)
    assert rule.origin is Origin.POLICY and rule.created_at == 0.0 and rule.id
    upper = rule_from_json({"verdict": "allow",
                            "app": {"match": "exe", "path": "/x", "sha256": "AB" * 32}})
    assert upper.app.sha256 == "ab" * 32


def test_each_bad_rule_is_reported_and_the_good_ones_kept() -> None:
    doc: dict[str, Any] = {"version": 1, "rules": [
        rule_to_json(RULES[0]),
        {"verdict": "nuke", "label": "bad verdict"},
        {"verdict": "allow", "app": {"match": "exe", "path": "/usr/bin/x"}},
        {"verdict": "allow", "colour": "red"},
        {"verdict": "allow", "app": {"match": "name", "name": "x", "path": "/x"}},
        {"verdict": "kill", "duration": "15m"},
        "not an object",
        {"verdict": "allow", "window": 7},
        {"verdict": "allow", "id": "Bad Id!"},
        rule_to_json(RULES[0]),
        rule_to_json(RULES[1]),
    ]}
    rules, errors = rules_from_json(doc)
    assert rules == RULES[:2]
    assert [e.split(":")[0] for e in errors] == [
        "rule 2 ('bad verdict')", "rule 3", "rule 4", "rule 5", "rule 6", "rule 7", "rule 8",
        "rule 9", "rule 10"]
    assert "unknown verdict" in errors[0] and "SHA-256" in errors[1]
    assert "'colour'" in errors[2] and "takes no path" in errors[3]
    assert "needs created_at" in errors[4] and "must be an object" in errors[5]
    assert "'window' must be text" in errors[6] and "'id'" in errors[7]
    assert "duplicate id" in errors[8]


def test_wrong_documents_give_one_error() -> None:
    assert rules_from_json({"version": 2, "rules": []})[1] == [
        "unsupported rules format version 2"]
    assert rules_from_json("rules")[0] == [] and len(rules_from_json("rules")[1]) == 1
    assert rules_from_json({"rules": {}})[1] == ["'rules' must be a list"]
    assert rules_from_json([rule_to_json(RULES[1])]) == ([RULES[1]], [])


JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c,
                                                                        max_size=4),
                    max_leaves=12)
RULE_LIKE = st.fixed_dictionaries({}, optional={
    "verdict": st.sampled_from(["allow", "kill", "ask", "block-device", "x"]) | JSON,
    "app": st.fixed_dictionaries({"match": st.sampled_from(["exe", "path", "name", "any"])},
                                 optional={"path": st.text() | JSON, "name": st.text(),
                                           "sha256": st.text()}) | JSON,
    "device": st.sampled_from(["camera", "microphone", "any"]) | JSON,
    "window": st.sampled_from(["mon-fri 16:00-19:00", "daily"]) | st.text() | JSON,
    "duration": st.sampled_from(["once", "15m", "always"]) | JSON,
    "created_at": st.floats() | st.integers() | JSON,
    "user": st.text() | JSON, "label": st.text() | JSON, "id": st.text() | JSON,
})


@settings(max_examples=150, deadline=None)
@given(st.lists(RULE_LIKE | JSON, max_size=5) | JSON)
def test_no_input_crashes_the_importer(items: Any) -> None:
    doc = {"version": 1, "rules": items} if isinstance(items, list) else items
    rules, errors = rules_from_json(doc)
    if isinstance(items, list):
        assert len(rules) + len(errors) == len(items)
    for rule in rules:  # whatever was accepted survives its own round trip
        assert rules_from_json([rule_to_json(rule)]) == ([rule], [])
