"""From fanotify episodes and /proc holders to the usages of each snapshot: one session per use.

A snapshot is a state, and the monitor turns states into sessions by diffing them: a
(process, device) present in two looks in a row is one session. So a use that ended and
started again between two looks (close, reopen within a few ms), or a brief use followed by
a held one, would be merged into one session. fanotify says exactly where each use ended
(:class:`~camguard.platform.linux.fanotify.OpenLog` episodes); this module spreads what
happened between two looks over the next few looks, one phase per look, so that every
ended use is absent from one look before the next use of the same process is present.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping

from camguard.core.models import Device, DeviceKind, Usage
from camguard.platform.linux.fanotify import OpenLog, Transient, transient_note

Key = tuple[int, str]  # (pid, node path)
# One look's content for a key: a brief use to show, or None (absent for one look).
Phase = Usage | None


class SessionSplitter:
    """Runs on the monitor thread (inside ``ProcfsSource.snapshot``); not thread-safe."""

    def __init__(self, open_log: OpenLog, sound_servers: Collection[str],
                 camera_brokers: Collection[str] = (),
                 broker_watched: Callable[[int], bool] | None = None) -> None:
        self._log = open_log
        self._sound_servers = sound_servers
        self._camera_brokers = camera_brokers
        self._broker_watched = broker_watched
        self._phases: dict[Key, deque[Phase]] = {}
        self._reported: set[Key] = set()
        self._masked = False

    @property
    def busy(self) -> bool:
        """True while phases wait for the next looks, or a phase hid what the scan found:
        look again soon."""
        return bool(self._phases) or self._masked

    def usages(self, held: Mapping[Key, tuple[Usage, int]], episodes: Iterable[Transient],
               device_of: Callable[[str], Device], now: float) -> set[Usage]:
        """This look's usages: ``held`` (key -> fd usage, open files) as the scan found them,
        ``episodes`` the uses fanotify saw end since the last look, in order."""
        for t in episodes:
            self._queue(t, device_of)
        out: dict[Key, Usage] = {}
        self._masked = False
        for key in set(self._phases) | set(held):
            phases = self._phases.get(key)
            if phases:
                phase = phases.popleft()
                self._masked = self._masked or key in held
                if not phases:
                    del self._phases[key]
                if phase is not None:
                    out[key] = phase
            elif key in held:
                usage, files = held[key]
                out[key] = usage
                if usage.process is not None:
                    self._log.reported(key[0], key[1], usage.process, files, now)
        self._log.prune(held.keys(), now)
        self._reported = set(out)
        return set(out.values())

    def _queue(self, t: Transient, device_of: Callable[[str], Device]) -> None:
        key = (t.process.pid, t.path)
        phases = self._phases.setdefault(key, deque())
        present = phases[-1] is not None if phases else key in self._reported
        if t.seen:
            # The end of a session already reported: absent for one look (a reopen that
            # the scan sees held comes back after it, as a new session).
            if present:
                phases.append(None)
        else:
            device = device_of(t.path)
            if device.kind is DeviceKind.MICROPHONE and t.process.exe in self._sound_servers:
                pass  # the sound server's own brief open, for apps that pulse.py names
            elif (device.kind is DeviceKind.CAMERA and t.process.exe in self._camera_brokers
                  and (self._broker_watched is None or self._broker_watched(t.process.pid))):
                pass  # PipeWire's probe of a camera: a use only once a client links to it
            else:
                if present:
                    phases.append(None)
                # A use no scan saw: present for one look, absent the next.
                phases.append(Usage(device, t.process, note=transient_note(t), via="fanotify"))
                phases.append(None)
        if not phases:
            del self._phases[key]
