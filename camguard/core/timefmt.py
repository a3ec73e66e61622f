"""How long a session lasted, said the same way everywhere (history window, CLI, details).

The history window rounded 13 ms up to "1s" and the CLI rounded it down to "0s" (issue 12);
both now say "<1s" for anything under a second, then whole seconds, minutes and hours.
"""

from __future__ import annotations


def session_length(seconds: float) -> str:
    """``<1s``, ``42s``, ``3m07s``, ``2h05m``, ``3d04h`` (rounded to the nearest second)."""
    if seconds < 1:
        return "<1s"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
