"""The ``log stream --style ndjson`` child: started with a fixed argument list (no shell),
read line by line on its own thread, each line parsed by logparse and handed on.

macOS only in practice (``/usr/bin/log``), but nothing here is macOS-specific, so the tests
run it on Linux with a real child process that prints recorded lines.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable, Sequence

from camguard.platform.macos.logparse import MAX_LINE, LogPlan, OwnerEvidence, parse_line

log = logging.getLogger(__name__)

OnEvidence = Callable[[list[OwnerEvidence]], None]
STOP_WAIT = 1.0


class LogStreamReader:
    """Runs ``argv`` (``plan.argv()`` unless given) and calls ``on_evidence`` from its reader
    thread for every line that gives evidence. :meth:`stop` ends the child and the thread
    within about a second. ``error`` holds why the stream ended early, "" while it runs."""

    def __init__(self, plan: LogPlan, on_evidence: OnEvidence,
                 argv: Sequence[str] | None = None) -> None:
        self._plan = plan
        self._on = on_evidence
        self._argv = list(argv) if argv is not None else plan.argv()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.error = ""
        self.lines = 0

    def start(self) -> None:
        try:
            self._proc = subprocess.Popen(self._argv, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError as exc:
            self.error = f"cannot run {self._argv[0]}: {exc.strerror or exc}"
            return
        self._thread = threading.Thread(target=self._run, name="camguard-logstream",
                                        daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        stream = proc.stdout
        while True:
            line = stream.readline(MAX_LINE + 1)
            if not line:
                break
            if len(line) > MAX_LINE:
                # The rest of an oversized line is skipped, never parsed as lines of its own.
                while line and not line.endswith(b"\n"):
                    line = stream.readline(MAX_LINE + 1)
                continue
            self.lines += 1
            found = parse_line(line, self._plan)
            if found:
                try:
                    self._on(found)
                except Exception:  # a sink's bug must not end detection
                    log.exception("log evidence handler failed")
        code = proc.wait()
        if not self._stopping.is_set():
            self.error = f"{self._argv[0]} ended (exit status {code})"
            log.warning("%s", self.error)

    def stop(self) -> None:
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(STOP_WAIT)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
