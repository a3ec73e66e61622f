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


def held_then_merged(log: OpenLog) -> None:
    """pid 7 holds the node (opened at 1.0), then one merged OPEN|CLOSE at 2.0: the first
    use ended there, and a second one began that may have ended at once (unsure)."""
    log.add([FanEvent(FAN_OPEN, 7, CAM, 1.0), FanEvent(FAN_OPEN | FAN_CLOSE, 7, CAM, 2.0)])
    [first] = log.take()[1]
    assert (first.opened, first.closed) == (1.0, 2.0)


def test_an_unsure_use_not_held_by_the_next_scan_ended_at_its_merged_event() -> None:
    log = new_log()
    held_then_merged(log)
    assert log.settle(set(), scanned=2.0) == []  # a scan that began before it: no verdict
    [second] = log.settle(set(), scanned=3.0)
    assert (second.process.pid, second.opened, second.closed) == (7, 2.0, 2.0)


def test_an_unsure_use_the_next_scan_finds_held_goes_on() -> None:
    log = new_log()
    held_then_merged(log)
    assert log.settle({(7, CAM)}, scanned=3.0) == []
    assert log.settle(set(), scanned=4.0) == []  # decided: held, no longer unsure
    log.prune(set(), now=9.0)
    [second] = log.take()[1]
    assert (second.opened, second.closed) == (2.0, 2.0)  # ended by the prune at its last event


def test_a_use_reported_after_its_close_was_read_is_marked_seen() -> None:
    log = new_log()
    log.add([FanEvent(FAN_OPEN, 7, CAM, 1.0), FanEvent(FAN_CLOSE, 7, CAM, 2.0),
             FanEvent(FAN_OPEN, 8, CAM, 3.0), FanEvent(FAN_CLOSE, 8, CAM, 4.0)])
    log.reported(7, CAM, ProcessRef(7, 1.0), 1, 5.0)
    done = log.take()[1]
    assert [(u.process.pid, u.seen) for u in done] == [(7, True), (8, False)]


def test_prune_ends_only_uses_not_held_and_quiet_long_enough() -> None:
    log = new_log()
    log.add([FanEvent(FAN_OPEN, 7, CAM, 1.0), FanEvent(FAN_OPEN, 8, CAM, 1.0),
             FanEvent(FAN_OPEN, 9, CAM, 4.5)])
    log.prune({(8, CAM)}, now=5.0)
    [ended] = log.take()[1]
    assert (ended.process.pid, ended.opened, ended.closed) == (7, 1.0, 1.0)


def test_a_holder_found_by_a_scan_is_adopted_unless_the_records_are_full() -> None:
    log = new_log()
    log.reported(5, CAM, ProcessRef(5, 1.0), 2, 1.0)  # held since before the marks
    log.prune(set(), now=9.0)
    [adopted] = log.take()[1]
    assert (adopted.process.pid, adopted.seen) == (5, True)

    log.add([FanEvent(FAN_OPEN, 1000 + n, CAM, 1.0) for n in range(MAX_OPEN_RECORDS)])
    log.reported(5, CAM, ProcessRef(5, 1.0), 2, 1.0)
    log.prune(set(), now=9.0)
    done = log.take()[1]
    assert len(done) == MAX_OPEN_RECORDS and 5 not in {u.process.pid for u in done}
