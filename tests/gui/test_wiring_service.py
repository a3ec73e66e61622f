"""The tray as the client of a real camguard service (a root subprocess on a socket in tmp):
no Monitor of its own, the service's events in the tray, kill and block through the service,
and the service going away and coming back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from camguard.app.guard_service import ServiceGuard, service_client
from camguard.app.service_decode import is_session, record_from_dict
from camguard.app.service_feed import (
    SOURCE,
    ServiceActions,
    ServiceDecisions,
    ServiceFeed,
    ServiceRuleFile,
    ServiceVerdicts,
    service_coverage,
    service_history,
)
from camguard.core.coverage import coverage_list
from camguard.core.decision import Choice, DecidedBy
from camguard.core.models import DeviceKind
from camguard.core.rules import make_rule
from camguard.platform.clock import SystemClock
from camguard.ui.tray_options import TrayOptions
from tests import realenv
from tests.conftest import Holder
from tests.gui.wiring_rig import Dirs, Live, dirs, launch, lives, node_mode
from tests.service_env import Box, Service, box

__all__ = ["dirs", "lives"]  # fixtures

pytestmark = pytest.mark.real
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sandbox() -> Iterator[Box]:
    with box() as b:
        yield b


def user_key(live: Live, pid: int) -> object:
    [user] = [u for u in live.controller.snapshot().users
              if u.usage.process is not None and u.usage.process.pid == pid]
    return user.key


def test_the_tray_shows_the_services_events_and_acts_through_it(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live], sandbox: Box
        ) -> None:
    svc = Service(sandbox).start()
    early = Holder([sandbox.node("video0")])  # in use before the tray starts
    holders.append(early)
    client = service_client(sandbox.sock, timeout=30.0)
    feed = ServiceFeed(ServiceGuard(client), SystemClock(), retry_max=0.5)
    actions = ServiceActions(ServiceGuard(client))
    live = launch(qtbot, dirs, holders,
                  TrayOptions(actions=actions, service_lock=actions.lock_is_set,
                              history=service_history(ServiceGuard(client))),
                  monitor=feed, local_kill_switch=False)
    lives.append(live)
    c = live.controller
    live.wait_user(early.pid)  # from the service's status answer

    late = Holder([sandbox.node("video1")])
    holders.append(late)
    live.wait_user(late.pid)  # from the service's event stream
    qtbot.waitUntil(live.parts.popup.isVisible, timeout=20_000)

    # Kill from the tray: there is no local killer, so only the service can have done it.
    c.act_on_user(user_key(live, late.pid), Choice.KILL.value)
    qtbot.waitUntil(lambda: late.proc.poll() is not None, timeout=20_000)
    qtbot.waitUntil(lambda: f"asks to end pid {late.pid}" in svc.log.read_text(),
                    timeout=30_000)
    live.wait_user(late.pid, present=False)
    assert live.store.sessions() == []  # the service keeps the history; the tray no copy

    # The service goes away: the tray says so; what changed meanwhile shows on return.
    assert svc.stop() == 0
    qtbot.waitUntil(lambda: any(d.source == SOURCE for d in c.snapshot().degraded),
                    timeout=20_000)
    early.end()
    gone_while_away = early.pid
    still = Holder([sandbox.node("video2")])
    holders.append(still)
    Service(sandbox).start()
    qtbot.waitUntil(lambda: not c.snapshot().degraded, timeout=30_000)
    live.wait_user(still.pid)
    live.wait_user(gone_while_away, present=False)

    # Block and unblock through the service (it closes the nodes as root).
    node = sandbox.dev / "video0"
    c.block_kind(DeviceKind.CAMERA)
    qtbot.waitUntil(lambda: DeviceKind.CAMERA in c.snapshot().blocked, timeout=30_000)
    assert node_mode(node) == 0 and actions.blocked() == {DeviceKind.CAMERA}
    live.parts.status.unblock_requested.emit(DeviceKind.CAMERA)
    qtbot.waitUntil(lambda: DeviceKind.CAMERA not in c.snapshot().blocked, timeout=30_000)
    assert node_mode(node) != 0 and actions.blocked() == frozenset()


def test_in_service_mode_the_services_history_is_the_one_history(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live], sandbox: Box
        ) -> None:
    svc = Service(sandbox).start()
    client = service_client(sandbox.sock, timeout=30.0)
    actions = ServiceActions(ServiceGuard(client))
    live = launch(qtbot, dirs, holders,
                  TrayOptions(actions=actions, service_lock=actions.lock_is_set,
                              history=service_history(ServiceGuard(client))),
                  monitor=ServiceFeed(ServiceGuard(client), SystemClock(), retry_max=0.5),
                  local_kill_switch=False)
    lives.append(live)
    used = [Holder([sandbox.node(f"video{i}")]) for i in range(2)]
    holders.extend(used)
    for h in used:
        live.wait_user(h.pid)
        h.end()
        live.wait_user(h.pid, present=False)

    def ended() -> set[int]:
        return {e["pid"] for e in svc.client.history()["entries"] if e.get("end")}

    pids = {h.pid for h in used}
    realenv.wait_until(lambda: pids <= ended(), 20, "the service to record both sessions")
    live.parts.controller.request_history()  # the tray menu's History...
    assert live.parts.windows is not None
    window = live.parts.windows.history
    assert window is not None
    qtbot.waitUntil(lambda: pids <= {r.pid for r in window.visible_records()},
                    timeout=20_000)
    shown = sorted((r.pid, r.start, r.device_id) for r in window.visible_records())

    res = subprocess.run([sys.executable, "-m", "camguard", "history", "--json", "--socket",
                          str(sandbox.sock)], capture_output=True, text=True, timeout=60,
                         cwd=REPO, env=sandbox.env(), check=False)
    assert res.returncode == 0, res.stderr
    listed = sorted((r.pid, r.start, r.device_id) for r in map(record_from_dict, [
        e for e in json.loads(res.stdout) if is_session(e)]))
    assert shown == listed  # the same rows, each once
    assert len({row[0] for row in shown}) == len(shown)
    assert live.store.sessions() == []  # and no second copy in the user's database


def test_in_service_mode_the_main_window_shows_what_the_service_can_see(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live], sandbox: Box
        ) -> None:
    svc = Service(sandbox).start()
    guard = ServiceGuard(service_client(sandbox.sock, timeout=30.0))
    live = launch(qtbot, dirs, holders,
                  TrayOptions(history=service_history(guard), coverage=service_coverage(guard)),
                  monitor=ServiceFeed(guard, SystemClock(), retry_max=0.5),
                  local_kill_switch=False)
    lives.append(live)
    main = live.parts.main
    assert main is not None
    live.controller.request_show()
    qtbot.waitUntil(lambda: main.isVisible() and main.coverage is not None, timeout=20_000)
    # The service's own answer, entry for entry (the service runs as root: fanotify).
    assert coverage_list(main.coverage) == svc.client.status()["coverage"]
    assert main.coverage_reported and main.coverage_table.isVisible()
    rows = {(main.coverage_table.item(r, 0).text(), main.coverage_table.item(r, 1).text(),
             main.coverage_table.item(r, 2).text())
            for r in range(main.coverage_table.rowCount())}
    assert ("Camera", "device files (/dev)", "watching") in rows, rows
    assert "Not reported" not in main.coverage_note.text()
    camera = main.cards[DeviceKind.CAMERA]
    assert camera.view.coverage is not None and "not reported" not in camera.detail.text()
    assert camera.state.text() in {"Not in use", "No use seen (partly watched)"}


def test_an_answer_to_an_alert_is_recorded_in_the_services_history(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live], sandbox: Box
        ) -> None:
    svc = Service(sandbox).start()
    client = service_client(sandbox.sock, timeout=30.0)
    guard = ServiceGuard(client)
    actions = ServiceActions(guard)
    live = launch(qtbot, dirs, holders,
                  TrayOptions(actions=actions, service_lock=actions.lock_is_set,
                              history=service_history(ServiceGuard(client)),
                              decisions=ServiceDecisions(guard)),
                  monitor=ServiceFeed(ServiceGuard(client), SystemClock(), retry_max=0.5),
                  local_kill_switch=False)
    lives.append(live)
    h = Holder([sandbox.node("video0")])
    holders.append(h)
    live.wait_user(h.pid)
    qtbot.waitUntil(lambda: live.controller.current_alert() is not None, timeout=20_000)
    alert = live.controller.current_alert()
    assert alert is not None
    live.parts.popup.decided.emit(alert.alert.id, Choice.ALLOW_ONCE.value)  # "Allow once"

    def recorded() -> tuple[object, object]:
        [e] = [e for e in svc.client.history()["entries"] if e.get("pid") == h.pid]
        return e["decision"], e["decided_by"]

    realenv.wait_until(lambda: recorded() == ("allowed-once", DecidedBy.POPUP.value), 20,
                       "the answer in the service's history")
    live.parts.controller.request_history()  # and the History window shows it, once
    assert live.parts.windows is not None and live.parts.windows.history is not None
    window = live.parts.windows.history
    qtbot.waitUntil(lambda: [(r.pid, r.decision) for r in window.visible_records()]
                    == [(h.pid, "allowed-once")], timeout=20_000)
    assert live.store.sessions() == []  # no second copy in the user's database


def test_the_service_decides_by_the_accounts_rules_and_the_tray_asks_only_for_ask(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live], sandbox: Box
        ) -> None:
    """In service mode the tray's own rules are handed to the service, which decides and
    acts; the tray raises no alert for what a rule decided, does not act a second time,
    and asks the person when the service says "ask"."""
    svc = Service(sandbox).start()
    client = service_client(sandbox.sock, timeout=30.0)
    guard = ServiceGuard(client)
    actions = ServiceActions(guard)
    rule_file = ServiceRuleFile(guard, dirs.config / "rules.json")
    rule_file.save([make_rule("allow", kind="camera", label="cam ok"),
                    make_rule("kill", kind="microphone", label="no mic")])
    verdicts = ServiceVerdicts()
    live = launch(qtbot, dirs, holders,
                  TrayOptions(actions=actions, service_lock=actions.lock_is_set,
                              history=service_history(guard),
                              decisions=ServiceDecisions(guard), rules=verdicts,
                              rule_file=rule_file),
                  monitor=ServiceFeed(guard, SystemClock(), retry_max=0.5,
                                      on_connect=rule_file.send, verdicts=verdicts),
                  local_kill_switch=False)
    lives.append(live)
    raised: list[object] = []
    live.controller.alert_raised.connect(raised.append)
    realenv.wait_until(lambda: "sent 2 rule(s) of its own" in svc.log.read_text(), 20,
                       "the tray's rules at the service")

    def decision(pid: int) -> tuple[object, object]:
        got = [e for e in svc.client.history()["entries"] if e.get("pid") == pid]
        return (got[0]["decision"], got[0]["decided_by"]) if got else (None, None)

    cam = Holder([sandbox.node("video0")])
    holders.append(cam)
    live.wait_user(cam.pid)
    qtbot.waitUntil(lambda: any(u.allowed for u in live.controller.snapshot().users
                                if u.usage.process and u.usage.process.pid == cam.pid),
                    timeout=20_000)  # allowed by the rule, as the service decided
    assert decision(cam.pid) == ("allowed-once", "rule:cam ok")

    mic = Holder([sandbox.node("snd/pcmC0D0c")])
    holders.append(mic)
    qtbot.waitUntil(lambda: mic.proc.poll() is not None, timeout=20_000)  # the service
    realenv.wait_until(lambda: decision(mic.pid) == ("killed", "rule:no mic"), 20,
                       "the kill in the service's history")
    live.settle()
    assert raised == []  # nobody was asked about what a rule decided
    assert f"asks to end pid {mic.pid}" not in svc.log.read_text()  # the tray did not act

    rule_file.save([])  # no rules: the service says "ask", and the tray asks
    realenv.wait_until(lambda: "sent 0 rule(s) of its own" in svc.log.read_text(), 20,
                       "the empty rules at the service")
    other = Holder([sandbox.node("video1")])
    holders.append(other)
    qtbot.waitUntil(lambda: len(raised) == 1, timeout=20_000)
    assert decision(other.pid) == (None, None)


def test_camguard_tray_with_socket_is_the_services_client(
        tmp_path: Path, holders: list[Holder], sandbox: Box) -> None:
    Service(sandbox).start()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(QT_QPA_PLATFORM="offscreen", PULSE_SERVER=f"unix:{tmp_path}/none")
    for what in ("config", "data", "state"):
        env[f"CAMGUARD_{what.upper()}_DIR"] = str(tmp_path / what)
    log = tmp_path / "tray.log"
    # No --camera-glob: the tray's own defaults could never see the sandbox's nodes, so an
    # alert for one can only have come from the service.
    cmd = [sys.executable, "-m", "camguard", "-v", "tray", "--socket", str(sandbox.sock)]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        realenv.wait_until(lambda: "tray ready" in log.read_text(), 60, "the tray")
        assert "the tray is its client" in log.read_text()
        h = Holder([sandbox.node("video3")])
        holders.append(h)
        realenv.wait_until(lambda: f"alert shown: pid={h.pid}" in log.read_text(), 30,
                           "the alert for the service's event")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "Traceback" not in log.read_text()
    assert not (tmp_path / "state" / "events.jsonl").exists()  # the service keeps the log


def test_always_allow_in_service_mode_is_a_rule_the_service_enforces(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live], sandbox: Box
        ) -> None:
    """One model of trust with a service: the popup's "Always allow" saves an allow rule
    in the account's rules file and hands it to the service (``user-rules``), so the
    service decides that app's next use by it without asking, ``rules list`` shows it, and
    the local allow list stays empty (no second opinion the service cannot see)."""
    svc = Service(sandbox).start()
    client = service_client(sandbox.sock, timeout=30.0)
    guard = ServiceGuard(client)
    actions = ServiceActions(guard)
    rule_file = ServiceRuleFile(guard, dirs.config / "rules.json")
    verdicts = ServiceVerdicts()
    live = launch(qtbot, dirs, holders,
                  TrayOptions(actions=actions, service_lock=actions.lock_is_set,
                              history=service_history(guard),
                              decisions=ServiceDecisions(guard), rules=verdicts,
                              rule_file=rule_file),
                  monitor=ServiceFeed(guard, SystemClock(), retry_max=0.5,
                                      on_connect=rule_file.send, verdicts=verdicts),
                  local_kill_switch=False)
    lives.append(live)
    raised: list[object] = []
    live.controller.alert_raised.connect(raised.append)
    first = Holder([sandbox.node("video0")])
    holders.append(first)
    qtbot.waitUntil(lambda: live.controller.current_alert() is not None, timeout=20_000)
    alert = live.controller.current_alert()
    assert alert is not None
    live.parts.popup.decided.emit(alert.alert.id, Choice.ALWAYS_ALLOW.value)
    realenv.wait_until(lambda: "sent 1 rule(s) of its own" in svc.log.read_text(), 20,
                       "the allow rule at the service")
    [rule] = rule_file.load().rules
    exe = os.path.realpath(sys.executable)
    assert (rule.verdict.value, rule.kind, rule.app is not None and rule.app.value) == (
        "allow", DeviceKind.CAMERA, exe)
    shown = subprocess.run([sys.executable, "-m", "camguard", "rules", "list", "--socket",
                            str(sandbox.sock)],
                           capture_output=True, text=True, timeout=60, check=False,
                           env={**os.environ, "CAMGUARD_CONFIG_DIR": str(dirs.config)})
    assert shown.returncode == 0 and rule.name in shown.stdout, shown

    def decision(pid: int) -> tuple[object, object]:
        got = [e for e in svc.client.history()["entries"] if e.get("pid") == pid]
        return (got[0]["decision"], got[0]["decided_by"]) if got else (None, None)

    realenv.wait_until(lambda: decision(first.pid)[0] == "always-allowed", 20,
                       "the answer in the service's history")
    second = Holder([sandbox.node("video1")])  # the same binary again: the rule decides
    holders.append(second)
    realenv.wait_until(lambda: decision(second.pid)[1] == f"rule:{rule.name}", 20,
                       "the service's decision by the rule")
    live.settle()
    assert len(raised) == 1  # asked once, about the first use only
    assert live.store.db is not None
    from camguard.store.allowlist import AllowList
    assert AllowList(live.store.db).entries() == []


def test_pausing_the_tray_lets_go_the_app_the_service_paused(
        qtbot: QtBot, dirs: Dirs, holders: list[Holder], lives: list[Live], sandbox: Box
        ) -> None:
    """Freeze while asking through the service, wired as `camguard tray` wires it: the
    tray's watch answers, the service pauses the app (state T) and the alert says so with
    the service's deadline; the user pauses camguard: the tray says so (``asking`` off,
    app/service_asking.py) and the service continues the app at once, not at its limit."""
    from camguard.app.service_asking import ServiceAsking
    from camguard.platform.linux.freeze import state_of
    from camguard.ui.alert_freeze import PAUSED_LINE

    sandbox.policy.write_text("[settings]\nfreeze_while_asking = true\n")
    Service(sandbox).start()
    client = service_client(sandbox.sock, timeout=30.0)
    guard = ServiceGuard(client)
    actions = ServiceActions(guard)
    verdicts = ServiceVerdicts()
    asking = ServiceAsking(guard)
    live = launch(qtbot, dirs, holders,
                  TrayOptions(actions=actions, service_lock=actions.lock_is_set,
                              history=service_history(guard), rules=verdicts,
                              decisions=ServiceDecisions(guard), on_paused=asking.paused),
                  monitor=ServiceFeed(guard, SystemClock(), retry_max=0.5,
                                      verdicts=verdicts, answers=asking.answers),
                  local_kill_switch=False)
    lives.append(live)
    h = Holder([sandbox.node("video0")])
    holders.append(h)
    qtbot.waitUntil(lambda: live.controller.current_alert() is not None, timeout=20_000)
    view = live.controller.current_alert()
    assert view is not None and view.alert.paused and view.alert.paused_until is not None
    realenv.wait_until(lambda: state_of(h.pid) == "T", 10, "paused by the service")
    assert live.parts.popup.why_label.text() == PAUSED_LINE
    live.controller.pause(60)  # "pause camguard": nobody answers now
    realenv.wait_until(lambda: state_of(h.pid) not in ("T", None), 10,
                       "let go by the service at once")
    assert live.controller.pending_alerts() == ()
    assert not asking.answers()
