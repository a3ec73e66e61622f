"""Scripts run by an interpreter, on real processes holding real stand-in nodes.

Two Python programs run by the same /usr/bin/python3 (a real interpreter, real files, real
processes found by the real procfs scan) are two apps: the popup's "Always allow" for one
writes a script rule (path + SHA-256) to a real rules file, and the tray's judge allows
that one and asks about the other; the same script with other bytes is asked about again,
with the reason.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from camguard.core.decision import Verdict
from camguard.core.models import DeviceKind, Usage
from camguard.core.rules import MatchBy
from camguard.core.serialize import process_dict
from camguard.platform.clock import SystemClock
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber, RunningScript
from camguard.store.eventlog import usage_fields
from camguard.store.hashing import ScriptHasher, sha256_file
from camguard.store.policy import ManagedPolicy, TomlPolicyReader
from camguard.store.rules import RuleFile
from camguard.ui.adapters import NullAllow, RuleAllower
from camguard.ui.judge import RuleJudge
from tests.conftest import IS_ROOT, Holder, make_standin, need, write_holder_script
from tests.realenv import wait_until

pytestmark = pytest.mark.real


def system_python() -> str:
    path = shutil.which("python3", path="/usr/bin:/bin")
    need(path is not None, "no /usr/bin/python3 here")
    assert path is not None
    return path


def usage_of(source: ProcfsSource, holder: Holder) -> Usage:
    """The usage the real procfs scan finds for ``holder``."""
    found: list[Usage] = []

    def seen() -> bool:
        found[:] = [u for u in source.snapshot().usages
                    if u.process is not None and u.process.pid == holder.pid]
        return bool(found)

    wait_until(seen, 30, "the holder's usage")
    return found[0]


def test_two_python_scripts_are_two_apps_to_one_allow_rule(
        devdir: Path, holders: list[Holder], tmp_path: Path) -> None:
    python = system_python()
    cam = make_standin(devdir / "video0")
    work = tmp_path / "work"
    mine = write_holder_script(work / "mine.py", "the script the user trusts")
    other = write_holder_script(tmp_path / "elsewhere" / "other.py", "another program")
    source = ProcfsSource([f"{devdir}/video*"], [], describer=ProcessDescriber())
    clock = SystemClock()
    (tmp_path / "policy.toml").write_text("")
    (tmp_path / "settings.json").write_text(json.dumps({"settings": {}}))
    rules = RuleFile(tmp_path / "rules.toml")
    judge = RuleJudge(rules, ManagedPolicy(TomlPolicyReader(tmp_path / "policy.toml")).load,
                      clock, settings_path=tmp_path / "settings.json", tz=datetime.UTC)

    # Relative to its working folder, the way a person runs it: "python3 mine.py".
    a = Holder([cam], exe=python, script="mine.py", cwd=work)
    holders.append(a)
    b = Holder([cam], exe=python, script=other)
    holders.append(b)
    ua, ub = usage_of(source, a), usage_of(source, b)
    assert ua.process is not None and ub.process is not None
    assert ua.process.exe == ub.process.exe  # one interpreter...
    assert (ua.process.script, ub.process.script) == (str(mine), str(other))  # two scripts
    assert process_dict(ua.process)["script"] == str(mine)  # status --json / watch --json
    assert usage_fields(ua)["script"] == str(mine)  # the event log
    assert usage_fields(ub)["script"] == str(other)
    assert judge.decision(ua).verdict is Verdict.ASK  # no rule yet

    # The popup's "Always allow" for the first: a rule for the script, not for python3.
    granted = RuleAllower(NullAllow(), rules, clock).allow(ua.process, DeviceKind.CAMERA)
    assert "mine.py" in granted.message, granted.message
    [rule] = rules.load().rules
    assert (rule.app.by, rule.app.value, rule.app.sha256) == (
        MatchBy.SCRIPT, str(mine), sha256_file(str(mine)))

    allowed, asked = judge.decision(ua), judge.decision(ub)
    assert (allowed.verdict, allowed.rule) == (Verdict.ALLOW, rule)
    assert (asked.verdict, asked.rule) == (Verdict.ASK, None)

    # The same script with other bytes is another program: asked again, and told why.
    a.end()
    mine.write_text(mine.read_text() + "\n# changed\n")
    a2 = Holder([cam], exe=python, script=mine)
    holders.append(a2)
    changed = judge.decision(usage_of(source, a2))
    assert changed.verdict is Verdict.ASK
    assert any("the script at" in n and "changed" in n for n in changed.notes), changed.notes


def test_the_service_reads_a_script_only_as_its_owner_could(
        devdir: Path, holders: list[Holder], tmp_path: Path) -> None:
    """RunningScript (the root service's way to read a script): through the process's own
    root, and not a file the process's owner may not read."""
    need(IS_ROOT, "needs root: a process of another user")
    python = system_python()
    cam = make_standin(devdir / "video0")
    script = write_holder_script(tmp_path / "s.py", "root's")
    holder = Holder([cam], exe=python, script=script)
    holders.append(holder)
    ref = ProcessDescriber().describe(holder.pid)
    assert ref is not None and ref.script == str(script)
    hasher = ScriptHasher(source=RunningScript())
    assert hasher(ref) == sha256_file(str(script))  # root's process, root's file
    holder.end()
    assert hasher(ref) is None  # gone: its pid may be another process's now


def test_the_service_does_not_hash_a_script_its_owner_may_not_read() -> None:
    """Another user's interpreter whose script became root's alone (mode 0600): the root
    service does not read it for that user's process (its hash would say what the file
    holds), while a world-readable one is read."""
    need(IS_ROOT, "needs root: a process of another user")
    python = system_python()
    # Not under pytest's tmp_path (root's alone): another user must reach the script.
    with tempfile.TemporaryDirectory(prefix="camguard-script-") as where:
        Path(where).chmod(0o755)
        _another_users_script(python, Path(where) / "s.py")


def _another_users_script(python: str, script: Path) -> None:
    script.write_text("import sys; print('ready', flush=True); sys.stdin.readline()\n")
    script.chmod(0o644)
    proc = subprocess.Popen([python, str(script)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, user=65534, group=65534,
                            cwd="/")
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        ref = ProcessDescriber().describe(proc.pid)
        assert ref is not None and ref.script == str(script)
        hasher = ScriptHasher(source=RunningScript())
        assert hasher(ref) == sha256_file(str(script))  # anyone may read it
        script.chmod(0o600)  # root's alone now; the process still runs
        assert ScriptHasher(source=RunningScript())(ref) is None
        assert ScriptHasher()(ref) == sha256_file(str(script))  # a user's own tray: its own
    finally:
        proc.kill()
        proc.wait(10)


def test_rules_add_script_then_list(tmp_path: Path) -> None:
    script = write_holder_script(tmp_path / "cam.py", "cli")
    env = {**os.environ, "CAMGUARD_CONFIG_DIR": str(tmp_path / "cfg"),
           "CAMGUARD_DATA_DIR": str(tmp_path / "data"),
           "CAMGUARD_STATE_DIR": str(tmp_path / "state"),
           "CAMGUARD_SOCKET": str(tmp_path / "no-service.sock")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "camguard", *args], capture_output=True,
                              text=True, timeout=120, env=env, check=False)

    added = run("rules", "add", "--verdict", "allow", "--script", str(script))
    assert added.returncode == 0, added.stderr
    listed = run("rules", "list")
    assert f"the script {script}" in listed.stdout, listed.stdout
    missing = run("rules", "add", "--verdict", "allow", "--script", str(tmp_path / "none.py"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
