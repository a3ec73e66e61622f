"""Managed policy: the TOML file, the Windows registry (recorded export), what wins, and a
broken policy that is reported loudly while the last good one stays in force."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from camguard.core.rules import MatchBy, Origin, Verdict
from camguard.store.policy import (
    NO_POLICY,
    RULES,
    ManagedPolicy,
    Policy,
    TomlPolicyReader,
    check_value,
    effective_settings,
    load_user_settings,
    policy_from_mapping,
)
from camguard.store.policy_registry import WindowsRegistryPolicyReader
from tests.fakes import FakeRegistry

DATA = Path(__file__).parent.parent / "data"

POLICY = """\
locked = ["rules"]

[settings]
alert_default = "block"
mode = "notify-only"
hook_timeout = 5
locked = ["alert_default", "events_file"]

[[rules]]
label = "no camera after 21:00"
verdict = "block-device"
device = "camera"
window = "daily 21:00-24:00"

[[rules]]
label = "zoom"
verdict = "allow"
app = { match = "path", path = "/usr/bin/zoom" }
"""


def write(path: Path, text: str | bytes, mode: int = 0o644) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    os.chmod(path, mode)
    return path


def test_toml_policy_is_read(tmp_path: Path) -> None:
    reader = TomlPolicyReader(write(tmp_path / "policy.toml", POLICY))
    policy = reader.read()
    assert policy is not None
    assert policy.source == f"policy {tmp_path}/policy.toml"
    assert dict(policy.settings) == {"alert_default": "block", "mode": "notify-only",
                                     "hook_timeout": 5.0}
    assert policy.locked == {"rules", "alert_default", "events_file"}
    assert [r.label for r in policy.rules] == ["no camera after 21:00", "zoom"]
    assert {r.origin for r in policy.rules} == {Origin.POLICY}
    assert policy.problems == ()


def test_missing_policy_is_no_policy(tmp_path: Path) -> None:
    assert TomlPolicyReader(tmp_path / "none.toml").read() is None
    status = ManagedPolicy(TomlPolicyReader(tmp_path / "none.toml")).load()
    assert status.policy == NO_POLICY and status.error is None


def test_bad_parts_are_skipped_and_reported(tmp_path: Path) -> None:
    text = """\
locked = ["alert_default", "colour", 7]
shout = true
[settings]
alert_default = "explode"
mode = "ask"
hook = "relative/hook.sh"
rescan_interval = -1
camera_globs = ["video*"]
volume = 11
[[rules]]
verdict = "allow"
duration = "1h"
created_at = 1
[[rules]]
verdict = "nuke"
"""
    policy = TomlPolicyReader(write(tmp_path / "p.toml", text)).read()
    assert policy is not None
    assert dict(policy.settings) == {"mode": "ask"}
    assert policy.locked == {"alert_default"}
    joined = "\n".join(policy.problems)
    for expected in ("'colour'", "unknown setting 7", "'shout'", "alert_default must be one of",
                     "hook must be an absolute path", "rescan_interval", "camera_globs",
                     "unknown setting 'volume'", "lasts 'always'", "unknown verdict"):
        assert expected in joined, expected
    assert all(p.startswith(f"policy {tmp_path}/p.toml: ") for p in policy.problems)


def test_policy_writable_by_others_is_flagged(tmp_path: Path) -> None:
    policy = TomlPolicyReader(write(tmp_path / "p.toml", POLICY, 0o666)).read()
    assert policy is not None and policy.rules  # still applied...
    assert "writable by users other than root" in policy.problems[-1]  # ...but flagged


@pytest.mark.parametrize("content", [b"[settings\nmode = 'ask'", b"\xff\xfe garbage",
                                     b"mode = 'ask'\nmode = 'ask'\n"])
def test_broken_policy_keeps_the_last_good_one_and_says_so_loudly(
        tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "policy.toml", POLICY)
    managed = ManagedPolicy(TomlPolicyReader(path))
    good = managed.load()
    assert good.error is None and good.policy.is_locked(RULES)
    write(path, content)
    with caplog.at_level(logging.ERROR):
        broken = managed.load()
    assert broken.policy == good.policy  # the last good policy stays in force
    assert broken.error is not None and "MANAGED POLICY NOT APPLIED" in broken.error
    assert "does not parse" in broken.error and "last good policy" in broken.error
    assert any(r.levelno == logging.ERROR and "NOT APPLIED" in r.getMessage()
               for r in caplog.records)
    # Without an earlier good read, the defaults apply, and the report says so.
    fresh = ManagedPolicy(TomlPolicyReader(path)).load()
    assert fresh.policy == NO_POLICY and "built-in defaults" in (fresh.error or "")
    # Fixed again: in force again, the error gone.
    write(path, POLICY)
    assert managed.load() == good


def test_unreadable_policy_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.mkdir()  # reading a folder fails even as root
    status = ManagedPolicy(TomlPolicyReader(path)).load()
    assert status.policy == NO_POLICY and "cannot read" in (status.error or "")


# -- what wins --------------------------------------------------------------------------------
# (user value, policy value, locked?) -> (value in force, source)
WINS = [
    (None, None, False, "allow", "default"),
    ("kill", None, False, "kill", "user"),
    (None, "block", False, "block", "policy"),
    ("kill", "block", False, "kill", "user"),  # an unlocked policy value is a default
    ("kill", "block", True, "block", "policy"),
    ("kill", None, True, "allow", "default"),  # locked without a value: the default, fixed
    (None, "block", True, "block", "policy"),
]


@pytest.mark.parametrize(("user", "pol", "locked", "value", "source"), WINS)
def test_what_wins(user: str | None, pol: str | None, locked: bool, value: str,
                   source: str) -> None:
    policy = Policy("policy /etc/camguard/policy.toml",
                    {} if pol is None else {"alert_default": pol},
                    frozenset({"alert_default"} if locked else ()))
    eff = effective_settings({} if user is None else {"alert_default": user}, policy)
    item = eff.items["alert_default"]
    assert (item.value, item.source, item.locked) == (value, source, locked)
    assert item.locked_by == ("policy /etc/camguard/policy.toml" if locked else None)
    assert (eff.refusal("alert_default") is None) is not locked
    if locked and user is not None and user != value:
        assert "overridden" in item.note


def test_locked_rules_drop_the_users_rules(tmp_path: Path) -> None:
    from camguard.core.rules import make_rule

    mine = [make_rule("allow", label="mine")]
    policy = TomlPolicyReader(write(tmp_path / "p.toml", POLICY)).read()
    assert policy is not None
    eff = effective_settings({}, policy, mine)
    assert [r.label for r in eff.rules] == ["no camera after 21:00", "zoom"]
    assert eff.items[RULES].locked and "not used" in eff.items[RULES].note
    assert "locked by policy" in (eff.refusal(RULES) or "")
    open_policy = Policy("policy x", {}, frozenset(), policy.rules)
    assert [r.label for r in effective_settings({}, open_policy, mine).rules] == [
        "no camera after 21:00", "zoom", "mine"]
    star = Policy("policy x", {}, frozenset({"*"}))
    assert all(i.locked for i in effective_settings({}, star).items.values())


def test_user_settings_file(tmp_path: Path) -> None:
    f = tmp_path / "settings.json"
    f.write_text('{"detection": {"rescan_interval": 5, "settle": 0.1},'
                 ' "settings": {"alert_default": "kill", "syslog": 7, "shoe": 1}}')
    values, problems = load_user_settings(f)
    assert values == {"rescan_interval": 5.0, "alert_default": "kill"}
    assert len(problems) == 2 and "syslog" in problems[0] and "'shoe'" in problems[1]
    f.write_bytes(b"\xff{")
    assert load_user_settings(f)[0] == {} and load_user_settings(f)[1]
    assert load_user_settings(tmp_path / "none.json") == ({}, [])


@pytest.mark.parametrize(("name", "value"), [("mode", "panic"), ("hook_timeout", True),
                                             ("hook_events", ["", "x"]), ("nope", 1),
                                             ("events_file", "rel/path"),
                                             ("hook_timeout", float("inf"))])
def test_check_value_refuses(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{name}|unknown setting"):
        check_value(name, value)


# -- Windows: the same policy through the registry ---------------------------------------------
def test_registry_policy_from_a_recorded_export() -> None:
    reader = WindowsRegistryPolicyReader(FakeRegistry.from_file(DATA / "policy.reg.json"))
    policy = reader.read()
    assert policy is not None
    assert policy.source == "registry HKLM\\Software\\Policies\\camguard"
    assert dict(policy.settings) == {
        "alert_default": "block", "mode": "block-all-not-allowed",
        "hook": "C:\\Program Files\\Corp\\camguard-hook.exe", "hook_timeout": 30.0,
        "events_stderr": True, "hook_events": ("device.started", "block.on"),
        "syslog": "udp://logs.corp.example:514"}
    assert policy.locked == {"alert_default", "rules", "hook", "mode"}
    labels = [r.label for r in policy.rules]
    assert labels == ["no camera in exam hours", "Teams"]
    teams = policy.rules[1]
    assert teams.app.by is MatchBy.EXE and teams.verdict is Verdict.ALLOW
    problems = "\n".join(policy.problems)
    for expected in ("rescan_interval", "'colour'", "lasts 'always'", "Rules\\4"):
        assert expected in problems, expected
    eff = effective_settings({"alert_default": "allow", "hook_timeout": 3.0}, policy)
    assert eff.items["alert_default"].locked_by == policy.source
    assert eff.value("alert_default") == "block" and eff.value("hook_timeout") == 3.0


def test_registry_without_the_key_is_no_policy_and_denied_is_an_error() -> None:
    assert WindowsRegistryPolicyReader(FakeRegistry({})).read() is None
    denied = FakeRegistry.from_file(DATA / "policy.reg.json", fail=True)
    status = ManagedPolicy(WindowsRegistryPolicyReader(denied)).load()
    assert status.error is not None and "Access is denied" in status.error


def test_mapping_with_wrong_shapes_never_raises() -> None:
    for doc in ({"settings": 5}, {"locked": "mode"}, {"rules": "x"}, {"rules": {"a": 1}},
                {"settings": {"locked": 3}}):
        policy = policy_from_mapping(doc, "policy t")
        assert policy.problems and not policy.settings and not policy.rules


def test_the_shipped_example_policy_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "resources" / "policy.example.toml"
    import tomllib

    policy = policy_from_mapping(tomllib.loads(example.read_text()), "policy example")
    assert policy.problems == ()
    assert policy.is_locked(RULES) and policy.settings["alert_default"] == "block"
    assert [r.label for r in policy.rules] == ["no camera after 21:00", "video calls"]
