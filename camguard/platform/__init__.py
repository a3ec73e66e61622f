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

from camguard.core.settings import DetectionSettings
from camguard.platform.base import Platform, UsageSource
from camguard.platform.process import ProcessDescriber


@functools.cache
def current() -> Platform:
    """The platform of this OS (one object for the process's lifetime)."""
    if sys.platform.startswith("linux"):
        from camguard.platform.linux.backend import LinuxPlatform

        return LinuxPlatform()
    if sys.platform == "darwin":
        from camguard.platform.macos.backend import MacPlatform

        return MacPlatform()
    from camguard.platform.null import NullPlatform

    return NullPlatform(sys.platform)


def create_sources(settings: DetectionSettings, describer: ProcessDescriber | None = None
                   ) -> list[UsageSource]:
    """The usage sources for this OS (an empty list where camguard has no backend yet)."""
    return current().usage_sources(settings, describer or ProcessDescriber())
