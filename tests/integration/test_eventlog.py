"""The event log: JSON lines that validate against docs/event.schema.json, rotation shared by
real processes, and real syslog receivers (UDP, TCP, a unix socket) on this machine."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from camguard.core.clock import FrozenClock
from camguard.core.decision import UsageFacts, decide
from camguard.core.models import (
    Degraded,
    Device,
    DeviceKind,
    HealthEvent,
    ProcessRef,
    Usage,
)
from camguard.core.rules import Mode, make_rule
from camguard.core.rules_json import rule_to_json
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from camguard.store.eventlog import (
    LEVELS,
    SCHEMA,
    EventLog,
    JsonLinesFile,
    StderrOutput,
    SyslogOutput,
)
from camguard.store.policy import Policy, PolicyStatus
from camguard.store.syslog import SyslogTarget
from tests.conftest import Holder, make_standin
from tests.realenv import wait_until

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DOC = json.loads((ROOT / "docs" / "event.schema.json").read_text())
NOW = 1_795_331_453.25
CAM = Device(DeviceKind.CAMERA, "/dev/video0", "Integrated Camera", "/dev/video0", "procfs")
ZOOM = ProcessRef(1234, 1_795_331_400.5, "zoom", "/opt/zoom/zoom", ("/opt/zoom/zoom", "-x"),
                  "alice", ("bash", "systemd"))
HOSTILE = ProcessRef(666, 1.0, 'evil"]\\\x1b[31m\n\udcff' + "x" * 70_000,
                     "/tmp/\udcfe/bin", ("a\x00b", "]"), "mallory")


# -- a small JSON Schema validator for exactly the keywords docs/event.schema.json uses ----
KEYWORDS = {"$schema", "$id", "title", "description", "$comment", "type", "const", "enum",
            "pattern", "required", "properties", "additionalProperties", "items", "allOf",
            "anyOf", "if", "then", "$ref", "$defs", "minimum"}
TYPES = {"string": lambda v: isinstance(v, str), "null": lambda v: v is None,
         "boolean": lambda v: isinstance(v, bool),
         "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
         "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
         "array": lambda v: isinstance(v, list), "object": lambda v: isinstance(v, dict)}


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def validate(inst: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    unknown = set(schema) - KEYWORDS
    assert not unknown, f"the test validator does not know {unknown}: extend it"
    errs: list[str] = []
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        errs += validate(inst, SCHEMA_DOC["$defs"][name], where)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(TYPES[t](inst) for t in types):
            errs.append(f"{where}: {inst!r:.60} is not {types}")
    if "const" in schema and not _same(inst, schema["const"]):
        errs.append(f"{where}: not {schema['const']!r}")
    if "enum" in schema and not any(_same(inst, e) for e in schema["enum"]):
        errs.append(f"{where}: {inst!r:.60} not in {schema['enum']}")
    if "pattern" in schema and isinstance(inst, str) and not re.search(schema["pattern"], inst):
        errs.append(f"{where}: {inst!r:.60} does not match {schema['pattern']}")
    if "minimum" in schema and TYPES["number"](inst) and inst < schema["minimum"]:
        errs.append(f"{where}: below {schema['minimum']}")
    if isinstance(inst, dict):
        errs += [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in inst]
        props = schema.get("properties", {})
        for k, sub in props.items():
            if k in inst:
                errs += validate(inst[k], sub, f"{where}.{k}")
        extra = schema.get("additionalProperties", True)
        if extra is False:
            errs += [f"{where}: unexpected {k!r}" for k in inst if k not in props]
    if isinstance(inst, list) and "items" in schema:
        for n, item in enumerate(inst):
            errs += validate(item, schema["items"], f"{where}[{n}]")
    for sub in schema.get("allOf", []):
        errs += validate(inst, sub, where)
    if "anyOf" in schema and all(validate(inst, s, where) for s in schema["anyOf"]):
        errs.append(f"{where}: matches none of anyOf")
    if "if" in schema and not validate(inst, schema["if"], where):
        errs += validate(inst, schema.get("then", {}), where)
    return errs


def test_the_validator_can_fail() -> None:
    good = {"schema": SCHEMA, "ts": "2026-11-22T07:10:53.000Z", "id": "0" * 32, "host": "h",
            "user": "u", "type": "source.recovered", "level": "info", "msg": "m",
            "source": "pulse"}
    assert validate(good, SCHEMA_DOC) == []
    for change in ({"ts": "2026-11-22 07:10:53"}, {"type": "device.exploded"},
                   {"schema": "camguard.event/2"}, {"id": "xyz"}, {"level": "loud"},
                   {"source": None}, {"type": "device.started"}):
        assert validate({**good, **change}, SCHEMA_DOC), change
    bad = dict(good)
    del bad["msg"]
    assert validate(bad, SCHEMA_DOC) == ["$: missing 'msg'"]


def test_schema_lists_exactly_the_types_camguard_emits() -> None:
    assert set(SCHEMA_DOC["properties"]["type"]["enum"]) == set(LEVELS)
    doc = (ROOT / "docs" / "events.md").read_text()
    assert all(f"`{t}`" in doc for t in LEVELS)


# -- the JSON-lines file ----------------------------------------------------------------------
def every_event(log: EventLog) -> None:
    """One event of each type, made the way camguard makes them."""
    from camguard.core.models import EventType, UsageEvent

    usage = Usage(CAM, ZOOM, via="fd")
    log.started("0.1.0")
    log.monitor_sink(UsageEvent(EventType.STARTED, usage, NOW))
    log.monitor_sink(UsageEvent(EventType.STOPPED, usage, NOW + 61, NOW))
    log.monitor_sink(UsageEvent(EventType.STARTED, Usage(CAM, None, "in use"), NOW))
    log.monitor_sink(UsageEvent(EventType.STARTED, Usage(CAM, HOSTILE), NOW))
    raw_usb = Device(DeviceKind.CAMERA, "/dev/bus/usb/001/004", "raw USB access to cam")
    log.monitor_sink(UsageEvent(EventType.STARTED, Usage(raw_usb, ZOOM, via="usb"), NOW))
    log.monitor_sink(UsageEvent(EventType.STOPPED, usage, NOW + 0.05, NOW, probe=True))
    log.monitor_sink(UsageEvent(EventType.PROBE, Usage(CAM, HOSTILE, via="pipewire"),
                                NOW + 0.4, NOW))
    log.monitor_sink(UsageEvent(EventType.PROBE_STORM, Usage(CAM, ZOOM, "11 probes"),
                                NOW + 30, NOW, count=11))
    log.monitor_sink(HealthEvent("pulse", Degraded("pulse", "no server"), NOW))
    log.monitor_sink(HealthEvent("pulse", None, NOW))
    rule = make_rule("block-device", kind="camera", label="no camera after 21:00",
                     created_at=NOW)
    clock = FrozenClock(NOW)
    log.decided(decide([rule], UsageFacts.from_usage(usage), Mode.ASK, clock), usage)
    log.decided(decide([], UsageFacts.from_usage(usage), Mode.NOTIFY_ONLY, clock), usage)
    from camguard.store.eventlog import usage_fields

    log.emit("alert.shown", "camera in use by zoom", alert_id="a1", **usage_fields(usage))
    log.emit("alert.decided", "allowed", alert_id="a1", choice="allow", by="user",
             duration="15m", **usage_fields(usage))
    log.emit("block.on", "camera off", kind="camera", result="done", until=None,
             message="blocked", actor="alice")
    log.emit("block.off", "camera on", kind="camera", result="failed", message="busy")
    ruled = {**rule_to_json(rule), "origin": "user", "active": True, "expires_at": None}
    for t in ("rule.added", "rule.removed", "rule.expired"):
        log.emit(t, rule=ruled)
    log.policy_status(PolicyStatus(Policy("policy /etc/camguard/policy.toml", {},
                                          frozenset({"rules"}), (rule,))))
    log.policy_status(PolicyStatus(Policy(), "MANAGED POLICY NOT APPLIED: broken"))
    log.emit("hook.failed", program="/usr/local/bin/h", event="device.started",
             returncode=None, timed_out=True, output="", error="killed")
    log.stopped("signal")


def test_every_event_type_validates(tmp_path: Path) -> None:
    path = tmp_path / "state" / "events.jsonl"
    log = EventLog(FrozenClock(NOW), [JsonLinesFile(path)], host="desk", user="alice")
    every_event(log)
    log.close()
    raw = path.read_bytes()
    raw.decode("utf-8")  # strict: hostile process text never makes invalid UTF-8
    records = [json.loads(line) for line in raw.splitlines()]
    assert {r["type"] for r in records} == set(LEVELS) - {"monitoring.gap"}
    for r in records:
        assert validate(r, SCHEMA_DOC) == [], r["type"]
        assert list(r)[:8] == ["schema", "ts", "id", "host", "user", "type", "level", "msg"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    started = next(r for r in records if r["type"] == "device.started")
    assert started["ts"] == "2026-11-22T07:10:53.250Z"
    assert (started["pid"], started["exe"], started["process_user"]) == (
        1234, "/opt/zoom/zoom", "alice")
    stopped = next(r for r in records if r["type"] == "device.stopped")
    assert stopped["duration_s"] == 61.0 and stopped["since"] == started["ts"]
    evil = next(r for r in records if r.get("pid") == 666)
    assert evil["name"].startswith('evil"]\\\x1b[31m\n\\xff')  # kept, bytes made visible
    assert "\n" not in evil["msg"] and "\x1b" not in evil["msg"]
    decision = next(r for r in records if r["type"] == "decision.made")
    assert decision["explanation"] == "camera blocked by rule 'no camera after 21:00'"
    error = next(r for r in records if r["type"] == "policy.error")
    assert error["level"] == "error"
    raw = next(r for r in records if r["type"] == "device.raw-usb")
    assert (raw["level"], raw["device"], raw["via"], raw["pid"]) == (
        "critical", "/dev/bus/usb/001/004", "usb", 1234)


def test_rotation_shared_by_two_processes(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from camguard.core.clock import FrozenClock\n"
        "from camguard.store.eventlog import EventLog, JsonLinesFile\n"
        "log = EventLog(FrozenClock(), [JsonLinesFile(Path(sys.argv[1]), 16_000, 100)])\n"
        "for n in range(400):\n"
        "    log.emit('source.recovered', source=sys.argv[2], n=n, pad='x' * 100)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), who], cwd=ROOT)
             for who in ("a", "b")]
    assert [p.wait(60) for p in procs] == [0, 0]
    files = sorted(tmp_path.glob("events.jsonl*"))
    assert len(files) > 5  # it really rotated, many times
    seen: dict[str, list[int]] = {"a": [], "b": []}
    for f in files:
        assert f.stat().st_size <= 16_000
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        for line in f.read_text().splitlines():
            rec = json.loads(line)  # never a torn or interleaved line
            seen[rec["source"]].append(rec["n"])
    assert sorted(seen["a"]) == list(range(400)) and sorted(seen["b"]) == list(range(400))


def test_old_files_beyond_the_backups_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(FrozenClock(NOW), [JsonLinesFile(path, max_bytes=2000, backups=2)])
    for n in range(100):
        log.emit("source.recovered", source="s", n=n)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["n"] == 99


def test_a_symlink_at_the_log_path_is_not_followed(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    (tmp_path / "events.jsonl").symlink_to(target)
    out = io.StringIO()
    log = EventLog(FrozenClock(NOW), [JsonLinesFile(tmp_path / "events.jsonl"),
                                      StderrOutput(out)])
    log.emit("camguard.stopped", reason="x", camguard_pid=1)  # no exception...
    assert target.read_text() == "keep me\n"  # ...nothing written through the link...
    assert "cannot write the event log" in caplog.text  # ...said so...
    assert out.getvalue().startswith("<6>camguard: camguard.stopped: ")  # ...others still get it


def test_stderr_has_sd_daemon_priority_prefixes() -> None:
    out = io.StringIO()
    log = EventLog(FrozenClock(NOW), [StderrOutput(out)], host="h", user="u")
    log.emit("policy.error", "broken", source="s", error="e")
    log.emit("block.on", "camera off", kind="camera", result="done")
    log.emit("device.started", "camera in use by\nzoom", kind="camera", device="d",
             pid=1, exe="e", name="n", process_user="u")
    assert out.getvalue().splitlines() == [
        "<3>camguard: policy.error: broken", "<4>camguard: block.on: camera off",
        "<5>camguard: device.started: camera in use by\\nzoom"]


def test_gap_after_an_unclean_stop(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    clock = FrozenClock(NOW)

    def new_log() -> EventLog:
        return EventLog(clock, [JsonLinesFile(path)])

    first = new_log()
    first.started("0.1.0")
    first.stopped()
    new_log().started("0.1.0")  # after a clean stop: no gap
    clock.advance(30)
    new_log().emit("rule.added", rule=rule_to_json(make_rule("allow")))  # a CLI's event
    clock.advance(3600)
    new_log().started("0.1.0")  # the previous run never said it stopped
    records = [json.loads(line) for line in path.read_text().splitlines()]
    types = [r["type"] for r in records]
    assert types == ["camguard.started", "camguard.stopped", "camguard.started",
                     "rule.added", "monitoring.gap", "camguard.started"]
    gap = records[4]
    assert gap["since"] == records[3]["ts"] and gap["until"] == records[5]["ts"]
    assert gap["previous_start"] == records[2]["ts"] and validate(gap, SCHEMA_DOC) == []


def test_monitor_sink_writes_device_sessions(tmp_path: Path, devdir: Path,
                                            holders: list[Holder]) -> None:
    """A real Monitor over the real /proc source: a real child's open and close of a
    stand-in camera node become device.started / device.stopped lines naming that child."""
    node = make_standin(devdir / "video0")
    path = tmp_path / "events.jsonl"
    log = EventLog(SystemClock(), [JsonLinesFile(path)])
    source = ProcfsSource([f"{devdir}/video*"], [f"{devdir}/snd/pcmC*D*c"],
                          describer=ProcessDescriber())
    monitor = Monitor([source], SystemClock(), settle=0.002, rescan_interval=3600)
    monitor.add_sink(log.monitor_sink)
    monitor.start()
    try:
        def records() -> list[dict[str, Any]]:
            return [json.loads(x) for x in path.read_text().splitlines()] \
                if path.exists() else []

        holder = Holder([node])
        holders.append(holder)
        wait_until(lambda: [r["type"] for r in records()] == ["device.started"], 10, "started")
        holder.close()
        wait_until(lambda: [r["type"] for r in records()] == ["device.started",
                                                              "device.stopped"], 10, "events")
    finally:
        monitor.stop()
    for record in records():
        assert validate(record, SCHEMA_DOC) == []
        assert json.dumps(record).count(str(holder.pid)) >= 1, record
        assert str(node) in json.dumps(record)


# -- syslog receivers on loopback --------------------------------------------------------------
RFC5424 = re.compile(
    r"<(?P<pri>[0-9]{1,3})>1 "
    r"(?P<ts>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z) "
    r"(?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) "
    r"(?P<msgid>[!-~]{1,32}) "
    r'(?P<sd>-|\[(?P<sdid>[^ =\]"]{1,32})'
    r'(?P<params>(?: [^ =\]"]{1,32}="(?:[^"\\\]]|\\["\\\]])*")*)\])'
    r" (?P<msg>[^\n]*)")
PARAM = re.compile(r' ([^ =\]"]{1,32})="((?:[^"\\\]]|\\["\\\]])*)"')


def parse(message: bytes) -> tuple[re.Match[str], dict[str, str]]:
    m = RFC5424.fullmatch(message.decode("utf-8"))
    assert m is not None, message[:300]
    params = {k: re.sub(r'\\(["\\\]])', r"\1", v) for k, v in PARAM.findall(m["params"])}
    return m, params


def syslog_log(target: SyslogTarget) -> tuple[EventLog, SyslogOutput]:
    out = SyslogOutput(target, "local3")
    return EventLog(FrozenClock(NOW), [out], host="desk 12", user="alice"), out


def emit_samples(log: EventLog) -> None:
    log.emit("device.started", "camera in use by zoom", kind="camera", device="/dev/video0",
             pid=1234, exe='/opt/we"ird]\\zoom', name="zoom", process_user="alice",
             cmdline=["zoom", "--x=]"])
    log.emit("block.on", "camera off", kind="camera", result="done", until=None)
    log.emit("source.degraded", source="pulse", reason="line1\nline2")


def check_samples(messages: list[bytes]) -> None:
    (m1, p1), (m2, p2), (_, p3) = (parse(x) for x in messages)
    assert int(m1["pri"]) == 19 * 8 + 5  # local3, notice
    assert int(m2["pri"]) == 19 * 8 + 4  # warning
    assert (m1["ts"], m1["host"], m1["app"], m1["procid"], m1["msgid"]) == (
        "2026-11-22T07:10:53.250Z", "desk_12", "camguard", str(os.getpid()), "device.started")
    assert m1["sdid"] == "camguard@32473" and m1["msg"] == "camera in use by zoom"
    assert p1["exe"] == '/opt/we"ird]\\zoom'  # escaped on the wire, exact after unescaping
    assert json.loads(p1["cmdline"]) == ["zoom", "--x=]"]
    assert p1["pid"] == "1234" and p1["user"] == "alice" and len(p1["id"]) == 32
    assert "until" not in p2  # null values are left out
    assert p3["reason"] == "line1\\x0aline2"  # no raw newline reaches a line-based reader


def test_syslog_over_udp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(10)
        log, out = syslog_log(SyslogTarget("udp", "127.0.0.1", rx.getsockname()[1]))
        emit_samples(log)
        assert out.sender.flush(10)
        check_samples([rx.recv(65536) for _ in range(3)])
        log.close()


def test_syslog_over_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "log")  # stands in for /dev/log
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.bind(path)
        rx.settimeout(10)
        log, out = syslog_log(SyslogTarget.parse(f"unix:{path}"))
        emit_samples(log)
        assert out.sender.flush(10)
        check_samples([rx.recv(65536) for _ in range(3)])
        log.close()


class TcpCollector:
    """A real TCP syslog collector: reads octet-counted frames (RFC 6587 section 3.4.1)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.frames: list[bytes] = []
        self.connections = 0
        self.leftover = 0
        self.client_closed = 0
        self.hang_up_after: int | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                buf = b""
                while True:
                    data = conn.recv(65536)
                    if not data:
                        # The client closed: nothing may be left over if the framing is exact.
                        self.leftover += len(buf)
                        self.client_closed += 1
                        break
                    buf += data
                    while (m := re.match(rb"([1-9][0-9]*) ", buf)) and \
                            len(buf) >= m.end() + int(m[1]):
                        self.frames.append(buf[m.end():m.end() + int(m[1])])
                        buf = buf[m.end() + int(m[1]):]
                    if self.hang_up_after is not None and \
                            len(self.frames) >= self.hang_up_after:
                        self.hang_up_after = None
                        break  # a collector restart: the client must reconnect

    def close(self) -> None:
        self.server.close()


def test_syslog_over_tcp_with_octet_counting_and_reconnect() -> None:
    collector = TcpCollector()
    try:
        collector.hang_up_after = 1
        log, out = syslog_log(SyslogTarget.parse(f"tcp://127.0.0.1:{collector.port}"))
        emit_samples(log)
        assert out.sender.flush(10)
        wait_until(lambda: len(collector.frames) >= 1, 10, "first frame")
        wait_until(lambda: collector.hang_up_after is None, 10, "collector hang-up")
        # After the hang-up the next sends may fail once before the reconnect; send a known
        # set until everything from one emit arrives on the new connection.
        before = len(collector.frames)
        emit_samples(log)
        assert out.sender.flush(10)
        emit_samples(log)
        assert out.sender.flush(10)
        # Sends lost to the dead connection are a prefix of one emit; once the last frame is
        # the final emit's last message, the last three are one whole emit, in order.
        wait_until(lambda: len(collector.frames) >= before + 3
                   and b" source.degraded " in collector.frames[-1], 10,
                   "a whole emit after the reconnect")
        assert collector.connections >= 2
        check_samples(collector.frames[-3:])
        log.close()  # the client hangs up: the collector checks the framing to the last byte
        wait_until(lambda: collector.client_closed >= 1, 10, "the collector to see the close")
        assert collector.leftover == 0
        assert all(RFC5424.fullmatch(f.decode()) for f in collector.frames)
    finally:
        collector.close()


def test_unreachable_collector_never_blocks_and_drops_are_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log, out = syslog_log(SyslogTarget("tcp", "127.0.0.1", port))
    for _ in range(3):
        log.emit("block.off", kind="camera", result="done")
    assert out.sender.flush(10)
    assert out.sender.dropped == 3 and out.sender.sent == 0
    assert "cannot send to syslog" in caplog.text
    log.close()


@pytest.mark.parametrize("text", ["udp://", "tcp://host:0", "tcp://host:70000", "syslog",
                                  "unix:relative", "udp://a b:1"])
def test_bad_syslog_targets(text: str) -> None:
    with pytest.raises(ValueError, match="not a syslog target"):
        SyslogTarget.parse(text)


def test_ipv6_and_default_port() -> None:
    assert SyslogTarget.parse("udp://[::1]:5514") == SyslogTarget("udp", "::1", 5514)
    assert SyslogTarget.parse("tcp://logs.example") == SyslogTarget("tcp", "logs.example", 514)
    assert SyslogTarget.parse("local") == SyslogTarget("unix", path="/dev/log")


def test_open_event_log_from_settings(tmp_path: Path) -> None:
    from camguard.app.outputs import open_event_log

    log, problems = open_event_log(FrozenClock(NOW), tmp_path / "e.jsonl", syslog="nope",
                                   stderr=True)
    assert problems and "syslog disabled" in problems[0]
    assert [type(o).__name__ for o in log.outputs] == ["JsonLinesFile", "StderrOutput"]
    log.close()
