"""The unified-log parser against constructed captures of each macOS version's wording
(tests/data/macos/README.md): what must match, what must not, and an unknown wording that
must give nothing rather than a wrong pid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from camguard.core.models import DeviceKind
from camguard.platform.macos.logparse import (
    MAX_LINE,
    Confidence,
    OwnerEvidence,
    Pattern,
    parse_line,
    parse_version,
    plan_for,
    unknown_note,
)

DATA = Path(__file__).parent.parent / "data" / "macos"
CAPTURES = ["log-14.json", "log-13.3.json", "log-12.json", "log-future.json"]


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return doc


def expected(rows: list[list[Any]]) -> list[tuple[DeviceKind, int | None, bool, Pattern]]:
    return [(DeviceKind(k), pid, active, Pattern(p)) for k, pid, active, p in rows]


def got(found: list[OwnerEvidence]) -> list[tuple[DeviceKind, int | None, bool, Pattern]]:
    return [(e.kind, e.pid, e.active, e.pattern) for e in found]


@pytest.mark.parametrize("name", CAPTURES)
def test_each_capture_gives_exactly_the_documented_evidence(name: str) -> None:
    doc = load(name)
    version = parse_version(doc["macos"])
    assert version is not None
    plan = plan_for(version)
    assert plan is not None
    for case in doc["cases"]:
        assert got(parse_line(case["ndjson"], plan)) == expected(case["expect"]), case["why"]


def test_a_future_wording_gives_unknown_never_a_pid() -> None:
    plan = plan_for((26, 1))
    assert plan is not None
    for case in load("log-future.json")["cases"]:
        assert parse_line(case["ndjson"], plan) == []
    assert unknown_note((26, 1)) == "unknown (macOS 26.1 log format not recognised)"


def test_patterns_are_tied_to_their_versions() -> None:
    """The 13.3 control-pid line on macOS 14 and the 14 endpoint line on 12 are not used."""
    v14, v133, v12 = (plan_for(v) for v in ((14, 5), (13, 4), (12, 6)))
    assert v14 is not None and v133 is not None and v12 is not None
    control = load("log-13.3.json")["cases"][0]["ndjson"]
    endpoint = load("log-14.json")["cases"][1]["ndjson"]
    status = load("log-12.json")["cases"][0]["ndjson"]
    assert parse_line(control, v14) == [] and parse_line(endpoint, v12) == []
    assert parse_line(status, v133) == [] and parse_line(status, v14) == []
    assert got(parse_line(endpoint.encode(), v14)) == [
        (DeviceKind.CAMERA, 901, True, Pattern.CMIO_ENDPOINT)]


def test_plans_ask_log_stream_for_the_right_level() -> None:
    v14, v133 = plan_for((14, 0)), plan_for((13, 3))
    assert v14 is not None and v133 is not None
    assert v14.argv()[:4] == ["/usr/bin/log", "stream", "--style", "ndjson"]
    assert "--level" not in v14.argv()
    assert v133.argv()[-2:] == ["--level", "debug"]  # the control pid is a debug message
    assert plan_for((10, 15)) is None
    assert parse_line(load("log-14.json")["cases"][1]["ndjson"], v133) == []


def test_confidence_says_how_direct_the_evidence_is() -> None:
    e = OwnerEvidence(DeviceKind.CAMERA, 1, True, Pattern.CMIO_CONTROL_PID)
    assert e.confidence is Confidence.HIGH
    assert OwnerEvidence(DeviceKind.CAMERA, 1, True, Pattern.CMIO_ENDPOINT).confidence \
        is Confidence.MEDIUM


@pytest.mark.parametrize(("text", "version"), [
    ("14.2.1", (14, 2)), ("15.0", (15, 0)), ("26", (26, 0)), (" 13.3\n", (13, 3)),
    ("", None), ("14.x", None), ("1" * 50, None), ("14.2; rm -rf /", None)])
def test_sw_vers_output_is_parsed_strictly(text: str, version: tuple[int, int] | None) -> None:
    assert parse_version(text) == version


def test_hostile_and_oversized_lines_give_nothing() -> None:
    plan = plan_for((14, 5))
    assert plan is not None
    line = json.loads(load("log-14.json")["cases"][1]["ndjson"])
    huge = dict(line, eventMessage=line["eventMessage"] + " " * MAX_LINE)
    assert parse_line(json.dumps(huge), plan) == []
    for bad in (dict(line, eventMessage=7), dict(line, subsystem=None),
                dict(line, senderImagePath=None, processImagePath="/tmp/x"),
                dict(line, senderImagePath="/System/../Users/m/evil")):
        assert parse_line(json.dumps(bad), plan) == [], bad
    assert parse_line(b"\xff\xfe{", plan) == []
