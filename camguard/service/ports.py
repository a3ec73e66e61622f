"""What the service's operations (service/api.py) reach, as small interfaces: the history,
the kill switch, the parental lock, pausing the rules. The ``service`` command wires the
real objects (app/service.py); tests may hand in their own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from camguard.core.blocks import ActiveBlock, BlockOptions, BlockReport, BlockTarget
from camguard.core.models import DeviceKind
from camguard.core.state import UsageKey
from camguard.service.enforcement import NO_OPTIONS, EndCheck


class HistoryView(Protocol):
    def entries(self, filters: Mapping[str, Any], users: frozenset[str] | None,
                limit: int) -> list[dict[str, Any]]:
        """Sessions (and gaps) newest first; ``users`` None: every account's.
        Raises ValueError for a filter it cannot use."""
        ...


class FoundSession(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def user(self) -> str | None: ...

    @property
    def decided_by(self) -> str | None: ...


class SessionBook(Protocol):
    """The service's sessions, to record a person's decision on one (HistoryStore)."""

    def find_session(self, key: UsageKey, since: float) -> FoundSession | None:
        """The newest session of the usage ``key`` that started at ``since`` or later."""
        ...

    def record_decision(self, session_id: int, decision: str | None,
                        decided_by: str | None) -> bool: ...


class Blocks(Protocol):
    def block(self, target: BlockTarget, duration: float | None,
              options: BlockOptions = NO_OPTIONS, *, owner: int | None = None,
              may_end: EndCheck | None = None) -> BlockReport: ...

    def unblock(self, target: BlockTarget) -> BlockReport: ...

    def active(self) -> tuple[list[ActiveBlock], list[str]]: ...

    def expire_due(self) -> BlockReport: ...


class LockAnswer(Protocol):
    @property
    def status(self) -> str: ...  # "ok", "wrong" or "locked-out"

    @property
    def retry_after(self) -> float: ...

    @property
    def message(self) -> str: ...


class Lock(Protocol):
    def is_set(self) -> bool: ...

    # ``who``: the caller's uid; wrong guesses back off per account (store.parental_lock).
    def status(self, who: int | None = None) -> dict[str, Any]: ...

    def check(self, password: str | None, who: int | None = None) -> LockAnswer: ...

    def set_password(self, new: str, current: str | None = None, *, force: bool = False,
                     who: int | None = None) -> LockAnswer: ...

    def clear(self, current: str | None, *, force: bool = False, who: int | None = None
              ) -> LockAnswer: ...


class Pausable(Protocol):
    def pause(self, seconds: float | None) -> float | None: ...

    def resume(self) -> None: ...

    def paused(self) -> tuple[bool, float | None]: ...

    def answered(self, key: UsageKey, decision: str | None) -> None:
        """A person answered about usage ``key``: continue (or end) its paused app."""
        ...

    def blocked(self, kinds: Sequence[DeviceKind]) -> None:
        """A block ran: continue the apps paused until it."""
        ...
