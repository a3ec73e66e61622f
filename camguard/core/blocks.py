"""The kill switch's rules: block targets, durations, active blocks and their expiry.

Pure: the OS work (changing device nodes, muting, ending processes) is done by an injected
:class:`Enforcer`, persistence by an injected :class:`BlockStore`, and time comes from a
:class:`~camguard.core.clock.Clock`. Expiry uses wall time (``clock.now()``), not the
monotonic clock, because a block must expire at the promised moment even across a restart
of camguard (or of the machine), and a monotonic clock restarts with the machine.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from camguard.core.clock import Clock
from camguard.core.models import DeviceKind


class Outcome(enum.StrEnum):
    """How an action ended; the CLI maps these to exit codes 0, 1, 3 and 4."""

    DONE = "done"
    FAILED = "failed"
    REFUSED = "refused"
    NOT_FOUND = "not_found"


# Worst first: when one action has several parts, the result is the worst part's outcome.
_SEVERITY = {Outcome.REFUSED: 3, Outcome.FAILED: 2, Outcome.NOT_FOUND: 1, Outcome.DONE: 0}


def worst(outcomes: Iterable[Outcome]) -> Outcome:
    return max(outcomes, key=_SEVERITY.__getitem__, default=Outcome.DONE)


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an action did, for a person (``message``) and a script (``outcome``).

    Actions return this for every expected condition (a protected process, a vanished pid,
    no privileges) instead of raising.
    """

    outcome: Outcome
    message: str
    details: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.DONE


@runtime_checkable
class ProcessKiller(Protocol):
    """Ends a process by ``(pid, create_time)``, never a reused pid. Any thread; blocks up to
    a few seconds while the process exits. Never raises: the result says what happened.

    The one killer shape: each platform's killer (the façade's, platform/base.py), the
    service's gated killer and the tray's actions take and give this."""

    def kill(self, pid: int, create_time: float | None = None, *, force: bool = False
             ) -> ActionResult: ...


class BlockTarget(enum.StrEnum):
    CAMERA = "camera"
    MICROPHONE = "microphone"
    ALL = "all"

    @property
    def kinds(self) -> tuple[DeviceKind, ...]:
        if self is BlockTarget.ALL:
            return (DeviceKind.CAMERA, DeviceKind.MICROPHONE)
        return (DeviceKind(self.value),)


# -- durations -----------------------------------------------------------------------------
UNTIL_TURNED_ON = "until I turn it back on"
_UNTIL_WORDS = frozenset({"until", "until i turn it back on", "until-off", "forever",
                          "indefinitely", "off", "never"})
_UNIT_SECONDS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}
_PART = re.compile(r"\s*([0-9]{1,6})\s*([a-z]+)\s*")
MAX_DURATION = 366 * 86400.0
# The last moment a date can be shown (9999-12-31T23:59:59Z): a stored time past it (an
# older camguard accepted any finite number) is read as "until turned back on".
MAX_TIMESTAMP = 253402300799.0


def parse_duration(text: str) -> float | None:
    """Seconds for ``15m``, ``1h``, ``90s``, ``2h30m``, ``1 h``, ``15 min``...; None for
    "until I turn it back on" (also ``until``, ``forever``). Raises ValueError otherwise.

    A bare number is refused rather than guessed (is ``15`` minutes or seconds?).
    """
    words = " ".join(text.lower().split())
    if words in _UNTIL_WORDS:
        return None
    if not words or len(words) > 64:
        raise ValueError(f"not a duration: {text!r}")
    total = 0
    pos = 0
    seen: set[int] = set()
    while pos < len(words):
        m = _PART.match(words, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"not a duration: {text!r} (say 15m, 1h, 90s or 2h30m)")
        unit = _UNIT_SECONDS.get(m.group(2))
        if unit is None:
            raise ValueError(f"unknown unit {m.group(2)!r} in {text!r} (use s, m, h or d)")
        if unit in seen:
            raise ValueError(f"unit given twice in {text!r}")
        seen.add(unit)
        total += int(m.group(1)) * unit
        pos = m.end()
    if total <= 0:
        raise ValueError(f"a block must last longer than 0 s: {text!r}")
    if total > MAX_DURATION:
        raise ValueError(f"{text!r} is longer than a year; use 'until' for no end")
    return float(total)


def format_duration(seconds: float) -> str:
    """``2h30m``, ``15m``, ``1m30s``; rounds up to whole seconds (never shows 0s early)."""
    left = max(0, int(-(-seconds // 1)))
    if left == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts)


# -- what was done, so it can be undone --------------------------------------------------
class StepKind(enum.StrEnum):
    """What one step of a block did; each platform's enforcer says what its steps mean
    (the values are written to the blocks file, so they never change)."""

    NODE = "node"  # a device's access was taken away (target: its path)
    USB = "usb"  # a USB interface was detached from its driver (target: interface id)
    UDEV_RULE = "udev-rule"  # the persistent rule keeping new devices closed was installed
    MIC_MUTE = "mic-mute"  # the sound server's sources were muted (data: how to undo)
    # Without privileges: camguard ends this account's processes that open the device while
    # the block lasts (target: the uid). Nothing at the OS level to undo.
    USER_GUARD = "user-guard"
    # A step in the vocabulary of the platform that made it (a Windows registry value, a
    # disabled device): ``target`` names it, prefixed by that platform's step name (e.g.
    # ``windows-registry:HKCU\\...\\Value``); ``data`` holds what its undo needs. Only that
    # platform's enforcer reads it.
    PLATFORM = "platform"


@dataclass(frozen=True, slots=True)
class UndoStep:
    kind: StepKind
    target: str = ""
    # What the device looked like before the block, as JSON object text only the
    # platform reads (Linux: a node's mode, owner and ACL, platform/linux/node_state.py);
    # kept with the block for as long as it lasts. None: nothing saved.
    saved: str | None = None
    # Opaque, JSON-encodable text a platform part needs to undo its step (e.g. mic volumes).
    data: str = ""


@dataclass(frozen=True, slots=True)
class BlockOptions:
    # Also detach the USB interface from its driver (the device disappears; admins only).
    unbind_usb: bool = False
    # Also keep new camera devices closed across replug and reboot (the platform's rule).
    persistent: bool = False


@dataclass(frozen=True, slots=True)
class ActiveBlock:
    """One device kind switched off, since when, until when (None: until turned back on)."""

    kind: DeviceKind
    since: float
    until: float | None
    steps: tuple[UndoStep, ...] = ()
    options: BlockOptions = field(default_factory=BlockOptions)
    # The uid of the ordinary account that made it, so that account may lift it again;
    # None: made by an admin, by the rules, by two accounts, or by an older camguard (only
    # an admin lifts it; see docs/security.md).
    owner: int | None = None

    def due(self, now: float) -> bool:
        return self.until is not None and now >= self.until

    def left(self, now: float) -> float | None:
        return None if self.until is None else max(0.0, self.until - now)

    def guarded_uids(self) -> frozenset[int]:
        """Accounts whose new openers camguard ends while this block lasts (no privileges)."""
        return frozenset(int(s.target) for s in self.steps
                         if s.kind is StepKind.USER_GUARD and s.target.isdigit())


def guarding(blocks: Iterable[ActiveBlock], kind: DeviceKind, uid: int, now: float) -> bool:
    """Whether a block in force on ``kind`` asks camguard to end ``uid``'s openers."""
    return any(b.kind is kind and not b.due(now) and uid in b.guarded_uids() for b in blocks)


@dataclass(frozen=True, slots=True)
class Applied:
    """What an :class:`Enforcer` did: every step it completed (even when a later one
    failed, so the completed ones can still be undone) and how it went."""

    steps: tuple[UndoStep, ...]
    result: ActionResult


class Enforcer(Protocol):
    """Switches a device kind off and on again at the OS level.

    Runs on the caller's thread and may block for seconds (ending a process waits for it,
    a privilege prompt waits for the user). Never raises for expected conditions.
    """

    def apply(self, kind: DeviceKind, options: BlockOptions,
              already: Sequence[UndoStep] = ()) -> Applied:
        """Switch ``kind`` off. ``already``: steps of a block in force (re-applied, so new
        nodes are covered; a node's saved state is never overwritten by its blocked one)."""
        ...

    def undo(self, kind: DeviceKind, steps: Sequence[UndoStep]) -> ActionResult: ...


class BlockStore(Protocol):
    """Where active blocks are kept between runs (see camguard.store.blocks)."""

    def load(self) -> tuple[list[ActiveBlock], list[str]]:
        """The blocks, and problems met reading them (a corrupt file is moved aside)."""
        ...

    def save(self, blocks: Sequence[ActiveBlock]) -> None:
        """Replace what is stored; raises OSError when it cannot be written."""
        ...

    def locked(self) -> AbstractContextManager[None]:
        """Exclusive access across processes (the tray and a CLI command may race)."""
        ...


@dataclass(frozen=True, slots=True)
class BlockReport:
    """The result of block/unblock/expire: the overall result plus one per device kind."""

    result: ActionResult
    parts: tuple[tuple[DeviceKind, ActionResult], ...] = ()
    problems: tuple[str, ...] = ()


class BlockManager:
    """Timed and open-ended blocks of the camera and microphone.

    Threads: call from one thread at a time per process (the worker in the tray, the main
    thread in the CLI); separate processes are serialised by ``store.locked()``. Every call
    may block while the enforcer works (seconds). Nothing here raises for expected
    conditions; a store that cannot be written turns into a FAILED result.
    """

    def __init__(self, clock: Clock, store: BlockStore, enforcer: Enforcer) -> None:
        self._clock = clock
        self._store = store
        self._enforcer = enforcer

    # -- queries -------------------------------------------------------------------------
    def active(self) -> tuple[list[ActiveBlock], list[str]]:
        """Blocks in force (expired ones included until :meth:`expire_due` lifts them)."""
        with self._store.locked():
            blocks, problems = self._store.load()
        return blocks, problems

    def next_expiry(self) -> float | None:
        """When the next timed block ends (wall time), for the app to schedule a wake-up."""
        blocks, _ = self.active()
        times = [b.until for b in blocks if b.until is not None]
        return min(times) if times else None

    # -- actions -------------------------------------------------------------------------
    def block(self, target: BlockTarget, duration: float | None,
              options: BlockOptions = BlockOptions(), *, owner: int | None = None
              ) -> BlockReport:
        """Switch ``target`` off for ``duration`` seconds (None: until turned back on).

        Blocking a kind that is already blocked re-applies it (covering nodes that appeared
        since) and replaces its end time with the new one. ``owner``: the ordinary account
        asking (None: an admin or the rules); a block two owners made has none.
        """
        if duration is not None and duration <= 0:
            return BlockReport(ActionResult(Outcome.FAILED, "a block must last longer than 0 s"))
        with self._store.locked():
            blocks, problems = self._store.load()
            by_kind = {b.kind: b for b in blocks}
            parts: list[tuple[DeviceKind, ActionResult]] = []
            now = self._clock.now()
            for kind in target.kinds:
                old = by_kind.get(kind)
                applied = self._enforcer.apply(kind, options, old.steps if old else ())
                steps = _merge_steps(old.steps if old else (), applied.steps)
                if steps:
                    by_kind[kind] = ActiveBlock(
                        kind=kind, since=old.since if old else now,
                        until=None if duration is None else now + duration, steps=steps,
                        options=_merge_options(old.options if old else None, options),
                        owner=owner if old is None or old.owner == owner else None)
                parts.append((kind, applied.result))
            saved = self._save(list(by_kind.values()))
        return _report(parts, problems, saved, "blocked")

    def unblock(self, target: BlockTarget) -> BlockReport:
        """Switch ``target`` back on, restoring exactly what the block changed."""
        with self._store.locked():
            blocks, problems = self._store.load()
            keep, parts = self._lift(blocks, set(target.kinds), only_due=False)
            saved = self._save(keep)
        return _report(parts, problems, saved, "unblocked")

    def expire_due(self) -> BlockReport:
        """Lift every block whose time is up (call at start-up and when a timer fires)."""
        with self._store.locked():
            blocks, problems = self._store.load()
            if not any(b.due(self._clock.now()) for b in blocks):
                return BlockReport(ActionResult(Outcome.DONE, "nothing expired"),
                                   problems=tuple(problems))
            keep, parts = self._lift(blocks, {b.kind for b in blocks}, only_due=True)
            saved = self._save(keep)
        return _report(parts, problems, saved, "lifted expired block")

    def panic(self) -> BlockReport:
        """Everything off: camera and microphone blocked until turned back on."""
        return self.block(BlockTarget.ALL, None)

    # -- inside --------------------------------------------------------------------------
    def _lift(self, blocks: list[ActiveBlock], kinds: set[DeviceKind], *, only_due: bool
              ) -> tuple[list[ActiveBlock], list[tuple[DeviceKind, ActionResult]]]:
        keep: list[ActiveBlock] = []
        parts: list[tuple[DeviceKind, ActionResult]] = []
        found = set()
        for b in blocks:
            if b.kind not in kinds or (only_due and not b.due(self._clock.now())):
                keep.append(b)
                continue
            found.add(b.kind)
            result = self._enforcer.undo(b.kind, b.steps)
            if result.outcome is Outcome.FAILED:
                # Keep what could not be undone, so a later unblock can try again.
                keep.append(b)
            parts.append((b.kind, result))
        if not only_due:
            for kind in sorted(kinds - found):
                # No record (never blocked, or the record was lost): still ask the platform
                # to release anything it knows it blocked, so a lost file never strands a node.
                result = self._enforcer.undo(kind, ())
                parts.append((kind, result))
        return keep, parts

    def _save(self, blocks: list[ActiveBlock]) -> str | None:
        order = {DeviceKind.CAMERA: 0, DeviceKind.MICROPHONE: 1}
        try:
            self._store.save(sorted(blocks, key=lambda b: order[b.kind]))
        except OSError as exc:
            return f"could not record the change: {exc}"
        return None


def _merge_steps(old: Sequence[UndoStep], new: Sequence[UndoStep]) -> tuple[UndoStep, ...]:
    """Old steps first (their saved states are the originals), then genuinely new ones."""
    seen = {(s.kind, s.target) for s in old}
    out = list(old)
    for step in new:
        key = (step.kind, step.target)
        if key in seen:
            # The enforcer's answer for a node it had already blocked carries the original
            # state again; keep whichever is known (never the blocked mode).
            idx = next(i for i, s in enumerate(out) if (s.kind, s.target) == key)
            if out[idx].saved is None and step.saved is not None:
                out[idx] = replace(out[idx], saved=step.saved)
            continue
        seen.add(key)
        out.append(step)
    return tuple(out)


def _merge_options(old: BlockOptions | None, new: BlockOptions) -> BlockOptions:
    if old is None:
        return new
    return BlockOptions(unbind_usb=old.unbind_usb or new.unbind_usb,
                        persistent=old.persistent or new.persistent)


def _report(parts: list[tuple[DeviceKind, ActionResult]], problems: list[str],
            save_error: str | None, verb: str) -> BlockReport:
    outcome = worst(r.outcome for _, r in parts)
    if save_error is not None:
        outcome = worst([outcome, Outcome.FAILED])
    lines = [f"{kind.value}: {r.message}" for kind, r in parts]
    if save_error is not None:
        lines.append(save_error)
    if not parts:
        message = "nothing to do"
    elif outcome is Outcome.DONE:
        message = f"{verb}: " + ", ".join(k.value for k, _ in parts)
    else:
        message = "; ".join(lines)
    return BlockReport(ActionResult(outcome, message, tuple(lines)), tuple(parts),
                       tuple(problems))
