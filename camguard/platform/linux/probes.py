"""What the selftest asks the OS directly: who holds device nodes open now, and what the
sound server says about its microphones (Linux: /proc and PulseAudio or pipewire-pulse)."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from typing import Any

from camguard.core.text import literal
from camguard.platform.base import ServerFacts

log = logging.getLogger(__name__)


def open_holders(paths: Collection[str]) -> dict[str, list[int]]:
    """Each of ``paths`` with the pids that hold it open (one full /proc scan)."""
    from camguard.platform.linux.fdscan import scan_holders

    found, _hidden = scan_holders(paths)
    return {path: sorted({pid for pid, _fd in pairs}) for path, pairs in found.items()}


def sound_server_facts(server: str | None = None) -> ServerFacts:
    """Ask the sound server (never starts one: no autospawn) for its microphones."""
    try:
        from camguard.platform.linux import mic_control, pulse_conn
    except (ImportError, OSError) as exc:  # pulsectl loads libpulse.so.0 when imported
        return ServerFacts(False, f"libpulse is not available ({literal(str(exc), 200)})")
    pulse: Any = None
    try:
        # Bounded by CONNECT_TIMEOUT, and never autospawns a server.
        pulse = pulse_conn.connect(server, "camguard-selftest")
        info = pulse.server_info()
        mutes = {str(s.name): bool(s.mute) for s in pulse.source_list()
                 if mic_control.is_microphone(s)}
        default = str(info.default_source_name or "")
        return ServerFacts(True, server_name=str(info.server_name or ""),
                           default_source=default, default_is_microphone=default in mutes,
                           mutes=mutes)
    except Exception as exc:  # PulseError, CallError, OSError: a dead or dying server
        where = literal(server or os.environ.get("PULSE_SERVER") or "the default server", 200)
        return ServerFacts(False, f"no sound server answers at {where} "
                                  f"({literal(str(exc) or type(exc).__name__, 200)})")
    finally:
        if pulse is not None:
            try:
                pulse.close()
            except Exception:
                log.debug("closing the selftest's sound-server connection failed",
                          exc_info=True)


