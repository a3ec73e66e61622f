"""Turn what the sound server says (sources, recording streams, clients) into microphone usages.

Pure functions over plain records and ``dict[str, str]`` property lists: no pulsectl, no
sockets, so every malformed or hostile property can be fuzzed. The only outside call is the
``describe`` function passed in (a :class:`~camguard.platform.process.ProcessDescriber`'s),
used to cross-check the pid a stream claims against the process really found there.

Who recorded is known with two strengths:

* ``pipewire.sec.pid`` in a PipeWire client's proplist comes from the kernel (SO_PEERCRED)
  and clients cannot set ``pipewire.sec.*`` themselves (PipeWire's ``pw_impl_client`` drops
  such keys from client updates). It is trusted, but only on a PipeWire server: PulseAudio
  passes any property a client sets, so there it is just another claim and is ignored.
  For clients that talk the pulse protocol to pipewire-pulse it is pipewire-pulse's own pid
  (measured, 0.3.65), which names the bridge, not the app.
* ``application.process.id`` is written by libpulse inside the app, i.e. self-reported. It
  is checked against ``/proc``: the process must exist, and ``application.process.binary``
  and ``application.process.user`` must agree with it, else the usage carries a note.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from camguard.core.models import Device, DeviceKind, ProcessRef, SourceSnapshot, Usage
from camguard.core.state import UsageKey
from camguard.platform.linux.pidns import host_pids_for

# PA_INVALID_INDEX (pulse/def.h): "no client" / "not a monitor" / "no module".
INVALID_INDEX = 0xFFFFFFFF
# PID_MAX_LIMIT on 64-bit kernels (include/linux/threads.h): no real pid is larger.
PID_MAX = 4_194_304
# TASK_COMM_LEN is 16 with the NUL (include/linux/sched.h): a comm name holds 15 characters.
COMM_LEN = 15
# How much of a process-controlled value a note quotes (a client may send 64 KB of it).
QUOTE_LIMIT = 64

SEC_PID = "pipewire.sec.pid"
APP_PID = "application.process.id"
APP_BINARY = "application.process.binary"
APP_USER = "application.process.user"
APP_NAME = "application.name"
MEDIA_NAME = "media.name"

_DIGITS = re.compile(r"[0-9]{1,10}")  # ASCII only: int() also takes ' 12 ' and Arabic-Indic digits

Props = Mapping[str, object]
Describe = Callable[[int], ProcessRef | None]


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """A capture source (pulsectl's ``source_list()`` entry, reduced to what we use)."""

    index: int
    name: str
    description: str = ""
    monitor_of_sink: int = INVALID_INDEX
    props: Props = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """A recording stream (a pulse "source output")."""

    index: int
    source: int
    client: int = INVALID_INDEX
    corked: bool = False
    owner_module: int = INVALID_INDEX
    props: Props = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClientInfo:
    index: int
    name: str = ""
    props: Props = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServerView:
    """One consistent-enough look at the server (streams queried before clients and sources,
    so anything a stream points at existed when the stream was listed)."""

    is_pipewire: bool
    sources: tuple[SourceInfo, ...] = ()
    streams: tuple[StreamInfo, ...] = ()
    clients: tuple[ClientInfo, ...] = ()
    # Kernel-given pids that are the pulse bridge itself (see server_pids).
    bridge_pids: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Attribution:
    """Which process a stream belongs to, and the caveat to show with it."""

    pid: int | None
    trusted: bool
    note: str = ""


# -- property parsing -----------------------------------------------------------------------
def text(props: Props, key: str) -> str:
    """The property as text; '' when missing or not a string (pulsectl gives None for a value
    that is not valid UTF-8)."""
    value = props.get(key)
    return value if isinstance(value, str) else ""


def parse_pid(value: object) -> int | None:
    """A pid from a property value, or None unless it is plain ASCII digits in 1..PID_MAX."""
    if not isinstance(value, str) or _DIGITS.fullmatch(value) is None:
        return None
    pid = int(value)
    return pid if 1 <= pid <= PID_MAX else None


def quote(value: str) -> str:
    """A process-controlled value for a note: quoted and bounded, NOT escaped (whoever shows
    the note renders it with core.text.literal, like every process-controlled text)."""
    if len(value) > QUOTE_LIMIT:
        value = value[:QUOTE_LIMIT] + f"… ({len(value)} characters)"
    return f"'{value}'"


def is_monitor(source: SourceInfo) -> bool:
    """A sink's monitor (what the speakers play) is not a microphone."""
    return (source.monitor_of_sink != INVALID_INDEX
            or source.name.endswith(".monitor")
            or text(source.props, "device.class") == "monitor")


def microphone(source: SourceInfo, origin: str) -> Device:
    return Device(kind=DeviceKind.MICROPHONE, id="pulse:" + source.name,
                  name=source.description, path=None, source=origin)


# -- matching a claimed identity with the real process ---------------------------------------
def _basename(path: str) -> str:
    # /proc/PID/exe of a replaced binary reads "/usr/bin/x (deleted)" (proc(5)).
    return os.path.basename(path.removesuffix(" (deleted)"))


def binary_matches(binary: str, ref: ProcessRef) -> bool | None:
    """Does ``application.process.binary`` name this process? None when nothing is readable.

    libpulse takes the binary from ``/proc/self/exe`` (pa_get_binary_name), so it is the
    exe's basename (``parecord`` runs ``pacat``, Python runs ``python3.11``); the comm name
    and argv[0] are accepted too, the comm name also when cut to 15 characters.
    """
    names = [n for n in (ref.name, _basename(ref.exe),
                         _basename(ref.cmdline[0]) if ref.cmdline else "") if n]
    if not names:
        return None
    return any(n == binary or (len(n) == COMM_LEN and binary.startswith(n)) for n in names)


def _mismatch_note(pid: int, binary: str, user: str, ref: ProcessRef) -> str:
    problems: list[str] = []
    if binary and binary_matches(binary, ref) is False:
        real = ref.name or _basename(ref.exe)
        problems.append(f"stream claims pid {pid} (binary {quote(binary)}) "
                        f"but pid {pid} is {quote(real)}")
    # pa_get_user_name() prefers $USER/$LOGNAME over the real uid: also self-reported.
    if user and ref.user and user != ref.user:
        problems.append(f"stream claims pid {pid} (user {quote(user)}) "
                        f"but pid {pid} runs as {quote(ref.user)}")
    return "; ".join(problems)


def _claimed_identity(props: Props) -> str:
    parts = [f"{label} {quote(text(props, key))}"
             for label, key in (("application", APP_NAME), ("binary", APP_BINARY))
             if text(props, key)]
    return ", ".join(parts) if parts else "no application name"


def server_pids(is_pipewire: bool, clients: Iterable[ClientInfo], own_client_name: str
                ) -> frozenset[int]:
    """The pulse bridge's pid: the kernel-given sec pid of our own connection (PipeWire only).

    Trusted only when every client carrying our (random) connection name agrees, so a client
    that copies the name cannot make its own pid look like the server's.
    """
    if not is_pipewire or not own_client_name:
        return frozenset()
    pids = {parse_pid(c.props.get(SEC_PID)) for c in clients if c.name == own_client_name}
    if len(pids) != 1 or None in pids:
        return frozenset()
    return frozenset(p for p in pids if p is not None)


def attribute(stream: Props, client: Props | None, *, is_pipewire: bool,
              bridge: Callable[[int], bool], describe: Describe,
              in_namespace: Callable[[int], Sequence[int]] = host_pids_for
              ) -> tuple[Attribution, ProcessRef | None]:
    """Decide which process owns a stream; never raises for any property values.

    ``client`` is None for an internal stream (client index PA_INVALID_INDEX). ``bridge(pid)``
    says whether a kernel-given pid is the sound server itself (then it is not the app).
    ``in_namespace(pid)``: the host pids of sandboxed processes that are ``pid`` in their
    own pid namespace (pidns.host_pids_for), for a claimed pid that is not the process
    it names on the host.
    """
    merged: dict[str, object] = dict(client or {})
    merged.update(stream)  # the stream's own claims win over its client's
    if is_pipewire and client is not None:
        sec = parse_pid(client.get(SEC_PID))
        if sec is not None and not bridge(sec):
            ref = describe(sec)
            if ref is not None:
                return Attribution(sec, trusted=True), ref
            return Attribution(None, trusted=True, note=(
                f"stream of pid {sec} ({_claimed_identity(merged)}), which has exited")), None
    return _claimed(stream, client, merged, describe, in_namespace)


def _claimed(stream: Props, client: Props | None, merged: Props, describe: Describe,
             in_namespace: Callable[[int], Sequence[int]] = host_pids_for
             ) -> tuple[Attribution, ProcessRef | None]:
    """Attribution by the self-reported ``application.process.id``, checked against /proc."""
    raw = stream.get(APP_PID)
    if not isinstance(raw, str) and client is not None:
        raw = client.get(APP_PID)
    if raw is None or raw == "":
        what = (f"internal stream of the sound server ({_internal_label(stream)})"
                if client is None else f"stream names no process ({_claimed_identity(merged)})")
        return Attribution(None, False, what), None
    pid = parse_pid(raw)
    if pid is None:
        shown = raw if isinstance(raw, str) else "(not text)"
        return Attribution(None, False, (
            f"stream claims pid {quote(shown)}, which is not a valid pid "
            f"({_claimed_identity(merged)})")), None
    ref = describe(pid)
    binary = text(merged, APP_BINARY)
    if ref is None or (binary and binary_matches(binary, ref) is False):
        mapped = _from_namespace(pid, binary, merged, describe, in_namespace)
        if mapped is not None:
            return mapped
    if ref is None:
        return Attribution(None, False, (
            f"stream claims pid {pid} ({_claimed_identity(merged)}) "
            f"but no such process exists")), None
    note = _mismatch_note(pid, binary, text(merged, APP_USER), ref)
    return Attribution(pid, False, note), ref


def _from_namespace(pid: int, binary: str, merged: Props, describe: Describe,
                    in_namespace: Callable[[int], Sequence[int]]
                    ) -> tuple[Attribution, ProcessRef | None] | None:
    """A claimed pid that is a sandboxed process's pid in its own pid namespace: the one
    host process that is ``pid`` there and runs the claimed binary (still a claim:
    unverified); None when no sandboxed process is ``pid``."""
    found = [(host, ref) for host in in_namespace(pid)[:64]
             if (ref := describe(host)) is not None
             and (not binary or binary_matches(binary, ref) is not False)]
    if not found:
        return None
    if len(found) > 1:
        return Attribution(None, False, (
            f"stream claims pid {pid} ({_claimed_identity(merged)}), which is pid {pid} "
            f"in {len(found)} sandboxes' pid namespaces: host pids "
            f"{', '.join(str(h) for h, _r in found[:8])}; not known which")), None
    host, ref = found[0]
    return Attribution(host, False, (
        f"stream claims pid {pid} ({_claimed_identity(merged)}), its pid inside a "
        f"sandbox: host pid {host}, found by its NSpid (as the stream claims; unverified)")
                       ), ref


def _internal_label(props: Props) -> str:
    for label, key in (("application", APP_NAME), ("media", MEDIA_NAME)):
        if text(props, key):
            return f"{label} {quote(text(props, key))}"
    return "unnamed"


def _server_exe_check(server_exes: Iterable[str], describe: Describe) -> Callable[[int], bool]:
    exes = frozenset(server_exes)

    def is_server(pid: int) -> bool:
        ref = describe(pid)
        # The real executable path, not the self-chosen comm name: a process can call itself
        # "pipewire-pulse" with prctl(PR_SET_NAME) but cannot change /proc/PID/exe.
        return ref is not None and ref.exe.removesuffix(" (deleted)") in exes

    return is_server


# -- the whole view -----------------------------------------------------------------------
def build_snapshot(origin: str, view: ServerView, describe: Describe,
                   server_exes: Iterable[str] = ()) -> SourceSnapshot:
    """Every non-monitor source as a microphone, every running stream on one as a usage.

    Several streams of one process on one source are one usage (the notes are joined).
    A stream whose source is not listed is skipped: it was listed first, so its source went
    away in between, and the removal event that follows brings a fresh look.
    """
    clients = {c.index: c for c in view.clients}
    exe_check = _server_exe_check(server_exes, describe)

    def bridge(pid: int) -> bool:
        return pid in view.bridge_pids or exe_check(pid)

    devices = {s.index: microphone(s, origin) for s in view.sources if not is_monitor(s)}
    found: dict[UsageKey, tuple[Usage, list[str]]] = {}
    for stream in sorted(view.streams, key=lambda s: s.index):
        device = devices.get(stream.source)
        if stream.corked or device is None:
            continue
        client = None if stream.client == INVALID_INDEX else clients.get(stream.client)
        client_props: Props | None = None
        if client is not None:
            client_props = client.props
        elif stream.client != INVALID_INDEX:
            client_props = {}  # the client left between the two queries: stream props only
        attribution, ref = attribute(stream.props, client_props, is_pipewire=view.is_pipewire,
                                     bridge=bridge, describe=describe)
        usage = Usage(device=device, process=ref, via="stream")
        entry = found.setdefault(usage.key, (usage, []))
        if attribution.note and attribution.note not in entry[1]:
            entry[1].append(attribution.note)
    usages = frozenset(
        Usage(device=u.device, process=u.process, via=u.via, note="; ".join(notes))
        for u, notes in found.values())
    return SourceSnapshot(origin, devices=frozenset(devices.values()), usages=usages)
