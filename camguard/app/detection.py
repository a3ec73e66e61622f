"""The detection half of every program: the usage sources for this OS and the monitor."""

from __future__ import annotations

from dataclasses import dataclass, field

from camguard.core.coverage import Coverage
from camguard.core.models import SourceSnapshot
from camguard.core.probes import ProbeSettings
from camguard.core.settings import DetectionSettings
from camguard.core.state import GuardState, merge
from camguard.monitor import Monitor
from camguard.platform import create_sources
from camguard.platform.base import CoverageReporter, UsageSource
from camguard.platform.clock import SystemClock
from camguard.platform.process import ProcessDescriber


@dataclass
class Detection:
    """The detection half of camguard: sources and the monitor over them."""

    settings: DetectionSettings
    sources: list[UsageSource]
    clock: SystemClock
    describer: ProcessDescriber
    # Each source's snapshot from the last look_once(), for coverage().
    last: dict[str, SourceSnapshot] = field(default_factory=dict)
    running: Monitor | None = None  # the monitor made by monitor(), for coverage()

    def monitor(self) -> Monitor:
        probes = ProbeSettings(threshold=self.settings.probe_threshold,
                               storm=int(self.settings.probe_storm))
        self.running = Monitor(self.sources, self.clock, settle=self.settings.settle,
                               rescan_interval=self.settings.rescan_interval, probes=probes)
        return self.running

    def look_once(self) -> GuardState:
        """One look through every source, without starting any watcher (``status``)."""
        self.last = {source.name: source.snapshot() for source in self.sources}
        return merge(self.last.values())

    def coverage(self) -> list[Coverage]:
        """What each source can see: from what it saw in its running monitor's latest look,
        else in :meth:`look_once`. Any thread (the tray's main window asks off the GUI's)."""
        last = self.running.snapshots() if self.running is not None else self.last
        out: list[Coverage] = []
        for source in self.sources:
            if isinstance(source, CoverageReporter):
                out.extend(source.coverage(last.get(source.name)))
        return out


def warm_origins() -> None:
    """Read what origin lookups need (dpkg's database: ~0.1-0.5 s) on a background thread
    now, so the first app's origin is not waiting for it (the tray and the service)."""
    import threading

    from camguard.platform import origin_resolver

    threading.Thread(target=origin_resolver().warm, name="camguard-origin-warm",
                     daemon=True).start()


def build_detection(settings: DetectionSettings) -> Detection:
    describer = ProcessDescriber()
    return Detection(settings, create_sources(settings, describer), SystemClock(), describer)
