"""The installed PySide6 must not drain the reference counts of None, True or False.

PySide6 6.12.0 on Python 3.11 (where None and True are ordinary objects, immortal only from
3.12) takes one reference away from None on every Qt method that returns nothing
(``QLabel.setText``) and from True on every ``Signal.emit``; a tray that has shown a few
thousand alerts then aborts with "Fatal Python error: none_dealloc" (issue 10, item 11).
pyproject.toml pins PySide6 below 6.12; this test measures whatever is installed, so a new
release with the bug cannot slip in through a relaxed pin.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

CALLS = 1000


class Emitter(QObject):
    fired = Signal(int)


def _drift(obj: object, action: object) -> int:
    before = sys.getrefcount(obj)
    assert callable(action)
    for i in range(CALLS):
        action(i)
    return sys.getrefcount(obj) - before


def test_void_qt_methods_leave_none_alone(qtbot: QtBot) -> None:
    label = QLabel()
    qtbot.addWidget(label)
    # On 6.12.0 each drift is -1000; a correct binding leaves it within a few references.
    assert abs(_drift(None, lambda i: label.setText(str(i)))) < 10
    assert abs(_drift(None, lambda i: label.setVisible(bool(i % 2)))) < 10


def test_emits_leave_true_and_false_alone() -> None:
    emitter = Emitter()
    got: list[int] = []
    emitter.fired.connect(got.append)
    assert abs(_drift(True, emitter.fired.emit)) < 10
    assert abs(_drift(False, emitter.fired.emit)) < 10
    assert len(got) == 2 * CALLS
