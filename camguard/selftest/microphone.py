"""Microphone probes for the selftest: what the sound server has, and real recordings' levels.

Recording goes through sounddevice (PortAudio -> ALSA -> the ALSA ``pulse`` plugin ->
libpulse), i.e. the way many apps record, and reaches whichever server ``$PULSE_SERVER``
(or the user's default) names: PulseAudio or pipewire-pulse. sounddevice is imported here
only, inside :func:`load_sounddevice` (~110 ms, ~26 MiB, and it needs libportaudio2).
"""

from __future__ import annotations

import array
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from camguard.core.text import literal
from camguard.platform import current
from camguard.platform.base import ServerFacts
from camguard.selftest.camera import EXTRA_HINT

log = logging.getLogger(__name__)

# A muted source delivers exact zeros; a real microphone in a quiet room still gives tens.
SILENT = 2.0
CHUNK_SECONDS = 0.1
KEEP_CHUNKS = 600  # at most a minute of levels is kept


def rms(samples: bytes) -> float:
    """Root mean square of signed 16-bit native-endian samples."""
    values = array.array("h")
    values.frombytes(samples[: len(samples) // 2 * 2])
    if not values:
        return 0.0
    return math.sqrt(math.fsum(v * v for v in values) / len(values))


def combined(levels: Sequence[float]) -> float:
    """The RMS over several equally long chunks, from each chunk's RMS."""
    return math.sqrt(math.fsum(x * x for x in levels) / len(levels)) if levels else 0.0


# -- the sound server ------------------------------------------------------------------------
def server_facts(server: str | None = None) -> ServerFacts:
    """Ask the sound server (never starts one: no autospawn) for its microphones."""
    return current().probes().sound_server_facts(server)


# -- recording ---------------------------------------------------------------------------------
def load_sounddevice() -> tuple[Any, str]:
    """The ``sounddevice`` module with a fresh device list, or None and why not."""
    fresh = "sounddevice" not in sys.modules
    try:
        import sounddevice
    except Exception as exc:  # ImportError, or OSError "PortAudio library not found"
        hint = EXTRA_HINT if isinstance(exc, ImportError) else ""
        return None, (f"sounddevice cannot be loaded: "
                      f"{literal(str(exc) or type(exc).__name__, 300)}{hint}")
    if not fresh:
        # PortAudio lists devices once, at initialisation: a second selftest in the same
        # process (the tray) must see a sound server that started since (sounddevice docs,
        # "query_devices": _terminate() and _initialize() re-scan).
        try:
            sounddevice._terminate()
            sounddevice._initialize()
        except Exception as exc:
            return None, f"PortAudio cannot be restarted: {literal(str(exc), 300)}"
    return sounddevice, ""


@dataclass(frozen=True, slots=True)
class InputDevice:
    index: int
    name: str
    rate: int


def pick_input(sd: Any) -> tuple[InputDevice | None, str]:
    """The PortAudio input that reaches the sound server: ALSA's ``pulse`` device (the
    server's default source), else ``default``; None and why when there is neither."""
    try:
        devices = list(sd.query_devices())
    except Exception as exc:
        return None, f"PortAudio cannot list devices: {literal(str(exc), 300)}"
    for wanted in ("pulse", "default"):
        for index, dev in enumerate(devices):
            if dev.get("name") == wanted and int(dev.get("max_input_channels", 0)) > 0:
                rate = int(float(dev.get("default_samplerate") or 48000))
                return InputDevice(index, wanted, rate if rate > 0 else 48000), ""
    return None, ("PortAudio has no 'pulse' or 'default' input (is the ALSA pulse plugin, "
                  "Debian's libasound2-plugins, installed?)")


class Recorder:
    """A running recording (a context manager) that keeps each 0.1 s chunk's level.

    PortAudio calls :meth:`_chunk` on its own thread; :meth:`wait` blocks the caller until
    the levels satisfy a condition or a deadline passes.
    """

    def __init__(self, sd: Any, device: InputDevice) -> None:
        self._sd = sd
        self._device = device
        self._cond = threading.Condition()
        self._levels: list[float] = []
        self._total = 0
        self._stream: Any = None

    def __enter__(self) -> Recorder:
        self._stream = self._sd.RawInputStream(
            samplerate=self._device.rate, channels=1, dtype="int16", device=self._device.index,
            blocksize=max(1, int(self._device.rate * CHUNK_SECONDS)), callback=self._chunk)
        try:
            self._stream.start()
        except BaseException:
            self._stream.close(ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort(ignore_errors=True)  # drop what is buffered: nothing to finish
            finally:
                stream.close(ignore_errors=True)

    def _chunk(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        level = rms(bytes(indata))
        with self._cond:
            self._levels.append(level)
            self._total += 1
            del self._levels[:-KEEP_CHUNKS]
            self._cond.notify_all()

    @property
    def seconds(self) -> float:
        with self._cond:
            return self._total * CHUNK_SECONDS

    def last(self, seconds: float) -> list[float]:
        n = max(1, round(seconds / CHUNK_SECONDS))
        with self._cond:
            return list(self._levels[-n:]) if self._total >= n else []

    def wait(self, done: Callable[[], bool], timeout: float,
             cancel: threading.Event | None = None) -> bool:
        """Wait until ``done()`` (called with no lock held) is true; False at the deadline."""
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0 or (cancel is not None and cancel.is_set()):
                return False
            with self._cond:
                self._cond.wait(min(left, 0.05))
        return True
