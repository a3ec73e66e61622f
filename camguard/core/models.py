"""The things camguard talks about: devices, processes, usages and the events between snapshots."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class DeviceKind(enum.StrEnum):
    CAMERA = "camera"
    MICROPHONE = "microphone"
    # A screen cast through PipeWire (the ScreenCast portal): who records the screen.
    SCREEN = "screen"
    # An app holding a started GeoClue client: who asks where the machine is.
    LOCATION = "location"


@dataclass(frozen=True, slots=True)
class Device:
    """A camera or microphone.

    ``id`` is stable and unique: the node path for a device node (``/dev/video0``), or
    ``pulse:<source name>`` for a sound-server source. Only ``kind`` and ``id`` are identity.
    """

    kind: DeviceKind
    id: str
    name: str = field(default="", compare=False)
    path: str | None = field(default=None, compare=False)
    # Which source reported it ("procfs", "pulse", ...): useful to show, not identity.
    source: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class ProcessRef:
    """A process as the OS described it when we looked.

    Identity is ``(pid, create_time)``: a bare pid can be reused by an unrelated process, so
    every action (kill) must check both. Every text field is whatever the process (or the
    kernel on its behalf) reported and may hold markup, control characters or invalid UTF-8
    decoded with ``surrogateescape``: render it with :func:`camguard.core.text.literal`.
    """

    pid: int
    create_time: float
    name: str = field(default="", compare=False)
    exe: str = field(default="", compare=False)
    cmdline: tuple[str, ...] = field(default=(), compare=False)
    user: str = field(default="", compare=False)
    # Names of the ancestors, parent first, up to init (or a bounded depth).
    parents: tuple[str, ...] = field(default=(), compare=False)
    # The script an interpreter runs (python3/node/bash/perl/ruby): its absolute path, found
    # from the command line and the working folder, or "-m module"; "" when none.
    script: str = field(default="", compare=False)


UNSEEN_PROCESS_NOTE = "in use by a process camguard cannot see"


@dataclass(frozen=True, slots=True)
class Usage:
    """One process (or an unseen one) using one device.

    ``process`` is None when the device is demonstrably open but no process we can inspect
    holds it (another user's process, without privileges). ``note`` carries caveats such as
    a sound-server stream whose self-reported pid does not match the process found there.
    """

    device: Device
    process: ProcessRef | None
    note: str = field(default="", compare=False)
    # How the usage was found ("fd", "stream", "inotify"): shown, not identity.
    via: str = field(default="", compare=False)

    @property
    def key(self) -> tuple[str, str, int | None, float | None]:
        p = self.process
        return (
            self.device.kind.value,
            self.device.id,
            None if p is None else p.pid,
            None if p is None else p.create_time,
        )


class EventType(enum.StrEnum):
    STARTED = "started"
    STOPPED = "stopped"
    # A session that carried nothing and was never announced (core/probes.py): a client
    # linked to a camera that got no frames, or an open held back during a probe storm
    # that closed under the threshold. History only: no alert, no rule.
    PROBE = "probe"
    # One app probing more than N times a minute: surfaced once per storm (core/probes.py).
    # ``usage`` is its latest probe, ``since`` the first of the window, the count in the note.
    PROBE_STORM = "probe-storm"


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """A usage began or ended, as seen by the monitor at ``at`` (seconds since the epoch)."""

    type: EventType
    usage: Usage
    at: float
    # For a stopped event: when the usage was first seen, so a duration can be shown.
    since: float | None = None
    # A stopped event: the session ended under the probe threshold on a device node, where
    # whether frames or samples were read is not visible (core/probes.py): kept in history
    # as a probe; it was alerted when it opened.
    probe: bool = False
    # A probe storm: how many probes its window held.
    count: int | None = None
    # A started event of a device-node open by an app that is probe-storming
    # (core/probes.py): announced at once, and asked about only if it lasts.
    storm: bool = False


@dataclass(frozen=True, slots=True)
class Degraded:
    """A source that cannot do its job right now, and why (shown to the user, never raised)."""

    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """A source became degraded (``degraded`` set) or recovered (``degraded`` is None)."""

    source: str
    degraded: Degraded | None
    at: float


MonitorEvent = UsageEvent | HealthEvent


@dataclass(frozen=True, slots=True)
class SourceSnapshot:
    """What one source sees at one moment."""

    source: str
    devices: frozenset[Device] = frozenset()
    usages: frozenset[Usage] = frozenset()
    degraded: Degraded | None = None
    # Ask to be looked at again this many seconds from now even if nothing wakes the monitor
    # (e.g. the kernel said a device was opened but the opener is not visible yet).
    recheck_in: float | None = None
    # Clients linked to a device that carry nothing (a PipeWire link that is not flowing):
    # not usages; one that goes away without ever carrying data was a probe.
    probes: frozenset[Usage] = frozenset()
