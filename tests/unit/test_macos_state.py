"""The macOS usage state machine replayed against constructed property/log/process-list
traces (tests/data/macos/trace-*.json), plus the rules the traces do not reach."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from camguard.core.models import DeviceKind, ProcessRef
from camguard.platform.macos.logparse import (
    OwnerEvidence,
    Pattern,
    parse_line,
    parse_version,
    plan_for,
)
from camguard.platform.macos.state import (
    ANY_MICROPHONE,
    MAX_OWNERS,
    AudioProcess,
    DeviceReading,
    MacUsageState,
    Result,
)

DATA = Path(__file__).parent.parent / "data" / "macos"
CAM = DeviceReading(DeviceKind.CAMERA, "cam0", "FaceTime HD Camera", True)
MIC = DeviceReading(DeviceKind.MICROPHONE, "mic0", "Microphone", True)


def describer(exited: set[int] = frozenset()) -> Any:  # type: ignore[assignment]
    def describe(pid: int) -> ProcessRef | None:
        return None if pid in exited else ProcessRef(pid, 1000.0 + pid, name=f"p{pid}")
    return describe


def summary(result: Result) -> list[tuple[str, int | None]]:
    return sorted(((u.device.id, None if u.process is None else u.process.pid)
                   for u in result.usages), key=repr)


@pytest.mark.parametrize("name", ["trace-14.5.json", "trace-13.4.json", "trace-12.6.json"])
def test_recorded_traces_give_the_expected_usages(name: str) -> None:
    doc = json.loads((DATA / name).read_text(encoding="utf-8"))
    version = parse_version(doc["macos"])
    assert version is not None
    plan = plan_for(version)
    assert plan is not None
    state = MacUsageState(version)
    describe = describer(set(doc.get("exited", [])))
    for step in doc["steps"]:
        now = step["t"]
        if "devices" in step:
            state.devices([DeviceReading(DeviceKind(d["kind"]), d["uid"], d["name"],
                                         d["running"]) for d in step["devices"]], now)
        if "processes" in step and doc["process_list"]:
            state.processes([AudioProcess(p["pid"], p["bundle"], p["running_input"])
                             for p in step["processes"]])
        if "log" in step:
            state.log(parse_line(step["log"], plan), now)
        result = state.result(now, describe)
        want = step["expect"]
        where = (name, now, step.get("_why", ""))
        assert summary(result) == sorted(((d, p) for d, p in want["usages"]), key=repr), where
        if "recheck" in want:
            assert (result.recheck_in is not None) is want["recheck"], where
        if "note" in want:
            assert {u.note for u in result.usages if u.process is None} == {want["note"]}, where


def test_the_process_list_beats_the_log_for_microphones() -> None:
    s = MacUsageState((14, 5))
    s.devices([MIC], 0.0)
    s.log([OwnerEvidence(DeviceKind.MICROPHONE, 50, True, Pattern.COREMEDIA_SESSION)], 0.1)
    s.processes([AudioProcess(60, "us.zoom.xos\x1b[31m", True)])
    r = s.result(0.2, describer())
    assert summary(r) == [("coreaudio:mic0", 60)]
    (usage,) = r.usages
    assert usage.via == "coreaudio-process" and "\x1b" not in usage.note
    assert "us.zoom.xos" in usage.note and "high" in usage.note


def test_the_process_list_names_a_recorder_before_any_device_says_so() -> None:
    s = MacUsageState((14, 5))
    s.devices([DeviceReading(DeviceKind.MICROPHONE, "mic0", "Microphone", False)], 0.0)
    s.processes([AudioProcess(61, "", True), AudioProcess(62, "", False)])
    r = s.result(0.0, describer())
    assert [(u.device, u.process and u.process.pid) for u in r.usages] == [(ANY_MICROPHONE, 61)]


def test_a_running_microphone_nobody_in_the_list_claims_is_still_in_use() -> None:
    s = MacUsageState((14, 5))
    s.devices([MIC], 0.0)
    s.processes([])
    (usage,) = s.result(0.0, describer()).usages
    assert usage.process is None and "names no recording process" in usage.note


def test_two_running_cameras_each_get_the_owner_and_say_which_is_unknown() -> None:
    s = MacUsageState((14, 5))
    cam1 = DeviceReading(DeviceKind.CAMERA, "cam1", "Desk camera", True)
    s.devices([CAM, cam1], 0.0)
    s.log([OwnerEvidence(DeviceKind.CAMERA, 70, True, Pattern.CMIO_ENDPOINT)], 0.2)
    r = s.result(0.3, describer())
    assert summary(r) == [("cmio:cam0", 70), ("cmio:cam1", 70)]
    assert all("does not say which camera" in u.note for u in r.usages)


def test_an_os_without_a_known_format_says_unknown_at_once() -> None:
    s = MacUsageState((10, 15), log_known=False)
    s.devices([CAM], 0.0)
    r = s.result(0.0, describer())
    assert r.recheck_in is None
    assert [u.note for u in r.usages] == ["unknown (macOS 10.15 log format not recognised)"]


def test_a_log_flood_cannot_grow_the_owners_without_bound() -> None:
    s = MacUsageState((14, 5))
    s.devices([CAM], 0.0)
    for pid in range(1, 10_000):
        s.log([OwnerEvidence(DeviceKind.CAMERA, pid, True, Pattern.CMIO_ENDPOINT)], 0.1)
    assert len(s.result(0.2, describer()).usages) == MAX_OWNERS


def test_unplugging_the_only_camera_forgets_its_owners() -> None:
    s = MacUsageState((14, 5))
    s.devices([CAM], 0.0)
    s.log([OwnerEvidence(DeviceKind.CAMERA, 80, True, Pattern.CMIO_ENDPOINT)], 0.1)
    s.devices([], 1.0)
    assert s.result(1.0, describer()) == Result(frozenset(), frozenset(), None)
    s.devices([CAM], 2.0)
    r = s.result(2.0, describer())
    assert r.usages == frozenset() and r.recheck_in == pytest.approx(1.0)


def test_a_recorder_that_exited_since_the_list_was_read_is_dropped() -> None:
    s = MacUsageState((14, 5))
    s.devices([MIC], 0.0)
    s.processes([AudioProcess(90, "gone", True), AudioProcess(91, "here", True)])
    r = s.result(0.0, describer({90}))
    assert summary(r) == [("coreaudio:mic0", 91)]
