"""The PipeWire graph as ``pw-dump`` reports it, and the camera and screen-cast uses in it.

Pure functions and a plain dict of objects: no subprocess, no sockets, so every malformed or
hostile property can be fed in directly (:mod:`camguard.platform.linux.pipewire` runs
``pw-dump`` and feeds this).

A use is a **link** from a video source node to a node of another client:

* the source is a ``media.class`` ``Video/Source`` node. A screen cast (``media.role``
  Screen, or a node made by a compositor for the ScreenCast portal) is the ``screen``
  sensor; anything else is a camera: a V4L2 node (``api.v4l2.path`` names ``/dev/videoN``),
  a libcamera node, or a virtual camera (any other client's Video/Source, named as such);
* the consumer is the client that owns the linked input node. Its pid comes from
  ``pipewire.sec.pid``, which PipeWire fills from SO_PEERCRED and clients cannot set, over
  ``application.process.id``, which the client claims (checked against /proc and marked);
  ``pipewire.access.portal.app_id`` is the app the portal granted the camera to.

A node that is merely open (the broker's probe, or its own hold on /dev/video while no one
watches) has no link from it, so it is no use; nor is a link that carries no frames (a
client negotiating formats, or paused): only a client whose link is active uses the
camera.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from camguard.core.models import Device, DeviceKind, ProcessRef, Usage

NODE = "PipeWire:Interface:Node"
LINK = "PipeWire:Interface:Link"
CLIENT = "PipeWire:Interface:Client"
# PID_MAX_LIMIT on 64-bit kernels (include/linux/threads.h): no real pid is larger.
PID_MAX = 4_194_304
QUOTE_LIMIT = 64
# Node names that compositors' ScreenCast backends give their streams (xdg-desktop-portal-
# wlr, GNOME Shell/mutter, KDE KWin), matched as prefixes, case-insensitively.
SCREEN_NODE_PREFIXES = ("xdpw_stream", "gnome-shell-screencast", "mutter-screencast",
                        "screen-cast", "kwin_wayland", "plasma.screencast", "screencast")
# The link state in which frames flow (pw_link_state_as_string). Before it (init,
# negotiating, allocating) a client is still probing formats, and "paused" carries nothing:
# like a corked recording stream, not a use; "error" and "unlinked" never will.
FLOWING = "active"
_DIGITS = re.compile(r"[0-9]{1,10}")

Describe = Callable[[int], ProcessRef | None]
Objects = dict[int, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Use:
    """One client watching one video source: the usage, and the source's kind."""

    usage: Usage
    node_id: int


def apply(objects: Objects, update: object) -> bool:
    """Fold one ``pw-dump`` round (a JSON array of objects) into ``objects``. An object with
    ``"info": null`` was removed; any other carries its whole current info. Returns whether
    anything camguard looks at (nodes, links, clients) changed; ignores malformed entries."""
    if not isinstance(update, list):
        return False
    changed = False
    for item in update:
        if not isinstance(item, dict):
            continue
        oid = item.get("id")
        if not isinstance(oid, int) or isinstance(oid, bool):
            continue
        if item.get("info") is None:
            old = objects.pop(oid, None)
            changed = changed or (old is not None and old.get("type") in (NODE, LINK, CLIENT))
            continue
        kind = item.get("type")
        if not isinstance(kind, str):
            kind = objects.get(oid, {}).get("type")
        if kind not in (NODE, LINK, CLIENT):
            continue
        objects[oid] = {"type": kind, "info": item["info"]}
        changed = True
    return changed


def _info(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    info = obj.get("info") if obj is not None else None
    return info if isinstance(info, dict) else {}


def props_of(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    props = _info(obj).get("props")
    return props if isinstance(props, dict) else {}


def text(props: Mapping[str, Any], key: str) -> str:
    value = props.get(key)
    return value if isinstance(value, str) else ""


def number(value: object) -> int | None:
    """An object id or pid: an int (pw-dump writes numbers) or ASCII digits; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    return value if isinstance(value, int) and 0 <= value <= 0xFFFFFFFF else None


def pid_value(value: object) -> int | None:
    pid = number(value)
    return pid if pid is not None and 1 <= pid <= PID_MAX else None


def quote(value: str) -> str:
    """A process-controlled value for a note: quoted and bounded, not escaped (the note is
    rendered with core.text.literal wherever it is shown)."""
    if len(value) > QUOTE_LIMIT:
        value = value[:QUOTE_LIMIT] + f"… ({len(value)} characters)"
    return f"'{value}'"


def source_kind(props: Mapping[str, Any]) -> DeviceKind | None:
    """CAMERA or SCREEN for a video source node, None for anything else."""
    if text(props, "media.class") != "Video/Source":
        return None
    if is_screen(props):
        return DeviceKind.SCREEN
    return DeviceKind.CAMERA


def is_screen(props: Mapping[str, Any]) -> bool:
    if text(props, "media.role").lower() in ("screen", "screencast", "screen-cast"):
        return True
    name = text(props, "node.name").lower()
    return any(name.startswith(p) for p in SCREEN_NODE_PREFIXES)


def device_of(node_id: int, props: Mapping[str, Any], kind: DeviceKind, *,
              brokered: bool) -> Device:
    """The device a source node stands for. A V4L2 node the media server made
    (``brokered``) is its /dev/video path, the same device the device-node source reports;
    any other is ``pipewire:<node.name>`` (any client may write ``api.v4l2.path`` into the
    properties of a node it offers)."""
    v4l2 = text(props, "api.v4l2.path")
    path = v4l2 if brokered and v4l2.startswith("/dev/") else None
    name = (text(props, "node.description") or text(props, "node.nick")
            or text(props, "node.name") or f"node {node_id}")
    api = text(props, "device.api")
    if kind is DeviceKind.CAMERA and path is None and api not in ("v4l2", "libcamera"):
        name += " (virtual camera)"
    elif kind is DeviceKind.SCREEN:
        name += " (screen cast)"
    ident = path or f"pipewire:{text(props, 'node.name') or node_id}"
    return Device(kind, ident, name=name, path=path, source="pipewire")


def owned_by_broker(objects: Objects, props: Mapping[str, Any], describe: Describe,
                    broker_exes: Collection[str]) -> bool:
    """Whether the node's client is the media server itself (by its kernel-given pid)."""
    client_id = number(props.get("client.id"))
    owner = props_of(objects.get(client_id)) if client_id is not None else {}
    pid = pid_value(owner.get("pipewire.sec.pid"))
    ref = describe(pid) if pid is not None else None
    return ref is not None and ref.exe in broker_exes


def devices(objects: Objects, describe: Describe, broker_exes: Collection[str]
            ) -> list[Device]:
    out = []
    for oid, obj in objects.items():
        if obj.get("type") != NODE:
            continue
        props = props_of(obj)
        kind = source_kind(props)
        if kind is not None:
            out.append(device_of(oid, props, kind, brokered=owned_by_broker(
                objects, props, describe, broker_exes)))
    return out


def uses(objects: Objects, describe: Describe, broker_exes: Collection[str],
         own_pids: Collection[int] = (), *, flowing: bool = True) -> list[Use]:
    """Every client linked to a video source, named. ``broker_exes``: executables of the
    media server itself (its own links, e.g. a loopback, are not uses); ``own_pids``:
    camguard's own processes (its pw-dump). ``flowing=False``: instead the clients linked
    that get no frames (negotiating, paused, failed): probes until they flow
    (core/probes.py)."""
    out: list[Use] = []
    for obj in objects.values():
        if obj.get("type") != LINK:
            continue
        info = _info(obj)
        state = text(info, "state")
        if (state != FLOWING) if flowing else (state in (FLOWING, "unlinked", "")):
            continue
        src_id, dst_id = number(info.get("output-node-id")), number(info.get("input-node-id"))
        if src_id is None or dst_id is None:
            continue
        src, dst = objects.get(src_id), objects.get(dst_id)
        if src is None or dst is None or src.get("type") != NODE or dst.get("type") != NODE:
            continue
        src_props = props_of(src)
        kind = source_kind(src_props)
        if kind is None:
            continue
        dst_props = props_of(dst)
        client_id = number(dst_props.get("client.id"))
        client = objects.get(client_id) if client_id is not None else None
        if client_id is not None and client_id == number(src_props.get("client.id")):
            continue  # a client linking its own nodes (a pipeline inside one app)
        device = device_of(src_id, src_props, kind, brokered=owned_by_broker(
            objects, src_props, describe, broker_exes))
        usage = _usage(device, dst_props, props_of(client),
                       describe=describe, broker_exes=broker_exes, own_pids=own_pids)
        if usage is not None:
            out.append(Use(usage, src_id))
    return out


def _usage(device: Device, node: Mapping[str, Any], client: Mapping[str, Any], *,
           describe: Describe, broker_exes: Collection[str], own_pids: Collection[int]
           ) -> Usage | None:
    sec_pid = pid_value(client.get("pipewire.sec.pid"))
    claimed = pid_value(client.get("application.process.id")) or pid_value(
        node.get("application.process.id"))
    notes = []
    pid = sec_pid if sec_pid is not None else claimed
    if pid is not None and pid in own_pids:
        return None
    ref = describe(pid) if pid is not None else None
    if ref is not None and ref.exe in broker_exes:
        return None  # the media server's own link (loopback, its own session manager)
    app = text(client, "application.name") or text(node, "application.name") \
        or text(node, "node.name")
    if ref is None:
        who = f"a PipeWire client {quote(app)}" if app else "a PipeWire client"
        notes.append(f"{who} whose process camguard cannot see"
                     + (f" (pid {pid})" if pid is not None else " (no pid given)"))
    elif sec_pid is None:
        notes.append(f"pid {pid} as claimed by the client (PipeWire gave none)")
    portal = text(client, "pipewire.access.portal.app_id")
    if portal:
        notes.append(f"portal app id {quote(portal)}")
    head = ref.name if ref is not None and ref.name else (app or "?")
    notes.insert(0, f"{head} → pipewire → {device.path or device.id}")
    return Usage(device, ref, note="; ".join(notes), via="pipewire")
