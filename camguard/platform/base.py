"""The contracts every platform fulfils, whatever the OS: usage sources, and each capability
the façade (camguard.platform) hands out. A platform that lacks one hands out the null object
from platform/null.py, which says why in one sentence."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from camguard.core.blocks import ActionResult, Enforcer

# The one killer shape is core's (the service and the tray take it too); the backends
# name it as one of the façade's capabilities, from here.
from camguard.core.blocks import ProcessKiller as ProcessKiller  # noqa: PLC0414
from camguard.core.coverage import Coverage
from camguard.core.freeze import MAX_FREEZE, Freezer
from camguard.core.models import SourceSnapshot
from camguard.core.origin import ExeOrigin
from camguard.core.text import literal

if TYPE_CHECKING:
    from camguard.core.settings import DetectionSettings
    from camguard.platform.process import ProcessDescriber
    from camguard.store.policy import Policy

Wake = Callable[[], None]


@runtime_checkable
class UsageSource(Protocol):
    """Something that can tell who uses which device.

    Threads: :meth:`snapshot` runs on the monitor thread (or the caller's, for a one-shot
    ``camguard status``) and may block for as long as one look takes (a full ``/proc`` scan:
    tens of milliseconds); it never raises for one bad process or a dead server, it reports
    ``degraded`` instead. :meth:`start` starts the source's own watcher thread, which calls
    ``wake()`` (cheap, thread-safe, never blocks) whenever something may have changed;
    :meth:`stop` ends it within about a second. A source that is never started still answers
    :meth:`snapshot` (one-shot mode).
    """

    name: str

    def snapshot(self) -> SourceSnapshot: ...

    def start(self, wake: Wake) -> None: ...

    def stop(self) -> None: ...


@runtime_checkable
class CoverageReporter(Protocol):
    """A usage source that says which sensors it watches, fully, partly or not at all, and
    why (``status --json``'s "coverage"). ``last``: its latest snapshot, if any. The
    caller's thread; at most one short look of its own (a source never asked yet)."""

    def coverage(self, last: SourceSnapshot | None) -> list[Coverage]: ...


# -- the capabilities a platform provides (or a null object from platform/null.py) -----------
@runtime_checkable
class MicSwitch(Protocol):
    """Mutes every microphone at the sound server and restores exactly what it changed.
    The caller's thread; a few server round trips."""

    def mute_all(self) -> tuple[ActionResult, str]:
        """Mute; returns the result and text that :meth:`restore` needs."""
        ...

    def restore(self, data: str) -> ActionResult: ...


@runtime_checkable
class PolicySource(Protocol):
    """Where the managed policy comes from (store.policy.PolicyReader). Caller's thread; a
    file or registry read."""

    @property
    def source(self) -> str: ...

    def read(self) -> Policy | None: ...


@runtime_checkable
class AutostartEntry(Protocol):
    """Starting the tray at login. Caller's thread; a small file or registry write that
    raises OSError when it cannot be made."""

    def is_enabled(self) -> bool: ...

    def set(self, enabled: bool) -> None: ...


@runtime_checkable
class Notifications(Protocol):
    """Where desktop notifications go. Today a description only: the tray sends them
    (camguard.ui.notifications, Qt and D-Bus) until they move behind the platform."""

    @property
    def available(self) -> bool: ...

    def describe(self) -> str: ...


@runtime_checkable
class ServiceTransport(Protocol):
    """How a client reaches the system service and how the service knows who called:
    the socket (or pipe) and the kernel-given identity of its peer."""

    def default_address(self) -> Path: ...

    def peer_credentials(self, sock: socket.socket) -> tuple[int, int, int]:
        """(pid, uid, gid) of the process at the other end of a connected socket."""
        ...


@runtime_checkable
class SystemPaths(Protocol):
    """The system service's folders and the machine-wide files (each moved by the same
    variables as the user's folders, see store.paths)."""

    def service_data_dir(self) -> Path: ...

    def service_state_dir(self) -> Path: ...

    def service_config_dir(self) -> Path: ...



@runtime_checkable
class DeviceEnforcer(Enforcer, Protocol):
    """core.blocks.Enforcer, checkable at run time: switches cameras (device level) and
    microphones off and on again."""


@runtime_checkable
class ProcessFreezer(Freezer, Protocol):
    """core.freeze.Freezer, checkable at run time: stops an app while its alert is open and
    continues it, journaled, with a watchdog that continues it if camguard goes away."""


@runtime_checkable
class OriginResolver(Protocol):
    """Where an executable comes from (core.origin.ExeOrigin): on Linux a Debian package
    (checked against dpkg's md5sum), a Flatpak, Snap or AppImage, else a local file with its
    SHA-256; room for a Windows signer or a macOS Team ID. Any thread; never raises.

    :meth:`origin` may read the whole file the first time (md5 or SHA-256: most of a second
    for a 200 MB browser), so it runs off the event path; results are cached by the file's
    identity. :meth:`cached` answers only what costs no file read (None otherwise), for
    callers on the event path."""

    def origin(self, pid: int | None, exe: str) -> ExeOrigin | None: ...

    def cached(self, pid: int | None, exe: str) -> ExeOrigin | None: ...

    def warm(self) -> None:
        """Read what lookups need (dpkg's database) now, e.g. on a background thread at
        start, rather than at the first lookup."""
        ...


# -- what the selftest asks the OS directly ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What the sound server says about its microphones (one look)."""

    reachable: bool
    why: str = ""  # when not reachable
    server_name: str = ""
    default_source: str = ""
    default_is_microphone: bool = False
    # Every microphone (monitors excluded) by source name: muted now?
    mutes: dict[str, bool] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return literal(os.environ.get("PULSE_SERVER") or "the default sound server", 200)


@runtime_checkable
class Probes(Protocol):
    """The selftest's direct questions. The caller's thread; a /proc scan or a few sound
    server round trips (bounded, never starts a server)."""

    def open_holders(self, paths: Collection[str]) -> dict[str, list[int]]: ...

    def process_owner(self, pid: int) -> int | None:
        """The account (uid) a process runs as; None when it is gone or cannot be read."""
        ...

    def sound_server_facts(self, server: str | None = None) -> ServerFacts: ...


# -- the façade: one object per OS, chosen once by camguard.platform.current() ---------------
@runtime_checkable
class Platform(Protocol):
    """Every capability of one operating system. Each method builds a new object (callers
    keep the ones they need); a capability the OS lacks is a null object (platform/null.py)
    whose ``reason`` says why, never None."""

    name: str

    def usage_sources(self, settings: DetectionSettings, describer: ProcessDescriber
                      ) -> list[UsageSource]: ...

    def killer(self, sound_server_exes: Collection[str], *, escalate: bool = True
               ) -> ProcessKiller: ...

    def mic_switch(self, control: Any = None) -> MicSwitch: ...

    def enforcer(self, settings: DetectionSettings, killer: ProcessKiller, *,
                 mic_control: Any = None, mute: bool = True, state_file: Path | None = None,
                 escalate: bool = True) -> DeviceEnforcer:
        """The kill switch's OS half. ``mic_control``: the tray's long-lived microphone
        watcher; ``mute``: whether to mute at this program's own sound server (the root
        service has none: False, and it mutes each logged-in account's where it can);
        ``state_file``: where node states are saved; ``escalate``: may ask for privileges."""
        ...

    def mic_control(self) -> Any:
        """The tray's long-lived microphone watcher (keeps new microphones muted while
        blocked), with ``close()``; None where there is none."""
        ...

    def policy_source(self, path: Path | None = None) -> PolicySource: ...

    def autostart(self) -> AutostartEntry: ...

    def notifications(self) -> Notifications: ...

    def service_transport(self) -> ServiceTransport: ...

    def system_paths(self) -> SystemPaths: ...

    def probes(self) -> Probes: ...

    def origin_resolver(self) -> OriginResolver:
        """Where executables come from (keep one: it caches)."""
        ...

    def freezer(self, journal: Path, *, eager: bool = False, limit: float = MAX_FREEZE
                ) -> ProcessFreezer:
        """Freeze while asking (keep one: it holds the watchdog). Built at start: it first
        continues what ``journal`` lists from an earlier run. ``eager``: start the watchdog
        now rather than at the first freeze. ``limit``: seconds before the watchdog lets a
        frozen app go (MAX_FREEZE; a test's short one)."""
        ...
