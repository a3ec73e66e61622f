"""Null objects: what a platform hands out for a capability it lacks. Each one works (never
raises where the real one would not, never needs a ``None`` check) and says in one sentence,
``reason``, why the capability is missing."""

from __future__ import annotations

import socket
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camguard.core.blocks import ActionResult, Applied, BlockOptions, Outcome, UndoStep
from camguard.core.freeze import MAX_FREEZE
from camguard.core.models import DeviceKind
from camguard.core.origin import ExeOrigin
from camguard.platform.base import (
    AutostartEntry,
    DeviceEnforcer,
    MicSwitch,
    Notifications,
    OriginResolver,
    PolicySource,
    Probes,
    ProcessKiller,
    ServerFacts,
    ServiceTransport,
    SystemPaths,
    UsageSource,
)
from camguard.store import paths

if TYPE_CHECKING:
    from camguard.core.settings import DetectionSettings
    from camguard.platform.process import ProcessDescriber
    from camguard.store.policy import Policy


@dataclass(frozen=True)
class NullKiller:
    reason: str

    def kill(self, pid: int, create_time: float | None = None, *, force: bool = False
             ) -> ActionResult:
        return ActionResult(Outcome.FAILED, self.reason)


@dataclass(frozen=True)
class NullEnforcer:
    reason: str

    def apply(self, kind: DeviceKind, options: BlockOptions,
              already: Sequence[UndoStep] = ()) -> Applied:
        return Applied((), ActionResult(Outcome.FAILED, self.reason))

    def undo(self, kind: DeviceKind, steps: Sequence[UndoStep]) -> ActionResult:
        return ActionResult(Outcome.FAILED, self.reason)


@dataclass(frozen=True)
class NullMicSwitch:
    reason: str

    def mute_all(self) -> tuple[ActionResult, str]:
        return ActionResult(Outcome.FAILED, self.reason), ""

    def restore(self, data: str) -> ActionResult:
        return ActionResult(Outcome.FAILED, self.reason)


@dataclass(frozen=True)
class NullPolicySource:
    reason: str

    @property
    def source(self) -> str:
        return "no managed policy"

    def read(self) -> Policy | None:
        return None  # no policy: every setting is the user's or the default


@dataclass(frozen=True)
class NullAutostart:
    reason: str

    def is_enabled(self) -> bool:
        return False

    def set(self, enabled: bool) -> None:
        if enabled:
            raise OSError(self.reason)


@dataclass(frozen=True)
class NullNotifications:
    reason: str

    @property
    def available(self) -> bool:
        return False

    def describe(self) -> str:
        return self.reason


@dataclass(frozen=True)
class NullServiceTransport:
    reason: str

    def default_address(self) -> Path:
        # Nothing answers there, so every command works on its own, without a service.
        return paths.state_dir() / "no-service"

    def peer_credentials(self, sock: socket.socket) -> tuple[int, int, int]:
        raise OSError(self.reason)


@dataclass(frozen=True)
class NullSystemPaths:
    """No system service here: its folders are the user's own."""

    reason: str

    def service_data_dir(self) -> Path:
        return paths.data_dir()

    def service_state_dir(self) -> Path:
        return paths.state_dir()

    def service_config_dir(self) -> Path:
        return paths.config_dir()


@dataclass(frozen=True)
class NullProbes:
    reason: str

    def open_holders(self, paths: Collection[str]) -> dict[str, list[int]]:
        return {}

    def process_owner(self, pid: int) -> int | None:
        return None

    def sound_server_facts(self, server: str | None = None) -> ServerFacts:
        return ServerFacts(False, self.reason)


@dataclass(frozen=True)
class NullOriginResolver:
    """No way to tell where an executable comes from here: every origin is unknown (None),
    so origin rules never match and exe rules (path plus SHA-256) still do."""

    reason: str

    def origin(self, pid: int | None, exe: str) -> ExeOrigin | None:
        return None

    def cached(self, pid: int | None, exe: str) -> ExeOrigin | None:
        return None

    def warm(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class NullFreezer:
    """No freeze while asking here: nothing is ever stopped (no journal and no watchdog
    would make sure it is continued)."""

    reason: str
    limit: float = MAX_FREEZE

    def freeze(self, pid: int, create_time: float) -> ActionResult:
        return ActionResult(Outcome.REFUSED, f"not paused: {self.reason}")

    def thaw(self, pid: int, create_time: float, *, end: bool = False) -> ActionResult:
        return ActionResult(Outcome.NOT_FOUND, f"pid {pid} was not paused")

    def close(self) -> None:
        return None


NO_FREEZE = "freezing an app while asking needs Linux's journal and watchdog"


class NullPlatform:
    """An OS camguard has no backend for yet: it watches nothing and each capability is a
    null object saying so. The managed policy still works where store.policy can read it
    (a file given by path; the registry on Windows)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.reason = f"camguard has no backend for {name} yet"

    def usage_sources(self, settings: DetectionSettings, describer: ProcessDescriber
                      ) -> list[UsageSource]:
        return []

    def killer(self, sound_server_exes: Collection[str], *, escalate: bool = True
               ) -> ProcessKiller:
        return NullKiller(f"ending a process: {self.reason}")

    def mic_switch(self, control: Any = None) -> MicSwitch:
        return NullMicSwitch(f"muting microphones: {self.reason}")

    def enforcer(self, settings: DetectionSettings, killer: ProcessKiller, *,
                 mic_control: Any = None, mute: bool = True, state_file: Path | None = None,
                 escalate: bool = True) -> DeviceEnforcer:
        return NullEnforcer(f"the kill switch: {self.reason}")

    def mic_control(self) -> Any:
        return None

    def policy_source(self, path: Path | None = None) -> PolicySource:
        from camguard.store.policy import TomlPolicyReader, default_reader

        if path is not None:
            return TomlPolicyReader(path)
        if sys.platform == "win32":
            return default_reader()  # the registry, where Group Policy and Intune write
        return NullPolicySource(f"a managed policy: {self.reason}")

    def autostart(self) -> AutostartEntry:
        return NullAutostart(f"starting at login: {self.reason}")

    def notifications(self) -> Notifications:
        return NullNotifications(f"desktop notifications: {self.reason}")

    def service_transport(self) -> ServiceTransport:
        return NullServiceTransport(f"the system service: {self.reason}")

    def system_paths(self) -> SystemPaths:
        return NullSystemPaths(f"the system service's folders: {self.reason}")

    def probes(self) -> Probes:
        return NullProbes(f"looking at the OS directly: {self.reason}")

    def origin_resolver(self) -> OriginResolver:
        return NullOriginResolver(f"where an app comes from: {self.reason}")

    def freezer(self, journal: Path, *, eager: bool = False, limit: float = MAX_FREEZE
                ) -> NullFreezer:
        return NullFreezer(NO_FREEZE)
