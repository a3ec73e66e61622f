"""Block durations, targets and the BlockManager's expiry rules, on a frozen clock."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from camguard.core.blocks import (
    ActionResult,
    ActiveBlock,
    Applied,
    BlockManager,
    BlockOptions,
    BlockTarget,
    Outcome,
    StepKind,
    UndoStep,
    format_duration,
    parse_duration,
    worst,
)
from camguard.core.clock import FrozenClock
from camguard.core.models import DeviceKind
from camguard.store.blocks import JsonBlockStore

# What the fake enforcer saved on its first apply (the node as it was).
ORIGINAL = json.dumps({"gid": 44, "mode": 0o660, "uid": 0})  # sorted, as the store keeps it


@pytest.mark.parametrize(("text", "seconds"), [
    ("15m", 900), ("1h", 3600), ("90s", 90), ("2h30m", 9000), ("1 h", 3600),
    ("15 min", 900), ("2 hours 5 minutes", 7500), ("1d", 86400), ("  45S ", 45),
    ("1h 1m 1s", 3661), ("366d", 366 * 86400),
])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["until", "until I turn it back on", "Until  I turn it back ON",
                                  "forever", "until-off"])
def test_parse_until(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize("text", ["", "15", "0m", "1h1h", "5 fortnights", "-5m", "1.5h", "m",
                                  "367d", "15m\x00", "1h;rm -rf /", "9" * 70 + "s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError,
                       match=r"not a duration|unit|must last longer|longer than a year"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [
    (900, "15m"), (3600, "1h"), (9000, "2h30m"), (90, "1m30s"), (0.2, "1s"), (0, "0s"),
    (-5, "0s"), (86400 + 61, "1d1m1s"),
])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_targets_and_worst() -> None:
    assert BlockTarget.ALL.kinds == (DeviceKind.CAMERA, DeviceKind.MICROPHONE)
    assert BlockTarget("microphone").kinds == (DeviceKind.MICROPHONE,)
    assert worst([Outcome.DONE, Outcome.NOT_FOUND, Outcome.REFUSED]) is Outcome.REFUSED
    assert worst([]) is Outcome.DONE


class FakeEnforcer:
    """Records what the manager asks for; the OS side is tested for real in integration/."""

    def __init__(self, fail_undo: set[DeviceKind] | None = None) -> None:
        self.applied: list[DeviceKind] = []
        self.undone: list[tuple[DeviceKind, tuple[UndoStep, ...]]] = []
        self.fail_undo = fail_undo or set()
        self.mode = 0o660

    def apply(self, kind: DeviceKind, options: BlockOptions,
              already: Sequence[UndoStep] = ()) -> Applied:
        self.applied.append(kind)
        # A second apply reports the node's state as it is now (blocked): the manager must
        # keep the first, original one.
        step = UndoStep(StepKind.NODE, f"/dev/{kind.value}0",
                        json.dumps({"gid": 44, "mode": self.mode, "uid": 0}))
        self.mode = 0
        return Applied((step,), ActionResult(Outcome.DONE, "off"))

    def undo(self, kind: DeviceKind, steps: Sequence[UndoStep]) -> ActionResult:
        self.undone.append((kind, tuple(steps)))
        if kind in self.fail_undo:
            return ActionResult(Outcome.FAILED, "could not restore")
        return ActionResult(Outcome.DONE, "on")


def _manager(tmp_path: Path, clock: FrozenClock, enforcer: FakeEnforcer | None = None
             ) -> tuple[BlockManager, FakeEnforcer]:
    enforcer = enforcer or FakeEnforcer()
    return BlockManager(clock, JsonBlockStore(tmp_path / "blocks.json"), enforcer), enforcer


# (target, duration, advance, expected kinds still blocked after expire_due)
EXPIRY_TABLE = [
    (BlockTarget.CAMERA, 900.0, 899.0, {DeviceKind.CAMERA}),
    (BlockTarget.CAMERA, 900.0, 900.0, set()),
    (BlockTarget.CAMERA, 900.0, 10_000.0, set()),
    (BlockTarget.MICROPHONE, 3600.0, 3599.9, {DeviceKind.MICROPHONE}),
    (BlockTarget.ALL, 60.0, 61.0, set()),
    (BlockTarget.ALL, None, 10 * 365 * 86400.0, {DeviceKind.CAMERA, DeviceKind.MICROPHONE}),
]


@pytest.mark.parametrize(("target", "duration", "advance", "left"), EXPIRY_TABLE)
def test_expiry(tmp_path: Path, target: BlockTarget, duration: float | None, advance: float,
                left: set[DeviceKind]) -> None:
    clock = FrozenClock()
    manager, enforcer = _manager(tmp_path, clock)
    assert manager.block(target, duration).result.ok
    clock.advance(advance)
    report = manager.expire_due()
    assert report.result.ok
    blocks, problems = manager.active()
    assert {b.kind for b in blocks} == left
    assert problems == []
    assert {k for k, _ in enforcer.undone} == set(target.kinds) - left


def test_expiry_survives_a_restart(tmp_path: Path) -> None:
    clock = FrozenClock()
    first, _ = _manager(tmp_path, clock)
    first.block(BlockTarget.CAMERA, 900)
    first.block(BlockTarget.MICROPHONE, 3600)
    clock.advance(1000)
    # A new manager over the same file (camguard restarted) lifts only the expired block.
    second, enforcer = _manager(tmp_path, clock)
    second.expire_due()
    assert [k for k, _ in enforcer.undone] == [DeviceKind.CAMERA]
    assert enforcer.undone[0][1][0].saved == ORIGINAL
    blocks, _ = second.active()
    assert [b.kind for b in blocks] == [DeviceKind.MICROPHONE]
    assert blocks[0].until == FrozenClock().now() + 3600
    assert second.next_expiry() == FrozenClock().now() + 3600


def test_reblock_keeps_original_state_and_replaces_end(tmp_path: Path) -> None:
    clock = FrozenClock()
    manager, enforcer = _manager(tmp_path, clock)
    manager.block(BlockTarget.CAMERA, 900)
    clock.advance(60)
    manager.block(BlockTarget.CAMERA, None)
    blocks, _ = manager.active()
    assert len(blocks) == 1
    assert blocks[0].until is None
    assert blocks[0].since == FrozenClock().now()
    assert [s.saved for s in blocks[0].steps] == [ORIGINAL]
    assert enforcer.applied == [DeviceKind.CAMERA, DeviceKind.CAMERA]


def test_failed_undo_is_kept_for_a_retry(tmp_path: Path) -> None:
    clock = FrozenClock()
    manager, _ = _manager(tmp_path, clock, FakeEnforcer(fail_undo={DeviceKind.CAMERA}))
    manager.panic()
    report = manager.unblock(BlockTarget.ALL)
    assert report.result.outcome is Outcome.FAILED
    assert "could not restore" in report.result.message
    blocks, _ = manager.active()
    assert [b.kind for b in blocks] == [DeviceKind.CAMERA]


def test_unblock_without_record_still_asks_the_platform(tmp_path: Path) -> None:
    manager, enforcer = _manager(tmp_path, FrozenClock())
    assert manager.unblock(BlockTarget.CAMERA).result.ok
    assert enforcer.undone == [(DeviceKind.CAMERA, ())]


def test_panic_blocks_everything_until_turned_on(tmp_path: Path) -> None:
    manager, _ = _manager(tmp_path, FrozenClock())
    assert manager.panic().result.ok
    blocks, _ = manager.active()
    assert {(b.kind, b.until) for b in blocks} == {(DeviceKind.CAMERA, None),
                                                    (DeviceKind.MICROPHONE, None)}
    assert manager.next_expiry() is None


def test_unwritable_store_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "blocks.json").mkdir()  # os.replace onto a folder fails
    manager, _ = _manager(tmp_path, FrozenClock())
    report = manager.block(BlockTarget.CAMERA, 60)
    assert report.result.outcome is Outcome.FAILED
    assert any(d.startswith("could not record") for d in report.result.details)


def test_active_block_left() -> None:
    b = ActiveBlock(DeviceKind.CAMERA, since=100.0, until=160.0)
    assert b.left(130.0) == 30.0
    assert b.left(200.0) == 0.0
    assert not b.due(159.9)
    assert b.due(160.0)
    assert ActiveBlock(DeviceKind.CAMERA, 100.0, None).left(1e12) is None
