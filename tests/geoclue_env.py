"""A private system-style D-Bus with the real GeoClue 2 daemon, an agent, and real clients.

GeoClue hands out a client only once an agent for the caller's account is registered (as
gnome-shell does on a desktop): ``AGENT`` registers as ``geoclue-demo-agent`` (whitelisted in
Debian's /etc/geoclue/geoclue.conf) and allows every app. ``CLIENT`` is an app: it gets a
client, sets its desktop id and accuracy, starts it, says "started", and stops and leaves
when the test writes a line. Everything speaks through jeepney (a camguard dependency).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.realenv import Component, missing, wait_until

GEOCLUE = "/usr/libexec/geoclue"
TOOLS = ("dbus-daemon", GEOCLUE)

BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""

AGENT = textwrap.dedent("""
    import sys, time
    from jeepney import DBusAddress, HeaderFields, MessageType, new_method_call
    from jeepney import new_method_return
    from jeepney.io.blocking import open_dbus_connection
    conn = open_dbus_connection(bus="SYSTEM")
    mgr = DBusAddress("/org/freedesktop/GeoClue2/Manager", bus_name="org.freedesktop.GeoClue2",
                      interface="org.freedesktop.GeoClue2.Manager")
    # GeoClue may not own its name yet (it starts alongside): the bus then answers AddAgent
    # with an error. Ask again until GeoClue answers with a method return. (jeepney's send()
    # returns no serial: one is chosen here, above jeepney's own, so the reply is matched;
    # matching None took the first message without a reply serial for the registration.)
    serial = 1_000_000
    conn.send(new_method_call(mgr, "AddAgent", "s", ("geoclue-demo-agent",)), serial=serial)
    while True:
        msg = conn.receive()
        h = msg.header
        if h.fields.get(HeaderFields.reply_serial) == serial:
            if h.message_type is MessageType.method_return:
                print("agent", flush=True)
            else:
                print("not yet:", msg.body, file=sys.stderr, flush=True)
                time.sleep(0.05)
                serial += 1
                conn.send(new_method_call(mgr, "AddAgent", "s", ("geoclue-demo-agent",)),
                          serial=serial)
            continue
        if h.message_type is not MessageType.method_call:
            continue
        member = h.fields.get(HeaderFields.member)
        if member == "GetAll":
            conn.send(new_method_return(msg, "a{sv}", ({"MaxAccuracyLevel": ("u", 8)},)))
        elif member == "Get":
            conn.send(new_method_return(msg, "v", (("u", 8),)))
        elif member == "AuthorizeApp":
            conn.send(new_method_return(msg, "bu", (True, msg.body[1])))
        else:
            conn.send(new_method_return(msg))
""")

CLIENT = textwrap.dedent("""
    import sys
    from jeepney import DBusAddress, Properties, new_method_call
    from jeepney.io.blocking import open_dbus_connection
    conn = open_dbus_connection(bus="SYSTEM")
    mgr = DBusAddress("/org/freedesktop/GeoClue2/Manager", bus_name="org.freedesktop.GeoClue2",
                      interface="org.freedesktop.GeoClue2.Manager")
    path = conn.send_and_get_reply(new_method_call(mgr, "GetClient"), timeout=20).body[0]
    client = DBusAddress(path, bus_name="org.freedesktop.GeoClue2",
                         interface="org.freedesktop.GeoClue2.Client")
    conn.send_and_get_reply(Properties(client).set("DesktopId", "s", sys.argv[1]), timeout=20)
    conn.send_and_get_reply(Properties(client).set("RequestedAccuracyLevel", "u",
                                                   int(sys.argv[2])), timeout=20)
    reply = conn.send_and_get_reply(new_method_call(client, "Start"), timeout=20)
    print("started" if reply.header.message_type.name == "method_return" else reply.body,
          flush=True)
    sys.stdin.readline()
    conn.send_and_get_reply(new_method_call(client, "Stop"), timeout=20)
    print("stopped", flush=True)
    sys.stdin.readline()
""")


class GeoClueBus(Component):
    """The bus, GeoClue and its agent; ``address`` goes in DBUS_SYSTEM_BUS_ADDRESS."""

    @property
    def address(self) -> str:
        return f"unix:path={self.root / 'system_bus_socket'}"

    def stop_geoclue(self) -> None:
        self.kill("geoclue")

    def client(self, desktop_id: str = "org.example.Maps", accuracy: int = 8,
               prefix: list[str] | None = None, paths: list[str] | None = None
               ) -> subprocess.Popen[str]:
        """A real app asking for location; returns once GeoClue started its client.

        GeoClue 2.6 once left a GetClient unanswered for 20 s (1 run in about ten whole
        suites, with nothing else on the bus): then one more app asks, and if that fails
        too the test fails with GeoClue's own log."""
        cmd = [*(prefix or [sys.executable]), "-c",
               ("import sys; sys.path[:0] = sys.argv[3:]; " if paths else "") + CLIENT,
               desktop_id, str(accuracy), *(paths or [])]
        for attempt in (1, 2):
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True, env={**os.environ,
                                                    "DBUS_SYSTEM_BUS_ADDRESS": self.address})
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line == "started\n" or attempt == 2:
                break
            proc.kill()
            proc.wait(10)
        assert line == "started\n", (f"the GeoClue client did not start: {line!r}; GeoClue "
                                      f"said: {self.log('geoclue')[-2000:]}")
        return proc


def start_geoclue(root: Path) -> GeoClueBus:
    root.mkdir(parents=True, exist_ok=True)
    bus = GeoClueBus(root=root)
    conf = root / "bus.conf"
    conf.write_text(BUS_CONF.format(socket=root / "system_bus_socket"))
    env = {"DBUS_SYSTEM_BUS_ADDRESS": bus.address}
    try:
        bus.spawn("bus", ["dbus-daemon", f"--config-file={conf}", "--nofork"])
        wait_until((root / "system_bus_socket").exists, 10, "the private system bus")
        bus.spawn("geoclue", [GEOCLUE, "-t", "0"], env=env)
        bus.spawn("agent", [sys.executable, "-c", AGENT], env=env)
        wait_until(lambda: "agent" in bus.log("agent").splitlines(), 15,
                   "the GeoClue agent registered")
    except BaseException:
        bus.stop()
        raise
    return bus


def available() -> list[str]:
    return missing(TOOLS)
