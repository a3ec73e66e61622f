"""fanotify's open/close pairing (OpenLog) on the reports the kernel can make but a test
cannot provoke on demand: a queue overflow, pid 0 from an unprivileged group, two opens of
one node by one process, and more pending opens than are kept."""

from __future__ import annotations

from camguard.core.models import ProcessRef
from camguard.platform.linux.fanotify import (
    FAN_CLOSE,
    FAN_OPEN,
    FAN_Q_OVERFLOW,
    MAX_OPEN_RECORDS,
    FanEvent,
    OpenLog,
)

CAM = "/dev/video0"


def new_log() -> OpenLog:
    return OpenLog(lambda pid: ProcessRef(pid, 1.0))


def test_an_overflow_forgets_pending_opens() -> None:
    log = new_log()
    log.add([FanEvent(FAN_OPEN, 7, CAM, 1.0), FanEvent(FAN_Q_OVERFLOW, -1, "", 1.5),
             FanEvent(FAN_CLOSE, 7, CAM, 2.0)])
    assert log.take() == ({7}, [])  # the close has no open to pair with any more


def test_pid_0_is_not_ours_to_know() -> None:
    log = new_log()
    log.add([FanEvent(FAN_OPEN, 0, CAM, 1.0), FanEvent(FAN_CLOSE, 0, CAM, 1.1)])
    assert log.take() == (set(), [])


def test_two_opens_by_one_process_are_one_use_until_the_last_close() -> None:
    # A use runs from a process's first open of a node to its last close (fanotify.py):
    # while one of its two fds is still open, nothing has ended.
    log = new_log()
    log.add([FanEvent(FAN_OPEN, 7, CAM, 1.0), FanEvent(FAN_OPEN, 7, CAM, 2.0),
             FanEvent(FAN_CLOSE, 7, CAM, 3.0)])
    assert log.take() == ({7}, [])
    log.add([FanEvent(FAN_CLOSE, 7, CAM, 4.0)])
    [use] = log.take()[1]
    assert (use.opened, use.closed) == (1.0, 4.0)


def test_pending_opens_are_bounded_but_openers_are_still_hinted() -> None:
    log = new_log()
    log.add([FanEvent(FAN_OPEN, 1000 + n, CAM, 1.0) for n in range(MAX_OPEN_RECORDS)])
    log.add([FanEvent(FAN_OPEN, 99, CAM, 2.0), FanEvent(FAN_CLOSE, 99, CAM, 2.5)])
    hints, done = log.take()
    assert 99 in hints and len(hints) == MAX_OPEN_RECORDS + 1
    assert done == []  # the open past the bound was not kept, so its close pairs with none
