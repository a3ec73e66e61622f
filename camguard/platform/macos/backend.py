"""The macOS platform: every capability of the façade (camguard.platform) built from this
backend's modules. pyobjc (CoreAudio, CoreMediaIO, Foundation) is imported only when the
usage source, the microphone switch or the kill switch is built, so this module imports
anywhere; a missing piece becomes a null object or a degraded source that says why, never an
import error.

NOT RUN ON macOS: everything here was written and tested on Linux, with Fake pyobjc modules
(tests/fakes.py) and constructed log captures (tests/data/macos/README.md).
"""

from __future__ import annotations

import logging
import platform as pyplatform
from collections.abc import Collection
from pathlib import Path
from typing import Any

import psutil

from camguard.core.models import DeviceKind, SourceSnapshot
from camguard.core.settings import DetectionSettings
from camguard.platform.base import (
    AutostartEntry,
    DeviceEnforcer,
    MicSwitch,
    Notifications,
    OriginResolver,
    PolicySource,
    Probes,
    ProcessFreezer,
    ProcessKiller,
    ServerFacts,
    ServiceTransport,
    SystemPaths,
    UsageSource,
    Wake,
)
from camguard.platform.macos.logparse import Version, parse_version
from camguard.platform.macos.mute import MacEnforcer, MacMicSwitch
from camguard.platform.macos.system import (
    LaunchAgentAutostart,
    MacKiller,
    MacNotifications,
    MacSocketTransport,
    MacSystemPaths,
)
from camguard.platform.null import NO_FREEZE, NullFreezer, NullMicSwitch, NullOriginResolver
from camguard.platform.process import ProcessDescriber

log = logging.getLogger(__name__)

NO_ORIGIN = "where an app comes from (its Team ID) is not read on macOS yet"
PYOBJC = ("pyobjc-framework-CoreAudio, pyobjc-framework-CoreMediaIO and "
          "pyobjc-framework-AVFoundation")


def macos_version() -> Version | None:
    """This Mac's version ("14.2.1" -> (14, 2)); None off macOS or when unreadable."""
    return parse_version(pyplatform.mac_ver()[0])


class UnavailableSource:
    """The usage source when pyobjc cannot be loaded: it watches nothing and says why."""

    name = "macos"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def snapshot(self) -> SourceSnapshot:
        from camguard.core.models import Degraded

        return SourceSnapshot(self.name, degraded=Degraded(self.name, self.reason))

    def start(self, wake: Wake) -> None:
        pass

    def stop(self) -> None:
        pass


class MacPlatform:
    name = "darwin"

    def __init__(self, version: Version | None = None) -> None:
        self.version = version if version is not None else macos_version()

    def usage_sources(self, settings: DetectionSettings, describer: ProcessDescriber
                      ) -> list[UsageSource]:
        from camguard.platform.macos.hal import PyObjCProperties
        from camguard.platform.macos.source import MacSource

        try:
            audio, cmio = PyObjCProperties("CoreAudio"), PyObjCProperties("CoreMediaIO")
        except (ImportError, AttributeError) as exc:
            log.info("pyobjc unavailable: %s", exc)
            return [UnavailableSource(f"camguard cannot see devices: {PYOBJC} are not "
                                      f"installed ({exc})")]
        return [MacSource(self.version, audio, cmio, describer.describe)]

    def killer(self, sound_server_exes: Collection[str], *, escalate: bool = True
               ) -> ProcessKiller:
        # coreaudiod is not a process a user can end anyway (root, restarted by launchd).
        return MacKiller()

    @staticmethod
    def _mute() -> MacMicSwitch | None:
        from camguard.platform.macos.hal import PyObjCProperties

        try:
            return MacMicSwitch(PyObjCProperties("CoreAudio"))
        except (ImportError, AttributeError) as exc:
            log.info("pyobjc CoreAudio unavailable: %s", exc)
            return None

    def mic_switch(self, control: Any = None) -> MicSwitch:
        switch = self._mute()
        if switch is None:
            return NullMicSwitch("muting microphones needs pyobjc-framework-CoreAudio, which "
                                 "is not installed")
        return switch

    def enforcer(self, settings: DetectionSettings, killer: ProcessKiller, *,
                 mic_control: Any = None, mute: bool = True, state_file: Path | None = None,
                 escalate: bool = True) -> DeviceEnforcer:
        from camguard.platform.macos.revoke import Holder, TccRevoker

        def holders(kind: DeviceKind) -> list[Holder]:
            """Who uses ``kind`` now: one look of this platform's usage source."""
            out = []
            for source in self.usage_sources(settings, ProcessDescriber()):
                out += [Holder(u.process.pid, u.process.exe, u.process.name)
                        for u in source.snapshot().usages
                        if u.device.kind is kind and u.process is not None]
            return out

        return MacEnforcer(self._mute(), TccRevoker(), holders)

    def mic_control(self) -> Any:
        return None

    def policy_source(self, path: Path | None = None) -> PolicySource:
        # packaging/macos/BUILD.md: the MDM deploys /etc/camguard/policy.toml, as on Linux.
        from camguard.core.defaults import DEFAULT_POLICY_FILE
        from camguard.store.policy import TomlPolicyReader

        return TomlPolicyReader(path if path is not None else DEFAULT_POLICY_FILE)

    def autostart(self) -> AutostartEntry:
        return LaunchAgentAutostart()

    def notifications(self) -> Notifications:
        return MacNotifications()

    def service_transport(self) -> ServiceTransport:
        return MacSocketTransport()

    def system_paths(self) -> SystemPaths:
        return MacSystemPaths()

    def freezer(self, journal: Path, *, eager: bool = False) -> ProcessFreezer:
        return NullFreezer(NO_FREEZE)

    def origin_resolver(self) -> OriginResolver:
        return NullOriginResolver(NO_ORIGIN)

    def probes(self) -> Probes:
        return MacProbes()


class MacProbes:
    """Who owns a process (psutil; the tray's block guard needs it). No /proc to find a
    device's holders and no PulseAudio: those two answers say so."""

    def open_holders(self, paths: Collection[str]) -> dict[str, list[int]]:
        return {}  # macOS has no device nodes for cameras; the usage source names users

    def process_owner(self, pid: int) -> int | None:
        try:
            return int(psutil.Process(pid).uids().effective)
        except (psutil.Error, OSError):
            return None

    def sound_server_facts(self, server: str | None = None) -> ServerFacts:
        return ServerFacts(False, "macOS has no PulseAudio server; CoreAudio is read by the "
                                  "usage source")
