"""The contract every platform source fulfils, whatever the OS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from camguard.core.models import SourceSnapshot

Wake = Callable[[], None]


class UsageSource(Protocol):
    """Something that can tell who uses which device.

    Threads: :meth:`snapshot` runs on the monitor thread (or the caller's, for a one-shot
    ``camguard status``) and may block for as long as one look takes (a full ``/proc`` scan:
    tens of milliseconds); it never raises for one bad process or a dead server, it reports
    ``degraded`` instead. :meth:`start` starts the source's own watcher thread, which calls
    ``wake()`` (cheap, thread-safe, never blocks) whenever something may have changed;
    :meth:`stop` ends it within about a second. A source that is never started still answers
    :meth:`snapshot` (one-shot mode).
    """

    name: str

    def snapshot(self) -> SourceSnapshot: ...

    def start(self, wake: Wake) -> None: ...

    def stop(self) -> None: ...
