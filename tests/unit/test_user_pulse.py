"""The service's parser of an account's ``service-pulse`` line (platform/linux/user_pulse.py):
hostile input, and pids the account's server claims that are not the account's."""

from __future__ import annotations

import json
import os

from camguard.core.models import ProcessRef, SourceSnapshot
from camguard.platform.linux.user_pulse import MAX_LINE, encode, parse_line

UID = 4242
OTHER = 4343
REFS = {100: ProcessRef(100, 1.0, name="parecord", exe="/usr/bin/pacat", user="kid"),
        200: ProcessRef(200, 2.0, name="victim", exe="/usr/bin/victim", user="other"),
        300: ProcessRef(300, 3.0, name="pulseaudio", exe="/usr/bin/pulseaudio", user="kid")}
OWNERS = {100: UID, 200: OTHER, 300: UID}


def parse(doc: object | bytes) -> SourceSnapshot:
    line = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return parse_line(line, "pulse:kid", UID, "kid", owner=OWNERS.get, describe=REFS.get)


def line(*usages: dict[str, object]) -> dict[str, object]:
    return {"ok": True, "devices": [{"id": "pulse:sinemic", "name": "Sine <b>mic</b>"}],
            "usages": list(usages)}


def test_the_accounts_own_recorder_is_named() -> None:
    snap = parse(line({"device": "pulse:sinemic", "pid": 100, "note": ""}))
    (u,) = snap.usages
    assert u.process == REFS[100] and u.via == "pulse" and u.device.source == "pulse:kid"
    assert u.note == "recording at the sound server of kid"
    assert snap.degraded is None and {d.id for d in snap.devices} == {"pulse:sinemic"}


def test_a_pid_of_another_account_is_not_believed() -> None:
    (u,) = parse(line({"device": "pulse:sinemic", "pid": 200, "note": "x"})).usages
    assert u.process is None
    assert "names pid 200, which is not a process of kid: not believed" in u.note


def test_the_sound_server_itself_and_vanished_or_invalid_pids_are_not_users() -> None:
    for pid, said in ((300, "the sound server itself"), (999, "not a process of kid"),
                      (True, "no valid pid"), (-1, "no valid pid"), ("100", "no valid pid"),
                      (2**40, "no valid pid")):
        (u,) = parse(line({"device": "pulse:sinemic", "pid": pid, "note": ""})).usages
        assert u.process is None and said in u.note, (pid, u.note)


def test_malformed_lines_are_said_never_raised() -> None:
    for bad in (b"", b"\xff\xfe", b"[" * 100_000, b"null", b'{"ok": 1}',
                json.dumps({"ok": True, "devices": {}, "usages": []}).encode(),
                b'{"ok": true, "devices": [], "usages": []}' + b" " * MAX_LINE):
        snap = parse(bad)
        assert snap.degraded is not None and not snap.usages, bad[:40]
    snap = parse({"ok": False, "reason": "\x1b[31mConnection refused" + "x" * 70_000})
    assert snap.degraded is not None and len(snap.degraded.reason) < 500
    assert "\x1b" not in snap.degraded.reason


def test_bad_entries_are_skipped_and_counts_bounded() -> None:
    doc = line({"device": "pulse:nosuch", "pid": 100, "note": ""},
               {"device": "pulse:sinemic", "pid": 100, "note": 5}, "junk",
               *({"device": "pulse:sinemic", "pid": None, "note": f"n{i}"}
                 for i in range(2000)))
    doc["devices"] = [{"id": "/dev/snd/x", "name": "not pulse"}, 7,
                      *({"id": f"pulse:m{i}", "name": ""} for i in range(400)),
                      {"id": "pulse:sinemic", "name": "late"}]
    snap = parse(doc)
    assert len(json.dumps(doc)) < MAX_LINE
    # The first 256 entries only (two of them malformed); "late" is past them, so every
    # usage names a microphone not taken.
    assert len(snap.devices) == 254 and not snap.usages, len(snap.devices)
    doc["devices"] = [{"id": "pulse:sinemic", "name": "mic"}]
    assert len(parse(doc).usages) == 1  # 1024 taken, all the same unseen use


def test_the_child_line_round_trips() -> None:
    snap = parse(line({"device": "pulse:sinemic", "pid": 100, "note": "claims <i>x</i>"}))
    again = parse(encode(snap).encode())
    assert again.usages == snap.usages and again.devices == snap.devices
    assert os.getuid() not in OWNERS.values()


def test_the_hidden_command_takes_nothing_or_once() -> None:
    from camguard.cli import main

    assert main(["service-pulse", "twice"]) == 2
