"""The Windows platform: every capability of the façade (camguard.platform) built from this
backend's adapters. Windows-only modules (winreg, comtypes, pycaw, pywin32) are loaded when
a capability is built; one that cannot be loaded, or that is not finished, is a null object
or a degraded source that says why in one sentence.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

import platformdirs
import psutil

from camguard.core.freeze import MAX_FREEZE
from camguard.core.models import DeviceKind
from camguard.core.settings import DetectionSettings
from camguard.core.text import literal
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
    ServiceTransport,
    SystemPaths,
    UsageSource,
)
from camguard.platform.null import (
    NO_FREEZE,
    NullEnforcer,
    NullFreezer,
    NullMicSwitch,
    NullOriginResolver,
    NullProbes,
)
from camguard.platform.process import ProcessDescriber
from camguard.store import paths

# Why the unfinished capabilities are null objects (one sentence each).
NO_ORIGIN = ("where an app comes from (its Authenticode signer) is not read on Windows "
             "yet")
NO_PROBES = "the selftest's probes are not written for Windows yet"


def _why(exc: BaseException) -> str:
    return literal(str(exc) or type(exc).__name__, 160)


class WindowsPlatform:
    name = "win32"

    def __init__(self, winreg: Any = None, *, elevated: bool | None = None) -> None:
        self._winreg = winreg  # the tests give tests.fakes.FakeWinreg
        self._elevated = elevated  # None: ask Windows (IsUserAnAdmin)

    def _registry(self) -> Any:
        from camguard.platform.windows.registry import Registry, load_winreg

        return Registry(self._winreg if self._winreg is not None else load_winreg())

    def usage_sources(self, settings: DetectionSettings, describer: ProcessDescriber
                      ) -> list[UsageSource]:
        from camguard.platform.windows.consent_reader import ConsentReader
        from camguard.platform.windows.sources import CameraSource, MicSource

        feed: Any = None
        why = ""
        try:
            from camguard.platform.windows.com import SensorActivityFeed

            feed = SensorActivityFeed()
        except (ImportError, OSError, AttributeError, TypeError, ValueError) as exc:
            # Never fail the whole detection for the camera monitor: degrade, saying why.
            logging.getLogger(__name__).debug("sensor monitor", exc_info=True)
            why = f"the camera sensor monitor (mfsensorgroup.dll, comtypes) is unavailable: " \
                  f"{_why(exc)}"
        try:
            registry = self._registry()
            # Elevated (the service: LocalSystem has no user hive of its own): every
            # logged-on user's HKU\<SID> store and HKLM; else this user's.
            reader: Any = (ConsentReader.for_service(registry) if self._is_elevated()
                           else ConsentReader(registry)).read
        except ImportError:
            reader = None
        watch: Any = None
        if feed is None:
            try:
                from camguard.platform.windows.consent_reader import ConsentWatcher

                watch = ConsentWatcher.load()
            except (ImportError, OSError):
                watch = None  # the fallback re-reads the store every 2 s instead
        # The service (elevated, watch_sound_server off): Core Audio shows LocalSystem none
        # of the people's capture sessions; the ConsentStore names some, late (coverage.py).
        service_mic = not settings.watch_sound_server and self._is_elevated()
        sources: list[UsageSource] = [CameraSource(
            feed, describer, unavailable=why, consent=reader, processes=_exes, watch=watch,
            fallback_kinds=frozenset({DeviceKind.CAMERA}) if service_mic
            else frozenset(DeviceKind))]
        if service_mic:
            from camguard.platform.windows.coverage import ServiceMicSource

            sources.append(ServiceMicSource(reader, _exes if reader is not None else None,
                                            describer))
        if settings.watch_sound_server:
            try:
                import pycaw.pycaw  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: F401

                from camguard.platform.windows.com import capture_endpoints

                sources.append(MicSource(capture_endpoints, describer))
            except (ImportError, OSError) as exc:
                sources.append(MicSource(None, describer, unavailable=(
                    f"microphone sessions need pycaw and comtypes: {_why(exc)}")))
        return sources

    def killer(self, sound_server_exes: Collection[str], *, escalate: bool = True
               ) -> ProcessKiller:
        from camguard.platform.windows.kill import WindowsKiller

        return WindowsKiller(sound_server_exes)

    def mic_switch(self, control: Any = None) -> MicSwitch:
        try:
            import pycaw.pycaw  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: F401
        except (ImportError, OSError) as exc:
            return NullMicSwitch(f"muting microphones needs pycaw and comtypes: {_why(exc)}")
        from camguard.platform.windows.com import capture_volumes
        from camguard.platform.windows.mute import EndpointMute

        return EndpointMute(capture_volumes)

    def enforcer(self, settings: DetectionSettings, killer: ProcessKiller, *,
                 mic_control: Any = None, mute: bool = True, state_file: Path | None = None,
                 escalate: bool = True) -> DeviceEnforcer:
        """enforcer.WindowsEnforcer: an elevated camguard (the service, or run as
        administrator) flips the machine policy and may disable camera devices; anyone else
        flips their own ConsentStore switch."""
        from camguard.platform.windows.enforcer import WindowsEnforcer
        from camguard.platform.windows.switches import ConsentSwitch

        try:
            registry = self._registry()
        except ImportError as exc:
            return NullEnforcer(f"the Windows kill switch needs winreg: {_why(exc)}")
        elevated = self._is_elevated()
        devices: Any = None
        if elevated:
            try:
                from camguard.platform.windows.devnode import CfgMgrDevices

                devices = CfgMgrDevices()
            except (OSError, AttributeError):  # no setupapi/cfgmgr32: the switches remain
                devices = None
        mic = self.mic_switch() if mute else None
        return WindowsEnforcer(ConsentSwitch(registry), killer, self._holders(settings),
                               machine=elevated, devices=devices,
                               mic=None if isinstance(mic, NullMicSwitch) else mic)

    def _is_elevated(self) -> bool:
        """An administrator's elevated token or LocalSystem (shell32 IsUserAnAdmin)."""
        if self._elevated is not None:
            return self._elevated
        try:
            import ctypes

            return bool(ctypes.windll.shell32.IsUserAnAdmin())  # type: ignore[attr-defined, unused-ignore]
        except (AttributeError, OSError):
            return False

    def _holders(self, settings: DetectionSettings) -> Any:
        """(pid, create_time) of each process using a device of a kind now: one look of this
        platform's own usage sources (the camera's takes up to a second)."""

        def holders(kind: Any) -> list[tuple[int, float | None]]:
            out: list[tuple[int, float | None]] = []
            for source in self.usage_sources(settings, ProcessDescriber()):
                snap = source.snapshot()
                out += [(u.process.pid, u.process.create_time) for u in snap.usages
                        if u.device.kind is kind and u.process is not None]
            return out

        return holders

    def mic_control(self) -> Any:
        return None

    def policy_source(self, path: Path | None = None) -> PolicySource:
        from camguard.core.defaults import DEFAULT_POLICY_FILE
        from camguard.store.policy import TomlPolicyReader
        from camguard.store.policy_registry import WindowsRegistryPolicyReader

        # The command line's default (/etc/camguard/policy.toml) means "the OS's own place":
        # here the registry; only a file someone names is read as TOML.
        if path is not None and path != DEFAULT_POLICY_FILE:
            return TomlPolicyReader(path)
        return WindowsRegistryPolicyReader()  # Group Policy and Intune write the registry

    def autostart(self) -> AutostartEntry:
        from camguard.platform.null import NullAutostart
        from camguard.platform.windows.autostart import RunKeyAutostart

        try:
            return RunKeyAutostart(self._registry())
        except ImportError as exc:
            return NullAutostart(f"starting at login needs winreg: {_why(exc)}")

    def notifications(self) -> Notifications:
        return TrayBalloons()

    def service_transport(self) -> ServiceTransport:
        from camguard.platform.windows.pipe import NamedPipeTransport

        return NamedPipeTransport()

    def system_paths(self) -> SystemPaths:
        return WindowsSystemPaths()

    def freezer(self, journal: Path, *, eager: bool = False, limit: float = MAX_FREEZE
                ) -> ProcessFreezer:
        return NullFreezer(NO_FREEZE)

    def origin_resolver(self) -> OriginResolver:
        return NullOriginResolver(NO_ORIGIN)

    def probes(self) -> Probes:
        return NullProbes(NO_PROBES)


def _exes() -> list[tuple[int, str]]:
    """(pid, exe) of every process whose exe can be read."""
    out = []
    for proc in psutil.process_iter(["exe"]):
        exe = proc.info.get("exe")
        if exe:
            out.append((proc.pid, str(exe)))
    return out


class TrayBalloons:
    """Qt's tray balloon, which Windows shows as a toast (the tray sends it)."""

    @property
    def available(self) -> bool:
        return True

    def describe(self) -> str:
        return "Windows toasts through the tray icon's balloon messages"


class WindowsSystemPaths:
    """%ProgramData%\\camguard\\{data,state,config}, unless the CAMGUARD_*_DIR variables
    move them (store.paths reads those)."""

    def __init__(self) -> None:
        self.base = Path(platformdirs.site_data_dir("camguard", appauthor=False))

    def service_data_dir(self) -> Path:
        got = paths.service_data_dir()
        return self.base / "data" if got == paths.SERVICE_DATA else got

    def service_state_dir(self) -> Path:
        got = paths.service_state_dir()
        return self.base / "state" if got == paths.SERVICE_STATE else got

    def service_config_dir(self) -> Path:
        got = paths.service_config_dir()
        return self.base / "config" if got == paths.SERVICE_CONFIG else got
