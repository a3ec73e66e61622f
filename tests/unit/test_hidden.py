"""The hidden-holder decision (pure): inotify events are a reason to look, fd counts decide."""

from __future__ import annotations

from camguard.platform.linux.hidden import CONFIRM, GRACE, RECHECK, HiddenHolders

CAM = "/dev/video0"
HOLDER, BUSY, IDLE = 100, 200, 300


def look(h: HiddenHolders, fds: dict[int, int], now: float, *, opens: int = 0,
         closes: int = 0, new: int = 0, gone: int = 0) -> float | None:
    h.events({CAM: opens} if opens else {}, {CAM: closes} if closes else {})
    changes = ({CAM: new} if new else {}, {CAM: gone} if gone else {})
    if opens or closes:
        assert not h.wants_full_scan()  # the likely openers are looked at first
        quick = h.decide(*changes, None, now)
        if not h.wants_full_scan():
            return quick  # a visible process explains it all: no full scan
        changes = ({}, {})  # counted by the quick look
    return h.decide(*changes, fds, now)


def started() -> HiddenHolders:
    h = HiddenHolders()
    assert look(h, {HOLDER: 3, BUSY: 5, IDLE: 7}, 0.0) is None  # the first full look
    return h


def test_an_open_only_a_hidden_count_explains_is_held_after_the_grace() -> None:
    h = started()
    # Two opens merged into one event; the holder's count rose by 2, a busy one's by 1.
    assert look(h, {HOLDER: 5, BUSY: 6, IDLE: 7}, 1.0, opens=1) == RECHECK
    assert h.in_use() == {}  # its fd may just not be installed yet: not decided
    # Suspects now; each must stay up through a probation of full looks.
    assert look(h, {HOLDER: 5, BUSY: 6, IDLE: 7}, 1.0 + GRACE) == CONFIRM
    assert h.in_use() == {}
    assert look(h, {HOLDER: 5, BUSY: 6, IDLE: 7}, 1.0 + GRACE + CONFIRM) is None
    assert h.in_use() == {CAM: 1.0}  # since the first evidence
    # It closes once: its count falls at the close, it still holds one file.
    assert look(h, {HOLDER: 4, BUSY: 6, IDLE: 7}, 2.0, closes=1) is None
    assert h.in_use() == {CAM: 1.0}
    # It exits: the busy suspect of the same open never fell at a close, so it goes too.
    assert look(h, {BUSY: 6, IDLE: 7}, 3.0, closes=1) is None
    assert h.in_use() == {}


def test_an_open_a_visible_fd_explains_is_nobodys_secret() -> None:
    h = started()
    assert look(h, {HOLDER: 4, BUSY: 5, IDLE: 7}, 1.0, opens=1, new=1) is None
    assert h.in_use() == {}


def test_a_visible_open_and_close_between_looks_is_no_hidden_holder() -> None:
    """Opened and closed before any scan: net zero, whatever hidden counts did meanwhile."""
    h = started()
    assert look(h, {HOLDER: 4, BUSY: 6, IDLE: 7}, 1.0, opens=1, closes=1) is None
    assert h.in_use() == {}


def test_merged_closes_never_make_a_phantom() -> None:
    """Two visible fds closed back to back (one merged IN_CLOSE): nothing is held."""
    h = started()
    assert look(h, {HOLDER: 3, BUSY: 5, IDLE: 7}, 1.0, opens=1, new=1) is None
    assert look(h, {HOLDER: 3, BUSY: 5, IDLE: 7}, 2.0, opens=1, new=1) is None
    assert look(h, {HOLDER: 3, BUSY: 5, IDLE: 7}, 3.0, closes=1, gone=2) is None
    assert h.in_use() == {}


def test_an_unexplained_open_with_no_hidden_count_risen_is_no_holder() -> None:
    h = started()
    look(h, {HOLDER: 3, BUSY: 5, IDLE: 7}, 1.0, opens=1)
    assert look(h, {HOLDER: 3, BUSY: 5, IDLE: 7}, 1.0 + GRACE) is None
    assert h.in_use() == {}


def test_a_suspect_back_to_its_count_before_the_open_is_no_holder() -> None:
    h = started()
    look(h, {HOLDER: 4, BUSY: 6, IDLE: 7}, 1.0, opens=1)
    look(h, {HOLDER: 4, BUSY: 6, IDLE: 7}, 1.0 + GRACE)
    assert look(h, {HOLDER: 4, BUSY: 5, IDLE: 7}, 5.0) is None  # a later full look
    assert h.in_use() == {CAM: 1.0}  # the holder is still up by one
    assert look(h, {HOLDER: 3, BUSY: 5, IDLE: 7}, 6.0, closes=1) is None
    assert h.in_use() == {}


def test_as_root_nothing_is_hidden_and_shortcut_looks_decide_at_once() -> None:
    h = HiddenHolders()
    assert h.decide({}, {}, {}, 0.0) is None  # a full look that could read every process
    h.events({CAM: 1}, {})
    assert not h.wants_full_scan()
    assert h.decide({}, {}, None, 1.0) is None
    assert h.in_use() == {}


def test_a_suspect_down_again_within_its_probation_never_counts() -> None:
    """A process that was only busy at the moment of the open (a helper starting up)."""
    h = started()
    look(h, {HOLDER: 3, BUSY: 9, IDLE: 7}, 1.0, opens=1)
    assert look(h, {HOLDER: 3, BUSY: 9, IDLE: 7}, 1.0 + GRACE) == CONFIRM
    assert look(h, {HOLDER: 3, BUSY: 5, IDLE: 7}, 1.1 + GRACE) is None
    assert look(h, {HOLDER: 3, BUSY: 5, IDLE: 7}, 2.0) is None
    assert h.in_use() == {}


def test_a_process_started_after_the_look_before_the_open_is_no_suspect() -> None:
    """Its count before is unknown; other accounts start processes all the time."""
    h = started()
    look(h, {HOLDER: 3, BUSY: 5, IDLE: 7, 400: 12}, 1.0, opens=1)
    assert look(h, {HOLDER: 3, BUSY: 5, IDLE: 7, 400: 12}, 1.0 + GRACE) is None
    assert h.in_use() == {}


def test_an_idle_refresh_makes_a_newer_process_part_of_the_base() -> None:
    h = started()
    h.refresh({HOLDER: 3, BUSY: 5, IDLE: 7, 400: 12})
    look(h, {HOLDER: 3, BUSY: 5, IDLE: 7, 400: 13}, 1.0, opens=1)
    look(h, {HOLDER: 3, BUSY: 5, IDLE: 7, 400: 13}, 1.0 + GRACE)
    look(h, {HOLDER: 3, BUSY: 5, IDLE: 7, 400: 13}, 1.0 + GRACE + CONFIRM)
    assert h.in_use() == {CAM: 1.0}
