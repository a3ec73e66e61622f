"""The ``Guard``: what a person asks of camguard (status, watch, history, kill, block,
unblock, blocks, pause, resume, the parental lock, the rules in force), answered by this
program (:class:`LocalGuard`, in ``app/guard_local.py``) or by the system service
(:class:`ServiceGuard`, in ``app/guard_service.py``).

Whether a service answers is decided once, in ``guard_service.open_guard``; callers (the
commands and the tray) hold a Guard and never ask again. Both sides answer with the same
objects (core models, :class:`Reply`, :class:`BlockLine`), so one printer serves both and
the output is the same whichever side answered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

# Defined on its own so that a command can catch it without this module (issue 16).
from camguard.app.guard_error import GuardError as GuardError  # noqa: PLC0414
from camguard.core.blocks import (
    ActionResult,
    ActiveBlock,
    BlockOptions,
    BlockReport,
    BlockTarget,
    Outcome,
    StepKind,
)

if TYPE_CHECKING:  # annotations only (issue 16)
    from camguard.core.models import MonitorEvent
    from camguard.core.rules import Rule
    from camguard.core.state import GuardState
    from camguard.store.history_record import SessionRecord

AskPassword = Callable[[], "str | None"]


@dataclass(frozen=True)
class Part:
    """What happened to one device kind (or to a process)."""

    kind: str
    outcome: Outcome
    message: str


@dataclass(frozen=True)
class BlockLine:
    """One active block as both sides report it (what a node was before: in --json only,
    and only locally, where the block is one's own)."""

    kind: str
    since: float | None
    until: float | None
    seconds_left: float | None
    how: tuple[tuple[StepKind | str, str], ...] = ()  # (kind, target) of each step


@dataclass(frozen=True)
class Reply:
    """The answer to kill, block, unblock, panic, pause and resume."""

    outcome: Outcome
    message: str
    code: str = "error"  # printed before ``message`` when it failed with no parts
    parts: tuple[Part, ...] = ()
    problems: tuple[str, ...] = ()
    details: tuple[str, ...] = ()
    lifted: tuple[Part, ...] = ()  # timed blocks whose time was up, lifted on the way
    now_off: tuple[BlockLine, ...] = ()  # after a block: what is off now
    keeper: bool = False  # a block only a keeper process can keep (see cli/keeper.py)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.DONE


@dataclass(frozen=True)
class Blocks:
    blocks: tuple[BlockLine, ...]
    lifted: tuple[Part, ...]
    problems: tuple[str, ...]
    doc: Mapping[str, Any]  # the --json document
    outcome: Outcome = Outcome.DONE


@dataclass(frozen=True)
class Status:
    state: GuardState
    doc: Mapping[str, Any]  # the --json document


@dataclass(frozen=True)
class History:
    records: list[SessionRecord]
    gaps: list[dict[str, Any]]  # gaps and policy changes (see store.tamper)
    entries: list[dict[str, Any]] | None  # the --json list as the service sent it
    warnings: list[str]
    missing: Path | None = None  # the local database that does not exist yet


@dataclass(frozen=True)
class RulesInForce:
    """The rules another side enforces for the caller (``rules list`` shows them)."""

    where: str
    mode: str
    rules: tuple[Rule, ...]
    problems: tuple[str, ...]
    policy_error: str | None
    doc: Mapping[str, Any]  # the --json document


@dataclass(frozen=True)
class LockState:
    """The parental lock as kept by whichever side answers."""

    where: str  # the service, or the user's lock file
    doc: Mapping[str, Any]  # set, failures, retry_after, damaged


@dataclass(frozen=True)
class WatchItem:
    event: MonitorEvent | None  # None: a service event that is not a usage or health event
    doc: Mapping[str, Any]  # the --json line


class Watching(Protocol):
    banner: str

    def __iter__(self) -> Iterator[WatchItem]: ...

    def close(self) -> None: ...


class Guard(Protocol):
    """camguard as one program sees it, whichever side answers."""

    @property
    def where(self) -> str: ...  # who answers, for a person

    def status(self) -> Status: ...

    def status_doc(self) -> Mapping[str, Any]:
        """``status()``'s document alone (``Status.doc``, for ``status --json``): the
        service's is its answer as it came, not read into the state model (issue 16)."""
        ...

    def watch(self) -> Watching: ...

    def history(self, filters: Mapping[str, Any], limit: int | None) -> History: ...

    def kill(self, pid: int, create_time: float | None, *, force: bool) -> Reply: ...

    def block(self, target: BlockTarget, seconds: float | None, options: BlockOptions
              ) -> Reply: ...

    def unblock(self, target: BlockTarget, ask: AskPassword) -> Reply: ...

    def panic(self) -> Reply: ...

    def blocks(self) -> Blocks: ...

    def pause(self, seconds: float | None, ask: AskPassword) -> Reply: ...

    def resume(self) -> Reply: ...

    def lock_status(self) -> LockState: ...

    def lock_set(self, new: Callable[[], str], ask: AskPassword) -> Reply:
        """Set or change the parental lock: ``ask`` for the current password first when
        one is needed, then ``new`` for the new one."""
        ...

    def lock_clear(self, ask: AskPassword) -> Reply: ...

    def rules(self) -> RulesInForce | None:
        """The rules the service enforces; None when this program decides by the user's
        own rules (which ``camguard rules list`` reads itself)."""
        ...


# -- reading what either side did -------------------------------------------------------------
def result_reply(result: ActionResult, code: str | None = None) -> Reply:
    return Reply(result.outcome, result.message, code or result.outcome.value,
                 details=tuple(result.details))


def report_reply(report: BlockReport, **more: Any) -> Reply:
    more.setdefault("problems", report.problems)
    return Reply(report.result.outcome, report.result.message, "error",
                 parts=tuple(Part(k.value, r.outcome, r.message) for k, r in report.parts),
                 details=tuple(report.result.details), **more)


def lifted_parts(report: BlockReport) -> tuple[Part, ...]:
    return tuple(Part(k.value, r.outcome, r.message) for k, r in report.parts)


def block_line(b: ActiveBlock, now: float) -> BlockLine:
    return BlockLine(b.kind.value, b.since, b.until, b.left(now),
                     tuple((s.kind, s.target) for s in b.steps))
