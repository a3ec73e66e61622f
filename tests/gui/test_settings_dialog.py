"""The settings window over real files: settings.json, a SQLite allow list, the rules file, the
autostart entry, a TOML policy and the parental lock."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel, QTableWidget, QTableWidgetItem
from pytestqt.qtbot import QtBot

from camguard.core.clock import FrozenClock
from camguard.core.models import DeviceKind
from camguard.core.rules import Duration, MatchBy, Mode, make_rule
from camguard.core.text import literal
from camguard.store.allowlist import AllowList
from camguard.store.autostart import Autostart, read_entry
from camguard.store.hashing import sha256_file
from camguard.store.history import HistoryStore
from camguard.store.parental_lock import LockGuard
from camguard.store.policy import ManagedPolicy, PolicyStatus, TomlPolicyReader
from camguard.store.rules import RuleFile
from camguard.store.settings import load_detection_settings
from camguard.store.ui_settings import NOTIFICATION, UiSettings, UiSettingsFile
from camguard.ui.settings_dialog import SettingsDialog
from camguard.ui.settings_lists import SAVED, TO_ADD, TO_REMOVE
from camguard.ui.settings_support import Unlock, alert_settings, lock_unlocker

NOW = 1_800_000_000.0
TRUE = os.path.realpath("/usr/bin/true")
UNKNOWN = {"future": {"keep": [1, "two"]}, "detection": {"rescan_interval": 7.0},
           "ui": {"window_geometry": "1x1"}}


@dataclass
class Env:
    tmp: Path
    settings: UiSettingsFile
    store: HistoryStore
    allow: AllowList
    rules: RuleFile
    autostart: Autostart
    clock: FrozenClock

    def policy(self, text: str | None) -> PolicyStatus:
        path = self.tmp / "policy.toml"
        if text is not None:
            path.write_text(text)
        return ManagedPolicy(TomlPolicyReader(path)).load()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    clock = FrozenClock(NOW)
    cfg = tmp_path / "config"
    cfg.mkdir()
    (cfg / "settings.json").write_text(json.dumps(UNKNOWN))
    store = HistoryStore(tmp_path / "history.sqlite3", clock, hash_exes=False)
    xdg = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"),
           "XDG_CONFIG_DIRS": str(tmp_path / "sysxdg"), "HOME": str(tmp_path)}
    yield Env(tmp_path, UiSettingsFile(cfg / "settings.json"), store, AllowList(store.db),
              RuleFile(cfg / "rules.json"), Autostart(xdg), clock)
    store.close()


@pytest.fixture
def make(qtbot: QtBot, env: Env) -> Iterator[Callable[..., SettingsDialog]]:
    made: list[SettingsDialog] = []

    def build(**kw: object) -> SettingsDialog:
        args: dict[str, object] = {"allowlist": env.allow, "rules": env.rules,
                                   "autostart": env.autostart, "policy": env.policy(None)}
        args.update(kw)
        d = SettingsDialog(env.settings, env.clock, **args)  # type: ignore[arg-type]
        qtbot.addWidget(d)
        made.append(d)
        return d

    yield build
    for d in made:
        assert d.shutdown(30_000)


def cell(table: QTableWidget, row: int, col: int) -> QTableWidgetItem:
    item = table.item(row, col)
    assert item is not None
    return item


def test_allow_list_round_trip(qtbot: QtBot, env: Env, make: Callable[..., SettingsDialog]
                               ) -> None:
    link = env.tmp / "true-link"
    link.symlink_to(TRUE)
    d = make()
    assert d.allow_page.rows() == []
    d.allow_page.add_program(str(link), "camera")  # hashed on a pool thread
    qtbot.waitUntil(lambda: d.allow_page.hashing == 0, timeout=10_000)
    [row] = d.allow_page.rows()
    # The link is resolved: a process's executable is reported that way.
    assert (row.exe, row.kind, row.state) == (TRUE, DeviceKind.CAMERA, TO_ADD)
    assert env.allow.entries() == []  # nothing is written before Save
    assert d.save()
    [entry] = env.allow.entries()
    assert (entry.exe, entry.kind, entry.sha256) == (TRUE, DeviceKind.CAMERA,
                                                     sha256_file(TRUE))
    assert env.allow.is_allowed(TRUE, sha256_file(TRUE), "camera").allowed

    again = make()
    assert [(r.exe, r.state) for r in again.allow_page.rows()] == [(TRUE, SAVED)]
    again.allow_page.table.selectRow(0)
    again.allow_page.remove_selected()
    assert again.allow_page.rows()[0].state == TO_REMOVE
    assert again.save()
    assert env.allow.entries() == [] and again.allow_page.rows() == []


def test_allow_list_both_kinds_unreadable_file_and_hostile_paths(
        qtbot: QtBot, env: Env, make: Callable[..., SettingsDialog]) -> None:
    hostile = "/tmp/<b>evil</b>\x1b[2J\udcff"
    env.allow.add(hostile, "a" * 64, "microphone", NOW)
    d = make()
    item = cell(d.allow_page.table, 0, 0)
    assert item.text() == literal(hostile, 120) and "\x1b" not in item.text()
    assert "&lt;b&gt;evil" in item.toolTip() and "<b>" not in item.toolTip()
    d.allow_page.add_program(str(env.tmp / "does-not-exist"), "")
    qtbot.waitUntil(lambda: d.allow_page.hashing == 0, timeout=10_000)
    assert "Cannot read" in d.allow_page.message.text() and len(d.allow_page.rows()) == 1
    d.allow_page.add_program(TRUE, "")  # "" = camera and microphone
    qtbot.waitUntil(lambda: d.allow_page.hashing == 0, timeout=10_000)
    assert d.save()
    assert {(e.exe, e.kind) for e in env.allow.entries()} == {
        (TRUE, DeviceKind.CAMERA), (TRUE, DeviceKind.MICROPHONE),
        (hostile, DeviceKind.MICROPHONE)}


def test_every_setting_is_saved_and_shown_again(qtbot: QtBot, env: Env,
                                               make: Callable[..., SettingsDialog]) -> None:
    d = make()
    assert d.current_settings() == UiSettings()
    d.alerts.decision.setCurrentIndex(d.alerts.decision.findData("kill"))
    d.alerts.countdown.setValue(45)
    d.alerts.channel.setCurrentIndex(d.alerts.channel.findData(NOTIFICATION))
    d.devices.camera_globs.list.setCurrentRow(0)
    d.devices.camera_globs.remove_selected()
    assert d.devices.camera_globs.add("/dev/cam*")
    assert not d.devices.camera_globs.add("relative*")  # refused, said why
    assert "absolute" in d.devices.camera_globs.error.text()
    d.devices.mic_globs.add("/dev/snd/pcmC9D*c")
    d.devices.watch_sound_server.setChecked(False)
    assert d.alerts.freeze.text() == "Pause the app until I answer"
    d.alerts.freeze.setChecked(True)
    d.general.retention.setValue(30)
    d.general.autostart.setChecked(True)
    expected = UiSettings(alert_default="kill", countdown=45.0,
                          notification_channel=NOTIFICATION, retention_days=30,
                          camera_globs=("/dev/cam*",),
                          mic_globs=("/dev/snd/pcmC*D*c", "/dev/snd/pcmC9D*c"),
                          watch_sound_server=False, freeze_while_asking=True)
    with qtbot.waitSignal(d.settings_changed) as sig:
        assert d.save()
    assert sig.args == [expected]
    converted = alert_settings(expected)
    assert (converted.countdown, converted.default_decision.value,
            converted.notifications, converted.freeze) == (45.0, "killed", True, True)

    second = make()  # a new window reads the files again
    assert second.current_settings() == expected
    assert second.general.autostart.isChecked()
    doc = json.loads(env.settings.path.read_text())
    assert doc["future"] == UNKNOWN["future"]  # other owners' keys survive
    assert doc["detection"]["rescan_interval"] == 7.0
    assert doc["ui"]["window_geometry"] == "1x1"
    assert doc["settings"]["freeze_while_asking"] is True
    detection, problems = load_detection_settings(env.settings.path)
    assert problems == [] and detection.camera_globs == ("/dev/cam*",)
    assert detection.rescan_interval == 7.0
    assert second.save() and second.message.text() == "Nothing to save."


def test_autostart_entry_is_created_and_removed(env: Env,
                                                make: Callable[..., SettingsDialog]) -> None:
    d = make()
    assert not d.general.autostart.isChecked()
    d.general.autostart.setChecked(True)
    assert d.save()
    keys = read_entry(env.autostart.path)
    # The running camguard by absolute path: `camguard` may not be on the login PATH.
    assert keys is not None and keys["Exec"].endswith(" -m camguard tray")
    assert keys["Exec"].startswith("/")
    assert keys["X-GNOME-Autostart-enabled"] == "true"
    d.general.autostart.setChecked(False)
    assert d.save()
    assert not env.autostart.path.exists()


POLICY = """
locked = ["alert_default", "mic_globs", "rules"]
[settings]
alert_default = "kill"
[[rules]]
verdict = "block-device"
device = "camera"
label = "no cameras at school"
"""


def test_locked_settings_are_disabled_and_name_the_policy(
        env: Env, make: Callable[..., SettingsDialog]) -> None:
    policy = env.policy(POLICY)
    assert policy.error is None
    d = make(policy=policy)
    source = str(env.tmp / "policy.toml")
    decision = d.alerts.decision
    assert not decision.isEnabled() and decision.currentData() == "kill"  # the value in force
    assert source in decision.toolTip() and "locked" in decision.toolTip()
    assert not d.devices.mic_globs.isEnabled() and source in d.devices.mic_globs.toolTip()
    for w in (d.rules_page.form_box, d.rules_page.remove_button, d.allow_page.add_button):
        assert not w.isEnabled() and source in w.toolTip()
    for w in (d.alerts.countdown, d.devices.camera_globs, d.general.retention,
              d.general.autostart):
        assert w.isEnabled() and w.toolTip() == ""
    assert cell(d.rules_page.table, 0, 5).text() == "no cameras at school"
    assert cell(d.rules_page.table, 0, 6).text() == "policy"
    assert source in d.rules_page.message.text() and source in d.allow_page.message.text()
    # Whatever happens to a locked widget, Save never writes a locked setting.
    decision.setCurrentIndex(decision.findData("allow"))
    d.alerts.countdown.setValue(20)
    assert d.save()
    doc = json.loads(env.settings.path.read_text())
    assert "settings" not in doc and doc["ui"]["alert_countdown"] == 20.0


def test_an_unreadable_policy_locks_everything(env: Env,
                                               make: Callable[..., SettingsDialog]) -> None:
    policy = env.policy("locked = [\n")  # does not parse: fail closed
    assert policy.error is not None
    d = make(policy=policy)
    for w in (d.alerts.decision, d.alerts.countdown, d.devices.camera_globs,
              d.general.retention, d.general.autostart, d.rules_page.form_box):
        assert not w.isEnabled() and "cannot be read" in w.toolTip()
    assert "MANAGED POLICY NOT APPLIED" in d.problems.text()


def test_rules_are_added_and_removed(qtbot: QtBot, env: Env,
                                     make: Callable[..., SettingsDialog]) -> None:
    kept = make_rule("allow", app=make_rule("allow").app, kind="microphone", label="mic ok")
    env.rules.save([kept], Mode.NOTIFY_ONLY)
    d = make()
    page = d.rules_page
    assert [r.label for r in page.shown_rules()] == ["mic ok"]
    page.verdict.setCurrentIndex(page.verdict.findData("kill"))
    page.kind.setCurrentIndex(page.kind.findData("camera"))
    page.match.setCurrentIndex(page.match.findData("path"))
    page.value.setText("/usr/bin/zoom")
    page.when.setText("mon-fri 16:00-19:00")
    page.label.setText("<b>homework</b>")
    page.add_from_form()
    page.match.setCurrentIndex(page.match.findData("exe"))
    page.value.setText(TRUE)
    page.when.setText("")
    page.label.setText("true binary")
    page.add_from_form()  # hashes on a pool thread
    qtbot.waitUntil(lambda: page.hashing == 0, timeout=10_000)
    page.when.setText("someday 25:00")
    page.add_from_form()
    assert "Cannot add the rule" in page.message.text()
    assert len(page.shown_rules()) == 3
    assert cell(page.table, 1, 5).text() == "<b>homework</b>"  # plain text, shown as typed
    assert d.save()
    contents = env.rules.load()
    assert contents.mode is Mode.NOTIFY_ONLY  # the mode in the file is kept
    by_label = {r.label: r for r in contents.rules}
    assert set(by_label) == {"mic ok", "<b>homework</b>", "true binary"}
    hw = by_label["<b>homework</b>"]
    assert (hw.verdict.value, hw.kind, str(hw.window), hw.app.value, hw.created_at) == (
        "kill", DeviceKind.CAMERA, "mon-fri 16:00-19:00", "/usr/bin/zoom", NOW)
    assert hw.duration is Duration.ALWAYS  # the default; only durable ones are offered
    assert all(Duration(page.duration.itemData(i)).durable
               for i in range(page.duration.count()))
    exe = by_label["true binary"].app
    assert (exe.by, exe.value, exe.sha256) == (MatchBy.EXE, TRUE, sha256_file(TRUE))

    again = make()
    row = [r.label for r in again.rules_page.shown_rules()].index("mic ok")
    again.rules_page.table.selectRow(row)
    again.rules_page.remove_selected()
    assert again.save()
    assert {r.label for r in env.rules.load().rules} == {"<b>homework</b>", "true binary"}


def test_the_parental_lock_guards_saving(env: Env, make: Callable[..., SettingsDialog]) -> None:
    guard = LockGuard(env.tmp / "lock.json", env.clock, base=0.0)
    guard.set_password("correct horse")
    answers = ["wrong", "correct horse"]
    asked: list[int] = []

    def ask() -> str | None:
        asked.append(1)
        return answers.pop(0)

    unlock: Unlock = lock_unlocker(guard, ask)
    d = make(unlock=unlock)
    assert d.save() and asked == []  # nothing changed: nobody is asked
    d.alerts.countdown.setValue(90)
    before = env.settings.path.read_bytes()
    assert not d.save()
    assert "wrong password" in d.message.text() and env.settings.path.read_bytes() == before
    assert d.save() and len(asked) == 2
    assert env.settings.load()[0].countdown == 90.0


def test_a_corrupt_settings_file_is_shown_and_kept(env: Env,
                                                   make: Callable[..., SettingsDialog]) -> None:
    env.settings.path.write_bytes(b"{\xff garbage")
    d = make()
    assert "not valid JSON" in d.problems.text() and d.problems.isVisibleTo(d)
    d.general.retention.setValue(5)
    assert d.save()
    assert "settings.json.corrupt-1" in d.message.text()
    assert (env.tmp / "config" / "settings.json.corrupt-1").read_bytes() == b"{\xff garbage"


def test_the_self_test_runs_off_the_gui_thread(qtbot: QtBot,
                                               make: Callable[..., SettingsDialog]) -> None:
    assert make().general.selftest_button.isHidden()  # no self-test: no button
    threads: list[int] = []

    def selftest(progress: Callable[[str], None], cancel: threading.Event) -> str:
        threads.append(threading.get_ident())
        progress("opening /dev/video0")
        return "PASSED camera.detected /dev/video0: <b>seen</b>\nselftest: 1 passed"

    d = make(selftest=selftest)
    assert not d.general.selftest_button.isHidden()
    with qtbot.waitSignal(d.selftest_finished, timeout=10_000) as sig:
        assert d.run_selftest()
    assert threads and threads[0] != threading.get_ident()
    assert "1 passed" in sig.args[0]
    out = d.general.selftest_output
    assert out.isReadOnly() and "<b>seen</b>" in out.toPlainText()  # shown as plain text
    assert d.general.selftest_button.isEnabled()

    def broken(progress: Callable[[str], None], cancel: threading.Event) -> str:
        raise RuntimeError("no camera here")

    b = make(selftest=broken)
    with qtbot.waitSignal(b.selftest_finished, timeout=10_000) as sig:
        b.general.selftest_button.click()
    assert "could not run" in sig.args[0] and "no camera here" in b.general.selftest_output.\
        toPlainText()


def test_closing_cancels_a_running_self_test(qtbot: QtBot,
                                             make: Callable[..., SettingsDialog]) -> None:
    started = threading.Event()

    def selftest(progress: Callable[[str], None], cancel: threading.Event) -> str:
        started.set()
        return "cancelled" if cancel.wait(30) else "ran to the end"

    d = make(selftest=selftest)
    with qtbot.waitSignal(d.selftest_finished, timeout=40_000) as sig:
        d.run_selftest()
        assert started.wait(10)
        assert not d.run_selftest()  # one at a time
        d.reject()
    assert sig.args == ["cancelled"]
    assert d.general.selftest_output.toPlainText() == "cancelled"


def test_a_policy_locking_everything_locks_the_window_settings_too(
        env: Env, make: Callable[..., SettingsDialog]) -> None:
    d = make(policy=env.policy('locked = ["*"]\n'))
    for w in (d.alerts.countdown, d.alerts.channel, d.general.retention, d.general.autostart,
              d.devices.watch_sound_server, d.rules_page.form_box):
        assert not w.isEnabled() and str(env.tmp / "policy.toml") in w.toolTip()
    assert d.general.selftest_button.isHidden()  # none injected; a self-test is never locked
    d.alerts.countdown.setValue(99)
    assert d.save() and d.message.text() == "Nothing to save."
    assert json.loads(env.settings.path.read_text()) == UNKNOWN


def test_globs_given_on_the_command_line_show_as_in_force(
        env: Env, make: Callable[..., SettingsDialog], tmp_path: Path) -> None:
    d = make(started_with={"camera_globs": ("/tmp/cams/video*",)})
    d.show()
    d.tabs.setCurrentWidget(d.devices)
    assert d.devices.camera_globs.values() == ("/tmp/cams/video*",)
    assert not d.devices.camera_globs.isEnabled() and d.devices.mic_globs.isEnabled()
    assert "--camera-glob" in d.devices.note.text()
    d.grab().save(str(tmp_path / "devices.png"))
    d.alerts.countdown.setValue(44)
    assert d.save()
    doc = json.loads(env.settings.path.read_text())
    assert "camera_globs" not in doc.get("detection", {})  # the option is not written


def test_keep_forever_is_a_box_and_the_allow_list_intro_is_whole(
        env: Env, make: Callable[..., SettingsDialog]) -> None:
    d = make()
    r = d.general.retention
    assert r.forever.isChecked() and not r.days.isEnabled() and r.value() == 0
    r.forever.setChecked(False)
    r.days.setValue(30)
    assert d.save() and UiSettingsFile(env.settings.path).load()[0].retention_days == 30
    again = make()
    assert not again.general.retention.forever.isChecked()
    assert again.general.retention.value() == 30
    intro = again.allow_page.findChildren(QLabel)[0]
    assert intro.wordWrap() and intro.text().endswith("is asked about.")


def test_the_parental_lock_page_sets_changes_and_clears_the_lock(
        qtbot: QtBot, env: Env, make: Callable[..., SettingsDialog], tmp_path: Path) -> None:
    guard = LockGuard(tmp_path / "lock.json", env.clock, base=0.0)
    d = make(parental=guard)
    page = d.parental
    assert page is not None and not page.is_set and "lock is off" in page.state.text()
    assert d.alerts.decision.currentData() == "allow"
    page.new.setText("abc")
    page.again.setText("abc")
    page.set_button.click()
    assert "at least 4" in page.message.text() and not guard.is_set()
    page.new.setText("tulip7")
    page.again.setText("tulip8")
    page.set_button.click()
    assert "differ" in page.message.text() and not guard.is_set()
    page.again.setText("tulip7")
    with qtbot.waitSignal(d.settings_changed, timeout=10_000) as changed:
        page.set_button.click()
    # On at once; an unanswered alert now blocks, and the tray is told so.
    assert guard.is_set() and guard.check("tulip7").ok
    assert changed.args and changed.args[0].alert_default == "block"
    assert d.alerts.decision.currentData() == "block"
    assert page.is_set and "lock is on" in page.state.text()
    d.show()
    d.tabs.setCurrentWidget(page)
    # docs/screenshots/settings-parental-lock.png: test_parental_schedules.py (with schedules)
    d.grab().save(str(tmp_path / "settings-parental-lock.png"))
    page.current.setText("wrong")
    page.turn_off()
    qtbot.waitUntil(lambda: not page.busy, timeout=10_000)
    assert guard.is_set() and page.message.text().startswith("Not changed: wrong password")
    page.current.setText("tulip7")
    with qtbot.waitSignal(page.lock_changed, timeout=10_000):
        page.turn_off()
    assert not guard.is_set() and d.alerts.decision.currentData() == "allow"


def test_a_script_rule_from_the_form_pins_the_script(qtbot: QtBot, env: Env,
                                                     make: Callable[..., SettingsDialog]
                                                     ) -> None:
    script = env.tmp / "cam.py"
    script.write_text("print('hi')\n")
    d = make()
    page = d.rules_page
    page.match.setCurrentIndex(page.match.findData("script"))
    assert page.browse.isEnabled()
    page.value.setText(str(script))
    page.label.setText("my script")
    page.add_from_form()  # hashes on a pool thread
    qtbot.waitUntil(lambda: page.hashing == 0, timeout=10_000)
    assert d.save()
    [rule] = [r for r in env.rules.load().rules if r.label == "my script"]
    assert (rule.app.by, rule.app.value, rule.app.sha256) == (
        MatchBy.SCRIPT, str(script), sha256_file(str(script)))
