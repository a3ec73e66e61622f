"""What the Windows sources see (``status --json``'s "coverage"), and the system service's
microphone, which Windows does not show it live.

The service runs as LocalSystem in session 0. Core Audio's session enumerator
(IAudioSessionManager2::GetSessionEnumerator) lists the capture sessions of the caller's own
logon session, so the service sees none of the people's: only each person's tray, in their
own session, names microphone users live (sources.MicSource). The service therefore watches
the microphone only through the ConsentStore of every logged-on user (HKU\\<SID>, read by
consent_reader.ConsentReader.for_service): an app the store says is recording AND that has a
running process with that exe. That names the app, but lags live use by seconds, keeps only
each app's last session and never sees a recording by an app Windows denies: coverage
"partial", with that reason, never "watching".

Not done (a decision, issue 13): trays reporting their session's audio owners to the
service over the pipe. It would make the service's record live, but a tray is the user's
own process: what it reports is the user's word, not the kernel's, so the service would have
to mark those usages as reported-by-account.
"""

from __future__ import annotations

from collections.abc import Callable

from camguard.core.coverage import Coverage, CoverageState
from camguard.core.models import Degraded, Device, DeviceKind, SourceSnapshot, Usage
from camguard.core.text import literal
from camguard.platform.base import Wake
from camguard.platform.process import ProcessDescriber
from camguard.platform.windows.consent import ConsentEntry

SERVICE_MIC = ("the service (LocalSystem, session 0) cannot see people's Core Audio capture "
               "sessions; it names microphone users from Windows' ConsentStore, which lags "
               "live use and keeps only each app's last session; each person's tray watches "
               "their own microphone live")
SERVICE_MIC_NOTE = ("named by Windows' ConsentStore (the service cannot see audio sessions): "
                    "the store lags live use")
CONSENT_POLL = 2.0


class ServiceMicSource:
    """The service's microphone: the ConsentStore of every logged-on user, re-read every
    CONSENT_POLL s (the camera source's ConsentStore watch wakes the monitor sooner)."""

    name = "consentstore-mic"

    def __init__(self, consent: Callable[[], list[ConsentEntry]] | None,
                 processes: Callable[[], list[tuple[int, str]]] | None,
                 describer: ProcessDescriber, *, unavailable: str = "") -> None:
        self.consent, self.processes = consent, processes
        self.describer = describer
        self.unavailable = unavailable or "the ConsentStore cannot be read (no winreg)"

    def start(self, wake: Wake) -> None:
        """Nothing runs between snapshots."""

    def stop(self) -> None:
        """Nothing runs between snapshots."""

    def snapshot(self) -> SourceSnapshot:
        from camguard.platform.windows.sources import consent_usages

        if self.consent is None or self.processes is None:
            return SourceSnapshot(self.name, degraded=Degraded(self.name, self.unavailable))
        try:
            found = consent_usages(self.consent(), self.processes())
        except (OSError, ValueError) as exc:
            return SourceSnapshot(self.name, degraded=Degraded(
                self.name, f"the ConsentStore: {literal(str(exc), 200)}"),
                recheck_in=CONSENT_POLL)
        dev = Device(DeviceKind.MICROPHONE, "consentstore:microphone",
                     "microphone (ConsentStore)", source=self.name)
        usages = set()
        for kind, pid, _exe in found:
            if kind is not DeviceKind.MICROPHONE:
                continue
            ref = self.describer.describe(pid)
            if ref is not None:
                usages.add(Usage(dev, ref, note=SERVICE_MIC_NOTE))
        return SourceSnapshot(self.name, frozenset({dev}) if usages else frozenset(),
                              frozenset(usages), recheck_in=CONSENT_POLL)

    def coverage(self, last: SourceSnapshot | None) -> list[Coverage]:
        if self.consent is None or self.processes is None:
            return [Coverage("microphone", self.name, CoverageState.BLIND,
                             f"{SERVICE_MIC}; and {self.unavailable}")]
        if last is not None and last.degraded is not None:
            return [Coverage("microphone", self.name, CoverageState.BLIND,
                             f"{SERVICE_MIC}; and {last.degraded.reason}")]
        return [Coverage("microphone", self.name, CoverageState.PARTIAL, SERVICE_MIC)]


def camera_coverage(name: str, *, feed: bool, failed: str, unavailable: str,
                    consent: bool, last: SourceSnapshot | None) -> list[Coverage]:
    """sources.CameraSource's coverage: the sensor monitor sees every camera user live;
    without it, the ConsentStore fallback names some, late."""
    if feed and not failed and (last is None or last.degraded is None):
        return [Coverage("camera", name, CoverageState.WATCHING,
                         "the sensor activity monitor names each process streaming a camera")]
    why = failed or (last.degraded.reason if last is not None and last.degraded else "") \
        or unavailable or "the sensor monitor is unavailable"
    if not feed and consent:
        return [Coverage("camera", name, CoverageState.PARTIAL,
                         f"{why}; apps are named from Windows' ConsentStore, which lags live "
                         "use and keeps only each app's last session")]
    return [Coverage("camera", name, CoverageState.BLIND, why)]


def mic_coverage(name: str, *, available: bool, unavailable: str,
                 last: SourceSnapshot | None) -> list[Coverage]:
    """sources.MicSource's coverage (the tray's): this logon session's capture sessions."""
    if not available:
        return [Coverage("microphone", name, CoverageState.BLIND, unavailable)]
    if last is not None and last.degraded is not None:
        return [Coverage("microphone", name, CoverageState.BLIND, last.degraded.reason)]
    return [Coverage("microphone", name, CoverageState.WATCHING,
                     "Core Audio capture sessions of this logon session, each with its pid")]
