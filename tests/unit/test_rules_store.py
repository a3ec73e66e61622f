"""The rules file: round trip, 0600, atomic replace, bad rules kept aside, corrupt files moved
aside (never a crash), and only durable rules written."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

from camguard.core.rules import AppMatch, MatchBy, Mode, make_rule
from camguard.core.rules_json import rule_to_json
from camguard.store.rules import RuleFile

NOW = 1_700_000_000.0
ZOOM = make_rule("allow", app=AppMatch(MatchBy.EXE, "/usr/bin/zoom", "d" * 64),
                 kind="camera", label="zoom", created_at=NOW)
NIGHT = make_rule("block-device", kind="camera", window="daily 21:00-06:00", created_at=NOW)
TIMED = make_rule("kill", app=AppMatch(MatchBy.NAME, "spy"), duration="15m", created_at=NOW)
ONCE = make_rule("allow", duration="once", created_at=NOW)
SESSION = make_rule("allow", duration="until-restart", created_at=NOW)


def test_round_trip_mode_and_permissions(tmp_path: Path) -> None:
    f = RuleFile(tmp_path / "cfg" / "rules.json")
    assert f.load().rules == [] and f.load().mode is None  # no file yet: nothing, quietly
    f.save([ZOOM, NIGHT, TIMED, ONCE, SESSION], Mode.BLOCK_ALL)
    got = f.load()
    assert (got.rules, got.mode, got.problems) == ([ZOOM, NIGHT, TIMED], Mode.BLOCK_ALL, [])
    assert stat.S_IMODE(f.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(f.path.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in f.path.parent.iterdir()) == ["rules.json"]


def test_expired_rules_are_dropped_on_save(tmp_path: Path) -> None:
    f = RuleFile(tmp_path / "rules.json")
    f.save([ZOOM, TIMED], now=NOW + 899)
    assert f.load().rules == [ZOOM, TIMED]
    f.save([ZOOM, TIMED], now=NOW + 900)
    assert f.load().rules == [ZOOM]


def test_corrupt_file_is_moved_aside(tmp_path: Path) -> None:
    f = RuleFile(tmp_path / "rules.json")
    for n, junk in enumerate([b"{not json", b"\xff\xfe", b"[1, 2]", b"[" * 100_000], 1):
        f.path.write_bytes(junk)
        got = f.load()
        assert got.rules == [] and len(got.problems) == 1
        assert f"rules.json.corrupt-{n}" in got.problems[0]
        assert (tmp_path / f"rules.json.corrupt-{n}").read_bytes() == junk  # nothing lost
        assert not f.path.exists()
    f.save([ZOOM])
    assert f.load().rules == [ZOOM]


def test_bad_rules_are_skipped_and_the_file_kept(tmp_path: Path) -> None:
    f = RuleFile(tmp_path / "rules.json")
    raw = json.dumps({"version": 1, "mode": "sometimes", "rules": [
        rule_to_json(ZOOM), {"verdict": "allow", "window": "8 days a week"},
        rule_to_json(NIGHT)]}).encode()
    f.path.write_bytes(raw)
    got = f.load()
    assert got.rules == [ZOOM, NIGHT] and got.mode is None
    assert "rule 2" in got.problems[0] and "unknown mode" in got.problems[1]
    copies = list(tmp_path.glob("rules.json.rejected-*"))
    assert len(copies) == 1 and copies[0].read_bytes() == raw
    assert stat.S_IMODE(copies[0].stat().st_mode) == 0o600
    f.load()  # the same file again: no second copy
    assert len(list(tmp_path.glob("rules.json.rejected-*"))) == 1
    assert f.path.read_bytes() == raw  # loading never rewrites the user's file


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    f = RuleFile(tmp_path / "rules.json")
    f.path.mkdir()
    got = f.load()
    assert got.rules == [] and "cannot read" in got.problems[0]


def test_lock_serialises_read_modify_write(tmp_path: Path) -> None:
    f = RuleFile(tmp_path / "rules.json")
    f.save([])
    rules = [make_rule("allow", label=f"r{n}", created_at=NOW + n) for n in range(20)]

    def add(rule: object) -> None:
        other = RuleFile(f.path)  # as a second process would: its own descriptor
        with other.locked():
            contents = other.load()
            other.save([*contents.rules, rule])  # type: ignore[list-item]

    threads = [threading.Thread(target=add, args=(r,)) for r in rules]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.label for r in f.load().rules) == sorted(r.label for r in rules)
