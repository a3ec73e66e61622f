"""Freeze while asking: the app the alert is about is stopped (SIGSTOP; Windows suspends its
threads) while the alert waits for an answer, so it records nothing in the meantime, and
continued (SIGCONT) once the person answers. "Kill" ends it from the frozen state: a pending
SIGTERM is delivered the moment it continues, before it runs anything else.

Pure bookkeeping and decisions; the signals are a :class:`Freezer`'s (camguard.platform.
freeze: psutil, pid + create time checked before each signal). Rules:

* Never frozen: an unknown process, one without a create time (a reused pid could not be
  told apart), pid 0/1, camguard itself, and the processes whose freezing would freeze the
  whole desktop, every app's sound or every app's camera (PROTECTED: sound servers,
  compositors and display servers, launchd/systemd, Windows' svchost that hosts the camera
  Frame Server and audiodg).
* One process in two alerts (camera and microphone) is frozen once and continued when the
  last of its alerts is answered; a "kill" for any of them ends it.
* Nothing stays frozen for ever: after ``max_freeze`` seconds the app continues even if the
  alert is still open (an alert left on screen over lunch must not hang a video call for an
  hour), and :meth:`FreezeWhileAsking.release_all` continues everything when camguard quits.
  A camguard that crashes while an app is frozen leaves it stopped: ``kill -CONT PID``.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from camguard.core.blocks import ActionResult, Outcome
from camguard.core.decision import Choice
from camguard.core.models import ProcessRef
from camguard.core.text import literal

MAX_FREEZE = 120.0

# Lower-case executable names (any OS) that are never frozen: each serves every app.
PROTECTED = frozenset({
    # sound servers
    "pipewire", "pipewire-pulse", "wireplumber", "pulseaudio", "coreaudiod", "audiodg.exe",
    # display servers, compositors, shells
    "xorg", "xwayland", "gnome-shell", "kwin_wayland", "kwin_x11", "plasmashell", "sway",
    "mutter", "weston", "windowserver", "loginwindow", "dock", "explorer.exe", "dwm.exe",
    # init, session and system hosts (svchost.exe hosts the Windows camera Frame Server)
    "systemd", "launchd", "init", "svchost.exe", "csrss.exe", "winlogon.exe", "lsass.exe",
    "services.exe", "smss.exe", "wininit.exe",
})


class Thaw(enum.StrEnum):
    CONTINUE = "continue"  # allowed, blocked, dismissed, timed out, held too long
    END = "end"  # killed: SIGTERM pending, then continued


def thaw_for(choice: str | None) -> Thaw:
    """How an alert's answer (core.decision.Choice value, "ignore", None) releases it."""
    return Thaw.END if choice == Choice.KILL.value else Thaw.CONTINUE


def _base(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1].lower()


def freeze_refusal(process: ProcessRef | None, *, own_pid: int,
                   protected: Collection[str] = PROTECTED) -> str | None:
    """Why ``process`` must not be frozen; None when it may be."""
    if process is None:
        return "the process is not known"
    if process.create_time <= 0:
        return f"pid {process.pid} has no start time: a reused pid could not be told apart"
    if process.pid <= 1:
        return f"pid {process.pid} is the kernel or the init process"
    if process.pid == own_pid:
        return "it is camguard itself"
    names = {_base(process.exe), process.name.lower()} - {""}
    if names & set(protected):
        return (f"{literal(process.name or process.exe, 64)} serves every app (sound, "
                "display or system): freezing it would freeze them all")
    return None


class Freezer(Protocol):
    """The OS half: stop and continue one process by ``(pid, create_time)``. Never raises."""

    def freeze(self, pid: int, create_time: float) -> ActionResult: ...

    def thaw(self, pid: int, create_time: float, *, end: bool = False) -> ActionResult: ...


@dataclass(slots=True)
class _Held:
    process: ProcessRef
    since: float
    alerts: set[int]
    end: bool = False


class FreezeWhileAsking:
    """The alerts' freezes. ``shown`` when an alert appears, ``decided`` when it is answered
    (or times out), ``expire`` on a timer, ``release_all`` when camguard quits. Any thread
    (a lock); each call makes at most one signal per process."""

    def __init__(self, freezer: Freezer, *, enabled: bool, own_pid: int,
                 max_freeze: float = MAX_FREEZE) -> None:
        self._freezer = freezer
        self.enabled = enabled
        self._own = own_pid
        self._max = max_freeze
        self._lock = threading.Lock()
        self._held: dict[tuple[int, float], _Held] = {}
        self._alerts: dict[int, tuple[int, float]] = {}

    def frozen(self) -> list[ProcessRef]:
        with self._lock:
            return [h.process for h in self._held.values()]

    def shown(self, alert_id: int, process: ProcessRef | None, now: float
              ) -> ActionResult | None:
        """Freeze the app alert ``alert_id`` asks about; None when nothing was tried (off, or
        already frozen for another alert); a REFUSED result saying why it may not be."""
        if not self.enabled:
            return None
        why = freeze_refusal(process, own_pid=self._own)
        if why is not None or process is None:
            return ActionResult(Outcome.REFUSED, f"not frozen while asking: {why}")
        key = (process.pid, process.create_time)
        with self._lock:
            held = self._held.get(key)
            if held is not None:
                held.alerts.add(alert_id)
                self._alerts[alert_id] = key
                return None
            result = self._freezer.freeze(*key)
            if result.ok:
                self._held[key] = _Held(process, now, {alert_id})
                self._alerts[alert_id] = key
            return result

    def decided(self, alert_id: int, choice: str | None) -> ActionResult | None:
        """The alert was answered: continue its app when no other alert holds it (ending it
        for "kill"); None when the alert froze nothing or another alert still holds it."""
        with self._lock:
            key = self._alerts.pop(alert_id, None)
            held = self._held.get(key) if key is not None else None
            if key is None or held is None:
                return None
            held.alerts.discard(alert_id)
            held.end = held.end or thaw_for(choice) is Thaw.END
            if held.alerts:
                return None
            del self._held[key]
            return self._freezer.thaw(*key, end=held.end)

    def expire(self, now: float) -> list[ActionResult]:
        """Continue every app frozen for ``max_freeze`` seconds or more (never ends one)."""
        with self._lock:
            due = [k for k, h in self._held.items() if now - h.since >= self._max]
            return [self._release(k) for k in due]

    def next_expiry(self) -> float | None:
        with self._lock:
            return min((h.since + self._max for h in self._held.values()), default=None)

    def release_all(self) -> list[ActionResult]:
        """Continue everything (camguard quits, or the setting was switched off)."""
        with self._lock:
            return [self._release(k) for k in list(self._held)]

    def _release(self, key: tuple[int, float]) -> ActionResult:
        held = self._held.pop(key)
        for alert in held.alerts:
            self._alerts.pop(alert, None)
        return self._freezer.thaw(*key, end=held.end)
