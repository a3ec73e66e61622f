"""The rule verdict ``freeze`` (issue 16): ask with the app paused. Parsed by the rules
model and the command line, ranked between ask and kill, explained by ``rules explain``,
and mapped to the tray's gate (its application on a real process: tests/gui/
test_freeze_alert.py); and the ``freeze_while_asking`` setting in settings.json and a
policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from camguard.core.clock import FrozenClock
from camguard.core.decision import UsageFacts, choice_of, decide
from camguard.core.models import DeviceKind
from camguard.core.rules import AppMatch, MatchBy, Mode, Rule, Verdict, make_rule
from camguard.core.rules_json import rule_from_json, rule_to_json
from camguard.store.policy import Policy, check_value
from camguard.store.ui_settings import UiSettingsFile, settings_in_force
from camguard.ui.judge import _GATES
from camguard.ui.ports import Gate

REPO = Path(__file__).resolve().parents[2]
CLOCK = FrozenClock(1_700_000_000.0)
FACTS = UsageFacts(DeviceKind.CAMERA, "/usr/bin/zoom", None, "zoom")


def rule(verdict: str, by: MatchBy = MatchBy.NAME, value: str = "zoom") -> Rule:
    return make_rule(verdict, app=AppMatch(by, value), kind="camera", label=verdict,
                     created_at=CLOCK.now())


def test_freeze_is_a_verdict_that_asks_with_the_app_paused() -> None:
    d = decide([rule("freeze")], FACTS, Mode.ASK, CLOCK)
    assert d.verdict is Verdict.FREEZE
    assert d.explanation == "paused while asking by rule 'freeze'"
    assert choice_of(d) is None  # the person asked decides, as for "ask"
    assert _GATES[d.verdict] is Gate.FREEZE
    back = rule_from_json(rule_to_json(rule("freeze")))
    assert back.verdict is Verdict.FREEZE


def test_freeze_ranks_above_ask_and_allow_below_kill() -> None:
    assert decide([rule("allow"), rule("freeze"), rule("ask")], FACTS, Mode.ASK,
                  CLOCK).verdict is Verdict.FREEZE
    assert decide([rule("freeze"), rule("kill")], FACTS, Mode.ASK,
                  CLOCK).verdict is Verdict.KILL


def test_notify_only_says_what_a_freeze_rule_would_have_done() -> None:
    d = decide([rule("freeze")], FACTS, Mode.NOTIFY_ONLY, CLOCK)
    assert (d.verdict, d.would) == (Verdict.ALLOW, Verdict.FREEZE)
    assert "would have paused it and asked" in d.explanation


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CAMGUARD_CONFIG_DIR": str(tmp_path / "c"),
           "CAMGUARD_DATA_DIR": str(tmp_path / "d"), "CAMGUARD_STATE_DIR": str(tmp_path / "s"),
           "CAMGUARD_SOCKET": str(tmp_path / "nosocket")}
    return subprocess.run([sys.executable, "-m", "camguard", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def test_rules_add_and_explain_from_the_command_line(tmp_path: Path) -> None:
    added = cli(tmp_path, "rules", "add", "--name", "zoom", "--kind", "camera",
                "--verdict", "freeze", "--label", "hold-zoom")
    assert added.returncode == 0, added.stderr
    said = cli(tmp_path, "rules", "explain", "--kind", "camera", "--name", "zoom")
    assert said.returncode == 0, said.stderr
    assert said.stdout.splitlines()[0] == "freeze: paused while asking by rule 'hold-zoom'"
    listed = json.loads(cli(tmp_path, "rules", "explain", "--kind", "camera", "--name",
                            "zoom", "--json").stdout)
    assert listed["verdict"] == "freeze"
    bad = cli(tmp_path, "rules", "add", "--name", "zoom", "--verdict", "freez")
    assert bad.returncode != 0 and "freeze" in bad.stderr


def test_the_setting_is_off_by_default_and_read_from_settings_and_policy(
        tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    f = UiSettingsFile(path)
    assert f.load()[0].freeze_while_asking is False
    f.save({"freeze_while_asking": True})
    assert json.loads(path.read_text())["settings"]["freeze_while_asking"] is True
    assert f.load()[0].freeze_while_asking is True
    # An administrator's policy sets it for everyone when it locks it.
    ui, _ = settings_in_force(f, Policy("test", {"freeze_while_asking": False},
                                        frozenset({"freeze_while_asking"})))
    assert ui.freeze_while_asking is False
    ui, _ = settings_in_force(UiSettingsFile(tmp_path / "none.json"),
                              Policy("test", {"freeze_while_asking": True}))
    assert ui.freeze_while_asking is True  # the policy's default where the user chose none
    with pytest.raises(ValueError, match="bool"):
        check_value("freeze_while_asking", "yes")
