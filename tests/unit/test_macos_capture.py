"""Sessions from a saved ``log show --style ndjson`` capture: the constructed lines of every
macOS era (tests/data/macos) concatenated, as a forensics file would hold them."""

from __future__ import annotations

import json
from pathlib import Path

from camguard.core.models import DeviceKind
from camguard.platform.macos.capture import read_capture, sessions

DATA = Path(__file__).parent.parent / "data" / "macos"


def lines(name: str) -> list[str]:
    doc = json.loads((DATA / name).read_text(encoding="utf-8"))
    return [case["ndjson"] for case in doc["cases"]]


def summary(found: list[object]) -> list[tuple[str, int, str, bool]]:
    return [(s.kind.value, s.pid, s.pattern.value, s.ended is not None)  # type: ignore[attr-defined]
            for s in found]


def test_each_era_gives_its_sessions_with_the_pattern_that_matched() -> None:
    assert summary(sessions(lines("log-14.json"))) == [
        ("camera", 901, "cmio-endpoint", True),  # the lone endpoint's removal ends it
        ("microphone", 17873, "coremedia-session", False)]  # the log never says when it ends
    # A capture does not say its macOS version, so the 14+ line kept in the 13.3 file (as
    # one that must not count on a live 13.x) is a session here.
    assert summary(sessions(lines("log-13.3.json"))) == [
        ("camera", 90429, "cmio-control-pid", True), ("camera", 901, "cmio-endpoint", False)]
    assert summary(sessions(lines("log-12.json"))) == [
        ("camera", 5512, "systemstatus-attribution", True),
        ("microphone", 777, "systemstatus-attribution", True)]
    assert sessions(lines("log-future.json")) == []


def test_a_whole_capture_file_with_banner_and_oversized_lines(tmp_path: Path) -> None:
    capture = tmp_path / "capture.ndjson"
    body = ["Timestamp                       Thread     Type        Activity", "{" * 70_000]
    body += lines("log-13.3.json")[:1] + lines("log-14.json")
    capture.write_text("\n".join(body) + "\n", encoding="utf-8")
    found = read_capture(capture)
    assert [s.as_json() for s in found][:1] == [{
        "kind": "camera", "pid": 90429, "pattern": "cmio-control-pid", "confidence": "high",
        "started": "2023-06-01 09:00:00.000000-0700", "ended": None}]
    assert [(s.kind, s.pid) for s in found] == [
        (DeviceKind.CAMERA, 90429), (DeviceKind.CAMERA, 901), (DeviceKind.MICROPHONE, 17873)]
    # "removed endpoint" ends the lone endpoint session, never the control-pid one.
    assert found[1].ended is not None and found[0].ended is None


def test_a_new_controller_ends_the_previous_one() -> None:
    first, released = lines("log-13.3.json")[:2]
    second = first.replace("= 90429;", "= 90500;")
    found = sessions([first, second, released])
    assert summary(found) == [("camera", 90429, "cmio-control-pid", True),
                              ("camera", 90500, "cmio-control-pid", True)]
    assert found[0].ended == found[1].started


def test_removed_endpoint_with_two_open_ends_neither() -> None:
    one = lines("log-14.json")[1]
    two = one.replace("{private}901]", "{private}902]")
    removed = lines("log-14.json")[8]
    found = sessions([one, two, removed])
    assert [(s.pid, s.ended) for s in found] == [(901, None), (902, None)]
