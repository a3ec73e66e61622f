"""pw_graph: pw-dump rounds folded into a graph, and the uses in it, against malformed and
hostile objects (a client controls its own properties). The describer is the real one,
over this test's own process and a sleeping child."""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from camguard.core.models import Device, DeviceKind
from camguard.platform.linux import pipewire, pw_graph
from camguard.platform.process import ProcessDescriber
from tests.realenv import bound_to_tests

ME = os.getpid()
ME_EXE = os.path.realpath(f"/proc/{ME}/exe")
# A real second process as the app (its exe is not the broker's: /usr/bin/sleep).
APP_PROC = subprocess.Popen(bound_to_tests(["sleep", "infinity"]))  # the whole run long
atexit.register(APP_PROC.kill)
APP_PID = APP_PROC.pid


def node(oid: int, client: int, **props: Any) -> dict[str, Any]:
    return {"id": oid, "type": pw_graph.NODE,
            "info": {"state": "running", "props": {"client.id": client, **props}}}


def client(oid: int, **props: Any) -> dict[str, Any]:
    return {"id": oid, "type": pw_graph.CLIENT, "info": {"props": props}}


def link(oid: int, out: int, inp: int, state: object = "active") -> dict[str, Any]:
    return {"id": oid, "type": pw_graph.LINK,
            "info": {"output-node-id": out, "input-node-id": inp, "state": state,
                     "props": {}}}


def graph(*rounds: list[Any]) -> pw_graph.Objects:
    objects: pw_graph.Objects = {}
    for r in rounds:
        pw_graph.apply(objects, r)
    return objects


CAMERA = node(40, 30, **{"media.class": "Video/Source", "node.name": "v4l2_input.pci",
                         "node.description": "Integrated Camera",
                         "api.v4l2.path": "/dev/video0", "device.api": "v4l2"})
BROKER = client(30, **{"pipewire.sec.pid": ME})  # this Python plays the media server
APP = client(50, **{"pipewire.sec.pid": APP_PID, "application.process.id": 1,
                    "pipewire.access.portal.app_id": "org.example.Cam"})
STREAM = node(51, 50, **{"media.class": "Stream/Input/Video"})


def uses(objects: pw_graph.Objects, brokers: tuple[str, ...] = (ME_EXE,)
         ) -> list[pw_graph.Use]:
    return pw_graph.uses(objects, ProcessDescriber().describe, brokers)


def devices(objects: pw_graph.Objects) -> list[Device]:
    return pw_graph.devices(objects, ProcessDescriber().describe, (ME_EXE,))


def test_a_linked_client_is_the_user_by_its_kernel_pid_with_chain_and_portal_id() -> None:
    (use,) = uses(graph([CAMERA, BROKER, APP, STREAM, link(60, 40, 51)]))
    u = use.usage
    assert u.device.id == "/dev/video0" and u.device.path == "/dev/video0"
    assert u.device.kind is DeviceKind.CAMERA and u.device.name == "Integrated Camera"
    assert u.process is not None and u.process.pid == APP_PID  # sec.pid over the claimed 1
    assert "→ pipewire → /dev/video0" in u.note and "'org.example.Cam'" in u.note
    assert u.via == "pipewire"


def test_no_link_no_use_and_a_removed_link_ends_it() -> None:
    objects = graph([CAMERA, BROKER, APP, STREAM])
    assert uses(objects) == []
    pw_graph.apply(objects, [link(60, 40, 51)])
    assert len(uses(objects)) == 1
    assert pw_graph.apply(objects, [{"id": 60, "info": None}]) is True
    assert uses(objects) == []


@pytest.mark.parametrize("state", ["error", "unlinked", "init", "negotiating", "allocating",
                                   "paused", None, 3])
def test_a_link_without_frames_is_no_use(state: object) -> None:
    """Only an active link carries frames: a client still negotiating (a probe of formats)
    or paused does not use the camera."""
    assert uses(graph([CAMERA, BROKER, APP, STREAM, link(60, 40, 51, state)])) == []


@pytest.mark.parametrize("state", ["error", "init", "negotiating", "allocating", "paused"])
def test_a_link_without_frames_is_a_probe_until_it_flows(state: str) -> None:
    """core/probes.py: the client linked without frames is reported as a probe (history
    only, never an alert); once its link is active it is a use and no longer a probe."""
    objects = graph([CAMERA, BROKER, APP, STREAM, link(60, 40, 51, state)])
    (probe,) = pw_graph.uses(objects, ProcessDescriber().describe, (ME_EXE,), flowing=False)
    assert probe.usage.process is not None and probe.usage.process.pid == APP_PID
    pw_graph.apply(objects, [link(60, 40, 51, "active")])
    assert pw_graph.uses(objects, ProcessDescriber().describe, (ME_EXE,), flowing=False) == []
    assert len(uses(objects)) == 1


@pytest.mark.parametrize("state", ["unlinked", None, 3, "active"])
def test_an_unlinked_or_unreadable_link_is_no_probe(state: object) -> None:
    objects = graph([CAMERA, BROKER, APP, STREAM, link(60, 40, 51, state)])
    assert pw_graph.uses(objects, ProcessDescriber().describe, (ME_EXE,), flowing=False) == []


def test_the_broker_linking_the_camera_is_never_a_user() -> None:
    session_manager = client(31, **{"pipewire.sec.pid": ME})
    loopback = node(52, 31, **{"media.class": "Stream/Input/Video"})
    assert uses(graph([CAMERA, BROKER, session_manager, loopback, link(60, 40, 52)])) == []


def test_a_v4l2_path_is_believed_only_from_the_media_server() -> None:
    """Any client may offer a node claiming api.v4l2.path; only the broker's names the
    kernel's /dev/video node."""
    fake = node(46, 50, **{"media.class": "Video/Source", "node.name": "liar",
                           "api.v4l2.path": "/dev/video0"})
    assert [d.id for d in devices(graph([fake, APP]))] == ["pipewire:liar"]
    assert [d.id for d in devices(graph([CAMERA, BROKER]))] == ["/dev/video0"]
    assert [d.id for d in devices(graph([CAMERA]))] == ["pipewire:v4l2_input.pci"]


def test_a_claimed_pid_is_used_only_without_a_kernel_pid_and_is_marked() -> None:
    app = client(50, **{"application.process.id": str(APP_PID)})
    (use,) = uses(graph([CAMERA, BROKER, app, STREAM, link(60, 40, 51)]))
    assert use.usage.process is not None and use.usage.process.pid == APP_PID
    assert "as claimed by the client" in use.usage.note


@pytest.mark.parametrize("pid", [None, 0, -5, True, 2**40, "12 ", "١٢", "abc", 1.5, [ME]])
def test_an_unusable_pid_is_an_unseen_client_not_a_crash(pid: object) -> None:
    app = client(50, **{"pipewire.sec.pid": pid, "application.name": "<b>x</b>\x1b[2J"})
    (use,) = uses(graph([CAMERA, app, STREAM, link(60, 40, 51)]))
    assert use.usage.process is None
    assert "cannot see" in use.usage.note and "<b>x</b>\x1b[2J" in use.usage.note


def test_screen_cast_nodes_are_the_screen_sensor() -> None:
    by_role = node(41, 30, **{"media.class": "Video/Source", "media.role": "Screen",
                              "node.name": "anything"})
    by_name = node(42, 30, **{"media.class": "Video/Source", "node.name": "xdpw_stream"})
    objects = graph([by_role, by_name, APP, STREAM, link(60, 41, 51)])
    assert {d.kind for d in devices(objects)} == {DeviceKind.SCREEN}
    (use,) = uses(objects)
    assert use.usage.device.kind is DeviceKind.SCREEN and use.usage.device.id == \
        "pipewire:anything"


def test_a_virtual_camera_is_named_as_such_and_audio_is_ignored() -> None:
    virt = node(43, 30, **{"media.class": "Video/Source", "node.name": "obs"})
    mic = node(44, 30, **{"media.class": "Audio/Source", "node.name": "mic"})
    (dev,) = devices(graph([virt, mic]))
    assert dev.id == "pipewire:obs" and dev.name.endswith("(virtual camera)")


def test_a_client_linking_its_own_nodes_is_not_a_use() -> None:
    own = node(51, 30, **{"media.class": "Stream/Input/Video"})
    assert uses(graph([CAMERA, BROKER, own, link(60, 40, 51)])) == []


@pytest.mark.parametrize("junk", [
    None, 5, "x", {}, [1, "a", None], [{"id": "7", "type": pw_graph.NODE, "info": {}}],
    [{"id": True, "type": pw_graph.NODE, "info": {}}],
    [{"id": 7, "type": pw_graph.NODE, "info": "notadict"}],
    [{"id": 7, "type": pw_graph.NODE, "info": {"props": ["list"]}}],
    [{"id": 8, "type": pw_graph.LINK, "info": {"output-node-id": "x", "input-node-id": None}}],
    [{"id": 9, "type": pw_graph.LINK, "info": {"output-node-id": 999, "input-node-id": 40}}],
])
def test_malformed_objects_are_ignored(junk: object) -> None:
    objects = graph([CAMERA, BROKER, APP, STREAM])
    pw_graph.apply(objects, junk)
    assert uses(objects) == []
    assert [d.id for d in devices(objects)] == ["/dev/video0"]


def test_hostile_node_names_are_kept_literally_and_bounded_in_notes() -> None:
    name = "<i>cam</i>\u202e\x00" + "\udcff" + "A" * 65536
    cam = node(45, 30, **{"media.class": "Video/Source", "node.name": name})
    app = client(50, **{"pipewire.access.portal.app_id": "Z" * 65536})
    (use,) = uses(graph([cam, app, STREAM, link(60, 45, 51)]))
    assert use.usage.device.id == f"pipewire:{name}"  # shown through core.text.literal
    assert "65536 characters" in use.usage.note and len(use.usage.note) < 70_000


def test_pw_dump_framing_split_anywhere() -> None:
    text = "".join(json.dumps(r, indent=2) + "\n" for r in (
        [CAMERA, BROKER], [APP, STREAM], [link(60, 40, 51)], [{"id": 60, "info": None}]))
    for cut in range(0, len(text), 37):
        rounds: list[object] = []
        left, got = pipewire._split_rounds(text[:cut])
        rounds += got
        left, got = pipewire._split_rounds(left + text[cut:])
        rounds += got
        assert left == "" and len(rounds) == 4


def test_x11_is_said_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_SESSION_TYPE", "x11")
    assert pipewire.x11_session()
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    assert not pipewire.x11_session()
    monkeypatch.delenv("XDG_SESSION_TYPE")
    monkeypatch.setenv("DISPLAY", ":5")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert pipewire.x11_session()


def test_missing_pw_dump_is_blind_coverage_not_an_error() -> None:
    source = pipewire.PipeWireSource(ProcessDescriber(), pw_dump="no-such-pw-dump-binary")
    snap = source.snapshot()
    assert snap.degraded is None and not snap.usages
    reasons = {c.sensor: (c.state.value, c.reason) for c in source.coverage()}
    assert reasons["camera"][0] == "blind" and "pw-dump is not installed" in reasons["camera"][1]
    assert sys.platform.startswith("linux")


def test_block_device_for_a_screen_cast_ends_the_app_instead() -> None:
    from camguard.core.clock import FrozenClock
    from camguard.core.decision import UsageFacts, decide
    from camguard.core.rules import Mode, Verdict, make_rule

    facts = UsageFacts(DeviceKind.SCREEN, exe="/usr/bin/obs", name="obs", pid=7)
    rule = make_rule("block-device", label="no recording", created_at=0.0)
    d = decide([rule], facts, Mode.ASK, FrozenClock(100.0))
    assert d.verdict is Verdict.KILL and "no device to block" in d.explanation
    located = decide([rule], UsageFacts(DeviceKind.LOCATION, exe="/usr/bin/maps"), Mode.ASK,
                     FrozenClock(100.0))
    assert located.verdict is Verdict.KILL
    d = decide([], facts, Mode.BLOCK_ALL, FrozenClock(100.0))
    assert d.verdict is Verdict.KILL
    cam = decide([rule], UsageFacts(DeviceKind.CAMERA, exe="/usr/bin/obs"), Mode.ASK,
                  FrozenClock(100.0))
    assert cam.verdict is Verdict.BLOCK_DEVICE
