"""Platform backends behind one protocol, chosen once for the OS we run on.

Each OS gets its own package; everything above this layer sees only ``UsageSource``.
Imports are local so that a missing optional piece on one OS never breaks another.
"""

from __future__ import annotations

import sys

from camguard.core.settings import DetectionSettings
from camguard.platform.base import UsageSource
from camguard.platform.process import ProcessDescriber


def create_sources(settings: DetectionSettings, describer: ProcessDescriber | None = None
                   ) -> list[UsageSource]:
    """The usage sources for this OS (an empty list where camguard has no backend yet)."""
    describer = describer or ProcessDescriber()
    if sys.platform.startswith("linux"):
        from camguard.platform.linux.procfs import ProcfsSource

        sources: list[UsageSource] = [
            ProcfsSource(settings.camera_globs, settings.mic_globs,
                         sound_server_exes=settings.sound_server_exes, describer=describer)
        ]
        if settings.watch_sound_server:
            from camguard.platform.linux.pulse import PulseSource

            sources.append(PulseSource(describer=describer,
                                       server_exes=settings.sound_server_exes))
        return sources
    return []
