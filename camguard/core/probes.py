"""Probes are not alarms (issue 11, item 5): which sessions were probes, and probe storms.

Pure: the Monitor feeds it each look's usages and events and a clock reading.

A **probe** is a session that carried nothing. Where that can be seen, it is decided by
the evidence, never by time alone:

* PipeWire: a client linked to a camera or screen node whose link never became active
  got no frames (``SourceSnapshot.probes``). It is never announced; when it goes away it is
  kept in history as a probe (``EventType.PROBE``). One that starts flowing is a use.
* Recording streams (PulseAudio, pipewire-pulse): a corked stream carries nothing and is no
  use (platform/linux/pulse.py); nothing else is needed here.
* Device nodes (``/dev/video*``, ``/dev/snd/*``; ``via`` "fd" or "fanotify"): /proc and
  fanotify show the open and the close, not whether frames were read (no VIDIOC_STREAMON
  or read() is visible), and a one-shot tool grabs a photo in a few tens of milliseconds.
  So the open is **alerted as it happens**, and a session that closed under the threshold
  is marked ``probe`` in history (``UsageEvent.probe``: "a probe, or a single capture").

A **probe storm** is one app (executable, or name when unknown; its account; the kind of
device) with more than ``storm`` probes within ``window`` seconds. It is surfaced once
(``EventType.PROBE_STORM``). While it lasts (until ``window`` seconds without a probe from
that app), that app's new device-node opens are still announced at once, marked
``UsageEvent.storm``: history, the event log and the rules see them as they happen (a kill
or block rule acts at once), and only the *question* waits: the tray asks about such an
open only if it is still open ``threshold`` seconds later (ui/controller.py). One that
closes sooner is a probe in history, with no popup; the storm alert has named that app.

Uses found another way (a recording stream, an active PipeWire link, raw USB, location)
carry data by construction and are never probes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace

from camguard.core.models import DeviceKind, EventType, Usage, UsageEvent
from camguard.core.state import UsageKey

# How a usage was found when it is an open device node (procfs.py, fanotify).
NODE_VIAS = frozenset({"fd", "fanotify", ""})
PROBE_KINDS = frozenset({DeviceKind.CAMERA, DeviceKind.MICROPHONE, DeviceKind.SCREEN})
DEFAULT_THRESHOLD = 1.5
DEFAULT_STORM = 10  # probes per window; more is a storm
WINDOW = 60.0

AppKey = tuple[str, str, str]  # (kind, exe or name, account)


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    threshold: float = DEFAULT_THRESHOLD  # seconds; 0 turns probe marking off
    storm: int = DEFAULT_STORM  # more probes than this within ``window``: a storm; 0: off
    window: float = WINDOW


def on_node(usage: Usage) -> bool:
    """A device-node use: whether it carried data is not visible."""
    return usage.via in NODE_VIAS and usage.device.kind in PROBE_KINDS


def app_of(usage: Usage) -> AppKey:
    p = usage.process
    if p is None:
        return (usage.device.kind.value, "", "")
    return (usage.device.kind.value, p.exe or p.name, p.user)


class ProbeFilter:
    """The Monitor's probe bookkeeping (module docstring). Not thread-safe: the monitor
    thread only."""

    def __init__(self, settings: ProbeSettings = ProbeSettings()) -> None:
        self.settings = settings
        self._idle: dict[UsageKey, tuple[Usage, float]] = {}  # linked, no data: since
        self._spent: set[UsageKey] = set()  # linked, no data now, but it carried some
        self._recent: dict[AppKey, deque[float]] = {}  # probe times within the window
        self._storming: dict[AppKey, float] = {}  # app -> its last probe, while storming

    def idle_links(self, usages: Iterable[Usage], probes: Iterable[Usage],
              announced: set[UsageKey], now: float) -> list[UsageEvent]:
        """Probe events for the links that went without carrying data (``usages``: this
        look's usages; ``probes``: its links that carry nothing; ``announced``: the usages
        announced so far)."""
        current = {u.key for u in usages}
        events: list[UsageEvent] = []
        linked = {p.key: p for p in probes}
        # A link that carried frames and then paused is a use that ended, not a probe.
        self._spent = {k for k in self._spent | (announced & linked.keys()) if k in linked}
        for key, p in linked.items():
            if (key not in self._idle and key not in current and key not in announced
                    and key not in self._spent):
                self._idle[key] = (p, now)
        for key, (u, since) in list(self._idle.items()):
            if key in current:  # it carries data now: a use, announced by the diff
                del self._idle[key]
            elif key not in linked:
                del self._idle[key]
                events += self._probe(u, since, now)
        return events

    def started(self, ev: UsageEvent) -> UsageEvent:
        """A started event, marked ``storm`` when its app is probe-storming and it is a
        device-node open (announced at once all the same: only its question waits)."""
        u = ev.usage
        if ev.type is not EventType.STARTED or not on_node(u) or self.settings.storm <= 0 \
                or not self._is_storming(app_of(u), ev.at):
            return ev
        return replace(ev, storm=True)

    def stopped(self, ev: UsageEvent) -> list[UsageEvent]:
        """A stopped event, marked when it was a probe on a device node, and the storm it
        starts, if any."""
        u = ev.usage
        t = self.settings.threshold
        if (ev.type is not EventType.STOPPED or ev.since is None or not on_node(u)
                or t <= 0 or ev.at - ev.since >= t):
            return [ev]
        return [replace(ev, probe=True), *self._count(u, ev.at)]

    # -- internals ---------------------------------------------------------------------
    def _probe(self, u: Usage, since: float, at: float) -> list[UsageEvent]:
        return [UsageEvent(EventType.PROBE, u, at, since), *self._count(u, at)]

    def _is_storming(self, app: AppKey, now: float) -> bool:
        last = self._storming.get(app)
        if last is None:
            return False
        if now - last > self.settings.window:
            del self._storming[app]
            return False
        return True

    def _count(self, u: Usage, at: float) -> list[UsageEvent]:
        s = self.settings
        if s.storm <= 0:
            return []
        if len(self._recent) > 4096:  # bounded: forget apps with no probe in the window
            for key in [k for k, v in self._recent.items() if not v or at - v[-1] > s.window]:
                del self._recent[key]
        app = app_of(u)
        times = self._recent.setdefault(app, deque())
        times.append(at)
        while times and at - times[0] > s.window:
            times.popleft()
        if self._is_storming(app, at):
            self._storming[app] = at
            return []
        if len(times) <= s.storm:
            return []
        self._storming[app] = at
        first = times[0]
        note = (f"{len(times)} opens under {s.threshold:g} s within {at - first:.0f} s "
                f"(more than {s.storm} a minute); its opens that close within "
                f"{s.threshold:g} s are kept in history without a popup")
        return [UsageEvent(EventType.PROBE_STORM, replace(u, note=note), at, first,
                           count=len(times))]
