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
    from camguard.core.settings import DetectionSettings
    from camguard.platform.base import Platform, UsageSource
    from camguard.platform.process import ProcessDescriber
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
