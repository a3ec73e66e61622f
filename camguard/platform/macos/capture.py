"""Camera and microphone sessions in a saved unified-log capture (``log show --style ndjson
> FILE`` on a Mac), with the pattern that matched each one: the pure half of ``camguard
forensics macos-log``. Runs on any OS.

The capture does not say which macOS wrote it, so every documented pattern is tried (each is
specific enough not to match another's lines). A session starts with a line naming a pid
and ends with the line that lets it go; where the log never says (a microphone session, one
of several endpoints removed at once), ``ended`` is None: "not in the log", never a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from camguard.core.models import DeviceKind
from camguard.platform.macos.logparse import (
    CONFIDENCE,
    MAX_LINE,
    LogPlan,
    OwnerEvidence,
    Pattern,
    parse_line,
)

EVERY_PATTERN = LogPlan((0, 0), "", True, frozenset(Pattern))
MAX_SESSIONS = 100_000


@dataclass(slots=True)
class Session:
    kind: DeviceKind
    pid: int
    pattern: Pattern
    started: str
    ended: str | None = None

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind.value, "pid": self.pid, "pattern": self.pattern.value,
                "confidence": CONFIDENCE[self.pattern].value, "started": self.started,
                "ended": self.ended}


def read_capture(path: Path) -> list[Session]:
    """The sessions in the capture at ``path`` (raises OSError when it cannot be read)."""
    with path.open("rb") as f:
        return sessions(_lines(f))


def _lines(f: BinaryIO) -> Iterator[bytes]:
    """The file's lines, each read at most MAX_LINE + 1 bytes at a time: an oversized line
    is skipped whole without ever being held in memory."""
    while line := f.readline(MAX_LINE + 1):
        if len(line) <= MAX_LINE:
            yield line
            continue
        while line and not line.endswith(b"\n"):
            line = f.readline(MAX_LINE + 1)


def sessions(lines: Iterable[str | bytes]) -> list[Session]:
    tracker = _Tracker()
    for line in lines:
        found = parse_line(line, EVERY_PATTERN)
        if found:
            tracker.feed(found)
    return tracker.done


class _Tracker:
    def __init__(self) -> None:
        self.done: list[Session] = []
        self.open: dict[tuple[DeviceKind, int], Session] = {}

    def _start(self, e: OwnerEvidence) -> None:
        if e.pid is None:
            return
        key = (e.kind, e.pid)
        if key not in self.open and len(self.done) < MAX_SESSIONS:
            session = Session(e.kind, e.pid, e.pattern, e.timestamp)
            self.open[key] = session
            self.done.append(session)

    def _end(self, pattern: Pattern, kind: DeviceKind, when: str,
             keep: frozenset[int] = frozenset()) -> list[Session]:
        ending = [s for s in self.open.values()
                  if s.pattern is pattern and s.kind is kind and s.pid not in keep]
        return self._close(ending, when)

    def _close(self, ending: list[Session], when: str) -> list[Session]:
        for s in ending:
            s.ended = when
            del self.open[(s.kind, s.pid)]
        return ending

    def feed(self, found: list[OwnerEvidence]) -> None:
        first = found[0]
        if first.pattern is Pattern.SYSTEM_STATUS:
            # One dump lists everyone per kind: those not listed have stopped.
            for kind in {e.kind for e in found}:
                listed = frozenset(e.pid for e in found if e.kind is kind and e.pid)
                self._end(Pattern.SYSTEM_STATUS, kind, first.timestamp, listed)
            for e in found:
                if e.pid is not None:
                    self._start(e)
            return
        for e in found:
            if e.pattern is Pattern.CMIO_CONTROL_PID:
                # One controlling client at a time; 0 or -1 means none.
                keep = frozenset({e.pid}) if e.pid is not None else frozenset()
                self._end(Pattern.CMIO_CONTROL_PID, e.kind, e.timestamp, keep)
            if e.pattern is Pattern.CMIO_ENDPOINT_REMOVED:
                # "removed endpoint <private>" names nobody: only a lone session can end.
                candidates = [s for s in self.open.values()
                              if s.pattern is Pattern.CMIO_ENDPOINT and s.kind is e.kind]
                if len(candidates) == 1:
                    self._close(candidates, e.timestamp)
            if e.active and e.pid is not None:
                self._start(e)
