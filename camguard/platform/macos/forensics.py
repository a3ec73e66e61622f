"""Camera and microphone sessions in a saved unified-log capture (``log show --style ndjson``,
or a ``log stream --style ndjson`` saved to a file), for ``camguard forensics macos-log``.

Pure: every line goes through logparse.parse_line (the same patterns, the same "only OS
images count" rule as the live source), and the evidence is paired into sessions:

* a SystemStatus dump (before macOS 13.3) lists everyone using a kind: it replaces;
* a CoreMediaIO control pid (13.3+) is the one controlling client: a new one ends the last;
* a CMIO endpoint "added" line (14+) starts a session; the matching "removed" line names
  nobody, so it ends a session only when exactly one endpoint session is open (with more,
  the removal is counted, never pinned on a guess);
* CoreMedia's "going active" (14+ microphones) has no documented end message: such a session
  is shown with no stop.

Times stay the log's own; a parseable ``YYYY-MM-DD HH:MM:SS.ffffff+hhmm`` stamp is also given
as RFC 3339 UTC.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from camguard.core.models import DeviceKind
from camguard.platform.macos.logparse import (
    Confidence,
    LogPlan,
    OwnerEvidence,
    Pattern,
    Version,
    parse_line,
    plan_for,
)

MAX_SESSIONS = 100_000  # a hostile capture cannot grow the answer without bound
ALL_PATTERNS = LogPlan((0, 0), "", False, frozenset(Pattern))


def plan(version: Version | None) -> LogPlan | None:
    """The patterns of one macOS version; every known pattern when the version is not given
    (a capture does not say which macOS wrote it). None: a version camguard knows no format
    for (before 11)."""
    return ALL_PATTERNS if version is None else plan_for(version)


def utc(stamp: str) -> str | None:
    """``2024-05-01 10:00:00.100000+0200`` as ``2024-05-01T08:00:00.100000Z``; None when the
    text is not in log(1)'s format."""
    try:
        moment = _dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f%z")
    except ValueError:
        return None
    return moment.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class LogSession:
    kind: DeviceKind
    pid: int
    start: str  # the log's timestamp text
    pattern: Pattern
    stop: str | None = None  # None: still on at the end of the capture, or no end logged
    stop_pattern: Pattern | None = None

    @property
    def confidence(self) -> Confidence:
        return OwnerEvidence(self.kind, self.pid, True, self.pattern).confidence

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind.value, "pid": self.pid, "start": self.start,
                "start_utc": utc(self.start), "stop": self.stop,
                "stop_utc": None if self.stop is None else utc(self.stop),
                "pattern": self.pattern.value, "confidence": self.confidence.value,
                "stop_pattern": None if self.stop_pattern is None else self.stop_pattern.value}


@dataclass
class LogReport:
    """What a capture says: sessions in start order, how many lines were read and matched,
    and removals the log did not pin on anyone."""

    sessions: list[LogSession] = field(default_factory=list)
    lines: int = 0
    matched: int = 0
    unattributed_stops: int = 0
    truncated: bool = False  # MAX_SESSIONS reached: later sessions are not listed


class _Pairing:
    def __init__(self) -> None:
        self.report = LogReport()
        self.open: dict[tuple[DeviceKind, int], int] = {}  # -> index in report.sessions

    def start(self, e: OwnerEvidence) -> None:
        assert e.pid is not None  # noqa: S101 - callers pass active evidence only
        key = (e.kind, e.pid)
        if key in self.open:
            return
        if len(self.report.sessions) >= MAX_SESSIONS:
            self.report.truncated = True
            return
        self.open[key] = len(self.report.sessions)
        self.report.sessions.append(LogSession(e.kind, e.pid, e.timestamp, e.pattern))

    def end(self, key: tuple[DeviceKind, int], e: OwnerEvidence) -> None:
        index = self.open.pop(key)
        s = self.report.sessions[index]
        self.report.sessions[index] = LogSession(s.kind, s.pid, s.start, s.pattern,
                                                 e.timestamp, e.pattern)

    def line(self, evidence: list[OwnerEvidence]) -> None:
        status = [e for e in evidence if e.pattern is Pattern.SYSTEM_STATUS]
        for kind in dict.fromkeys(e.kind for e in status):  # in the dump's order
            listed = {e.pid for e in status if e.kind is kind and e.pid is not None}
            stamp = next(e for e in status if e.kind is kind)
            for key in [k for k in self.open if k[0] is kind and k[1] not in listed]:
                self.end(key, stamp)
            for e in status:
                if e.kind is kind and e.pid is not None:
                    self.start(e)
        for e in evidence:
            if e.pattern is Pattern.CMIO_CONTROL_PID:
                for key in [k for k, i in self.open.items() if k[0] is e.kind and k[1] != e.pid
                            and self.report.sessions[i].pattern is e.pattern]:
                    self.end(key, e)
                if e.active and e.pid is not None:
                    self.start(e)
            elif e.pattern is Pattern.CMIO_ENDPOINT_REMOVED:
                ours = [k for k, i in self.open.items() if k[0] is e.kind
                        and self.report.sessions[i].pattern is Pattern.CMIO_ENDPOINT]
                if len(ours) == 1:
                    self.end(ours[0], e)
                else:
                    self.report.unattributed_stops += 1
            elif e.pattern is not Pattern.SYSTEM_STATUS and e.active and e.pid is not None:
                self.start(e)


def log_sessions(lines: Iterable[str | bytes], version: Version | None = None) -> LogReport:
    """The sessions a capture attributes. ``version``: the macOS that wrote it (only its
    patterns count); None: every known pattern. Raises ValueError for a version camguard
    knows no log format for."""
    chosen = plan(version)
    if chosen is None:
        raise ValueError("camguard knows no log format before macOS 11: every owner would be "
                         "unknown")
    pairing = _Pairing()
    for line in lines:
        pairing.report.lines += 1
        evidence = parse_line(line, chosen)
        if evidence:
            pairing.report.matched += 1
            pairing.line(evidence)
    return pairing.report
