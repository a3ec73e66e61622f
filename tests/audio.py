"""A real recording whose level a test can read: a recorder child writes raw s16le mono 48 kHz
into a pipe, a reader thread keeps the latest 0.1 s, and its RMS says sound or silence."""

from __future__ import annotations

import array
import math
import os
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence

from tests.realenv import wait_until

RATE = 48000
CHUNK = RATE // 10 * 2  # 0.1 s of 16-bit mono: a 440 Hz sine never gives this many zeros
LOUD = 1000.0           # the test sines have an RMS above 10,000
SILENT = 2.0            # a muted stream delivers exact zeros


def rms(chunk: bytes) -> float:
    samples = array.array("h")
    samples.frombytes(chunk[: len(chunk) // 2 * 2])
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


def parecord(device: str = "sinemic") -> list[str]:
    # --latency-msec: without it the server hands over ~2 s fragments (fragsize 192000).
    return ["parecord", "--raw", "--format=s16le", f"--rate={RATE}", "--channels=1",
            f"--device={device}", "--latency-msec=50"]


def pw_record(device: str = "sinemic") -> list[str]:
    """A native PipeWire client (not through pipewire-pulse)."""
    return ["pw-record", "--target", device, "--rate", str(RATE), "--channels", "1",
            "--format", "s16", "--latency", "50ms", "-"]


class Recording:
    """A recorder child reading a source continuously (so it never stalls on a full pipe)."""

    def __init__(self, env: Mapping[str, str], cmd: Sequence[str] | None = None) -> None:
        self.proc = subprocess.Popen(list(cmd or parecord()), env={**os.environ, **env},
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self._lock = threading.Lock()
        self._latest = b""
        self._count = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            chunk = self.proc.stdout.read(CHUNK)
            if len(chunk) < CHUNK:
                return
            with self._lock:
                self._latest, self._count = chunk, self._count + 1

    def wait_level(self, good: Callable[[float], bool], what: str, timeout: float = 30.0
                   ) -> float:
        """Wait until a chunk read after this call has a level ``good`` accepts; return it."""
        with self._lock:
            start = self._count
        seen: list[float] = []

        def check() -> bool:
            with self._lock:
                count, latest = self._count, self._latest
            if count <= start:
                return False
            seen.append(rms(latest))
            return good(seen[-1])

        wait_until(check, timeout, f"{what} (levels seen: {[round(x) for x in seen[-5:]]}, "
                                   f"recorder exit {self.proc.poll()})")
        return seen[-1]

    def wait_loud(self, timeout: float = 30.0) -> float:
        return self.wait_level(lambda x: x > LOUD, "the recording to carry the sine", timeout)

    def wait_silent(self, timeout: float = 30.0) -> float:
        return self.wait_level(lambda x: x < SILENT, "the recording to fall silent", timeout)

    def wait_exit(self, timeout: float = 15.0) -> str:
        """Wait for the recorder to end by itself; return what it printed on stderr."""
        self.proc.wait(timeout)
        self._reader.join(timeout)
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
