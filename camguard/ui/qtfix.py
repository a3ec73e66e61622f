"""A guard against a reference-count bug in PySide6's ``Signal.emit`` (measured in 6.12.0).

``SignalInstance.emit()`` returns ``True`` without taking a reference to it. On Python 3.11
(where ``True`` is an ordinary object, not yet immortal as from 3.12 on) every emit from
Python therefore takes one reference away from ``True``; a tray that emits a few thousand
signals (each event, alert and worker result is one) dies with "Fatal Python error:
bool_dealloc: deallocating True or False". Measured here: 100 emits -> True's refcount -100.

:func:`install` measures the leak with a probe signal and, only if it is there, wraps
``emit`` so the missing reference is added back. On a fixed PySide6 or on Python >= 3.12
it changes nothing. Called once from ``camguard.ui``'s package import, before any emit.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal, SignalInstance

PROBES = 32
_MARK = "_camguard_refcount_fix"


class _Probe(QObject):
    fired = Signal()


def _add_ref(obj: object) -> None:
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


def emit_leaks() -> int:
    """References ``True`` loses over :data:`PROBES` emits (given back before returning)."""
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(PROBES):
        probe.fired.emit()
    lost = before - sys.getrefcount(True)
    for _ in range(max(0, lost)):
        _add_ref(True)
    return lost


def install() -> bool:
    """Wrap ``SignalInstance.emit`` if it leaks; True if the wrapper is (now) in place."""
    if getattr(SignalInstance.emit, _MARK, False):
        return True
    if sys.version_info >= (3, 12) or emit_leaks() < PROBES // 2:
        return False
    original = SignalInstance.emit

    def emit(self: SignalInstance, *args: Any) -> Any:
        result = original(self, *args)
        if isinstance(result, bool):
            _add_ref(result)  # the reference PySide forgot to give us
        return result

    setattr(emit, _MARK, True)
    SignalInstance.emit = emit  # type: ignore[method-assign]
    return True
