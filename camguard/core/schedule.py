"""Schedules: the hours a device may be used; outside them camguard blocks it (pure).

A schedule names a device (``camera``, ``microphone`` or ``all``) and one or more time
windows (core.rules.Window) in which it is allowed:

    camera mon-fri 16:00-19:00; sat,sun 10:00-20:00

Outside every window a use of that device is blocked, whoever asks and without asking
anyone: the parental page's "allowed only at these hours". A schedule becomes rules, so the
one decision engine (core.decision) applies it and ``rules explain`` shows it: one
``block-device`` rule per stretch of the week outside the windows, each for any app with
its own window. They are given as the administrator's (``Origin.POLICY``): a rule of the
account's own may be stricter, never more lenient (an "Always allow" does not lift a
schedule), while a more specific rule of the parent's (allow this one app) still wins, as
core.decision ranks them.
"""

from __future__ import annotations

from dataclasses import dataclass

from camguard.core.models import DeviceKind
from camguard.core.rules import Origin, Rule, RuleError, Verdict, Window, make_rule
from camguard.core.text import literal

MAX_WINDOWS = 14
WEEK = 7 * 1440
_KINDS = {"camera": (DeviceKind.CAMERA,), "microphone": (DeviceKind.MICROPHONE,),
          "all": (DeviceKind.CAMERA, DeviceKind.MICROPHONE)}


@dataclass(frozen=True, slots=True)
class Schedule:
    device: str  # camera, microphone or all
    allowed: tuple[Window, ...]

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """``camera mon-fri 16:00-19:00; sat,sun 10:00-20:00`` (RuleError says why not)."""
        if len(text) > 1000 or "\x00" in text:
            raise RuleError("a schedule is at most 1000 characters")
        device, _, rest = text.strip().partition(" ")
        device = device.lower()
        if device not in _KINDS:
            raise RuleError(f"a schedule starts with camera, microphone or all, not "
                            f"{literal(device, 40)!r}")
        parts = [p.strip() for p in rest.split(";") if p.strip()]
        if not parts:
            raise RuleError("a schedule needs the hours it allows, e.g. "
                            "'camera mon-fri 16:00-19:00'")
        if len(parts) > MAX_WINDOWS:
            raise RuleError(f"a schedule has at most {MAX_WINDOWS} time windows")
        return cls(device, tuple(Window.parse(p) for p in parts))

    def __str__(self) -> str:
        return f"{self.device} " + "; ".join(map(str, self.allowed))

    @property
    def kinds(self) -> tuple[DeviceKind, ...]:
        return _KINDS[self.device]

    def allows(self, weekday: int, minute: int) -> bool:
        """Whether the device may be used at this local weekday (0 = Monday) and minute."""
        return any(w.contains(weekday, minute) for w in self.allowed)

    def describe(self) -> str:
        """In words, for the parental page: "camera: only mon-fri 16:00-19:00 …"."""
        return f"{self.device}: only {'; '.join(map(str, self.allowed))}; blocked otherwise"

    def blocked_windows(self) -> list[Window]:
        """The week outside the allowed windows, as windows (each within one day, so the
        same hours on several days are one window)."""
        allowed = [False] * WEEK
        for w in self.allowed:
            for day in w.days:
                start = day * 1440 + w.start
                end = day * 1440 + (w.end if w.start < w.end else 1440 + w.end)
                for m in range(start, end):
                    allowed[m % WEEK] = True
        by_hours: dict[tuple[int, int], set[int]] = {}
        for day in range(7):
            m = 0
            while m < 1440:
                if allowed[day * 1440 + m]:
                    m += 1
                    continue
                start = m
                while m < 1440 and not allowed[day * 1440 + m]:
                    m += 1
                by_hours.setdefault((start, m), set()).add(day)
        return [Window(frozenset(days), start, end)
                for (start, end), days in sorted(by_hours.items(),
                                                 key=lambda kv: (min(kv[1]), kv[0]))]

    def rules(self) -> list[Rule]:
        """The block-device rules that enforce it (ids stable for the same schedule)."""
        out = []
        for kind in self.kinds:
            for w in self.blocked_windows():
                label = f"schedule: {kind.value} outside {'; '.join(map(str, self.allowed))}"
                out.append(make_rule(Verdict.BLOCK_DEVICE, kind=kind, window=w,
                                     label=label[:200], origin=Origin.POLICY))
        return out


def schedule_rules(texts: tuple[str, ...] | list[str]) -> tuple[list[Rule], list[str]]:
    """The rules of every schedule that parses, and a sentence for each that does not."""
    rules: list[Rule] = []
    problems: list[str] = []
    for text in texts:
        try:
            rules += Schedule.parse(text).rules()
        except RuleError as exc:
            problems.append(f"schedule {literal(text, 80)!r} ignored: {exc}")
    return rules, problems
