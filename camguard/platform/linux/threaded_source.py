"""What every source with one watcher thread shares (PulseAudio, PipeWire, GeoClue): the
cached view once started, a one-shot look when never started, and a start that waits a
bounded time for the watcher's first look. Each source keeps its own ``_run`` (the watcher),
``_one_shot`` and ``stop`` (how to interrupt what its thread blocks on differs)."""

from __future__ import annotations

import logging
import threading

from camguard.core.models import SourceSnapshot
from camguard.platform.base import Wake

log = logging.getLogger(__name__)


class ThreadedSource:
    """Mix-in: the subclass's ``__init__`` calls :meth:`_init_thread`; its watcher calls
    ``self._first_look.set()`` after its first look and ``self._wake()`` on changes."""

    name: str
    # How long start() waits for the first look, and what to say when it did not come.
    first_look_timeout: float = 2.0
    first_look_missing: str = "gave no first answer"

    def _init_thread(self, cached: SourceSnapshot) -> None:
        self._lock = threading.Lock()
        self._cached = cached
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._first_look = threading.Event()
        self._wake: Wake | None = None

    def snapshot(self) -> SourceSnapshot:
        with self._lock:
            if self._thread is not None:
                return self._cached
        return self._one_shot()

    def start(self, wake: Wake) -> None:
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"source {self.name} already started")
            self._stopping.clear()
            self._first_look.clear()
            self._wake = wake
            self._thread = threading.Thread(target=self._run, name=f"camguard-{self.name}",
                                            daemon=True)
            thread = self._thread
        thread.start()
        if not self._first_look.wait(self.first_look_timeout) and self.first_look_missing:
            log.warning("%s: %s within %.1f s", self.name, self.first_look_missing,
                        self.first_look_timeout)

    def _stop_thread(self, join_timeout: float) -> None:
        """Ask the thread to end, wait up to ``join_timeout`` s, and forget it and the wake."""
        with self._lock:
            thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        thread.join(join_timeout)
        with self._lock:
            self._thread = None
            self._wake = None

    def _publish(self, snap: SourceSnapshot) -> None:
        """The watcher's new view: cached for snapshot(), and the monitor woken when it
        differs (a changed reason for being degraded counts)."""
        with self._lock:
            changed = snap != self._cached or snap.degraded != self._cached.degraded
            self._cached = snap
            wake = self._wake
        self._first_look.set()
        if changed and wake is not None:
            try:
                wake()
            except Exception:  # wake() must not raise; if it does, keep watching
                log.exception("wake-up callback of source %s failed", self.name)

    def _one_shot(self) -> SourceSnapshot:
        raise NotImplementedError

    def _run(self) -> None:
        raise NotImplementedError
