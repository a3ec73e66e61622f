"""What the alert says about its paused app before and after the freezer's limit
(ui/alert_freeze.py): the words, and when the popup must redraw."""

from __future__ import annotations

from camguard.core.models import Device, DeviceKind, ProcessRef, Usage
from camguard.ui.alert_freeze import PAUSED_LINE, let_go_in_ms, paused_line
from camguard.ui.model import Alert

MIC = Usage(Device(DeviceKind.MICROPHONE, "alsa:card0"), ProcessRef(4242, 5.0, name="zoom"))


def test_paused_then_let_go_at_the_deadline_in_words() -> None:
    alert = Alert(1, MIC, 1000.0, paused=True, paused_until=1120.3)
    assert paused_line(alert, 1119.9) == PAUSED_LINE
    assert let_go_in_ms(alert, 1119.9) == 400
    assert paused_line(alert, 1120.3) == ("It was let go after 2 minutes; it may be using "
                                          "the microphone now")
    assert let_go_in_ms(alert, 1120.3) is None  # nothing left to wait for


def test_short_limits_in_seconds_and_unpaused_alerts_say_nothing() -> None:
    assert paused_line(Alert(1, MIC, 0.0, paused=True, paused_until=1.0), 5.0) == (
        "It was let go after 1 second; it may be using the microphone now")
    assert paused_line(Alert(1, MIC, 0.0, paused=True, paused_until=45.0), 50.0).startswith(
        "It was let go after 45 seconds")
    plain = Alert(1, MIC, 0.0)
    assert paused_line(plain, 9e9) == "" and let_go_in_ms(plain, 0.0) is None
    # Paused by a service that gave no deadline: paused until the answer, no redraw.
    unknown = Alert(1, MIC, 0.0, paused=True)
    assert paused_line(unknown, 9e9) == PAUSED_LINE and let_go_in_ms(unknown, 0.0) is None
