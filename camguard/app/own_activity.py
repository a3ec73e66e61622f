"""camguard's own activity is not a user's session (issue 17).

The self-test opens every camera and microphone and starts a probe app; the privileged
helper runs as a child of the tray. Seen by the tray's own monitor, each of those became an
alert ("Camera turned on: camguard") and a session in the history. They are recognised by
process identity, never by name (a program may call itself anything):

- this process and every process descended from it (``(pid, create_time)`` up the parent
  chain, so a reused pid is no descendant), and
- a *claim*: ``camguard selftest`` run in a terminal while the tray runs writes its own
  ``(pid, create_time)`` into the account's private state folder (0700) for as long as it
  runs, and the tray treats that process and its descendants as its own while it lives.

Only the same account can write a claim, and that account's programs can stop its tray
anyway, so a claim hides nothing from anyone else; the root service honours no claim.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from camguard.core.models import EventType, MonitorEvent, ProcessRef, UsageEvent
from camguard.monitor import Sink
from camguard.platform.process import lineage
from camguard.store import paths

log = logging.getLogger(__name__)

CLAIMS = "own-activity"  # folder in the state folder
MAX_CLAIMS = 64


def claims_dir() -> Path:
    return paths.state_dir() / CLAIMS


@contextlib.contextmanager
def claim_own_activity(folder: Path | None = None) -> Iterator[None]:
    """While inside: this process and its children are camguard's own for this account's
    tray. Best effort: a claim that cannot be written only means the tray may alert."""
    folder = folder or claims_dir()
    me = lineage(os.getpid(), depth=1)
    path = folder / f"{os.getpid()}.json"
    try:
        paths.private_dir(folder)
        path.write_text(json.dumps({"pid": me[0][0], "create_time": me[0][1]}))
    except (OSError, IndexError) as exc:
        log.info("cannot claim the self-test's activity as camguard's own: %s", exc)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


class OwnActivity:
    """Tells whether a process is camguard's own (module note)."""

    def __init__(self, folder: Path | None = None, *, claims: bool = True) -> None:
        self._me = lineage(os.getpid(), depth=1)[:1]
        self._folder = folder if folder is not None else claims_dir()
        self._claims = claims

    def _roots(self) -> set[tuple[int, float]]:
        roots = set(self._me)
        if not self._claims:
            return roots
        try:
            names = sorted(os.listdir(self._folder))[:MAX_CLAIMS]
        except OSError:
            return roots
        for name in names:
            try:
                doc = json.loads((self._folder / name).read_text())
                roots.add((int(doc["pid"]), float(doc["create_time"])))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return roots

    def owns(self, process: ProcessRef) -> bool:
        chain = lineage(process.pid)
        if not chain or chain[0][1] != process.create_time:
            return False  # gone, or the pid is another process now
        return not self._roots().isdisjoint(chain)


class EventSource(Protocol):
    def add_sink(self, sink: Sink) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


OURS_REMEMBERED = 1024


class OwnActivityFilter:
    """An event source (the tray's monitor) whose sinks never hear of camguard's own uses.

    Decided once per event, for every sink. A use left out when it started is left out
    when it stops (the process may be gone by then, so the decision is remembered)."""

    def __init__(self, source: EventSource, own: OwnActivity) -> None:
        self._source = source
        self._own = own
        self._sinks: list[Sink] = []
        self._hidden: set[tuple[str, int, float]] = set()
        # Processes seen to be camguard's own, newest last (bounded).
        self._ours: dict[tuple[int, float], None] = {}
        source.add_sink(self._dispatch)

    def _keep(self, ev: MonitorEvent) -> bool:
        if not isinstance(ev, UsageEvent) or ev.usage.process is None:
            return True
        p = ev.usage.process
        key = (ev.usage.device.id, p.pid, p.create_time)
        who = (p.pid, p.create_time)
        if ev.type in (EventType.PROBE, EventType.PROBE_STORM):  # never announced
            # Its process may have ended by now: one seen to be ours before still is.
            return who not in self._ours and not self._own.owns(p)
        if ev.type is EventType.STARTED:
            if self._own.owns(p):
                self._hidden.add(key)
                self._ours[who] = None
                while len(self._ours) > OURS_REMEMBERED:
                    self._ours.pop(next(iter(self._ours)))
                log.info("camguard's own use of %s (pid %d): not alerted, not recorded",
                         ev.usage.device.id, p.pid)
                return False
            return True
        if key in self._hidden:
            self._hidden.discard(key)
            return False
        return True

    def _dispatch(self, ev: MonitorEvent) -> None:
        if not self._keep(ev):
            return
        for sink in self._sinks:
            try:
                sink(ev)
            except Exception:
                log.exception("event sink failed for %s", ev)

    def add_sink(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def start(self) -> None:
        self._source.start()

    def stop(self) -> None:
        self._source.stop()
