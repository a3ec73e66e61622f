"""Core model, diff, merge, text rendering and JSON shapes: pure, no I/O."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camguard.core.diff import diff, index
from camguard.core.models import (
    Degraded,
    Device,
    DeviceKind,
    EventType,
    HealthEvent,
    ProcessRef,
    SourceSnapshot,
    Usage,
    UsageEvent,
)
from camguard.core.serialize import event_dict, rfc3339, state_dict
from camguard.core.state import merge
from camguard.core.text import json_safe, literal

CAM = Device(DeviceKind.CAMERA, "/dev/video0", name="Cam", path="/dev/video0")
MIC = Device(DeviceKind.MICROPHONE, "pulse:mic", name="Mic")


def proc(pid: int, ct: float = 1.0, name: str = "app") -> ProcessRef:
    return ProcessRef(pid=pid, create_time=ct, name=name, exe=f"/usr/bin/{name}")


def test_identity_ignores_descriptive_fields() -> None:
    assert Device(DeviceKind.CAMERA, "/dev/video0", name="A") == \
        Device(DeviceKind.CAMERA, "/dev/video0", name="B")
    assert proc(5, name="a") == proc(5, name="b")
    assert proc(5, ct=1.0) != proc(5, ct=2.0)  # a reused pid is another process
    assert Usage(CAM, proc(5), note="x") == Usage(CAM, proc(5), note="y")


def test_diff_started_stopped_and_pid_reuse() -> None:
    before = index([Usage(CAM, proc(5, 1.0)), Usage(MIC, proc(6))])
    after = [Usage(CAM, proc(5, 2.0)), Usage(MIC, proc(6))]
    events = diff(before, after, at=100.0, first_seen={Usage(CAM, proc(5, 1.0)).key: 90.0})
    assert [(e.type, e.usage.process.create_time) for e in events if e.usage.process] == [
        (EventType.STOPPED, 1.0), (EventType.STARTED, 2.0)]
    assert events[0].since == 90.0
    assert diff(index(after), after, at=1.0) == []


def test_unseen_process_usage_diffs_like_any_other() -> None:
    unseen = Usage(CAM, None, note="hidden")
    events = diff({}, [unseen], at=1.0)
    assert events[0].type is EventType.STARTED and events[0].usage.process is None
    assert diff(index([unseen]), [], at=2.0)[0].type is EventType.STOPPED


def test_merge_adds_devices_seen_only_through_usages_and_keeps_degraded() -> None:
    gone = Device(DeviceKind.CAMERA, "/dev/video9", name="(removed)")
    state = merge([SourceSnapshot("procfs", frozenset([CAM]), frozenset([Usage(gone, proc(1))])),
                   SourceSnapshot("pulse", degraded=Degraded("pulse", "down"))])
    assert [d.id for d in state.devices] == ["/dev/video0", "/dev/video9"]
    assert state.users_of(gone)[0].process == proc(1)
    assert state.degraded == (Degraded("pulse", "down"),)


@pytest.mark.parametrize(("raw", "shown"), [
    ("plain name", "plain name"),
    ("<b>bold</b>", "<b>bold</b>"),          # markup stays literal text
    ("esc\x1b[2J", "esc\\x1b[2J"),            # terminal escapes are made visible
    ("a\nb\tc\\", "a\\nb\\tc\\\\"),
    ("bidi\u202eevil", "bidi\\u202eevil"),    # right-to-left override cannot reorder
    ("bad\udcff", "bad\\xff"),                # surrogateescape'd byte 0xff
    ("c1\x9b", "c1\\x9b"),
])
def test_literal(raw: str, shown: str) -> None:
    assert literal(raw) == shown


def test_literal_limit_says_how_much_was_cut() -> None:
    out = literal("x" * 65536, limit=10)
    assert out.startswith("x" * 10) and "65536 characters" in out and len(out) < 40


@given(st.text())
def test_literal_is_always_printable_single_line(text: str) -> None:
    out = literal(text)
    assert "\n" not in out and "\x1b" not in out
    out.encode("utf-8")  # never a lone surrogate


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xDFFF)))
def test_json_safe_always_encodes(text: str) -> None:
    json.dumps(json_safe(text), ensure_ascii=False).encode("utf-8")


def test_rfc3339_is_utc_with_millis() -> None:
    assert rfc3339(0.0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1795391847.6129) == "2026-11-22T23:57:27.612Z"
    assert rfc3339(None) is None


def test_event_and_state_json_shapes() -> None:
    u = Usage(CAM, ProcessRef(7, 1.5, name="x\udcff", exe="/e", cmdline=("a",), user="u"))
    ev = event_dict(UsageEvent(EventType.STOPPED, u, at=10.0, since=4.0))
    assert ev["event"] == "stopped" and ev["kind"] == "camera" and ev["pid"] == 7
    assert ev["name"] == "x\\xff" and ev["duration_s"] == 6.0 and ev["device"] == "/dev/video0"
    h = event_dict(HealthEvent("pulse", Degraded("pulse", "gone"), at=1.0))
    assert h == {"event": "degraded", "source": "pulse", "reason": "gone",
                 "timestamp": "1970-01-01T00:00:01.000Z"}
    state = state_dict(merge([SourceSnapshot("procfs", frozenset([CAM, MIC]),
                                             frozenset([u, Usage(MIC, None, note="?")]))]))
    assert [d["kind"] for d in state["devices"]] == ["camera", "microphone"]
    assert state["devices"][0]["users"][0]["pid"] == 7
    assert state["devices"][1]["users"][0]["pid"] is None
    json.dumps(state, ensure_ascii=False).encode("utf-8")
