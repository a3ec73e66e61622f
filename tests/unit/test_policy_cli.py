"""``camguard rules`` and ``camguard policy`` as a user runs them: real subprocesses, an
isolated config folder (CAMGUARD_CONFIG_DIR) and a policy file given by --policy-file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LOCKED = """\
locked = ["rules", "alert_default", "events_file"]
[settings]
alert_default = "block"
[[rules]]
label = "no camera after 21:00"
verdict = "block-device"
device = "camera"
window = "daily 21:00-24:00"
"""
OPEN = """\
locked = ["mode"]
[settings]
mode = "block-all-not-allowed"
alert_default = "block"
"""


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "camguard", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env}, check=False)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"CAMGUARD_CONFIG_DIR": str(tmp_path / "cfg"),
            "CAMGUARD_STATE_DIR": str(tmp_path / "state"),
            "CAMGUARD_DATA_DIR": str(tmp_path / "data")}


def policy(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    path.chmod(0o644)
    return str(path)


def test_locked_rules_cannot_be_changed(tmp_path: Path, env: dict[str, str]) -> None:
    pol = policy(tmp_path, LOCKED)
    out = run(env, "rules", "add", "--policy-file", pol, "--name", "zoom", "--verdict", "allow")
    assert out.returncode == 3, out.stderr
    assert f"the rules are locked by policy {pol}; ask your administrator" in out.stderr
    assert not (tmp_path / "cfg" / "rules.json").exists()
    exported = tmp_path / "mine.json"
    exported.write_text('{"version": 1, "rules": [{"verdict": "allow"}]}')
    assert run(env, "rules", "import", str(exported), "--policy-file", pol).returncode == 3
    # The policy's own rule cannot be removed either, and says who set it.
    out = run(env, "rules", "--policy-file", pol, "remove", "no camera after 21:00")
    assert out.returncode == 3 and f"set by policy {pol}" in out.stderr
    # Listing shows the policy rule and the lock.
    out = run(env, "rules", "list", "--json", "--policy-file", pol)
    doc = json.loads(out.stdout)
    assert doc["rules_locked"] is True and doc["locked_by"] == f"policy {pol}"
    assert [(r["label"], r["origin"]) for r in doc["rules"]] == [
        ("no camera after 21:00", "policy")]


def test_policy_overrides_user_settings(tmp_path: Path, env: dict[str, str]) -> None:
    pol = policy(tmp_path, LOCKED)
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "settings.json").write_text(json.dumps(
        {"settings": {"alert_default": "allow", "syslog": "udp://127.0.0.1:5514"}}))
    out = run(env, "policy", "show", "--json", "--policy-file", pol)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    s = doc["settings"]
    assert s["alert_default"] == {"value": "block", "source": "policy", "locked": True,
                                  "locked_by": f"policy {pol}",
                                  "note": "your value 'allow' is overridden"}
    assert s["syslog"]["value"] == "udp://127.0.0.1:5514" and s["syslog"]["source"] == "user"
    assert s["mode"] == {"value": "ask", "source": "default", "locked": False,
                         "locked_by": None, "note": None}
    assert s["rules"]["locked"] is True
    assert [r["label"] for r in doc["policy_rules"]] == ["no camera after 21:00"]
    human = run(env, "policy", "show", "--policy-file", pol)
    assert f"locked by policy {pol}" in human.stdout and "alert_default" in human.stdout


def test_locked_events_file_cannot_be_moved(tmp_path: Path, env: dict[str, str]) -> None:
    log = tmp_path / "it" / "events.jsonl"
    pol = policy(tmp_path, f'locked = ["events_file"]\n[settings]\nevents_file = "{log}"\n')
    moved = tmp_path / "elsewhere.jsonl"
    out = run(env, "--events-file", str(moved), "rules", "add", "--policy-file", pol,
              "--verdict", "kill", "--name", "spy")
    assert out.returncode == 3 and "the setting 'events_file' is locked" in out.stderr
    assert not moved.exists() and not (tmp_path / "cfg" / "rules.json").exists()
    out = run(env, "rules", "add", "--policy-file", pol, "--verdict", "kill", "--name", "spy")
    assert out.returncode == 0, out.stderr
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["type"] == "rule.added" and record["rule"]["app"]["name"] == "spy"


def test_locked_mode_and_policy_defaults(tmp_path: Path, env: dict[str, str]) -> None:
    pol = policy(tmp_path, OPEN)
    assert run(env, "rules", "mode", "--policy-file", pol).stdout.startswith(
        f"block-all-not-allowed (policy, locked by policy {pol})")
    out = run(env, "rules", "mode", "ask", "--policy-file", pol)
    assert out.returncode == 3 and "the setting 'mode' is locked" in out.stderr
    # Rules are not locked here: adding works, and the explanation uses the policy's mode.
    out = run(env, "rules", "add", "--policy-file", pol, "--path", "/usr/bin/cheese",
              "--verdict", "allow", "--kind", "camera", "--label", "cheese")
    assert out.returncode == 0, out.stderr
    out = run(env, "rules", "explain", "--kind", "camera", "--exe", "/usr/bin/other",
              "--policy-file", pol)
    assert out.stdout.startswith("block-device: no rule allows it; camera blocked (mode "
                                 "block-all-not-allowed)")
    out = run(env, "rules", "explain", "--kind", "camera", "--exe", "/usr/bin/cheese",
              "--policy-file", pol)
    assert out.stdout.startswith("allow: allowed by rule 'cheese'")


def test_broken_policy_is_loud_and_refuses_changes(tmp_path: Path,
                                                    env: dict[str, str]) -> None:
    pol = policy(tmp_path, "[settings\nalert_default = 'allow'\n")
    out = run(env, "policy", "show", "--policy-file", pol)
    assert out.returncode == 1
    assert "MANAGED POLICY NOT APPLIED" in out.stderr and "does not parse" in out.stderr
    assert "alert_default" in out.stdout  # the defaults in force are still shown
    out = run(env, "rules", "add", "--verdict", "kill", "--policy-file", pol)
    assert out.returncode == 3 and "cannot be read" in out.stderr


def test_add_list_remove_with_events(tmp_path: Path, env: dict[str, str]) -> None:
    pol = policy(tmp_path, "")  # an empty policy: nothing managed
    events = tmp_path / "ev" / "events.jsonl"
    exe = tmp_path / "app"
    exe.write_bytes(b"#!/bin/sh\n")
    out = run(env, "--events-file", str(events), "rules", "add", "--policy-file", pol,
              "--exe", str(exe), "--kind", "microphone", "--verdict", "ask",
              "--window", "mon-fri 16:00-19:00", "--label", "homework", "--json")
    assert out.returncode == 0, out.stderr
    added = json.loads(out.stdout)
    import hashlib

    assert added["app"] == {"match": "exe", "path": str(exe),
                            "sha256": hashlib.sha256(b"#!/bin/sh\n").hexdigest()}
    out = run(env, "rules", "list", "--policy-file", pol)
    assert added["id"] in out.stdout and "mon-fri 16:00-19:00" in out.stdout
    out = run(env, "rules", "remove", "homework", "--policy-file", pol,
              "--events-file", str(events))
    assert out.returncode == 0, out.stderr
    assert run(env, "rules", "remove", "homework", "--policy-file", pol).returncode == 4
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert [r["type"] for r in records] == ["rule.added", "rule.removed"]
    assert all(r["rule"]["id"] == added["id"] for r in records)


@pytest.mark.parametrize(("args", "message"), [
    (["--verdict", "allow", "--duration", "once"], "lives only inside the running camguard"),
    (["--verdict", "allow", "--window", "someday"], "unknown day"),
    (["--verdict", "allow", "--exe", "/nonexistent/zoom"], "cannot read"),
    (["--verdict", "allow", "--sha256", "ab" * 32], "--sha256 goes with --exe"),
    (["--verdict", "allow", "--exe", "/bin/sh", "--sha256", "xyz"], "SHA-256"),
])
def test_bad_rules_are_refused_with_exit_2(tmp_path: Path, env: dict[str, str],
                                           args: list[str], message: str) -> None:
    out = run(env, "rules", "add", "--policy-file", policy(tmp_path, ""), *args)
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_export_and_import(tmp_path: Path, env: dict[str, str]) -> None:
    pol = policy(tmp_path, "")
    for label in ("a", "b"):
        assert run(env, "rules", "add", "--policy-file", pol, "--name", label,
                   "--verdict", "kill", "--label", label).returncode == 0
    dump = tmp_path / "export.json"
    assert run(env, "rules", "export", str(dump), "--policy-file", pol).returncode == 0
    doc = json.loads(dump.read_text())
    doc["rules"].append({"verdict": "explode", "label": "broken"})
    doc["rules"].append({"verdict": "allow", "label": "new", "app": {"match": "any"}})
    dump.write_text(json.dumps(doc))
    other = {**env, "CAMGUARD_CONFIG_DIR": str(tmp_path / "cfg2")}
    out = run(other, "rules", "import", str(dump), "--policy-file", pol)
    assert out.returncode == 1  # one rule rejected, the rest imported
    assert "rule 3 ('broken'): unknown verdict" in out.stderr
    assert "imported 3 rule(s)" in out.stdout
    listed = json.loads(run(other, "rules", "list", "--json", "--policy-file", pol).stdout)
    assert sorted(r["label"] for r in listed["rules"]) == ["a", "b", "new"]
    out = run(other, "rules", "import", str(dump), "--policy-file", pol)
    assert "imported 0 rule(s); 3 already present" in out.stdout
