"""What the tray shows, as frozen values: states, live users, alerts and the queue's head."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from camguard.core.models import Degraded, DeviceKind, Usage
from camguard.core.origin import ExeOrigin
from camguard.core.state import UsageKey

# One alert per process and device kind: an app opening /dev/video0 and /dev/video1 (or two
# capture streams) is one question. A process nobody can see is keyed by its device.
AlertKey = tuple[str, object, object]


class Level(enum.StrEnum):
    """How a piece of feedback should look: a failure never wears the "info" icon."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Feedback:
    """What camguard tells the person after something happened, in plain words."""

    title: str
    text: str
    level: Level = Level.INFO
    kind: DeviceKind | None = None  # the sensor it is about (its icon), if one


class TrayState(enum.StrEnum):
    IDLE = "idle"
    CAMERA = "camera"
    MICROPHONE = "microphone"
    BOTH = "both"
    SCREEN = "screen"  # an app records the screen (no camera or microphone live)
    LOCATION = "location"  # an app asks where the machine is (nothing else live)
    BLOCKED = "blocked"
    PAUSED = "paused"
    DEGRADED = "degraded"


@dataclass(frozen=True, slots=True)
class LiveUser:
    usage: Usage
    since: float
    # The allow list allows this app for this device kind (no alert was shown).
    allowed: bool = False
    origin: ExeOrigin | None = None  # where its executable comes from, once looked up

    @property
    def key(self) -> UsageKey:
        return self.usage.key


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    usage: Usage
    at: float
    # Set when the app stopped using the device before anyone answered.
    stopped_at: float | None = None
    # Why camguard asks again about an app the user allowed ("the file no longer matches
    # its Debian package firefox-esr"), and where its executable comes from.
    why: str = ""
    origin: ExeOrigin | None = None
    # The app is paused (SIGSTOP) until the alert is answered (core/freeze.py), but no
    # later than ``paused_until`` (wall time: the freezer's limit), when it is let go.
    paused: bool = False
    paused_until: float | None = None
    # A probe storm (core/probes.py): one alert for many probes; ``why`` says how many.
    storm: bool = False


@dataclass(frozen=True, slots=True)
class AlertView:
    """The alert to show now, and where it stands in the queue ("1 of 3")."""

    alert: Alert
    position: int
    total: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    state: TrayState
    users: tuple[LiveUser, ...]
    degraded: tuple[Degraded, ...]
    blocked: frozenset[DeviceKind]
    paused_until: float | None  # wall time
    # When each block ends, where camguard knows it (wall time; absent: until unblocked).
    block_ends: tuple[tuple[DeviceKind, float], ...] = ()

    @property
    def is_degraded(self) -> bool:
        return bool(self.degraded)

    def block_end(self, kind: DeviceKind) -> float | None:
        return next((at for k, at in self.block_ends if k is kind), None)


def tray_state(users: Iterable[LiveUser], blocked: Iterable[DeviceKind], paused: bool,
               degraded: bool) -> TrayState:
    """Live devices first (the user must see a live camera even while alerts are paused).
    A blocked device is not "in use": an app holding a muted microphone hears silence."""
    blocked = set(blocked)
    kinds = {u.usage.device.kind for u in users} - blocked
    if {DeviceKind.CAMERA, DeviceKind.MICROPHONE} <= kinds:
        return TrayState.BOTH
    # Screen and location are live uses too: never the idle shield while one runs.
    for kind in (DeviceKind.CAMERA, DeviceKind.MICROPHONE, DeviceKind.SCREEN,
                 DeviceKind.LOCATION):
        if kind in kinds:
            return TrayState(kind.value)
    if paused:
        return TrayState.PAUSED
    if blocked:
        return TrayState.BLOCKED
    return TrayState.DEGRADED if degraded else TrayState.IDLE


def alert_key(usage: Usage) -> AlertKey:
    p = usage.process
    if p is None:
        return (usage.device.kind.value, "device", usage.device.id)
    return (usage.device.kind.value, p.pid, p.create_time)
