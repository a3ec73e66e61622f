"""The selftest's findings: one check per claim, each passed, failed or not provable, and why."""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field
from typing import Any

from camguard.core.text import json_safe


class Status(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    # The claim could not be tested here (no real camera, root bypasses file modes, no sound
    # server, a library missing): neither a pass nor a failure, and the detail says why.
    NOT_PROVABLE = "not-provable"


@dataclass(frozen=True, slots=True)
class Check:
    """One claim the selftest tested. ``detail`` is one line for a person; text that came
    from outside camguard (paths, source names, process names) is already made literal."""

    name: str
    device: str
    status: Status
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "device": json_safe(self.device),
                "status": self.status.value, "detail": json_safe(self.detail)}


@dataclass
class SelftestReport:
    """Checks in the order they ran. Thread-safe to add to and read from (the GUI shows a
    report while the worker thread still fills it)."""

    checks: list[Check] = field(default_factory=list)
    root: bool = False
    started: float = 0.0
    finished: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, device: str, status: Status, detail: str) -> Check:
        check = Check(name, device, status, detail)
        with self._lock:
            self.checks.append(check)
        return check

    def snapshot(self) -> list[Check]:
        with self._lock:
            return list(self.checks)

    def find(self, name: str, device: str | None = None) -> list[Check]:
        return [c for c in self.snapshot()
                if c.name == name and (device is None or c.device == device)]

    def count(self, status: Status) -> int:
        return sum(1 for c in self.snapshot() if c.status is status)

    @property
    def ok(self) -> bool:
        """Nothing failed (not-provable checks do not count against it)."""
        return self.count(Status.FAILED) == 0

    def summary(self) -> dict[str, Any]:
        return {"passed": self.count(Status.PASSED), "failed": self.count(Status.FAILED),
                "not_provable": self.count(Status.NOT_PROVABLE), "ok": self.ok,
                "root": self.root, "seconds": round(max(0.0, self.finished - self.started), 3)}

    def as_dict(self) -> dict[str, Any]:
        return {"checks": [c.as_dict() for c in self.snapshot()], "summary": self.summary()}
