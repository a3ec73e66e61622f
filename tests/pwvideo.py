"""Real video in a real PipeWire for the tests and the bench: a "camera" (GStreamer's
videotestsrc offered as a Video/Source node) and a consumer linked to it.

The recipe (issue 11, measured with PipeWire 0.3.65 and GStreamer 1.22): the camera is
``videotestsrc ! pipewiresink mode=provide`` with ``media.class=Video/Source``; the
consumer is ``pipewiresrc path=<node id> ! video/x-raw,format=YUY2 ! fakesink`` (without the
explicit format it never negotiates and hangs).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from camguard.core.models import DeviceKind, SourceSnapshot
from tests.realenv import SoundServer, bound_to_tests, wait_until

GST_TOOLS = ("gst-launch-1.0", "gst-inspect-1.0", "pw-dump")
# The Debian packages that hold them (scripts/system-deps.sh installs them for `test`).
GST_PACKAGES = "gstreamer1.0-tools gstreamer1.0-pipewire gstreamer1.0-plugins-base"


def remote_of(srv: SoundServer) -> str:
    """The PipeWire socket of a server started by realenv.start_pipewire."""
    return str(srv.root / "pw" / "pipewire-0")


def has_pipewire_gst() -> bool:
    """pipewiresink/pipewiresrc are installed (gstreamer1.0-pipewire)."""
    try:
        return subprocess.run(["gst-inspect-1.0", "pipewiresink"], capture_output=True,
                              timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def dump(remote: str) -> list[dict[str, object]]:
    out = subprocess.run(["pw-dump", "-N", "-r", remote], capture_output=True, timeout=10,
                         check=True).stdout
    return parse_dump(out)


def parse_dump(out: bytes) -> list[dict[str, object]]:
    # pw-dump may print more than one array in one run (changes that arrived while it
    # dumped): read them all, later objects after earlier ones.
    text, at, objects = out.decode(), 0, []
    decoder = json.JSONDecoder()
    while at < len(text):
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            break
        part, at = decoder.raw_decode(text, at)
        objects += part if isinstance(part, list) else [part]
    return [o for o in objects if isinstance(o, dict)]


def node_id(remote: str, node_name: str) -> int | None:
    return node_in(dump(remote), node_name)


def node_in(objects: list[dict[str, object]], node_name: str) -> int | None:
    for obj in objects:
        info = obj.get("info")
        props = info.get("props") if isinstance(info, dict) else None
        if (obj.get("type") == "PipeWire:Interface:Node" and isinstance(props, dict)
                and props.get("node.name") == node_name and isinstance(obj.get("id"), int)):
            return int(obj["id"])  # type: ignore[call-overload]
    return None


def _spawn(remote: str, args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(bound_to_tests(["gst-launch-1.0", "-q", *args]),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PIPEWIRE_REMOTE": remote},
                                start_new_session=True)


def start_camera(remote: str, node_name: str, log: Path, *, role: str | None = None
                 ) -> tuple[subprocess.Popen[bytes], int]:
    """A live video source node named ``node_name`` (``role`` "Screen": a screen-cast style
    node); returns the process and, once it is in the graph, its node id."""
    props = f"props,media.class=Video/Source,node.name={node_name}"
    if role:
        props += f",media.role={role}"
    proc = _spawn(remote, ["videotestsrc", "is-live=true", "!",
                           "video/x-raw,format=YUY2,width=320,height=240,framerate=15/1", "!",
                           "pipewiresink", "mode=provide", f"stream-properties={props}"], log)
    found: list[int] = []

    def present() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the camera exited: {log.read_text(errors='replace')[-500:]}")
        nid = node_id(remote, node_name)
        if nid is not None:
            found.append(nid)
        return nid is not None

    wait_until(present, 20, f"node {node_name} in the PipeWire graph")
    return proc, found[0]


def start_consumer(remote: str, node: int, log: Path, fmt: str = "YUY2"
                   ) -> subprocess.Popen[bytes]:
    """A client linked to ``node`` (a format the camera does not offer, e.g. RGB: linked,
    but the link fails negotiation and carries no frames)."""
    return _spawn(remote, ["pipewiresrc", f"path={node}", "!", f"video/x-raw,format={fmt}",
                           "!", "fakesink"], log)


def link_states(remote: str, node: int) -> list[str]:
    """The states of the links from ``node``."""
    out = []
    for obj in dump(remote):
        info = obj.get("info")
        if (obj.get("type") == "PipeWire:Interface:Link" and isinstance(info, dict)
                and info.get("output-node-id") == node):
            out.append(str(info.get("state")))
    return out


def end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def users(snap: SourceSnapshot, kind: DeviceKind = DeviceKind.CAMERA) -> dict[int | None, str]:
    return {None if u.process is None else u.process.pid: u.note
            for u in snap.usages if u.device.kind is kind}
