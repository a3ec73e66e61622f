"""Rules: which app may use which device, when, and what camguard does otherwise (pure).

Vocabulary follows OpenSnitch: a verdict (allow, ask, freeze, kill, block-device) for a duration
(once, 15m, 1h, until-restart, always). Which rule wins for a usage, and what camguard then
does, is decided in :mod:`camguard.core.decision`.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from camguard.core.models import DeviceKind
from camguard.core.origin import ExeOrigin, parse_origin_key
from camguard.core.text import literal


class RuleError(ValueError):
    """A rule (or one field of it) that cannot be used; the message says which and why."""


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    ASK = "ask"
    # Ask, with the app paused (SIGSTOP) until the answer (core/freeze.py): whatever the
    # freeze_while_asking setting says.
    FREEZE = "freeze"
    KILL = "kill"
    BLOCK_DEVICE = "block-device"


class Duration(enum.StrEnum):
    ONCE = "once"  # one decision, then gone (never written to disk)
    MIN15 = "15m"
    HOUR = "1h"
    UNTIL_RESTART = "until-restart"  # in memory only: gone when camguard stops
    ALWAYS = "always"

    @property
    def seconds(self) -> float | None:
        return {Duration.MIN15: 900.0, Duration.HOUR: 3600.0}.get(self)

    @property
    def durable(self) -> bool:
        """Written to the rules file (the others live only in the running camguard)."""
        return self not in (Duration.ONCE, Duration.UNTIL_RESTART)


class Mode(enum.StrEnum):
    ASK = "ask"  # unmatched usage: ask
    NOTIFY_ONLY = "notify-only"  # never kill or block; say what a rule would have done
    BLOCK_ALL = "block-all-not-allowed"  # unmatched usage: block the device


class MatchBy(enum.StrEnum):
    EXE = "exe"  # one binary: its path and its SHA-256
    # Where the binary comes from, checked: "deb:firefox-esr" (a file dpkg installed whose
    # md5sum still matches), "flatpak:org.telegram.desktop", "snap:zoom-client".
    ORIGIN = "origin"
    # The script an interpreter runs (python3, node, bash, perl, ruby): its path and its
    # SHA-256, whichever interpreter runs it; "python3" is then not one trust decision for
    # every Python program.
    SCRIPT = "script"
    PATH = "path"  # any binary at this path (or under this folder, when it ends in '/')
    NAME = "name"  # the process name (chosen by the process itself: the weakest match)
    ANY = "any"


class Origin(enum.StrEnum):
    USER = "user"
    POLICY = "policy"


_SHA256 = re.compile(r"[0-9a-f]{64}")
_ABS = re.compile(r"/|[A-Za-z]:[\\/]|\\\\")  # POSIX, Windows drive, or UNC path
MAX_TEXT = 4096


def is_absolute(path: str) -> bool:
    """An absolute POSIX or Windows path, on any platform (a policy may come from either)."""
    return bool(_ABS.match(path)) and "\x00" not in path


@dataclass(frozen=True, slots=True)
class AppMatch:
    by: MatchBy = MatchBy.ANY
    value: str = ""  # the path (EXE, PATH, SCRIPT), origin (ORIGIN) or process name (NAME)
    sha256: str | None = None  # EXE and SCRIPT only

    def __post_init__(self) -> None:
        if self.by is MatchBy.ANY:
            if self.value or self.sha256:
                raise RuleError("'any' app takes no path, name or sha256")
            return
        if not self.value or len(self.value) > MAX_TEXT or "\x00" in self.value:
            raise RuleError(f"empty or overlong {self.by.value} to match")
        if self.by is MatchBy.ORIGIN:
            try:
                parse_origin_key(self.value)
            except ValueError as exc:
                raise RuleError(str(exc)) from None
        if self.by in (MatchBy.EXE, MatchBy.PATH, MatchBy.SCRIPT) \
                and not is_absolute(self.value):
            raise RuleError(f"not an absolute path: {literal(self.value, 200)}")
        if self.by in (MatchBy.EXE, MatchBy.SCRIPT):
            if self.sha256 is None or not _SHA256.fullmatch(self.sha256):
                raise RuleError(f"an {self.by.value} rule needs the file's SHA-256 "
                                "(64 lowercase hex)")
        elif self.sha256 is not None:
            raise RuleError(f"sha256 only goes with an exe or script rule, not {self.by.value}")

    @property
    def rank(self) -> int:
        if self.by is MatchBy.PATH:
            return 2 if self.value.endswith(("/", "\\")) else 3
        # An origin is as specific as one binary: both are checked against a record. A
        # script is more specific than the interpreter that runs it.
        return {MatchBy.SCRIPT: 5, MatchBy.EXE: 4, MatchBy.ORIGIN: 4, MatchBy.NAME: 1,
                MatchBy.ANY: 0}[self.by]

    @property
    def origin(self) -> ExeOrigin | None:
        """The origin an ORIGIN match names (None for the other matches)."""
        if self.by is not MatchBy.ORIGIN:
            return None
        kind, name = parse_origin_key(self.value)
        return ExeOrigin(kind, name)

    def describe(self) -> str:
        if self.by is MatchBy.ANY:
            return "any app"
        if self.by is MatchBy.EXE:
            return f"{literal(self.value, 200)} (sha256 {(self.sha256 or '')[:12]}…)"
        if self.by is MatchBy.SCRIPT:
            return f"the script {literal(self.value, 200)} (sha256 {(self.sha256 or '')[:12]}…)"
        if self.by is MatchBy.ORIGIN:
            origin = self.origin
            return f"the {origin.describe()}" if origin else literal(self.value, 200)
        if self.by is MatchBy.PATH:
            where = "under" if self.rank == 2 else "at"
            return f"any binary {where} {literal(self.value, 200)}"
        return f"processes named '{literal(self.value, 64)}'"


# -- time windows ----------------------------------------------------------------------------
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_WORDS = {"daily": range(7), "*": range(7), "weekdays": range(5), "weekends": range(5, 7)}
_HOURS = re.compile(r"([01][0-9]|2[0-4]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])")


@dataclass(frozen=True, slots=True)
class Window:
    """Days of the week (0 = Monday) and minutes of the local day, ``start`` <= m < ``end``.

    A window that ends before it starts runs overnight and belongs to the day it starts on:
    ``fri 22:00-02:00`` covers Friday 22:00 to Saturday 02:00.
    """

    days: frozenset[int]
    start: int = 0
    end: int = 1440

    @classmethod
    def parse(cls, text: str) -> Window:
        """``mon-fri 16:00-19:00``, ``sat,sun``, ``daily 21:00-06:00``, ``21:00-24:00``."""
        words = text.lower().split()
        if not words or len(words) > 2 or len(text) > 200:
            raise RuleError(f"not a time window: {literal(text, 80)!r} "
                            "(say e.g. 'mon-fri 16:00-19:00', 'sat,sun' or '21:00-06:00')")
        days: set[int] = set(range(7))
        start, end = 0, 1440
        m = _HOURS.fullmatch(words[-1])
        if m is None and len(words) == 2:
            raise RuleError(f"bad hours in {literal(text, 80)!r} (use HH:MM-HH:MM)")
        if m is not None:
            hours = words[-1]
            start = int(m.group(1)) * 60 + int(m.group(2))
            end = int(m.group(3)) * 60 + int(m.group(4))
            if start >= 1440 or end > 1440 or start == end:
                raise RuleError(f"bad hours {hours!r}: 24:00 only ends a window, and a "
                                "window cannot be empty")
        if len(words) == 2 or m is None:
            days = _parse_days(words[0])
        return cls(frozenset(days), start, end)

    def __str__(self) -> str:
        days = _format_days(self.days)
        if (self.start, self.end) == (0, 1440):
            return days
        return f"{days} {self.start // 60:02d}:{self.start % 60:02d}-" \
               f"{self.end // 60:02d}:{self.end % 60:02d}"

    def contains(self, weekday: int, minute: int) -> bool:
        if self.start < self.end:
            return weekday in self.days and self.start <= minute < self.end
        return ((weekday in self.days and minute >= self.start)
                or ((weekday - 1) % 7 in self.days and minute < self.end))


def _parse_days(text: str) -> set[int]:
    if text in _DAY_WORDS:
        return set(_DAY_WORDS[text])
    out: set[int] = set()
    for part in text.split(","):
        ends = part.split("-")
        if len(ends) > 2 or any(e not in _DAYS for e in ends):
            raise RuleError(f"unknown day(s) {literal(part, 40)!r} "
                            "(use mon..sun, ranges like mon-fri, 'daily' or 'weekends')")
        a, b = _DAYS.index(ends[0]), _DAYS.index(ends[-1])
        out.update((a + i) % 7 for i in range((b - a) % 7 + 1))  # fri-mon wraps the week
    return out


def _format_days(days: frozenset[int]) -> str:
    if len(days) == 7:
        return "daily"
    parts, run = [], []
    for d in range(8):
        if d < 7 and d in days:
            run.append(d)
            continue
        if len(run) > 2:
            parts.append(f"{_DAYS[run[0]]}-{_DAYS[run[-1]]}")
        else:
            parts += [_DAYS[x] for x in run]
        run = []
    return ",".join(parts)


# -- rules -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    verdict: Verdict
    app: AppMatch = AppMatch()
    kind: DeviceKind | None = None  # None: camera and microphone
    user: str | None = None  # None: any user
    window: Window | None = None  # None: at any time
    duration: Duration = Duration.ALWAYS
    created_at: float = 0.0
    label: str = ""
    origin: Origin = Origin.USER

    @property
    def expires_at(self) -> float | None:
        secs = self.duration.seconds
        return None if secs is None else self.created_at + secs

    def active(self, now: float) -> bool:
        end = self.expires_at
        return end is None or now < end

    @property
    def specificity(self) -> tuple[int, int, int, int]:
        return (self.app.rank, self.user is not None, self.kind is not None,
                self.window is not None)

    @property
    def name(self) -> str:
        """What a person calls it: the label, else a description."""
        return literal(self.label, 200) if self.label else self.describe()

    def describe(self) -> str:
        kind = self.kind.value if self.kind else "camera and microphone"
        parts = [f"{self.verdict.value} {kind} for {self.app.describe()}"]
        if self.user is not None:
            parts.append(f"user {literal(self.user, 64)}")
        if self.window is not None:
            parts.append(str(self.window))
        text = ", ".join(parts)
        return text if self.duration is Duration.ALWAYS else f"{text} ({self.duration.value})"


def rule_id(rule: Rule) -> str:
    """A stable id from the rule's content (the same rule made twice gets the same id)."""
    a = rule.app
    fields = [rule.verdict.value, a.by.value, a.value, a.sha256, rule.kind, rule.user,
              None if rule.window is None else str(rule.window), rule.duration.value,
              rule.created_at, rule.label]
    blob = json.dumps(fields, ensure_ascii=True).encode("utf-8", "surrogatepass")
    import hashlib  # here: ~3 ms at import that reading rules does not need (issue 16)

    return hashlib.sha256(blob).hexdigest()[:12]


def make_rule(verdict: Verdict | str, *, app: AppMatch = AppMatch(),
              kind: DeviceKind | str | None = None, user: str | None = None,
              window: Window | str | None = None, duration: Duration | str = Duration.ALWAYS,
              created_at: float = 0.0, label: str = "", origin: Origin = Origin.USER) -> Rule:
    """Build and validate a rule; raises :class:`RuleError` with a readable message."""
    try:
        v = Verdict(verdict)
    except ValueError:
        raise RuleError(f"unknown verdict {literal(str(verdict), 40)!r} "
                        f"(use {', '.join(Verdict)})") from None
    try:
        d = Duration(duration)
    except ValueError:
        raise RuleError(f"unknown duration {literal(str(duration), 40)!r} "
                        f"(use {', '.join(Duration)})") from None
    k: DeviceKind | None = None
    if kind not in (None, "any"):
        try:
            k = DeviceKind(kind)
        except ValueError:
            raise RuleError(f"unknown device {literal(str(kind), 40)!r} "
                            "(use camera, microphone or any)") from None
    if user is not None and (not user or len(user) > 256 or "\x00" in user):
        raise RuleError("a user must be a non-empty name")
    if len(label) > 200 or "\x00" in label:
        raise RuleError("a label must be at most 200 characters")
    if not math.isfinite(created_at) or created_at < 0:
        raise RuleError("created_at must be a time (seconds since 1970)")
    win = Window.parse(window) if isinstance(window, str) else window
    rule = Rule("", v, app, k, user, win, d, float(created_at), label, origin)
    return replace(rule, id=rule_id(rule))


# -- rule lists in a running camguard ---------------------------------------------------------
def prune(rules: Iterable[Rule], now: float) -> list[Rule]:
    """Drop rules whose time is up."""
    return [r for r in rules if r.active(now)]


def durable(rules: Iterable[Rule]) -> list[Rule]:
    """The rules that belong in the rules file ("once" and "until-restart" never do)."""
    return [r for r in rules if r.duration.durable]
