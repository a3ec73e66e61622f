"""The real clock and the system's time zone (core code receives them; it never reads time)."""

from __future__ import annotations

import datetime as _dt
import os
import time


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


def local_zone() -> _dt.tzinfo:
    """The system's time zone, with its daylight-saving rules when they can be found (rule
    time windows are local time: the CLI, the tray and the service all ask here)."""
    import zoneinfo  # here: ~3 ms that commands without time windows do not need

    try:
        tz = os.environ.get("TZ", "").lstrip(":")
        if tz:
            return zoneinfo.ZoneInfo(tz)
        with open("/etc/localtime", "rb") as f:
            return zoneinfo.ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError, zoneinfo.ZoneInfoNotFoundError):
        return _dt.datetime.now().astimezone().tzinfo or _dt.UTC
