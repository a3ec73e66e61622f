"""Rules, the event log and the hook in the running tray (standalone): each usage a real child
process starts is decided by the user's rules file and the policy before anyone is asked."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from camguard.app import EventOutputs, build_event_outputs
from camguard.cli.tray import user_effective
from camguard.core.decision import Choice, DecidedBy
from camguard.core.models import DeviceKind
from camguard.core.rules import AppMatch, MatchBy, Mode, Rule, make_rule
from camguard.platform.clock import SystemClock, local_zone
from camguard.store.allowlist import AllowList
from camguard.store.eventlog import last_records
from camguard.store.hashing import sha256_file
from camguard.store.policy import ManagedPolicy, TomlPolicyReader
from camguard.store.rules import RuleFile
from camguard.ui.judge import RuleJudge
from camguard.ui.tray_options import TrayOptions
from tests.conftest import Holder, need_root
from tests.gui.wiring_rig import Dirs, Live, dirs, launch, lives, node_mode

__all__ = ["dirs", "lives"]  # fixtures

EXE = os.path.realpath(sys.executable)  # what every Holder runs


def path_rule(verdict: str, kind: str, label: str) -> Rule:
    return make_rule(verdict, app=AppMatch(MatchBy.PATH, EXE), kind=kind, label=label,
                     created_at=SystemClock().now())


def tray(qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live], *,
         settings: dict[str, Any] | None = None, policy: str | None = None,
         rule_file: RuleFile | None = None) -> tuple[Live, EventOutputs]:
    """The tray as cli/tray.py puts it together alone: the event log and hook from the
    settings, the rules judge over the rules file and the policy."""
    settings_path = dirs.config / "settings.json"
    settings_path.write_text(json.dumps({"settings": settings or {}}))
    policy_path = dirs.root / "policy.toml"
    policy_path.write_text(policy or "")
    managed = ManagedPolicy(TomlPolicyReader(policy_path))
    status = managed.load()
    clock = SystemClock()
    outputs = build_event_outputs(user_effective(settings_path, status), clock)
    assert outputs.problems == []
    judge = RuleJudge(RuleFile(), managed.load, clock, settings_path=settings_path,
                      tz=local_zone(), events=outputs.log)
    options = TrayOptions(policy=managed.load, events=outputs.log, rules=judge,
                          rule_file=rule_file, on_start=lambda: outputs.start("test"),
                          on_stop=outputs.stop)
    live = launch(qtbot, dirs, holders, options)
    lives.append(live)
    return live, outputs


def events(dirs: Dirs) -> list[dict[str, Any]]:
    return last_records(dirs.state / "events.jsonl", 1 << 20)


def said(live: Live) -> list[str]:
    out: list[str] = []
    live.controller.message.connect(lambda title, text: out.append(f"{title}: {text}"))
    return out


def gone(qtbot: QtBot, h: Holder) -> None:
    """The holder ended (waited for with the event loop running: the kill goes through it)."""
    qtbot.waitUntil(lambda: h.proc.poll() is not None, timeout=20_000)


def hook_script(tmp: Path) -> tuple[Path, Path]:
    out = tmp / "hook.out"
    script = tmp / "hook.sh"
    script.write_text(f'#!/bin/sh\necho "$@" >> {out}\n')
    script.chmod(0o755)
    return script, out


def test_rules_allow_and_kill_before_anyone_is_asked_and_everything_is_logged(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live]) -> None:
    script, hook_out = hook_script(dirs.root)
    RuleFile().save([path_rule("allow", "camera", "trusted cam"),
                     path_rule("kill", "microphone", "no mic")])
    live, outputs = tray(qtbot, dirs, holders, lives, settings={
        "hook": str(script), "hook_events": ["device.started", "decision.made"]})
    c = live.controller

    cam = live.hold()
    rec = live.session(cam.pid)
    assert (rec.decision, rec.decided_by) == (Choice.ALLOW_ONCE, "rule:trusted cam")
    qtbot.waitUntil(lambda: any(u.allowed for u in c.snapshot().users), timeout=10_000)
    assert not live.parts.popup.isVisible() and c.pending_alerts() == ()

    mic = live.hold(DeviceKind.MICROPHONE)
    gone(qtbot, mic)  # the rule ended it
    rec = live.session(mic.pid)
    assert (rec.decision, rec.decided_by) == (Choice.KILL, "rule:no mic")
    assert not live.parts.popup.isVisible()

    # Without a rule for it (the file is read for each usage), the user is asked.
    RuleFile().save([])
    asked = live.hold()
    qtbot.waitUntil(live.parts.popup.isVisible, timeout=20_000)
    qtbot.mouseClick(live.parts.popup.buttons[Choice.KILL], Qt.MouseButton.LeftButton)
    gone(qtbot, asked)
    assert live.session(asked.pid).decided_by == DecidedBy.POPUP

    assert outputs.hooks is not None and outputs.hooks.wait_idle(30)
    live.stop()
    recs = events(dirs)
    types = [r["type"] for r in recs]
    assert types[0] == "camguard.started" and types[-1] == "camguard.stopped"
    made = {r["pid"]: r for r in recs if r["type"] == "decision.made"}
    assert made[cam.pid]["verdict"] == "allow" and made[cam.pid]["rule_label"] == "trusted cam"
    assert made[mic.pid]["explanation"] == "killed by rule 'no mic'"
    assert asked.pid not in made  # "no rule: ask" is the alert, not a decision
    [shown] = [r for r in recs if r["type"] == "alert.shown"]
    [answered] = [r for r in recs if r["type"] == "alert.decided"]
    assert shown["pid"] == answered["pid"] == asked.pid
    assert (answered["choice"], answered["by"]) == ("kill", "user")
    started = {r["pid"] for r in recs if r["type"] == "device.started"}
    assert {cam.pid, mic.pid, asked.pid} <= started
    lines = hook_out.read_text().splitlines()
    assert any(line.startswith("device.started ") and f" {mic.pid} {EXE} " in line
               for line in lines)
    assert any(line.startswith("decision.made ") and f" {cam.pid} " in line for line in lines)


def test_allow_list_first_notify_only_and_rules_while_paused(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live]) -> None:
    RuleFile().save([path_rule("kill", "any", "kill python")])
    live, _outputs = tray(qtbot, dirs, holders, lives)
    c = live.controller
    messages = said(live)
    digest = sha256_file(EXE)
    assert digest is not None
    AllowList(live.store.db).add(EXE, digest, DeviceKind.CAMERA, SystemClock().now())

    cam = live.hold()  # allowed by the allow list: the kill rule is never consulted
    rec = live.session(cam.pid)
    assert (rec.decision, rec.decided_by) == (Choice.ALWAYS_ALLOW, DecidedBy.ALLOW_LIST)
    assert cam.proc.poll() is None

    c.pause(3600)  # a pause silences questions, not rules
    mic = live.hold(DeviceKind.MICROPHONE)
    gone(qtbot, mic)
    assert live.session(mic.pid).decided_by == "rule:kill python"
    c.resume()

    RuleFile().save([path_rule("kill", "any", "kill python")], Mode.NOTIFY_ONLY)
    mic2 = live.hold(DeviceKind.MICROPHONE)
    rec = live.session(mic2.pid)
    assert (rec.decision, rec.decided_by) == (Choice.ALLOW_ONCE, "rule:kill python")
    assert mic2.proc.poll() is None and not live.parts.popup.isVisible()
    assert any("is using the microphone: Notify-only: rule 'kill python' would have killed "
               "it" in m for m in messages), messages
    # The rule's kill named the app and the rule, in plain words.
    assert any(m.startswith("python") and "was closed: it may not use the microphone: "
               "Killed by rule 'kill python'" in m for m in messages), messages


def test_a_policy_block_rule_switches_the_device_off(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live]) -> None:
    need_root()
    RuleFile().save([path_rule("allow", "camera", "mine")])  # the policy's is stricter
    policy = "[[rules]]\nverdict = 'block-device'\ndevice = 'camera'\nlabel = 'no camera'\n"
    live, _outputs = tray(qtbot, dirs, holders, lives, policy=policy)
    c = live.controller
    node = live.node()
    h = live.hold(node=node)
    qtbot.waitUntil(lambda: DeviceKind.CAMERA in c.snapshot().blocked, timeout=30_000)
    assert node_mode(node) == 0
    rec = live.session(h.pid)
    assert (rec.decision, rec.decided_by) == (Choice.BLOCK, "rule:no camera (policy)")
    c.unblock_kind(DeviceKind.CAMERA)
    qtbot.waitUntil(lambda: DeviceKind.CAMERA not in c.snapshot().blocked, timeout=30_000)
    assert node_mode(node) != 0


def test_always_allow_is_a_rule_the_rules_and_the_tray_agree_on(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live]) -> None:
    """One model of trust: "Always allow" in the popup writes an allow rule for the binary,
    so the rules file (and `camguard rules list` / `rules explain`) says what the tray does."""
    rules = RuleFile()
    live, _ = tray(qtbot, dirs, holders, lives, rule_file=rules)
    popup = live.parts.popup
    first = live.hold()
    qtbot.waitUntil(lambda: popup.isVisible() and popup.view is not None
                    and popup.view.alert.usage.process is not None
                    and popup.view.alert.usage.process.pid == first.pid, timeout=20_000)
    qtbot.mouseClick(popup.buttons[Choice.ALWAYS_ALLOW], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(rules.load().rules), timeout=20_000)
    [rule] = rules.load().rules
    assert rule.verdict.value == "allow" and rule.kind is DeviceKind.CAMERA
    assert (rule.app.by, rule.app.value, rule.app.sha256) == (MatchBy.EXE, EXE,
                                                              sha256_file(EXE))
    assert rule.label.startswith("always allow python")
    assert AllowList(live.store.db).entries() == []  # no second, separate list
    # The next process of the same binary: no question, decided by that rule.
    second = live.hold()
    rec = live.session(second.pid)
    assert (rec.decision, rec.decided_by) == (Choice.ALLOW_ONCE, f"rule:{rule.label}")
    assert second.proc.poll() is None and not popup.isVisible()
