"""Whether the person answers alerts now, for whoever must know (service mode: the
service freezes an app while asking only while this tray answers; service/answers.py).
Pausing camguard (the tray's "pause") means nobody answers until it resumes."""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot

from camguard.ui.controller import AppController
from camguard.ui.model import Snapshot
from camguard.ui.tray_options import TrayOptions


class AskingWatch(QObject):
    """Calls ``options.on_paused(paused)`` on the controller's io lane each time its
    alerts are paused or resumed (a socket request in service mode: never the GUI
    thread)."""

    def __init__(self, controller: AppController, options: TrayOptions) -> None:
        super().__init__(controller)
        self._c = controller
        self._o = options
        self._paused = controller.paused
        controller.changed.connect(self._changed)

    @Slot(object)
    def _changed(self, snap: Snapshot) -> None:
        paused = snap.paused_until is not None
        hook = self._o.on_paused
        if paused == self._paused or hook is None:
            return
        self._paused = paused
        self._c.io.submit(lambda: hook(paused))


def started(controller: AppController, options: TrayOptions | None) -> None:
    """This process is the running tray: ``options.on_start``, then the pause watch."""
    if options is None:
        return
    if options.on_start is not None:
        options.on_start()
    if options.on_paused is not None:
        AskingWatch(controller, options)
