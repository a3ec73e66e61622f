"""One way to say how long a session lasted (issue 12: the window said 1s, the CLI 0s)."""

from __future__ import annotations

import pytest

from camguard.core.timefmt import session_length


@pytest.mark.parametrize(("seconds", "said"), [
    (0.0, "<1s"), (0.013, "<1s"), (0.999, "<1s"), (1.0, "1s"), (1.4, "1s"), (42.6, "43s"),
    (60.0, "1m00s"), (187.0, "3m07s"), (3600.0, "1h00m"), (7500.0, "2h05m"),
    (86400.0 + 4 * 3600, "1d04h"),
])
def test_session_length(seconds: float, said: str) -> None:
    assert session_length(seconds) == said
