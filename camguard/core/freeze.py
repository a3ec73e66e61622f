"""Freeze while asking (issue 16): the app an alert is about is stopped (SIGSTOP) the moment
camguard decides to ask about it, so it records nothing while the question is open, and
continued (SIGCONT) once the person answers or the countdown's default applies. "Kill" ends
it from the frozen state: a pending SIGTERM is delivered the moment it continues, before it
runs anything else. "Block" continues it once the block is in force (the block ends the
device's users itself).

Pure bookkeeping and decisions here; the signals, the journal and the watchdog that make
sure nothing is ever left frozen are the platform's :class:`Freezer`, reached through the
façade (the Linux backend's journaled freezer; elsewhere a null freezer that refuses, see
docs/architecture.md). Rules:

* Never frozen: an unknown process, one without a create time (a reused pid could not be
  told apart), pid 0/1, camguard itself, and the processes whose freezing would freeze the
  whole desktop, every app's sound or every app's camera (PROTECTED: sound servers,
  compositors and display servers, launchd/systemd).
* One process in two alerts (camera and microphone) is frozen once and continued when the
  last of its alerts is answered; a "kill" for any of them ends it.
* Nothing stays frozen for ever: the freezer continues any process frozen for
  :data:`MAX_FREEZE` seconds even if the alert is still open (an alert left on screen over
  lunch must not hang a video call for an hour), and everything when camguard goes away.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Collection, Hashable
from dataclasses import dataclass
from typing import Protocol

from camguard.core.blocks import ActionResult, Outcome
from camguard.core.models import ProcessRef
from camguard.core.text import literal

# The one limit (seconds): past it a frozen process is continued whatever happens (the
# watchdog enforces it, so it holds while camguard hangs too). Fail-open by design.
MAX_FREEZE = 120.0
# What the history adds to "who decided" for a usage whose app was frozen while asked.
FROZEN_MARK = " (frozen)"

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
    # Here, not at the top: the platform façade imports this module for MAX_FREEZE, and
    # `status --json` through the service must not load the decision engine (issue 16).
    from camguard.core.decision import Choice

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
    """The OS half: stop and continue one process by ``(pid, create_time)``, journaled and
    watched so that nothing stays frozen past :data:`MAX_FREEZE` or camguard's end. Any
    thread; never raises."""

    def freeze(self, pid: int, create_time: float) -> ActionResult: ...

    def thaw(self, pid: int, create_time: float, *, end: bool = False) -> ActionResult: ...

    def close(self) -> None:
        """Continue everything still frozen and stop watching (camguard quits)."""
        ...

    # Seconds a freeze lasts at most (MAX_FREEZE; shorter in tests): past it the freezer
    # continues the app whatever the alert says, so the alert must say so too.
    @property
    def limit(self) -> float: ...


@dataclass(slots=True)
class _Held:
    process: ProcessRef
    askers: set[Hashable]
    until: float  # wall time the freezer lets it go by (its limit)
    end: bool = False


class FreezeWhileAsking:
    """The alerts' freezes. ``hold`` when camguard decides to ask about a usage (keyed by
    whatever names the question: the tray's alert key), ``release`` when it is answered,
    dropped or times out, ``release_all`` when camguard quits or the setting is switched
    off. Any thread (a lock); each call makes at most one signal per process."""

    def __init__(self, freezer: Freezer, *, own_pid: int) -> None:
        self._freezer = freezer
        self._own = own_pid
        self._lock = threading.Lock()
        self._held: dict[tuple[int, float], _Held] = {}
        self._askers: dict[Hashable, tuple[int, float]] = {}

    def frozen(self) -> list[ProcessRef]:
        with self._lock:
            return [h.process for h in self._held.values()]

    def is_frozen(self, asker: Hashable) -> bool:
        with self._lock:
            return asker in self._askers

    def paused_until(self, asker: Hashable) -> float | None:
        """The wall time the app ``asker`` holds is let go by at the latest (the freezer's
        limit from when it was frozen), or None when it holds none. The alert shows it."""
        with self._lock:
            key = self._askers.get(asker)
            held = self._held.get(key) if key is not None else None
            return None if held is None else held.until

    def hold(self, asker: Hashable, process: ProcessRef | None) -> ActionResult:
        """Freeze the app ``asker`` asks about. DONE when it is frozen now or already was
        (for another question); REFUSED saying why it may not be; what the freezer said
        otherwise."""
        why = freeze_refusal(process, own_pid=self._own)
        if why is not None or process is None:
            return ActionResult(Outcome.REFUSED, f"not paused while asking: {why}")
        key = (process.pid, process.create_time)
        with self._lock:
            if asker in self._askers:
                return ActionResult(Outcome.DONE, "already paused")
            held = self._held.get(key)
            if held is not None:
                held.askers.add(asker)
                self._askers[asker] = key
                return ActionResult(Outcome.DONE, "already paused for another alert")
            result = self._freezer.freeze(*key)
            if result.ok:
                self._held[key] = _Held(process, {asker}, time.time() + self._freezer.limit)
                self._askers[asker] = key
            return result

    def release(self, asker: Hashable, choice: str | None) -> ActionResult | None:
        """The question was answered (``choice``: a Choice value, "ignore" or None):
        continue its app when no other question holds it (ending it for "killed"); None
        when it froze nothing or another question still holds it."""
        with self._lock:
            key = self._askers.pop(asker, None)
            held = self._held.get(key) if key is not None else None
            if key is None or held is None:
                return None
            held.askers.discard(asker)
            held.end = held.end or thaw_for(choice) is Thaw.END
            if held.askers:
                return None
            del self._held[key]
            return self._freezer.thaw(*key, end=held.end)

    def release_all(self) -> list[ActionResult]:
        """Continue everything (camguard quits, or the setting was switched off)."""
        with self._lock:
            held, self._held = self._held, {}
            self._askers.clear()
            return [self._freezer.thaw(*k, end=h.end) for k, h in held.items()]

    def close(self) -> list[ActionResult]:
        """camguard quits: continue everything and stop the freezer's watchdog."""
        released = self.release_all()
        self._freezer.close()
        return released
