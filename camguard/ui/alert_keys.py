"""The alert popup's keyboard: Enter, Escape and Alt+letter, only once someone clicked into it.

The popup never takes focus on its own (a popup that catches keys meant for another window
answers alerts nobody read). A click into it is the person turning to it: from then on the
window may take focus and the keys work; when it hides it goes back to refusing focus.
Until that click, every key that could answer the alert is swallowed, including the
buttons' mnemonics (some platforms, and some window managers, activate a window on show).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPushButton, QWidget

from camguard.core.decision import Choice

# The buttons' texts with their mnemonics: Alt+A, Alt+W, Alt+K, Alt+B.
LABELS = {Choice.ALLOW_ONCE: "&Allow once", Choice.ALWAYS_ALLOW: "Al&ways allow",
          Choice.KILL: "&Kill app", Choice.BLOCK: "&Block device"}
ENTER_KEYS = frozenset({Qt.Key.Key_Return, Qt.Key.Key_Enter})


def block_label(kind: str) -> str:
    return f"&Block {kind}"


def shown_text(text: str) -> str:
    """A button's text as a person reads it: the mnemonic's "&" gone, "&&" one "&"."""
    return "&".join(part.replace("&", "") for part in text.split("&&"))


class AlertKeys(QObject):
    """Watches the popup and its buttons. ``answer(choice)`` for a key that answers;
    ``enter()`` and ``escape()`` say what Enter and Escape mean for the alert shown now
    (None: nothing)."""

    def __init__(self, window: QWidget, buttons: Mapping[Choice, QPushButton],
                 answer: Callable[[Choice], None], enter: Callable[[], Choice | None],
                 escape: Callable[[], None]) -> None:
        super().__init__(window)
        self._window = window
        self._buttons = {b: c for c, b in buttons.items()}
        self._answer = answer
        self._enter = enter
        self._escape = escape
        self.armed = False
        window.installEventFilter(self)
        for button in buttons.values():
            button.installEventFilter(self)

    def arm(self) -> None:
        """The person clicked into the popup: it may take focus and answer keys."""
        self.armed = True
        handle = self._window.windowHandle()
        if handle is not None:
            handle.setFlag(Qt.WindowType.WindowDoesNotAcceptFocus, False)
        self._window.activateWindow()

    def disarm(self) -> None:
        self.armed = False
        handle = self._window.windowHandle()
        if handle is not None:
            handle.setFlag(Qt.WindowType.WindowDoesNotAcceptFocus, True)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if isinstance(watched, QPushButton) and kind == QEvent.Type.Shortcut:
            # Alt+letter: answered here, at once, and only when armed; never Qt's delayed
            # animated click on a button that may have been hidden since.
            choice = self._buttons.get(watched)
            if choice is not None and self.armed and watched.isEnabled() \
                    and watched.isVisible():
                self._answer(choice)
            return choice is not None
        if isinstance(watched, QPushButton) and kind in (QEvent.Type.KeyPress,
                                                         QEvent.Type.KeyRelease):
            return watched in self._buttons  # Space on a button: the popup's keys only
        if watched is not self._window:
            return False
        if kind == QEvent.Type.MouseButtonPress:
            self.arm()
        elif kind == QEvent.Type.Hide:
            self.disarm()
        elif kind == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            return self._key(event)
        return False

    def _key(self, event: QKeyEvent) -> bool:
        key = event.key()
        if key not in ENTER_KEYS and key != Qt.Key.Key_Escape:
            return False
        if self.armed and not event.isAutoRepeat():
            if key == Qt.Key.Key_Escape:
                self._escape()
            else:
                choice = self._enter()
                if choice is not None:
                    self._answer(choice)
        return True  # swallowed either way: never passed on to a button or a parent
