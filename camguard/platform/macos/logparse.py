"""Who turned a camera or microphone on, from the unified log: pure parsing of ``log stream
--style ndjson`` lines into owner evidence, with the patterns each macOS version needs.

Apple offers no public API that names a camera's user, so camguard reads the log as
OverSight does (objective-see/OverSight, Application/AVMonitor.m), and the log's wording
changes with each release. Each pattern is tied to the macOS versions it was documented for;
a line that matches none is ignored, never guessed at: the owner then stays "unknown". Only
lines whose sending image is an OS file count, because any process may log under any
subsystem name (``os_log_create`` takes a free string) and could otherwise name a victim pid.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass

from camguard.core.models import DeviceKind

MAX_LINE = 64 * 1024  # a log line longer than this is not one of ours
PID_MAX = 99_999  # kern.maxproc's pid space on macOS (pids wrap below 100000)
Version = tuple[int, int]


class Confidence(enum.StrEnum):
    """How sure an attribution is. ``high``: the OS names the process for this device;
    ``medium``: a log line names the process at about the time the device changed."""

    HIGH = "high"
    MEDIUM = "medium"


class Pattern(enum.StrEnum):
    """Which documented message matched (shown to the user with each attribution)."""

    # macOS 14+: com.apple.cmio, registerassistantservice: "[{private}PID][{private}0] added
    # <private> endpoint <private> camera <private>" (OverSight AVMonitor.m; Wardle, "The Art
    # of Mac Malware" vol. 2, ch. 6, which shows FaceTime's avconferenced and zoom.us).
    CMIO_ENDPOINT = "cmio-endpoint"
    CMIO_ENDPOINT_REMOVED = "cmio-endpoint-removed"
    # macOS 13.3+: debug level, com.apple.cmio, CMIOExtensionProvider:
    # "propertyValues { CMIOExtensionPropertyDeviceControlPID = PID; }".
    CMIO_CONTROL_PID = "cmio-control-pid"
    # macOS 14+ microphones: com.apple.coremedia "-[MXCoreSession beginInterruption]: Session
    # <ID: n, PID = PID, ... Recording = YES> is going active".
    COREMEDIA_SESSION = "coremedia-session"
    # Before 13.3: com.apple.SystemStatus "Server data changed for media domain", then
    # "cameraAttributions = (" / "audioRecordingAttributions = (" lists of "<BSAuditToken: ...
    # PID: PID>" lines.
    SYSTEM_STATUS = "systemstatus-attribution"


CONFIDENCE = {Pattern.CMIO_ENDPOINT: Confidence.MEDIUM,
              Pattern.CMIO_ENDPOINT_REMOVED: Confidence.MEDIUM,
              Pattern.CMIO_CONTROL_PID: Confidence.HIGH,
              Pattern.COREMEDIA_SESSION: Confidence.MEDIUM,
              Pattern.SYSTEM_STATUS: Confidence.MEDIUM}


@dataclass(frozen=True, slots=True)
class OwnerEvidence:
    """One log line's claim: ``pid`` turned a device of ``kind`` on (``active``), or, with
    ``pid`` None, a device of that kind was let go by someone the line does not name."""

    kind: DeviceKind
    pid: int | None
    active: bool
    pattern: Pattern
    timestamp: str = ""  # the log's own timestamp text, for the record

    @property
    def confidence(self) -> Confidence:
        return CONFIDENCE[self.pattern]


@dataclass(frozen=True, slots=True)
class LogPlan:
    """What to ask ``log stream`` for on one macOS version, and which patterns then count."""

    version: Version
    predicate: str
    debug: bool
    patterns: frozenset[Pattern]

    def argv(self) -> list[str]:
        """The ``log stream`` command line (a list: no shell)."""
        argv = ["/usr/bin/log", "stream", "--style", "ndjson", "--predicate", self.predicate]
        if self.debug:
            argv += ["--level", "debug"]
        return argv


def plan_for(version: Version) -> LogPlan | None:
    """The patterns documented for ``version``; None before macOS 11, where camguard knows
    no format (the owner is then always "unknown")."""
    if version >= (14, 0):
        return LogPlan(version, 'subsystem == "com.apple.cmio" OR subsystem == '
                       '"com.apple.coremedia"', False,
                       frozenset({Pattern.CMIO_ENDPOINT, Pattern.CMIO_ENDPOINT_REMOVED,
                                  Pattern.COREMEDIA_SESSION}))
    if version >= (13, 3):
        return LogPlan(version, 'subsystem == "com.apple.cmio"', True,
                       frozenset({Pattern.CMIO_CONTROL_PID}))
    if version >= (11, 0):
        return LogPlan(version, 'subsystem == "com.apple.SystemStatus"', False,
                       frozenset({Pattern.SYSTEM_STATUS}))
    return None


def parse_version(text: str) -> Version | None:
    """``sw_vers -productVersion`` output ("14.2.1", "15.0", "26.1") as (major, minor)."""
    m = re.fullmatch(r"\s*(\d{1,3})(?:\.(\d{1,3}))?(?:\.\d{1,3})?\s*", text)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2) or 0)


def unknown_note(version: Version | None) -> str:
    """What an in-use device without an attributed owner says (never a guessed app)."""
    shown = "?" if version is None else f"{version[0]}.{version[1]}"
    return f"unknown (macOS {shown} log format not recognised)"


# -- the patterns --------------------------------------------------------------------------
_ENDPOINT = re.compile(r"\[\{private\}(\d{1,6})\](?:\[\{private\}\d{1,6}\])?\s*"
                       r"added <private> endpoint <private> camera <private>")
_REMOVED = re.compile(r"removed endpoint <private>")
_CONTROL_PID = re.compile(r"\bCMIOExtensionPropertyDeviceControlPID = (-?\d{1,6});")
_SESSION = re.compile(r"-\[MXCoreSession beginInterruption\]: Session <ID: \d+, "
                      r"PID = (\d{1,6}),.*Recording = YES> is going active\s*$", re.DOTALL)
_AUDIT_PID = re.compile(r"<BSAuditToken: .*\bPID: (\d{1,6})\b")
_SECTION = re.compile(r"^\s*(\w+Attributions) = \(")
_SECTIONS = {"cameraAttributions": DeviceKind.CAMERA,
             "audioRecordingAttributions": DeviceKind.MICROPHONE,
             "audioAttributions": DeviceKind.MICROPHONE}


def _pid(text: str) -> int | None:
    """A real pid, or None (0 and -1 mean "no client" in these messages)."""
    value = int(text)
    return value if 0 < value <= PID_MAX else None


def _from_os(event: dict[str, object]) -> bool:
    """The line was written by an OS image (a spoofer's own binary is never under these)."""
    sender = event.get("senderImagePath") or event.get("processImagePath")
    return (isinstance(sender, str) and "/../" not in sender
            and sender.startswith(("/System/", "/usr/lib/", "/usr/libexec/", "/usr/sbin/")))


def parse_line(line: str | bytes, plan: LogPlan) -> list[OwnerEvidence]:
    """The evidence in one ndjson line, under ``plan``'s patterns (empty for anything else:
    a non-JSON banner line, another subsystem, a spoofed sender, an unknown wording)."""
    if len(line) > MAX_LINE:
        return []
    try:
        event = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # "Filtering the log data using ..." and other non-JSON lines; nesting deeper than
        # the parser's stack (a crafted capture) is no log line either.
        return []
    if not isinstance(event, dict):
        return []
    message = event.get("eventMessage")
    subsystem = event.get("subsystem")
    stamp = event.get("timestamp")
    if not isinstance(message, str) or not isinstance(subsystem, str) or not _from_os(event):
        return []
    ts = stamp if isinstance(stamp, str) else ""
    return _match(subsystem, message, ts, plan.patterns)


def _match(subsystem: str, message: str, ts: str, patterns: frozenset[Pattern]
           ) -> list[OwnerEvidence]:
    cam = DeviceKind.CAMERA
    if subsystem == "com.apple.cmio":
        if Pattern.CMIO_ENDPOINT in patterns and (m := _ENDPOINT.search(message)):
            pid = _pid(m.group(1))
            return [] if pid is None else [OwnerEvidence(cam, pid, True, Pattern.CMIO_ENDPOINT,
                                                         ts)]
        if Pattern.CMIO_ENDPOINT_REMOVED in patterns and _REMOVED.search(message):
            return [OwnerEvidence(cam, None, False, Pattern.CMIO_ENDPOINT_REMOVED, ts)]
        if Pattern.CMIO_CONTROL_PID in patterns and (m := _CONTROL_PID.search(message)):
            pid = _pid(m.group(1))
            # A control pid of 0 or -1: the device has no controlling client any more.
            return [OwnerEvidence(cam, pid, pid is not None, Pattern.CMIO_CONTROL_PID, ts)]
    if subsystem == "com.apple.coremedia" and Pattern.COREMEDIA_SESSION in patterns and (
            m := _SESSION.search(message)):
        pid = _pid(m.group(1))
        return [] if pid is None else [OwnerEvidence(DeviceKind.MICROPHONE, pid, True,
                                                     Pattern.COREMEDIA_SESSION, ts)]
    if (subsystem == "com.apple.SystemStatus" and Pattern.SYSTEM_STATUS in patterns
            and "Server data changed for media domain" in message):
        return _attributions(message, ts)
    return []


def _attributions(message: str, ts: str) -> list[OwnerEvidence]:
    """The pids listed under each ``...Attributions = (`` section of a SystemStatus dump.
    A section that is present but empty says that kind is now used by nobody."""
    found: list[OwnerEvidence] = []
    seen_kinds: set[DeviceKind] = set()
    kind: DeviceKind | None = None
    for raw in message.splitlines():
        if (sec := _SECTION.match(raw)) is not None:
            kind = _SECTIONS.get(sec.group(1))
            if kind is not None:
                seen_kinds.add(kind)
            continue
        if raw.strip().startswith(")"):
            kind = None
            continue
        if kind is not None and (m := _AUDIT_PID.search(raw)):
            pid = _pid(m.group(1))
            if pid is not None:
                found.append(OwnerEvidence(kind, pid, True, Pattern.SYSTEM_STATUS, ts))
    named = {e.kind for e in found}
    found += [OwnerEvidence(k, None, False, Pattern.SYSTEM_STATUS, ts)
              for k in sorted(seen_kinds - named)]
    return found
