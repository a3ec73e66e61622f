"""Real components for the tests: PulseAudio, PipeWire (with a sine-wave microphone), and an
X session (Xvfb + XEmbed tray host + session D-Bus + notification daemon).

Each start_* function starts private instances under a directory of the caller's, so tests
(and parallel test runs) never share or disturb each other's servers, and returns a handle
whose ``stop()`` ends exactly the processes it started (by process group). Adapted from the
team's tested recipe; the project does not depend on that file.

Also runnable: ``python tests/realenv.py check`` lists which components are installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PA_TOOLS = ("pulseaudio", "pactl", "parecord")
PW_TOOLS = ("pipewire", "wireplumber", "pipewire-pulse", "pactl", "pacat", "sox", "dbus-daemon")
X_TOOLS = ("Xvfb", "trayer", "dbus-daemon", "dunst", "xdpyinfo", "xdotool")


def missing(tools: Sequence[str]) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until true or fail with a clear message (no sleep-and-hope)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.02)


def bound_to_tests(cmd: Sequence[str]) -> list[str]:
    """``cmd`` run so that the kernel kills it if the test process dies (PR_SET_PDEATHSIG,
    set by setpriv just before exec): a crashed run (SIGSEGV, SIGKILL, a timeout) leaves no
    X server, bus, sound server or service behind, as fixtures' teardown never runs then.
    The signal follows the thread that started it, so call this from the main thread."""
    return ["setpriv", "--pdeathsig", "KILL", "--", *cmd]


def _ok(cmd: Sequence[str], env: dict[str, str] | None = None) -> bool:
    try:
        return subprocess.run(list(cmd), env=env, capture_output=True, timeout=5,
                              check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class Component:
    """A set of background processes started together; ``stop()`` ends them all."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra_pids: list[int] = field(default_factory=list)

    def spawn(self, name: str, cmd: Sequence[str], env: dict[str, str] | None = None) -> None:
        log_dir = self.root / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / f"{name}.log").open("ab") as logf:
            self.procs[name] = subprocess.Popen(
                bound_to_tests(cmd), stdin=subprocess.DEVNULL, stdout=logf,
                stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.get(name)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            self.kill(name, signal.SIGTERM)
            self.kill(name, signal.SIGKILL)
        for pid in self.extra_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.procs.clear()
        self.extra_pids.clear()

    def log(self, name: str) -> str:
        p = self.root / "log" / f"{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""


@dataclass
class SoundServer(Component):
    """A private PulseAudio or PipeWire server; ``server`` goes in PULSE_SERVER."""

    kind: str = ""
    server: str = ""
    restart: Callable[[], None] | None = None

    def pactl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["pactl", *args], env={**os.environ, **self.env},
                              capture_output=True, text=True, timeout=10, check=False)

    def ready(self) -> bool:
        return self.pactl("info").returncode == 0

    def server_pid(self) -> int:
        """Pid of the process that speaks the pulse protocol (pulseaudio or pipewire-pulse)."""
        name = "pulseaudio" if self.kind == "pulseaudio" else "pipewire-pulse"
        return self.procs[name].pid


def _or_stop(component: Component, start: Callable[[], None]) -> None:
    """Run ``start``; if it fails, end what it had started before re-raising."""
    try:
        start()
    except BaseException:
        component.stop()
        raise


def start_pulseaudio(root: Path) -> SoundServer:
    """Real PulseAudio with a 440 Hz sine source ``sinemic`` (default) and a silent one."""
    runtime = root / "pa"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    server = f"unix:{runtime}/pulse/native"
    srv = SoundServer(root=root, kind="pulseaudio", server=server,
                      env={"PULSE_SERVER": server})

    def launch() -> None:
        # -n: no default.pa, so no stream-restore database and no hardware detection.
        srv.spawn("pulseaudio", [
            "pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "-n",
            "--log-target=stderr", "--load=module-native-protocol-unix",
            "--load=module-null-sink sink_name=spk",
            "--load=module-sine-source source_name=sinemic rate=48000 frequency=440",
            "--load=module-null-source source_name=silentmic",
        ], env={"XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime)})
        wait_until(srv.ready, 15, f"PulseAudio at {server}: {srv.log('pulseaudio')[-500:]}")
        srv.pactl("set-default-source", "sinemic")

    srv.restart = launch
    _or_stop(srv, launch)
    return srv


def start_pipewire(root: Path) -> SoundServer:
    """Real PipeWire + WirePlumber + pipewire-pulse with a sine-carrying source ``sinemic``.

    pipewire-pulse has no module-sine-source (and audiotestsrc stalls in 0.3.65), so a sine
    from sox is played into a null sink whose monitor is remapped into a real Audio/Source.
    """
    runtime = root / "pw"
    for sub in ("state", "config"):
        (runtime / sub).mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    server = f"unix:{runtime}/pulse/native"
    bus = f"unix:path={runtime}/bus"
    penv = {"XDG_RUNTIME_DIR": str(runtime), "XDG_STATE_HOME": str(runtime / "state"),
            "XDG_CONFIG_HOME": str(runtime / "config"), "DBUS_SESSION_BUS_ADDRESS": bus}
    srv = SoundServer(root=root, kind="pipewire", server=server,
                      env={"PULSE_SERVER": server, "XDG_RUNTIME_DIR": str(runtime)})
    srv.spawn("dbus", ["dbus-daemon", "--session", f"--address={bus}", "--nofork"], env=penv)
    wait_until((runtime / "bus").exists, 10, "PipeWire's session bus")

    def launch() -> None:
        srv.spawn("pipewire", ["pipewire"], env=penv)
        wait_until((runtime / "pipewire-0").exists, 15, "the pipewire socket")
        srv.spawn("wireplumber", ["wireplumber"], env=penv)
        srv.spawn("pipewire-pulse", ["pipewire-pulse"], env=penv)
        wait_until(srv.ready, 15, f"pipewire-pulse at {server}")
        if "spk" not in srv.pactl("list", "short", "sinks").stdout:
            srv.pactl("load-module", "module-null-sink", "sink_name=spk", "channel_map=mono")
        wait_until(lambda: "spk" in srv.pactl("list", "short", "sinks").stdout, 15, "sink spk")
        srv.pactl("load-module", "module-remap-source", "master=spk.monitor",
                  "source_name=sinemic", "channels=1", "channel_map=mono")
        wait_until(lambda: "sinemic" in srv.pactl("list", "short", "sources").stdout, 15,
                   "source sinemic")
        srv.pactl("set-default-source", "sinemic")
        srv.spawn("feeder", ["sh", "-c",
                             "sox -q -n -t raw -r 48000 -e signed -b 16 -c 1 - synth 86400 "
                             "sine 440 vol 0.5 | pacat --playback --device=spk --raw "
                             "--format=s16le --rate=48000 --channels=1 --latency-msec=50"],
                  env={"PULSE_SERVER": server})

    def restart() -> None:
        for name in ("feeder", "pipewire-pulse", "wireplumber", "pipewire"):
            srv.kill(name)
        for leftover in ("pipewire-0", "pipewire-0.lock", "pipewire-0-manager",
                         "pipewire-0-manager.lock"):
            with contextlib.suppress(FileNotFoundError):
                (runtime / leftover).unlink()
        launch()

    srv.restart = restart
    _or_stop(srv, launch)
    return srv


@dataclass
class XSession(Component):
    display: str = ""
    bus: str = ""


def _free_display() -> int:
    for n in range(80, 200):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number")


def start_x(root: Path, tray: bool = True, notifications: bool = True) -> XSession:
    """Xvfb, optionally a tray host (trayer) and a notification daemon (dunst) on a private
    session bus. ``env`` holds DISPLAY and DBUS_SESSION_BUS_ADDRESS for the app under test."""
    runtime = root / "x"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    display = f":{_free_display()}"
    bus = f"unix:path={runtime}/bus"
    xs = XSession(root=root, display=display, bus=bus,
                  env={"DISPLAY": display, "DBUS_SESSION_BUS_ADDRESS": bus})
    # -noreset: Xvfb otherwise resets when its last client leaves (the xdpyinfo readiness
    # probe is one), and trayer or dunst connecting during that reset gets "cannot open
    # display" (seen 2 runs in 3 on this machine).
    xs.spawn("xvfb", ["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp",
                      "-noreset"])
    try:
        _start_x_clients(xs, runtime, display, bus, tray=tray, notifications=notifications)
    except BaseException:
        xs.stop()  # never leak a half-started session
        raise
    return xs


def _start_x_clients(xs: XSession, runtime: Path, display: str, bus: str, *, tray: bool,
                     notifications: bool) -> None:
    wait_until(lambda: _ok(["xdpyinfo"], {**os.environ, "DISPLAY": display}), 15, "Xvfb")
    xs.spawn("dbus", ["dbus-daemon", "--session", f"--address={bus}", "--nofork"])
    wait_until((runtime / "bus").exists, 10, "the session bus")
    if tray:
        xs.spawn("trayer", ["trayer", "--edge", "top", "--align", "right", "--widthtype",
                            "pixel", "--width", "160", "--height", "32", "--transparent",
                            "false"], env={"DISPLAY": display})
        wait_until(lambda: _ok(["xdotool", "search", "--class", "trayer"],
                               {**os.environ, "DISPLAY": display}), 15, "the trayer window")
    if notifications:
        # dunst's own default place, the top right: the tray's corner under a top panel,
        # where camguard's popup also goes (the end-to-end test checks they never overlap).
        conf = runtime / "dunstrc"
        conf.write_text("[global]\norigin = top-right\noffset = 10x50\n")
        xs.spawn("dunst", ["dunst", "-conf", str(conf)], env=xs.env)
        wait_until(lambda: _ok(
            ["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.Notifications",
             "/org/freedesktop/Notifications",
             "org.freedesktop.Notifications.GetServerInformation"],
            {**os.environ, **xs.env}), 15, "the notification daemon")


if __name__ == "__main__":
    if sys.argv[1:] == ["check"]:
        gone = missing(PA_TOOLS + PW_TOOLS + X_TOOLS)
        print("missing: " + " ".join(gone) if gone else "all real components installed")
        raise SystemExit(1 if gone else 0)
    raise SystemExit("usage: realenv.py check")
