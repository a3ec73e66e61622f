"""The platform façade: the backend for the OS we run on, chosen once (as psutil chooses
its ``_psplatform``), and the only way into it.

``current()`` gives the :class:`~camguard.platform.base.Platform` for this OS: usage
sources, process killer, camera and microphone enforcer, microphone switch, managed-policy
source, autostart, notifications, service transport, system paths and the selftest's
probes. A capability the OS lacks is a null object (platform/null.py) that says why. Only
this package imports a backend (``camguard.platform.linux``): an import-linter contract.
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # at run time each is imported where used: camguard.platform.clock and
    # current() must not cost psutil (issue 16)
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from camguard.core.models import ProcessRef
    from camguard.core.origin import ExeOrigin
    from camguard.core.settings import DetectionSettings
    from camguard.platform.base import OriginResolver, Platform, ServiceTransport, UsageSource
    from camguard.platform.linux.systemd_service import SystemdService
    from camguard.platform.macos.forensics import LogReport
    from camguard.platform.macos.tcc import TccEntry
    from camguard.platform.process import ProcessDescriber
    from camguard.platform.signer import Signer
    from camguard.platform.windows.consent import ConsentEntry


@functools.cache
def current() -> Platform:
    """The platform of this OS (one object for the process's lifetime)."""
    if sys.platform.startswith("linux"):
        from camguard.platform.linux.backend import LinuxPlatform

        return LinuxPlatform()
    if sys.platform == "darwin":
        from camguard.platform.macos.backend import MacPlatform

        return MacPlatform()
    if sys.platform == "win32":
        from camguard.platform.windows.backend import WindowsPlatform

        return WindowsPlatform()
    from camguard.platform.null import NullPlatform

    return NullPlatform(sys.platform)


def service_transport() -> ServiceTransport:
    """How a client reaches the service on this OS: ``current().service_transport()``,
    but on Linux without building the platform (its modules, settings and block model),
    so that a command answered by the service loads no more (issue 16)."""
    if sys.platform.startswith("linux"):
        from camguard.platform.linux.transport import UnixSocketTransport

        return UnixSocketTransport()
    return current().service_transport()


def privileged_helper_installed() -> bool | None:
    """Whether the privileged helper that blocks for every account can be run here (pkexec
    and the installed helper). None where none is needed or none exists: root, not Linux."""
    import os

    if sys.platform != "linux" or os.geteuid() == 0:
        return None
    from camguard.platform.linux.helper_runner import PkexecHelper

    return PkexecHelper.available()


def privileged_helper_installer() -> Callable[[], tuple[bool, str]] | None:
    """What installs the privileged helper from this package through pkexec (Linux, not
    root, pkexec present); None where there is nothing to install or no way to."""
    import os
    import shutil

    if sys.platform != "linux" or os.geteuid() == 0 or shutil.which("pkexec") is None \
            or getattr(sys, "frozen", False):  # a bundle: its package installed the helper
        return None
    from camguard.platform.linux.helper_runner import install_helper

    return install_helper


def system_service() -> SystemdService | None:
    """camguard's system service where it can be turned on from the desktop (Linux with
    systemctl); None elsewhere."""
    import shutil

    if sys.platform != "linux" or shutil.which("systemctl") is None:
        return None
    from camguard.platform.linux.systemd_service import SystemdService

    return SystemdService()


@functools.cache
def origin_resolver() -> OriginResolver:
    """This process's one origin resolver (it caches dpkg's database and every file it
    examined), from the platform of this OS."""
    return current().origin_resolver()


def origin_of(process: ProcessRef) -> ExeOrigin | None:
    """Where ``process``'s executable comes from (core.decision.OriginOf): blocking on the
    first look at a file (it reads it whole), so off the event path."""
    return origin_resolver().origin(process.pid, process.exe)


def create_sources(settings: DetectionSettings, describer: ProcessDescriber | None = None
                   ) -> list[UsageSource]:
    """The usage sources for this OS (an empty list where camguard has no backend yet)."""
    from camguard.platform.process import ProcessDescriber

    return current().usage_sources(settings, describer or ProcessDescriber())


def windows_consent_entries(raw: bytes, warnings: list[str] | None = None
                            ) -> list[ConsentEntry]:
    """The Windows ConsentStore entries of a ``reg export`` file, on any OS (pure decoding,
    for ``camguard forensics``). Raises ValueError naming the line when it is not whole;
    doubts that do not stop the reading go to ``warnings``."""
    from camguard.platform.windows.consent import entries_from_export

    return entries_from_export(raw, warnings)


def macos_tcc_entries(path: Path) -> list[TccEntry]:
    """The camera, microphone and screen-recording answers of a macOS TCC.db, on any OS
    (read-only SQLite, for ``camguard forensics``). Raises OSError saying why a file cannot
    be read as one (locked, corrupt, another schema)."""
    from camguard.platform.macos.tcc import read_tcc

    return read_tcc(path)


def macos_log_sessions(lines: Iterable[str | bytes], version: str | None = None) -> LogReport:
    """The camera and microphone sessions a saved ``log show --style ndjson`` capture
    attributes, on any OS. ``version``: the macOS that wrote it ("14.5"; None: every known
    pattern). Raises ValueError for a version that is not one or has no known format."""
    from camguard.platform.macos.forensics import log_sessions
    from camguard.platform.macos.logparse import parse_version

    parsed = None
    if version is not None:
        parsed = parse_version(version)
        if parsed is None:
            raise ValueError(f"not a macOS version: {version!r} (say 14.5)")
    return log_sessions(lines, parsed)


def host_system_service(run: Callable[[], None], request_stop: Callable[[str], None], *,
                        scm: bool) -> None:
    """Run the system service: ``run()`` here, or, with ``scm`` (``camguard service
    --windows-service``, as the MSI registers it), under Windows' Service Control Manager,
    whose stop and shutdown controls call ``request_stop(reason)``. Raises OSError when
    ``scm`` is asked for where there is none, or pywin32 is missing."""
    if not scm:
        run()
        return
    if sys.platform != "win32":
        raise OSError("--windows-service is for Windows' Service Control Manager only")
    from camguard.platform.windows.winservice import host

    try:
        host(run, request_stop)
    except ImportError as exc:
        raise OSError(f"the Windows service needs pywin32: {exc}") from None


def code_signer() -> Callable[[str], Signer | None] | None:
    """Who signed an executable, on this OS: the macOS Team ID (Security.framework, else
    codesign) or the Windows Authenticode signer; None where camguard reads no signatures
    (Linux names packages instead). The call runs the OS's check (up to seconds the first
    time on Windows): cache by file identity, off the event path."""
    if sys.platform == "darwin":
        from camguard.platform.macos.signer import load_signer

        return load_signer().signer
    if sys.platform == "win32":
        from camguard.platform.windows.signer import AuthenticodeSigner

        return AuthenticodeSigner().signer
    return None


def service_mic_child(op: str) -> int:
    """The child the root service runs as each logged-in account to mute ("off") or
    restore ("on") that account's microphones (platform/linux/user_mic.py); its exit code.
    Where the service mutes no account's sound server, it says so and fails."""
    if sys.platform.startswith("linux"):
        from camguard.platform.linux.user_mic import child_main

        return child_main(op)
    print('{"ok": false, "message": "not available on this system"}')
    return 1


def freeze_watchdog(journal: str) -> int:
    """The watchdog that continues what camguard froze once camguard goes away (the hidden
    ``freeze-watchdog`` command, platform/linux/freeze.py); its exit code."""
    if sys.platform.startswith("linux"):
        from pathlib import Path

        from camguard.platform.linux.freeze import watchdog

        return watchdog(Path(journal))
    return 1


def service_pulse_child(*, once: bool) -> int:
    """The child the root service runs as each logged-in account to follow the apps
    recording at that account's sound server (platform/linux/user_pulse.py); its exit
    code."""
    if sys.platform.startswith("linux"):
        from camguard.platform.linux.user_pulse import child_main

        return child_main(once)
    print('{"ok": false, "reason": "not available on this system"}')
    return 1


def service_portal_child() -> int:
    """The child the root service runs as each logged-in account to read that account's
    Flatpak location grants (platform/linux/user_portal.py); its exit code."""
    if sys.platform.startswith("linux"):
        from camguard.platform.linux.user_portal import child_main

        return child_main()
    print('{"state": "blind", "reason": "not available on this system"}')
    return 1
