"""PySide6 6.12's Signal.emit must not drain True's reference count (see camguard/ui/qtfix.py)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal

from camguard.ui import qtfix


class Emitter(QObject):
    fired = Signal(int)


def test_thousands_of_emits_leave_true_alone() -> None:
    emitter = Emitter()
    got: list[int] = []
    emitter.fired.connect(got.append)
    before = sys.getrefcount(True)
    for i in range(5000):
        emitter.fired.emit(i)
    # Without the fix this drops by 5000 on PySide6 6.12 + Python 3.11 and, in a real
    # process, ends in "Fatal Python error: bool_dealloc".
    assert abs(sys.getrefcount(True) - before) < 50
    assert len(got) == 5000
    assert qtfix.emit_leaks() <= 0  # the probe, too, now finds nothing to repair
