"""The alert popup's keyboard, with real key events on the real widget and a real app.

Keys answer only after a click into the popup: the offscreen platform activates every
window it shows, as some window managers do, so a key that arrives before that click is
exactly a key typed for another window.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from camguard.core.decision import Choice
from camguard.ui.alert_keys import shown_text
from tests.gui.conftest import Rig

pytestmark = pytest.mark.real

ALT = Qt.KeyboardModifier.AltModifier


def shown(qtbot: QtBot, rig: Rig) -> int:
    h, usage = rig.holder()
    rig.start(usage)
    qtbot.waitUntil(lambda: rig.shown_pid() == h.pid, timeout=10_000)
    view = rig.popup.view
    assert view is not None
    return view.alert.id


def click_into(qtbot: QtBot, rig: Rig) -> None:
    """A click on the popup's text, not on a button: the person turns to the popup."""
    qtbot.mouseClick(rig.popup.title_label, Qt.MouseButton.LeftButton)
    assert rig.popup.keys.armed


def press(qtbot: QtBot, rig: Rig, key: Qt.Key,
          modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> list[object]:
    with qtbot.waitSignal(rig.popup.decided, timeout=5000) as blocker:
        qtbot.keyClick(rig.popup, key, modifier)
    return list(blocker.args or [])


def test_keys_before_a_click_into_the_popup_answer_nothing(qtbot: QtBot, rig: Rig) -> None:
    alert_id = shown(qtbot, rig)
    popup = rig.popup
    assert not popup.keys.armed
    handle = popup.windowHandle()
    assert handle is not None and handle.flags() & Qt.WindowType.WindowDoesNotAcceptFocus
    answered: list[object] = []
    popup.decided.connect(lambda *a: answered.append(a))
    popup.dismissed.connect(lambda *a: answered.append(a))
    for key, mod in ((Qt.Key.Key_Return, Qt.KeyboardModifier.NoModifier),
                     (Qt.Key.Key_Enter, Qt.KeyboardModifier.KeypadModifier),
                     (Qt.Key.Key_Escape, Qt.KeyboardModifier.NoModifier),
                     (Qt.Key.Key_Space, Qt.KeyboardModifier.NoModifier),
                     (Qt.Key.Key_K, ALT), (Qt.Key.Key_B, ALT), (Qt.Key.Key_A, ALT),
                     (Qt.Key.Key_W, ALT), (Qt.Key.Key_K, Qt.KeyboardModifier.NoModifier)):
        qtbot.keyClick(popup, key, mod)
        for button in popup.buttons.values():  # and typed at a button
            qtbot.keyClick(button, key, mod)
    qtbot.wait(300)  # longer than Qt's animated click (100 ms), the path a mnemonic takes
    assert answered == []
    assert popup.isVisible() and popup.view is not None and popup.view.alert.id == alert_id
    assert rig.holders[-1].proc.poll() is None  # nothing was killed
    # Clicking into it lets it take focus from now on.
    click_into(qtbot, rig)
    assert not handle.flags() & Qt.WindowType.WindowDoesNotAcceptFocus


def test_enter_gives_the_highlighted_default_and_escape_allows_once(qtbot: QtBot, rig: Rig
                                                                     ) -> None:
    alert_id = shown(qtbot, rig)
    popup = rig.popup
    default = [d for d, b in popup.buttons.items() if b.isDefault()]
    assert default == [Choice.ALLOW_ONCE]
    assert popup.status_label.text().startswith("Allow once in ")  # no "&" shown
    click_into(qtbot, rig)
    assert press(qtbot, rig, Qt.Key.Key_Return) == [alert_id, "allowed-once"]
    assert not popup.isVisible()
    # The next alert starts unarmed, and the flag that keeps focus away is back.
    alert_id = shown(qtbot, rig)
    assert not popup.keys.armed
    handle = popup.windowHandle()
    assert handle is not None and handle.flags() & Qt.WindowType.WindowDoesNotAcceptFocus
    click_into(qtbot, rig)
    assert press(qtbot, rig, Qt.Key.Key_Escape) == [alert_id, "allowed-once"]
    rig.settle()
    assert rig.holders[-1].proc.poll() is None


@pytest.mark.parametrize("choice,key,value", [
    (Choice.ALLOW_ONCE, Qt.Key.Key_A, "allowed-once"),
    (Choice.ALWAYS_ALLOW, Qt.Key.Key_W, "always-allowed"),
    (Choice.KILL, Qt.Key.Key_K, "killed"),
])
def test_each_button_has_its_alt_letter(qtbot: QtBot, rig: Rig, choice: Choice, key: Qt.Key,
                                        value: str) -> None:
    alert_id = shown(qtbot, rig)
    text = rig.popup.buttons[choice].text()
    assert f"&{shown_text(text)[shown_text(text).lower().index(chr(key).lower())]}" in text
    click_into(qtbot, rig)
    assert press(qtbot, rig, key, ALT) == [alert_id, value]
    if choice is Choice.KILL:
        assert rig.holders[-1].proc.wait(10) is not None


def test_alt_b_blocks(qtbot: QtBot, rig: Rig) -> None:
    """Alt+B answers "Block camera"; the popup's answer is checked here, the block itself
    in test_alert_popup (it needs root for the stand-in nodes)."""
    alert_id = shown(qtbot, rig)
    assert rig.popup.buttons[Choice.BLOCK].text() == "&Block camera"
    # The answer, not the block: disconnected so no block runs on this machine.
    rig.popup.decided.disconnect()
    click_into(qtbot, rig)
    assert press(qtbot, rig, Qt.Key.Key_B, ALT) == [alert_id, "blocked"]


def test_with_a_parental_lock_escape_gives_the_safe_default(qtbot: QtBot, rig: Rig) -> None:
    rig.controller.settings = rig.popup.settings = replace(
        rig.popup.settings, default_decision=Choice.KILL, parental=True)
    alert_id = shown(qtbot, rig)
    click_into(qtbot, rig)
    assert press(qtbot, rig, Qt.Key.Key_Escape) == [alert_id, "killed"]
    assert rig.holders[-1].proc.wait(10) is not None


def test_escape_closes_an_alert_for_an_app_that_stopped(qtbot: QtBot, rig: Rig) -> None:
    h, usage = rig.holder()
    ev = rig.start(usage)
    qtbot.waitUntil(lambda: rig.shown_pid() == h.pid, timeout=10_000)
    rig.stop(usage, ev.at, ev.at + 2)
    popup = rig.popup
    assert popup.view is not None and popup.view.alert.stopped_at is not None
    click_into(qtbot, rig)
    with qtbot.assertNotEmitted(popup.decided, wait=200):
        qtbot.keyClick(popup, Qt.Key.Key_Return)  # nothing highlighted: nothing to do
    assert popup.isVisible()
    with qtbot.waitSignal(popup.dismissed, timeout=5000):
        qtbot.keyClick(popup, Qt.Key.Key_Escape)
    assert not popup.isVisible()


def test_asked_from_the_keyboard_the_popup_takes_the_keys_and_holds_its_countdown(
        qtbot: QtBot, rig: Rig) -> None:
    """The tray menu's "Answer the alert…" (or `camguard tray --answer-alert`): no click
    needed, and the time left stops while the person reads; with no alert it does nothing."""
    popup = rig.popup
    assert not popup.take_keys()  # nothing shown: nothing to answer
    alert_id = shown(qtbot, rig)
    assert not popup.keys.armed
    assert popup.take_keys() and popup.keys.armed
    handle = popup.windowHandle()
    assert handle is not None and not handle.flags() & Qt.WindowType.WindowDoesNotAcceptFocus
    held = popup.remaining()
    qtbot.wait(600)  # two ticks of the countdown
    assert popup.remaining() == held
    assert press(qtbot, rig, Qt.Key.Key_K, ALT) == [alert_id, Choice.KILL.value]
