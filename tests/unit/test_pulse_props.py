"""Sound-server records to microphone usages: pid claims, cross-checks against real processes,
and malformed or hostile properties (fuzzed) that must never raise."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camguard.core.models import DeviceKind, ProcessRef
from camguard.platform.linux.pulse_props import (
    APP_BINARY,
    APP_NAME,
    APP_PID,
    APP_USER,
    INVALID_INDEX,
    PID_MAX,
    QUOTE_LIMIT,
    SEC_PID,
    ClientInfo,
    ServerView,
    SourceInfo,
    StreamInfo,
    attribute,
    binary_matches,
    build_snapshot,
    is_monitor,
    parse_pid,
    quote,
    server_pids,
    text,
)
from camguard.platform.process import ProcessDescriber

DESCRIBER = ProcessDescriber()
ME = os.getpid()
MY_BINARY = os.path.basename(psutil.Process().exe())  # what libpulse would put in the proplist
MY_USER = psutil.Process().username()
MIC = SourceInfo(index=1, name="sinemic", description="Sine source")
MONITOR = SourceInfo(index=0, name="spk.monitor", description="Monitor of spk", monitor_of_sink=0)


def dead_pid() -> int:
    """The pid of a child that has exited and been reaped (a real pid that names nothing)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not psutil.pid_exists(child.pid)
    return child.pid


def never_bridge(_pid: int) -> bool:
    return False


def view(*streams: StreamInfo, clients: tuple[ClientInfo, ...] = (), pipewire: bool = False,
         bridge: frozenset[int] = frozenset()) -> ServerView:
    return ServerView(pipewire, (MONITOR, MIC), streams, clients, bridge)


# -- parse_pid -----------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "pid"), [("1", 1), ("4242", 4242), (str(PID_MAX), PID_MAX),
                                          ("007", 7)])
def test_parse_pid_accepts_plain_digits(raw: str, pid: int) -> None:
    assert parse_pid(raw) == pid


@pytest.mark.parametrize("raw", [
    "", " ", " 12", "12 ", "12\n", "\t12", "-1", "+5", "0", "00", str(PID_MAX + 1),
    "99999999999999999999", "1e3", "0x10", "1_000", "12.0", "12abc",
    "\u0661\u0662\u0663", "\u00b2", "\uff11\uff12",  # digits int() takes, /proc does not
    "<b>12</b>", "\x1b[31m12", "\udcff12", None, 12, 12.0, b"12", ["12"],
])
def test_parse_pid_rejects_everything_else(raw: object) -> None:
    assert parse_pid(raw) is None


@given(st.one_of(st.text(), st.none(), st.integers(), st.binary()))
def test_parse_pid_never_raises_and_stays_in_range(raw: object) -> None:
    pid = parse_pid(raw)
    if pid is not None:
        assert isinstance(raw, str) and raw.isascii() and raw.isdigit()
        assert 1 <= pid <= PID_MAX and int(raw) == pid


def test_text_treats_non_strings_as_missing() -> None:
    props: dict[str, object] = {"a": "x", "b": None, "c": 3}
    assert (text(props, "a"), text(props, "b"), text(props, "c"), text(props, "d")) == (
        "x", "", "", "")


def test_quote_bounds_hostile_values() -> None:
    shown = quote("A" * 65536)
    assert len(shown) < QUOTE_LIMIT + 40 and "65536 characters" in shown
    assert quote("<b>x</b>") == "'<b>x</b>'"


@pytest.mark.parametrize(("source", "monitor"), [
    (MIC, False), (MONITOR, True),
    (SourceInfo(index=3, name="alsa_output.pci.monitor"), True),
    (SourceInfo(index=4, name="x", props={"device.class": "monitor"}), True),
    (SourceInfo(index=5, name="alsa_input.usb", props={"device.class": "sound"}), False),
])
def test_monitor_sources_are_not_microphones(source: SourceInfo, monitor: bool) -> None:
    assert is_monitor(source) is monitor


# -- binary cross-check ----------------------------------------------------------------------
@pytest.mark.parametrize(("binary", "ref", "match"), [
    ("pacat", ProcessRef(1, 0.0, name="parecord", exe="/usr/bin/pacat"), True),
    ("python3.11", ProcessRef(1, 0.0, name="python", exe="/usr/bin/python3.11"), True),
    # comm is cut to 15 characters; the binary name is not.
    ("gnome-sound-recorder", ProcessRef(1, 0.0, name="gnome-sound-rec"), True),
    ("zoom", ProcessRef(1, 0.0, name="zoom", exe="/opt/zoom/zoom (deleted)"), True),
    ("zoom", ProcessRef(1, 0.0, cmdline=("/opt/zoom/zoom", "--x")), True),
    ("firefox", ProcessRef(1, 0.0, name="python3", exe="/usr/bin/python3.11"), False),
    ("gnome-sound-recorderX", ProcessRef(1, 0.0, name="gnome-sound-rex"), False),
    ("anything", ProcessRef(1, 0.0), None),  # nothing readable (another user's process)
])
def test_binary_matches(binary: str, ref: ProcessRef, match: bool | None) -> None:
    assert binary_matches(binary, ref) is match


# -- attribution against real processes -------------------------------------------------------
def test_honest_claim_of_a_real_process_has_no_note() -> None:
    claim = {APP_PID: str(ME), APP_BINARY: MY_BINARY, APP_USER: MY_USER, APP_NAME: "rec"}
    att, ref = attribute(claim, {}, is_pipewire=False, bridge=never_bridge,
                         describe=DESCRIBER.describe)
    assert ref is not None and ref.pid == ME and att.pid == ME
    assert att.note == "" and not att.trusted


def test_claim_with_another_binary_keeps_the_pid_and_says_so() -> None:
    att, ref = attribute({APP_PID: str(ME), APP_BINARY: "firefox"}, {}, is_pipewire=False,
                         bridge=never_bridge, describe=DESCRIBER.describe)
    assert ref is not None and ref.pid == ME
    assert att.note == (f"stream claims pid {ME} (binary 'firefox') "
                        f"but pid {ME} is {quote(ref.name)}")


def test_claim_with_another_user_says_so() -> None:
    att, ref = attribute({APP_PID: str(ME), APP_USER: "mallory"}, {}, is_pipewire=False,
                         bridge=never_bridge, describe=DESCRIBER.describe)
    assert ref is not None
    assert att.note == f"stream claims pid {ME} (user 'mallory') but pid {ME} runs as '{MY_USER}'"


def test_claim_of_a_pid_that_does_not_exist_names_the_claim() -> None:
    pid = dead_pid()
    att, ref = attribute({APP_NAME: "Zoom"}, {APP_PID: str(pid), APP_BINARY: "zoom"},
                         is_pipewire=False, bridge=never_bridge, describe=DESCRIBER.describe)
    assert ref is None and att.pid is None
    assert att.note == (f"stream claims pid {pid} (application 'Zoom', binary 'zoom') "
                        "but no such process exists")


@pytest.mark.parametrize("raw", ["", " 1", "-4", "abc", "99999999999"])
def test_malformed_or_missing_pid_gives_no_process_and_names_the_app(raw: str) -> None:
    att, ref = attribute({APP_PID: raw, APP_NAME: "<b>rec</b>"}, {}, is_pipewire=False,
                         bridge=never_bridge, describe=DESCRIBER.describe)
    assert ref is None and att.pid is None
    assert "'<b>rec</b>'" in att.note


def test_stream_claim_wins_over_client_claim() -> None:
    att, _ = attribute({APP_PID: str(ME)}, {APP_PID: str(dead_pid())}, is_pipewire=False,
                       bridge=never_bridge, describe=DESCRIBER.describe)
    assert att.pid == ME


def test_internal_stream_without_client_is_the_servers_own() -> None:
    att, ref = attribute({"media.name": "Loopback of sinemic"}, None, is_pipewire=False,
                         bridge=never_bridge, describe=DESCRIBER.describe)
    assert ref is None
    assert att.note == "internal stream of the sound server (media 'Loopback of sinemic')"


def test_kernel_pid_is_trusted_on_pipewire_only() -> None:
    client = {SEC_PID: str(ME), APP_PID: str(dead_pid())}
    att, ref = attribute({}, client, is_pipewire=True, bridge=never_bridge,
                         describe=DESCRIBER.describe)
    assert att.trusted and ref is not None and ref.pid == ME and att.note == ""
    # PulseAudio passes any property a client sets: there the same key proves nothing.
    att, ref = attribute({}, client, is_pipewire=False, bridge=never_bridge,
                         describe=DESCRIBER.describe)
    assert not att.trusted and ref is None and "no such process" in att.note


def test_kernel_pid_of_the_bridge_falls_back_to_the_claim() -> None:
    client = {SEC_PID: str(ME), APP_PID: str(os.getppid())}
    att, ref = attribute({}, client, is_pipewire=True, bridge=lambda pid: pid == ME,
                         describe=DESCRIBER.describe)
    assert not att.trusted and ref is not None and ref.pid == os.getppid()


# -- the whole view ------------------------------------------------------------------------
def test_build_snapshot_devices_usages_and_exclusions() -> None:
    me = {APP_PID: str(ME), APP_BINARY: MY_BINARY}
    snap = build_snapshot("pulse", view(
        StreamInfo(index=10, source=1, client=5, props={}),
        StreamInfo(index=11, source=1, client=5, props={APP_NAME: "second stream"}),
        StreamInfo(index=12, source=0, client=5),                # on a monitor: not a mic
        StreamInfo(index=13, source=1, client=6, corked=True),   # paused
        StreamInfo(index=14, source=99, client=5),               # source gone meanwhile
        clients=(ClientInfo(5, "rec", me), ClientInfo(6, "other", {APP_PID: str(ME)}))),
        DESCRIBER.describe)
    assert {(d.kind, d.id, d.name, d.path, d.source) for d in snap.devices} == {
        (DeviceKind.MICROPHONE, "pulse:sinemic", "Sine source", None, "pulse")}
    (usage,) = snap.usages  # two streams of one process on one source: one usage
    assert usage.device.id == "pulse:sinemic" and usage.via == "stream"
    assert usage.process is not None and usage.process.pid == ME and usage.note == ""
    assert snap.degraded is None


def test_build_snapshot_guards_the_invalid_client_index() -> None:
    snap = build_snapshot("pulse", view(
        StreamInfo(index=1, source=1, client=INVALID_INDEX, props={APP_NAME: "loopback"}),
        clients=(ClientInfo(INVALID_INDEX, "bogus", {APP_PID: str(ME)}),)),
        DESCRIBER.describe)
    (usage,) = snap.usages
    assert usage.process is None and usage.note.startswith("internal stream")


def test_server_pids_come_from_our_own_connection_when_unambiguous() -> None:
    own = ClientInfo(3, "camguard-abc", {SEC_PID: "77"})
    other = ClientInfo(5, "rec", {SEC_PID: "99"})
    assert server_pids(True, [own, other], "camguard-abc") == {77}
    assert server_pids(False, [own], "camguard-abc") == set()  # PulseAudio: no such fact
    assert server_pids(True, [other], "camguard-abc") == set()
    copycat = ClientInfo(4, "camguard-abc", {SEC_PID: "78"})
    assert server_pids(True, [own, copycat], "camguard-abc") == set()
    assert server_pids(True, [ClientInfo(3, "camguard-abc", {SEC_PID: "x"})],
                       "camguard-abc") == set()


def test_bridge_pid_from_our_connection_falls_back_to_the_claim() -> None:
    parent = os.getppid()
    snap = build_snapshot("pulse", view(
        StreamInfo(index=1, source=1, client=5),
        clients=(ClientInfo(5, "rec", {SEC_PID: str(ME), APP_PID: str(parent)}),),
        pipewire=True, bridge=frozenset({ME})), DESCRIBER.describe)
    (usage,) = snap.usages
    assert usage.process is not None and usage.process.pid == parent


def test_bridge_detected_by_its_executable_path() -> None:
    exe = psutil.Process().exe()
    parent = os.getppid()
    snap = build_snapshot("pulse", view(
        StreamInfo(index=1, source=1, client=5),
        clients=(ClientInfo(5, "rec", {SEC_PID: str(ME), APP_PID: str(parent)}),),
        pipewire=True), DESCRIBER.describe, server_exes=(exe,))
    (usage,) = snap.usages
    assert usage.process is not None and usage.process.pid == parent


# -- fuzz ----------------------------------------------------------------------------------
KEYS = st.sampled_from([APP_PID, APP_BINARY, APP_USER, APP_NAME, SEC_PID, "media.name",
                        "device.class"]) | st.text(max_size=20)
HOSTILE = st.sampled_from(["", " ", "-1", "0", "1", str(ME), str(PID_MAX + 1), "\u0661", "\x00",
                           "\x1b]0;pwned\x07", "<i>x</i>", "\udcff", "A" * 70000, "monitor",
                           "9" * 40])
VALUES = st.one_of(st.none(), st.text(max_size=50), HOSTILE)
PROPS = st.dictionaries(KEYS, VALUES, max_size=8)
INDEX = st.sampled_from([0, 1, 2, 5, INVALID_INDEX])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams=st.lists(st.builds(StreamInfo, index=st.integers(0, 50), source=INDEX,
                                  client=INDEX, corked=st.booleans(), props=PROPS),
                        max_size=6),
       clients=st.lists(st.builds(ClientInfo, index=INDEX, name=st.text(max_size=10),
                                  props=PROPS), max_size=4),
       sources=st.lists(st.builds(SourceInfo, index=INDEX, name=st.text(max_size=20),
                                  description=st.text(max_size=20),
                                  monitor_of_sink=INDEX, props=PROPS), max_size=4),
       pipewire=st.booleans())
def test_build_snapshot_never_raises_on_any_properties(
        streams: list[StreamInfo], clients: list[ClientInfo], sources: list[SourceInfo],
        pipewire: bool) -> None:
    snap = build_snapshot("pulse", ServerView(pipewire, tuple(sources), tuple(streams),
                                              tuple(clients), frozenset({ME})),
                          DESCRIBER.describe, server_exes=("/usr/bin/pipewire",))
    assert all(d.kind is DeviceKind.MICROPHONE and d.id.startswith("pulse:")
               for d in snap.devices)
    for u in snap.usages:
        assert u.device in snap.devices and u.via == "stream"
        if u.process is None:
            assert u.note  # a usage without a process always says why
        assert len(u.note) < 2000  # quotes are bounded, even for 70 KB values
