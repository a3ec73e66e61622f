"""The rules engine: precedence, durations, schedules and modes, table-driven, frozen clock."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from camguard.core.clock import FrozenClock
from camguard.core.decision import (
    Choice,
    UsageFacts,
    choice_of,
    consume,
    decide,
    decided_by,
    evaluate,
)
from camguard.core.models import Device, DeviceKind, ProcessRef, Usage
from camguard.core.rules import (
    AppMatch,
    Duration,
    MatchBy,
    Mode,
    Origin,
    Rule,
    RuleError,
    Verdict,
    Window,
    durable,
    make_rule,
    prune,
)

TZ = dt.timezone(dt.timedelta(hours=2))
MONDAY = dt.datetime(2026, 5, 4, tzinfo=TZ)  # a Monday, 00:00 local (+02:00)
ZOOM = "/usr/bin/zoom"
HASH_A, HASH_B = "a" * 64, "b" * 64
CAM, MIC = DeviceKind.CAMERA, DeviceKind.MICROPHONE
FACTS = UsageFacts(CAM, exe=ZOOM, sha256=HASH_A, name="zoom", user="alice", pid=42)


def at(day: int = 0, hh: int = 12, mm: int = 0) -> float:
    """Epoch seconds of ``day`` days after Monday 2026-05-04 at hh:mm local time."""
    return (MONDAY + dt.timedelta(days=day, hours=hh, minutes=mm)).timestamp()


def exe(sha: str = HASH_A, path: str = ZOOM) -> AppMatch:
    return AppMatch(MatchBy.EXE, path, sha)


def path(p: str = ZOOM) -> AppMatch:
    return AppMatch(MatchBy.PATH, p)


def name(n: str = "zoom") -> AppMatch:
    return AppMatch(MatchBy.NAME, n)


ANY = AppMatch()


def r(verdict: str, label: str, app: AppMatch = ANY, **kw: object) -> Rule:
    kw.setdefault("created_at", at(-1))
    return make_rule(verdict, app=app, label=label, **kw)  # type: ignore[arg-type]


def run(rules: list[Rule], facts: UsageFacts = FACTS, mode: Mode = Mode.ASK,
        now: float | None = None, tz: dt.tzinfo = TZ) -> tuple[Verdict, str | None, str]:
    d = decide(rules, facts, mode, FrozenClock(at(0, 17, 30) if now is None else now), tz)
    return d.verdict, None if d.rule is None else d.rule.label, d.explanation


# (rules, expected verdict, expected winning label): every line is one precedence fact.
PRECEDENCE = [
    pytest.param([], Verdict.ASK, None, id="no rules: ask"),
    pytest.param([r("allow", "exe", exe()), r("block-device", "name", name())],
                 Verdict.ALLOW, "exe", id="exe+hash beats name"),
    pytest.param([r("allow", "path", path()), r("kill", "any")],
                 Verdict.ALLOW, "path", id="path beats any app"),
    pytest.param([r("allow", "name", name()), r("kill", "any")],
                 Verdict.ALLOW, "name", id="name beats any app"),
    pytest.param([r("block-device", "exe", exe()), r("allow", "path", path())],
                 Verdict.BLOCK_DEVICE, "exe", id="exe+hash beats path"),
    pytest.param([r("kill", "other hash", exe(HASH_B)), r("allow", "path", path())],
                 Verdict.ALLOW, "path", id="a changed binary does not match its exe rule"),
    pytest.param([r("block-device", "dir", path("/usr/bin/")), r("allow", "exact", path())],
                 Verdict.ALLOW, "exact", id="exact path beats folder"),
    pytest.param([r("allow", "folder", path("/usr/bin/")), r("kill", "name", name())],
                 Verdict.ALLOW, "folder", id="folder beats name"),
    pytest.param([r("allow", "a", exe()), r("kill", "k", exe())],
                 Verdict.KILL, "k", id="equal: kill beats allow"),
    pytest.param([r("kill", "k", exe()), r("block-device", "b", exe())],
                 Verdict.BLOCK_DEVICE, "b", id="equal: block-device beats kill"),
    pytest.param([r("allow", "a", path()), r("ask", "q", path())],
                 Verdict.ASK, "q", id="equal: ask beats allow"),
    pytest.param([r("block-device", "anyone", exe()), r("allow", "alice", exe(), user="alice")],
                 Verdict.ALLOW, "alice", id="user-specific beats any user"),
    pytest.param([r("block-device", "both", exe()), r("allow", "cam", exe(), kind="camera")],
                 Verdict.ALLOW, "cam", id="device-specific beats any device"),
    pytest.param([r("allow", "always", exe(), kind="camera"),
                  r("block-device", "evenings", exe(), kind="camera",
                    window="mon-fri 16:00-19:00")],
                 Verdict.BLOCK_DEVICE, "evenings", id="windowed beats unwindowed"),
    pytest.param([r("block-device", "cams", exe(), kind="camera"),
                  r("allow", "alice", exe(), user="alice")],
                 Verdict.ALLOW, "alice", id="the user outranks the device"),
    pytest.param([r("allow", "cams", exe(), kind="camera"),
                  r("kill", "evenings", exe(), window="mon-fri 16:00-19:00")],
                 Verdict.ALLOW, "cams", id="the device outranks the window"),
    pytest.param([r("allow", "alice by name", name(), user="alice", kind="camera"),
                  r("kill", "binary", exe())],
                 Verdict.KILL, "binary", id="the app outranks user and device"),
    pytest.param([r("allow", "mic only", exe(), kind="microphone")],
                 Verdict.ASK, None, id="a microphone rule does not cover the camera"),
    pytest.param([r("allow", "bob", exe(), user="bob")],
                 Verdict.ASK, None, id="another user's rule does not apply"),
    pytest.param([r("block-device", "it", origin=Origin.POLICY), r("allow", "mine", exe())],
                 Verdict.BLOCK_DEVICE, "it", id="policy beats a more lenient user rule"),
    pytest.param([r("allow", "it", exe(), origin=Origin.POLICY), r("kill", "mine")],
                 Verdict.KILL, "mine", id="the user may be stricter than the policy"),
    pytest.param([r("ask", "it", origin=Origin.POLICY), r("allow", "mine", exe())],
                 Verdict.ASK, "it", id="policy ask beats user allow"),
    pytest.param([r("allow", "old", exe(), created_at=at(-9)),
                  r("allow", "new", exe(), created_at=at(-2))],
                 Verdict.ALLOW, "new", id="equal in all: the newest is named"),
]


@pytest.mark.parametrize(("rules", "verdict", "label"), PRECEDENCE)
def test_precedence(rules: list[Rule], verdict: Verdict, label: str | None) -> None:
    got, winner, _ = run(rules)
    assert (got, winner) == (verdict, label)
    # The order rules are given in never matters.
    assert run(list(reversed(rules)))[:2] == (verdict, label)


def test_explanations_name_the_rule() -> None:
    rule = r("block-device", "no camera after 21:00", kind="camera", window="daily 21:00-24:00")
    verdict, _, why = run([rule], now=at(0, 21, 30))
    assert verdict is Verdict.BLOCK_DEVICE
    assert why == "camera blocked by rule 'no camera after 21:00'"
    assert run([r("allow", "zoom", exe())])[2] == "allowed by rule 'zoom'"
    assert run([])[2] == "no rule matches; asking (mode ask)"
    # An unlabelled rule is described instead; a policy rule says so.
    pol = make_rule("kill", app=exe(), kind="camera", origin=Origin.POLICY)
    assert run([pol])[2] == f"killed by rule 'kill camera for {ZOOM} (sha256 aaaaaaaaaaaa…)' " \
                            "(policy)"


def test_changed_binary_is_noted() -> None:
    d = decide([r("allow", "zoom", exe(HASH_B))], FACTS, Mode.ASK, FrozenClock(at()), TZ)
    assert d.verdict is Verdict.ASK and d.rule is None
    (note,) = d.notes
    assert "rule 'zoom' not applied" in note and "changed" in note
    unread = UsageFacts(CAM, exe=ZOOM, sha256=None, name="zoom")
    d = decide([r("allow", "zoom", exe())], unread, Mode.ASK, FrozenClock(at()), TZ)
    assert d.verdict is Verdict.ASK and "could not be read" in d.notes[0]


# (duration, seconds after creation, still in force?)
DURATIONS = [
    ("15m", 0, True), ("15m", 899, True), ("15m", 900, False), ("15m", 10**6, False),
    ("1h", 3599, True), ("1h", 3600, False),
    ("always", 10 * 365 * 86400, True),
    ("until-restart", 10 * 365 * 86400, True),  # until restart: as long as memory holds it
    ("once", 10 * 365 * 86400, True),  # until it is used
]


@pytest.mark.parametrize(("duration", "after", "alive"), DURATIONS)
def test_durations(duration: str, after: int, alive: bool) -> None:
    created = at(0, 10)
    rule = r("kill", "timed", exe(), duration=duration, created_at=created)
    verdict, label, _ = run([rule], now=created + after)
    assert (verdict is Verdict.KILL) is alive
    assert (label == "timed") is alive
    assert (prune([rule], created + after) == [rule]) is alive
    assert rule.expires_at == (None if Duration(duration).seconds is None
                               else created + Duration(duration).seconds)  # type: ignore[operator]


def test_once_is_spent_and_ephemeral_rules_are_not_durable() -> None:
    once = r("allow", "once", exe(), duration="once")
    keep = r("kill", "keep", name())
    clock = FrozenClock(at())
    d = decide([once, keep], FACTS, Mode.ASK, clock, TZ)
    assert d.rule == once
    left = consume([once, keep], d)
    assert left == [keep]
    assert decide(left, FACTS, Mode.ASK, clock, TZ).verdict is Verdict.KILL
    assert consume(left, decide(left, FACTS, Mode.ASK, clock, TZ)) == [keep]  # not "once"
    restart = r("allow", "session", duration="until-restart")
    timed = r("allow", "t", duration="15m")
    assert durable([once, restart, timed, keep]) == [timed, keep]


# (window, day after Monday, hh, mm, inside?)
SCHEDULES = [
    ("mon-fri 16:00-19:00", 0, 16, 0, True), ("mon-fri 16:00-19:00", 0, 15, 59, False),
    ("mon-fri 16:00-19:00", 0, 19, 0, False), ("mon-fri 16:00-19:00", 4, 18, 59, True),
    ("mon-fri 16:00-19:00", 5, 17, 0, False),
    ("daily 21:00-06:00", 0, 21, 0, True), ("daily 21:00-06:00", 1, 5, 59, True),
    ("daily 21:00-06:00", 1, 6, 0, False), ("daily 21:00-06:00", 0, 20, 59, False),
    ("fri 22:00-02:00", 4, 23, 0, True), ("fri 22:00-02:00", 5, 1, 0, True),
    ("fri 22:00-02:00", 5, 22, 30, False), ("fri 22:00-02:00", 3, 23, 0, False),
    ("fri 22:00-02:00", 4, 1, 0, False),
    ("sat,sun", 5, 0, 0, True), ("sat,sun", 6, 23, 59, True), ("sat,sun", 7, 0, 0, False),
    ("weekends", 6, 12, 0, True), ("weekdays", 6, 12, 0, False),
    ("21:00-24:00", 0, 23, 59, True), ("21:00-24:00", 1, 0, 0, False),
    ("fri-mon", 6, 9, 0, True), ("fri-mon", 0, 9, 0, True), ("fri-mon", 1, 9, 0, False),
]


@pytest.mark.parametrize(("window", "day", "hh", "mm", "inside"), SCHEDULES)
def test_schedules(window: str, day: int, hh: int, mm: int, inside: bool) -> None:
    rule = r("block-device", "sched", kind="camera", window=window)
    verdict, _, _ = run([rule], now=at(day, hh, mm))
    assert (verdict is Verdict.BLOCK_DEVICE) is inside
    # The same instant seen from UTC is two hours earlier: the tz is really used.
    utc_local = dt.datetime.fromtimestamp(at(day, hh, mm), dt.UTC)
    expected_utc = Window.parse(window).contains(utc_local.weekday(),
                                                 utc_local.hour * 60 + utc_local.minute)
    assert (run([rule], now=at(day, hh, mm), tz=dt.UTC)[0] is Verdict.BLOCK_DEVICE) \
        is expected_utc


def test_schedule_follows_daylight_saving_time() -> None:
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    rule = r("block-device", "morning", window="daily 08:00-09:00")
    # 2026-03-29 is the day Berlin moves from +01:00 to +02:00: 06:30 UTC is 08:30 local,
    # while the day before the same UTC time was 07:30 local.
    after = dt.datetime(2026, 3, 29, 6, 30, tzinfo=dt.UTC).timestamp()
    assert run([rule], now=after, tz=berlin)[0] is Verdict.BLOCK_DEVICE
    assert run([rule], now=after - 86400, tz=berlin)[0] is Verdict.ASK


@pytest.mark.parametrize("text", ["mon-fri 16:00-19:00", "sat,sun", "daily 21:00-06:00",
                                  "mon,wed,fri 08:30-09:15", "mon,fri-sun", "daily"])
def test_window_text_round_trips(text: str) -> None:
    w = Window.parse(text)
    assert str(w) == text
    assert Window.parse(str(w)) == w


@pytest.mark.parametrize("text", ["", "funday", "mon-fri 25:00-26:00", "mon 10:00-10:00",
                                  "mon-fri 16:00", "a b c", "24:00-02:00", "mon--fri",
                                  "mon-fri 16:00-19:00 extra"])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(RuleError, match=r"not a time window|unknown day|bad hours"):
        Window.parse(text)


# (mode, rules, verdict, would)
MODES = [
    (Mode.ASK, [], Verdict.ASK, None),
    (Mode.BLOCK_ALL, [], Verdict.BLOCK_DEVICE, None),
    (Mode.BLOCK_ALL, [r("allow", "ok", exe())], Verdict.ALLOW, None),
    (Mode.BLOCK_ALL, [r("ask", "q", exe())], Verdict.ASK, None),
    (Mode.NOTIFY_ONLY, [], Verdict.ALLOW, Verdict.ASK),
    (Mode.NOTIFY_ONLY, [r("block-device", "b", exe())], Verdict.ALLOW, Verdict.BLOCK_DEVICE),
    (Mode.NOTIFY_ONLY, [r("kill", "k", exe())], Verdict.ALLOW, Verdict.KILL),
    (Mode.NOTIFY_ONLY, [r("allow", "a", exe())], Verdict.ALLOW, None),
]


@pytest.mark.parametrize(("mode", "rules", "verdict", "would"), MODES)
def test_modes(mode: Mode, rules: list[Rule], verdict: Verdict, would: Verdict | None) -> None:
    d = decide(rules, FACTS, mode, FrozenClock(at()), TZ)
    assert (d.verdict, d.would, d.mode) == (verdict, would, mode)
    if would is not None:
        assert "would have" in d.explanation and "only reporting" in d.explanation


def test_block_all_explains_itself() -> None:
    d = decide([], FACTS, Mode.BLOCK_ALL, FrozenClock(at()), TZ)
    assert d.explanation == "no rule allows it; camera blocked (mode block-all-not-allowed)"


def test_unseen_process_matches_only_any_app_rules() -> None:
    usage = Usage(Device(CAM, "/dev/video0"), None)
    facts = UsageFacts.from_usage(usage)
    rules = [r("allow", "zoom", exe()), r("allow", "n", name()),
             r("kill", "anything", kind="camera")]
    assert run(rules, facts)[:2] == (Verdict.KILL, "anything")
    seen = UsageFacts.from_usage(Usage(Device(CAM, "/dev/video0"), ProcessRef(
        42, 1.0, "zoom", ZOOM, (), "alice")), HASH_A)
    assert seen == FACTS


def test_hostile_names_are_shown_literally() -> None:
    facts = UsageFacts(CAM, name="evil\x1b[31m\n")
    rule = make_rule("kill", app=name("evil\x1b[31m\n"), label="x\x1b]0;pwn\x07")
    _, _, why = run([rule], facts)
    assert "\x1b" not in why and "\x07" not in why and "\\x1b" in why


BAD_RULES = [
    ({"verdict": "nuke"}, "unknown verdict"),
    ({"verdict": "allow", "duration": "2d"}, "unknown duration"),
    ({"verdict": "allow", "kind": "speaker"}, "unknown device"),
    ({"verdict": "allow", "app": AppMatch(MatchBy.ANY), "user": ""}, "user"),
    ({"verdict": "allow", "window": "someday"}, "unknown day"),
    ({"verdict": "allow", "created_at": float("nan")}, "created_at"),
    ({"verdict": "allow", "label": "x" * 201}, "label"),
]


@pytest.mark.parametrize(("kw", "message"), BAD_RULES)
def test_make_rule_refuses_bad_values(kw: dict[str, object], message: str) -> None:
    with pytest.raises(RuleError, match=message):
        make_rule(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("args", "message"), [
    ((MatchBy.EXE, ZOOM, None), "SHA-256"),
    ((MatchBy.EXE, ZOOM, "A" * 64), "SHA-256"),  # uppercase is normalised by the parser
    ((MatchBy.EXE, "zoom", HASH_A), "absolute"),
    ((MatchBy.PATH, "bin/zoom", None), "absolute"),
    ((MatchBy.PATH, ZOOM, HASH_A), "sha256 only"),
    ((MatchBy.NAME, "", None), "empty"),
    ((MatchBy.ANY, "x", None), "no path"),
])
def test_app_match_is_validated(args: tuple[MatchBy, str, str | None], message: str) -> None:
    with pytest.raises(RuleError, match=message):
        AppMatch(*args)


def test_windows_paths_are_absolute_too() -> None:
    assert AppMatch(MatchBy.PATH, "C:\\Program Files\\Zoom\\").rank == 2
    assert AppMatch(MatchBy.EXE, "C:\\Zoom\\zoom.exe", HASH_A).rank == 4


# -- the one engine: evaluate, the recorded vocabulary, "who decided" ---------------------------
class _Source:
    def __init__(self, rules: list[Rule], mode: Mode = Mode.ASK) -> None:
        self.rules, self.mode, self.spent = rules, mode, []  # type: list[Rule]

    def current(self) -> tuple[list[Rule], Mode]:
        return [x for x in self.rules if x not in self.spent], self.mode

    def spend(self, rule: Rule) -> None:
        self.spent.append(rule)


def test_evaluate_hashes_only_for_an_exe_rule_and_spends_a_once_rule() -> None:
    zoom = ProcessRef(42, 1.0, "zoom", ZOOM, (), "alice")
    usage = Usage(Device(CAM, "/dev/video0"), zoom)
    hashed: list[int] = []

    def hasher(p: ProcessRef) -> str:
        hashed.append(p.pid)
        return HASH_A

    clock = FrozenClock(at(0, 12))
    once = r("kill", "once", name(), duration="once")
    source = _Source([once])
    assert evaluate(source, usage, clock, TZ, hasher).verdict is Verdict.KILL
    assert hashed == [] and source.spent == [once]
    assert evaluate(source, usage, clock, TZ, hasher).verdict is Verdict.ASK
    d = evaluate(_Source([r("allow", "", exe())]), usage, clock, TZ, hasher)
    assert d.verdict is Verdict.ALLOW and hashed == [42]


def test_one_vocabulary_and_one_who_decided_for_the_tray_and_the_service() -> None:
    clock = FrozenClock(at(0, 12))
    kill = decide([r("kill", "no zoom", name())], FACTS, Mode.ASK, clock, TZ)
    assert (choice_of(kill), decided_by(kill)) == (Choice.KILL, "rule:no zoom")
    allow = decide([r("allow", "", name())], FACTS, Mode.ASK, clock, TZ)
    assert allow.rule is not None
    assert (choice_of(allow), decided_by(allow)) == (Choice.ALLOW_ONCE, f"rule:{allow.rule.id}")
    policy = decide([r("block-device", "it", origin=Origin.POLICY)], FACTS, Mode.ASK, clock, TZ)
    assert (choice_of(policy), decided_by(policy)) == (Choice.BLOCK, "rule:it (policy)")
    ask = decide([], FACTS, Mode.ASK, clock, TZ)
    assert (choice_of(ask), decided_by(ask)) == (None, "mode:ask")


@pytest.mark.parametrize(("admins", "mode", "mine", "verdict", "label"), [
    # Where the administrator's side would only ask, the account's rule is its answer.
    ([], Mode.ASK, [r("allow", "mine", name())], Verdict.ALLOW, "mine"),
    ([], Mode.ASK, [r("kill", "mine", name())], Verdict.KILL, "mine"),
    # Stricter than an administrator's rule: the account's wins.
    ([r("allow", "theirs", name())], Mode.ASK, [r("kill", "mine", name())], Verdict.KILL,
     "mine"),
    # More lenient than an administrator's rule, or than block-all: never.
    ([r("kill", "theirs", name())], Mode.ASK, [r("allow", "mine", exe())], Verdict.KILL,
     "theirs"),
    ([], Mode.BLOCK_ALL, [r("allow", "mine", exe())], Verdict.BLOCK_DEVICE, None),
    ([r("ask", "theirs", name())], Mode.ASK, [r("allow", "mine", name())], Verdict.ASK,
     "theirs"),
    # Notify-only reports; a person may still end their own program.
    ([], Mode.NOTIFY_ONLY, [r("kill", "mine", name())], Verdict.KILL, "mine"),
    ([], Mode.NOTIFY_ONLY, [r("allow", "mine", name())], Verdict.ALLOW, None),
    # Rules of the account that do not match change nothing.
    ([], Mode.ASK, [r("kill", "mine", name("skype"))], Verdict.ASK, None),
])
def test_an_accounts_own_rules_are_only_ever_its_answer_or_stricter(
        admins: list[Rule], mode: Mode, mine: list[Rule], verdict: Verdict,
        label: str | None) -> None:
    usage = Usage(Device(CAM, "/dev/video0"), ProcessRef(42, 1.0, "zoom", ZOOM, (), "alice"))
    d = evaluate(_Source(admins, mode), usage, FrozenClock(at(0, 12)), TZ,
                 lambda _p: HASH_A, account=mine)
    assert d.verdict is verdict
    assert (None if d.rule is None else d.rule.label) == label
    if label == "mine":
        assert decided_by(d) == "rule:mine" and d.mode is mode
