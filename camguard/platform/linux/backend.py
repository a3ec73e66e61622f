"""The Linux platform: every capability of the façade (camguard.platform) built from this
backend's modules. Modules that need libpulse or the helper are imported when used, so a
missing optional piece turns into a null object or a note, never an import error."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from camguard.core.freeze import MAX_FREEZE
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
    ServerFacts,
    ServiceTransport,
    SystemPaths,
    UsageSource,
)
from camguard.platform.linux.transport import UnixSocketTransport
from camguard.platform.process import ProcessDescriber
from camguard.store import paths

HELPER_NODES = "helper-nodes.json"


class LinuxPlatform:
    name = "linux"

    def usage_sources(self, settings: DetectionSettings, describer: ProcessDescriber
                      ) -> list[UsageSource]:
        from camguard.platform.linux.procfs import ProcfsSource

        # With PipeWire watched, the media server holding /dev/video is a broker: the apps
        # linked to its camera node are the users (pipewire.py), it never is one itself.
        brokers = settings.sound_server_exes if settings.watch_sound_server else ()
        users: UsageSource | None = None
        watched = None
        if not settings.watch_sound_server and os.geteuid() == 0:
            # The root service (it turns off watching its own sound server, which it has
            # not, as on Windows): each logged-in account's own PipeWire (user_pipewire.py);
            # a media server holding /dev/video is a broker when its account's is watched.
            from camguard.platform.linux.user_pipewire import UserPipeWireSource

            each = UserPipeWireSource(describer, broker_exes=settings.sound_server_exes)
            users, watched, brokers = each, each.watches, settings.sound_server_exes
        sources: list[UsageSource] = [
            ProcfsSource(settings.camera_globs, settings.mic_globs,
                         sound_server_exes=settings.sound_server_exes, describer=describer,
                         camera_brokers=brokers, broker_watched=watched)]
        if users is not None:
            sources.append(users)
            # Each account's Flatpak location grants, read as the account (user_portal.py).
            from camguard.platform.linux.user_portal import UserPortalSource

            sources.append(UserPortalSource())
            # Each account's sound server, through a child as the account (user_pulse.py):
            # the apps recording there, which the device-node source cannot name.
            from camguard.platform.linux.user_pulse import UserPulseSource

            sources.append(UserPulseSource(describer,
                                           server_exes=settings.sound_server_exes))
        if settings.watch_sound_server:
            from camguard.platform.linux.pipewire import PipeWireSource
            from camguard.platform.linux.pulse import PulseSource

            sources.append(PulseSource(describer=describer,
                                       server_exes=settings.sound_server_exes))
            sources.append(PipeWireSource(describer, broker_exes=settings.sound_server_exes))
            # Flatpak apps' location grants and starts, from the user's portal permission
            # store on the session bus (portal_location.py); not in the root service.
            from camguard.platform.linux.portal_location import PortalLocationSource

            sources.append(PortalLocationSource(describer))
        # Raw USB access to a camera (its /dev/bus/usb node): its own event (rawusb.py).
        from camguard.platform.linux.rawusb import RawUsbSource

        sources.append(RawUsbSource(settings.camera_globs, describer=describer,
                                    sound_server_exes=settings.sound_server_exes))
        # Location: GeoClue on the system bus (named as root, InUse only otherwise); inert
        # where there is no system bus or no GeoClue.
        from camguard.platform.linux.geoclue import GeoClueSource

        sources.append(GeoClueSource(describer))
        return sources

    def killer(self, sound_server_exes: Collection[str], *, escalate: bool = True
               ) -> ProcessKiller:
        """As root, camguard signals any process itself; otherwise another user's process
        goes through the privileged helper (pkexec) when it is installed and ``escalate``
        allows a password prompt."""
        from camguard.platform.linux.helper_runner import PkexecHelper
        from camguard.platform.linux.kill import Killer

        pk = PkexecHelper() if (escalate and os.geteuid() != 0
                                and PkexecHelper.available()) else None
        return Killer(sound_server_exes, helper=pk)

    def mic_switch(self, control: Any = None) -> MicSwitch:
        from camguard.platform.linux.block import load_mic_switch

        switch = load_mic_switch(control=control)
        if switch is None:
            from camguard.platform.null import NullMicSwitch

            return NullMicSwitch("muting microphones needs libpulse (pulsectl), which cannot "
                                 "be loaded here")
        return switch

    def enforcer(self, settings: DetectionSettings, killer: ProcessKiller, *,
                 mic_control: Any = None, mute: bool = True, state_file: Path | None = None,
                 escalate: bool = True) -> DeviceEnforcer:
        from camguard.platform.linux.block import HolderEnder, LinuxBlocker, load_mic_switch
        from camguard.platform.linux.helper_runner import InProcessHelper, privileged_helper

        globs = (*settings.camera_globs, *settings.mic_globs)
        state = str(state_file) if state_file is not None else self._helper_state_file()
        if escalate:
            runner = privileged_helper(globs, state)
        else:  # the service: root does it itself, or nothing asks for a password
            runner = InProcessHelper(globs, state) if os.geteuid() == 0 else None
        if not isinstance(killer, HolderEnder):
            raise TypeError("the Linux kill switch ends a device's holders with a killer that "
                            "knows the sound server (kill.Killer)")
        mic: MicSwitch | None
        if mute:
            mic = load_mic_switch(control=mic_control)
        elif os.geteuid() == 0:  # the service: every logged-in account's sound server
            from camguard.platform.linux.user_mic import EachUserMicSwitch

            mic = EachUserMicSwitch()
        else:
            mic = None
        return LinuxBlocker(settings.camera_globs, settings.mic_globs, helper=runner,
                            killer=killer, mic=mic)

    @staticmethod
    def _helper_state_file() -> str:
        """Where node states are saved when camguard itself is root. The installed helper
        always uses /var/lib/camguard; a root camguard uses the same file so either can undo
        the other's block, unless CAMGUARD_STATE_DIR moves all state (tests, images)."""
        from camguard.platform.linux import helper

        if paths.state_dir_moved():
            return str(paths.private_dir(paths.state_dir()) / HELPER_NODES)
        return helper.DEFAULT_STATE_FILE

    def mic_control(self) -> Any:
        try:
            from camguard.platform.linux.mic_control import MicControl
        except (ImportError, OSError) as exc:  # pulsectl loads libpulse.so.0 when imported
            import logging

            logging.getLogger(__name__).info("microphone mute unavailable: %s", exc)
            return None
        return MicControl()

    def policy_source(self, path: Path | None = None) -> PolicySource:
        from camguard.core.defaults import DEFAULT_POLICY_FILE
        from camguard.store.policy import TomlPolicyReader

        return TomlPolicyReader(path if path is not None else DEFAULT_POLICY_FILE)

    def autostart(self) -> AutostartEntry:
        from camguard.store.autostart import Autostart

        return Autostart()

    def notifications(self) -> Notifications:
        return FreedesktopNotifications()

    def service_transport(self) -> ServiceTransport:
        return UnixSocketTransport()

    def system_paths(self) -> SystemPaths:
        return LinuxSystemPaths()

    def freezer(self, journal: Path, *, eager: bool = False, limit: float = MAX_FREEZE
                ) -> ProcessFreezer:
        from camguard.platform.linux.freeze import JournaledFreezer

        return JournaledFreezer(journal, eager=eager, limit=limit)

    def origin_resolver(self) -> OriginResolver:
        from camguard.platform.linux.origin import LinuxOriginResolver

        return LinuxOriginResolver()

    def probes(self) -> Probes:
        return LinuxProbes()


class FreedesktopNotifications:
    """org.freedesktop.Notifications on the session bus (the tray speaks it, through
    camguard.ui.notifications)."""

    @property
    def available(self) -> bool:
        runtime = os.environ.get("XDG_RUNTIME_DIR", "")
        return bool(os.environ.get("DBUS_SESSION_BUS_ADDRESS")) or (
            bool(runtime) and os.path.exists(os.path.join(runtime, "bus")))

    def describe(self) -> str:
        where = "a session bus" if self.available else "no session bus (the tray falls back " \
            "to its own balloon)"
        return f"org.freedesktop.Notifications on {where}"


class LinuxSystemPaths:
    """/var/lib/camguard and /etc/camguard (moved by the CAMGUARD_*_DIR variables)."""

    def service_data_dir(self) -> Path:
        return paths.service_data_dir()

    def service_state_dir(self) -> Path:
        return paths.service_state_dir()

    def service_config_dir(self) -> Path:
        return paths.service_config_dir()


class LinuxProbes:
    def open_holders(self, paths: Collection[str]) -> dict[str, list[int]]:
        from camguard.platform.linux.probes import open_holders

        return open_holders(paths)

    def process_owner(self, pid: int) -> int | None:
        # /proc/PID is owned by the process's effective uid (proc(5)).
        try:
            return os.stat(f"/proc/{pid}").st_uid
        except OSError:
            return None

    def sound_server_facts(self, server: str | None = None) -> ServerFacts:
        try:
            from camguard.platform.linux.probes import sound_server_facts
        except (ImportError, OSError) as exc:  # pragma: no cover - probes imports lazily
            return ServerFacts(False, f"libpulse is not available ({literal(str(exc), 200)})")
        return sound_server_facts(server)
