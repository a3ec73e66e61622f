"""core.script: which script a command line asks an interpreter to run; script rules."""

from __future__ import annotations

import pytest

from camguard.core.clock import FrozenClock
from camguard.core.decision import UsageFacts, decide
from camguard.core.models import DeviceKind
from camguard.core.rules import AppMatch, MatchBy, Mode, RuleError, Verdict, make_rule
from camguard.core.rules_json import rule_from_json, rule_to_json
from camguard.core.script import interpreter_family, script_argument

SHA_A, SHA_B = "a" * 64, "b" * 64


@pytest.mark.parametrize(("exe", "cmdline", "script"), [
    ("/usr/bin/python3.11", ("python3", "cam.py", "--x"), "cam.py"),
    ("/usr/bin/python3", ("python3", "-u", "-W", "ignore", "/srv/a.py"), "/srv/a.py"),
    ("/usr/bin/python3", ("python3", "-Wignore::DeprecationWarning", "a.py"), "a.py"),
    ("/usr/bin/python3", ("python3", "-X", "dev", "-B", "a.py"), "a.py"),
    ("/usr/bin/python3", ("python3", "-m", "http.server", "8000"), "-m http.server"),
    ("/usr/bin/python3", ("python3", "-mhttp.server"), "-m http.server"),
    ("/usr/bin/python3", ("python3", "-c", "import x", "a.py"), None),
    ("/usr/bin/python3", ("python3", "-", "a.py"), None),
    ("/usr/bin/python3", ("python3",), None),
    ("/usr/bin/python3", ("python3", "-i"), None),
    ("/usr/bin/node", ("node", "--inspect", "-r", "ts-node/register", "app.js"), "app.js"),
    ("/usr/bin/node", ("node", "--require=x", "app.js"), "app.js"),
    ("/usr/bin/node", ("node", "-e", "1", "app.js"), None),
    ("/usr/bin/bash", ("bash", "-x", "-o", "pipefail", "run.sh", "arg"), "run.sh"),
    ("/usr/bin/dash", ("sh", "-ec", "echo", "x.sh"), None),
    ("/usr/bin/bash", ("bash", "-c", "run.sh"), None),
    ("/usr/bin/bash", ("bash", "--", "run.sh"), "run.sh"),
    ("/usr/bin/perl", ("perl", "-w", "-I", "lib", "t.pl"), "t.pl"),
    ("/usr/bin/perl", ("perl", "-ne", "print", "t.pl"), None),
    ("/usr/bin/ruby3.1", ("ruby", "-r", "json", "r.rb"), "r.rb"),
    ("/usr/bin/ruby", ("ruby", "-e", "p 1"), None),
    ("/usr/bin/firefox", ("firefox", "page.html"), None),  # not an interpreter
    ("/usr/bin/pythonista", ("pythonista", "a.py"), None),
    ("", ("/usr/bin/python3", "a.py"), "a.py"),  # exe unreadable: argv[0] names it
    ("/usr/bin/python3", ("python3", "a\x00b.py"), None),
    ("/usr/bin/python3", ("python3", *["-u"] * 100_000, "a.py"), None),  # bounded
])
def test_script_argument(exe: str, cmdline: tuple[str, ...], script: str | None) -> None:
    assert script_argument(exe, cmdline) == script


def test_families() -> None:
    assert [interpreter_family(e) for e in ("/usr/bin/python3.12", "/usr/bin/nodejs",
                                            "/bin/zsh", "/usr/bin/perl5.36.0", "/bin/ls")] \
        == ["python", "node", "shell", "perl", None]


def test_a_script_rule_needs_an_absolute_path_and_a_hash_and_round_trips() -> None:
    with pytest.raises(RuleError, match="SHA-256"):
        AppMatch(MatchBy.SCRIPT, "/home/u/cam.py")
    with pytest.raises(RuleError, match="absolute"):
        AppMatch(MatchBy.SCRIPT, "cam.py", SHA_A)
    rule = make_rule(Verdict.ALLOW, app=AppMatch(MatchBy.SCRIPT, "/home/u/cam.py", SHA_A))
    assert rule_from_json(rule_to_json(rule)) == rule
    assert "the script /home/u/cam.py" in rule.describe()


def facts(script: str, sha: str | None) -> UsageFacts:
    return UsageFacts(DeviceKind.CAMERA, "/usr/bin/python3", "c" * 64, "python3", "u", 7,
                      script=script, script_sha256=sha)


def test_a_script_rule_matches_its_script_only_and_beats_the_interpreter_rule() -> None:
    clock = FrozenClock(1_800_000_000.0)
    script = make_rule(Verdict.ALLOW, app=AppMatch(MatchBy.SCRIPT, "/home/u/cam.py", SHA_A))
    python = make_rule(Verdict.KILL, app=AppMatch(MatchBy.EXE, "/usr/bin/python3", "c" * 64))
    rules = [script, python]
    assert decide(rules, facts("/home/u/cam.py", SHA_A), Mode.ASK, clock).rule == script
    assert decide(rules, facts("/home/u/other.py", SHA_A), Mode.ASK, clock).rule == python
    changed = decide([script], facts("/home/u/cam.py", SHA_B), Mode.ASK, clock)
    assert changed.verdict is Verdict.ASK
    assert "the script at /home/u/cam.py changed" in changed.notes[0]
    unread = decide([script], facts("/home/u/cam.py", None), Mode.ASK, clock)
    assert "could not be read" in unread.notes[0]
    assert decide([script], facts("-m cam", None), Mode.ASK, clock).rule is None


def test_history_details_name_the_script() -> None:
    from camguard.store.history_record import SessionRecord
    from camguard.ui.history_model import details_text

    def rec(cmdline: tuple[str, ...]) -> SessionRecord:
        return SessionRecord(1, DeviceKind.CAMERA, "/dev/video0", "Cam", 7, 1.0, "python3",
                             "/usr/bin/python3.11", None, "u", cmdline, (), 1.0, None, None,
                             None, None, "", None)

    shown = details_text(rec(("python3", "-u", "cam<b>.py", "--x")))
    assert "script: cam<b>.py\n" in shown
    assert "script:" not in details_text(rec(("python3", "-c", "pass")))
