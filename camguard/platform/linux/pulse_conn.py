"""Connecting to the sound server: bounded in time, never starting a server, with libpulse's reason.

Shared by the detector (pulse.py), the microphone switch (mic_control.py) and the self-test,
so there is one answer to "how does camguard talk to PulseAudio / pipewire-pulse".
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0


def load_pulsectl() -> Any:
    # Imported lazily: pulsectl loads libpulse.so.0 at import time, and a machine without it
    # must still get a degraded microphone source (and working cameras), not an ImportError.
    #
    # pulsectl loads ``find_library("libpulse") or "libpulse.so.0"``. On Linux that search
    # looks for "liblibpulse", never finds it, and costs ldconfig, gcc and ld subprocesses
    # (15-40 ms of every ``camguard status``, issue 16); answering None at once loads the
    # same "libpulse.so.0". Only that name is answered; any other search is the real one.
    if "pulsectl" in sys.modules:
        return sys.modules["pulsectl"]
    import ctypes.util

    real = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        return None if name == "libpulse" else real(name)

    ctypes.util.find_library = find_library
    try:
        import pulsectl
    finally:
        ctypes.util.find_library = real
    return pulsectl


def connect(server: str | None, name: str, timeout: float = CONNECT_TIMEOUT) -> Any:
    """A connected ``pulsectl.Pulse`` within ``timeout`` seconds, or ``pulsectl.PulseError``.

    Not ``Pulse(server=...)``: it autospawns a daemon, and camguard must never start a sound
    server for the user. Not ``connect(timeout=...)`` either: measured with pulsectl 24.12, it
    polls until the deadline even once the context is ready (its state callback stops the loop
    only on failure), so each connect cost the whole timeout. So: pulsectl's own steps, polled
    in short slices. The error names libpulse's reason ("Connection refused") or the timeout.
    """
    pulsectl = load_pulsectl()
    from pulsectl import _pulsectl as _c

    pulse = pulsectl.Pulse(name, server=server, connect=False)
    try:
        try:
            _c.pa.context_connect(pulse._ctx, server, _c.PA_CONTEXT_NOAUTOSPAWN, None)
        except _c.pa.CallError as err:  # args: (function, its args, result, error text)
            raise pulsectl.PulseError(str(err.args[-1])) from err
        deadline = time.monotonic() + timeout
        while pulse.connected is None:  # pulsectl's state callback sets True or False
            left = deadline - time.monotonic()
            if left <= 0:
                raise pulsectl.PulseError(f"no answer within {timeout:g} s")
            pulse._pulse_poll(min(left, 0.01))
        if not pulse.connected:
            raise pulsectl.PulseError(_c.pa.strerror(_c.pa.context_errno(pulse._ctx)))
    except BaseException:
        close_quietly(pulse)
        raise
    return pulse


def close_quietly(pulse: Any) -> None:
    """Close a connection that may already be dead; never raises."""
    try:
        if pulse is not None:
            pulse.close()
    except Exception:
        log.debug("closing a dead sound-server connection failed", exc_info=True)


def context_error(pulse: Any) -> str:
    """libpulse's own words for why a connection failed ("Connection refused"), or ''."""
    try:
        from pulsectl import _pulsectl

        ctx = pulse._ctx  # pulsectl keeps the pa_context here; there is no public accessor
        if not ctx:
            return ""
        return str(_pulsectl.pa.strerror(_pulsectl.pa.context_errno(ctx)))
    except Exception:
        return ""
