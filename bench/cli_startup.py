"""Whole-process start-up of camguard commands against ``python -c pass`` (issue 16).

    .venv/bin/python bench/cli_startup.py [--runs 40] [--no-pulse] [--no-service]
                                          [--compare OTHER_CHECKOUT]

Runs, interleaved round-robin so that machine load hits every command alike:
``python -c pass`` (the same interpreter), ``camguard --version``, ``camguard status
--json`` and ``camguard history --json`` (1,000 sessions in a private history database),
``fuser`` and ``lsof`` on the same stand-in camera node, held by a ``sleep``, and two floor
rows for ``status --json`` with nothing running: a process that only imports the libraries
(stdlib and third-party) one such look loads, and one that imports every module it loads,
camguard's too, without looking at anything. camguard runs
from this checkout through the console-script stub (``from camguard.cli import main``), with
private config/data/state folders, no service (CAMGUARD_SOCKET names no socket) and
(unless ``--no-pulse``) a real PulseAudio server, so ``status`` asks the sound server as
on a desktop. As root (unless ``--no-service``) it also runs ``camguard status --json``
through a real camguard service (``python -m camguard service`` on a private socket, as
tests/service_env.py starts it), the path a managed machine's scripts take. ``--compare``
runs every camguard command a second time with another checkout's camguard (the code before
a change: ``git archive main | tar -x -C /tmp/before``), interleaved in the same rounds, so
that before and after meet the same load.

Prints a Markdown table (median and p90 wall ms, ratio of the medians to ``python -c
pass``; the same for the CPU time the process used, user + system, from ``wait4``: less
swayed by other load on the machine) and writes bench/results-cli.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STUB = "import sys\nfrom camguard.cli import main\nsys.exit(main())\n"
TARGETS = {"camguard --version": 2.0, "camguard status --json": 6.0,
           "camguard history --json": 4.0}


def fill_history(db: Path, rows: int) -> None:
    from camguard.core.models import Device, DeviceKind, ProcessRef, Usage
    from camguard.platform.clock import SystemClock
    from camguard.store.history import HistoryStore

    store = HistoryStore(db, SystemClock(), hash_exes=False)
    cam = Device(DeviceKind.CAMERA, "/dev/video0", "Integrated Camera")
    now = time.time()
    for i in range(rows):
        at = now - 3600 + i
        sid = store.open_session(Usage(cam, ProcessRef(1000 + i, at, "zoom", "/usr/bin/zoom",
                                                       ("zoom", f"--n={i}"), "alice")), at)
        store.close_session(sid, at + 0.5)
        store.record_decision(sid, "allowed-once", "user")
    store.close()


def make_node(path: Path) -> None:
    if os.geteuid() == 0:
        os.mknod(path, 0o666 | 0o020000, os.makedev(1, 3))
    else:
        path.write_bytes(b"")


def start_tray(tmp: Path, env: dict[str, str], globs: list[str]
               ) -> tuple[subprocess.Popen[bytes], Any]:
    """The tray of the same account (same state folder: its socket), on a private Xvfb,
    watching the bench's node; its own data folder, so that the local `status` row reads
    the bench's history as before (no live tray beats in it)."""
    from tests import realenv

    xs = realenv.start_x(tmp / "x")
    tray_env = {**env, **xs.env, "CAMGUARD_DATA_DIR": str(tmp / "tray-data")}
    log = tmp / "tray.log"
    with log.open("w") as out:
        tray = subprocess.Popen([sys.executable, "-m", "camguard", "-v", "tray", *globs],
                                env=tray_env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    realenv.wait_until(lambda: "tray ready" in log.read_text(errors="replace"), 90,
                       "the tray")
    return tray, xs


# Run in a child: one `status --json` look, then the modules it loaded, in import order.
LOADED = """
import io, json, sys
before = set(sys.modules)
sys.argv = ["camguard", *json.loads(sys.argv[1])]
from camguard.cli import main
out, sys.stdout = sys.stdout, io.StringIO()
try:
    main()
except SystemExit:
    pass
sys.stdout = out
print(json.dumps([m for m in sys.modules if m not in before]))
"""
# The floor rows: import those modules and do nothing else. pulsectl is loaded as camguard
# loads it (platform/linux/pulse_conn.load_pulsectl: no ldconfig/gcc/ld search for libpulse).
FLOOR = """import ctypes.util as _u, importlib
_real = _u.find_library
_u.find_library = lambda n: None if n == "libpulse" else _real(n)
for _m in {mods!r}:
    try:
        importlib.import_module(_m)
    except Exception:
        pass
_u.find_library = _real
"""


def floor_scripts(tmp: Path, py: str, env: dict[str, str], args: list[str]
                  ) -> dict[str, list[str]]:
    """Two rows that bound `status --json` with nothing running from below: a process that
    imports only the libraries one look loads (stdlib and third-party, none of camguard's
    modules) and one that imports every module it loads; neither looks at anything."""
    res = subprocess.run([py, "-c", LOADED, json.dumps(args)], env=env, capture_output=True,
                         text=True, check=True)
    mods = json.loads(res.stdout.splitlines()[-1])
    libs = [m for m in mods if m.split(".")[0] != "camguard"]
    out = {}
    for i, (name, chosen) in enumerate(
            (("import only the libraries one status look loads", libs),
             ("import every module one status look loads", mods))):
        script = tmp / f"floor-{i}.py"
        script.write_text(FLOOR.format(mods=chosen))
        out[name] = [py, str(script)]
    print(f"one look loads {len(mods)} modules, {len(libs)} of them not camguard's",
          file=sys.stderr)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--no-pulse", action="store_true")
    ap.add_argument("--no-service", action="store_true")
    ap.add_argument("--no-tray", action="store_true",
                    help="no row for `status --json` answered by a running tray")
    ap.add_argument("--compare", type=Path, metavar="OTHER_CHECKOUT",
                    help="also run the camguard commands with this checkout's camguard")
    opts = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="camguard-clibench-"))
    node = tmp / "dev" / "video0"
    node.parent.mkdir()
    make_node(node)
    stub = tmp / "camguard"
    stub.write_text(STUB)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp),
           "PYTHONPATH": str(ROOT), "CAMGUARD_CONFIG_DIR": str(tmp / "config"),
           "CAMGUARD_DATA_DIR": str(tmp / "data"), "CAMGUARD_STATE_DIR": str(tmp / "state"),
           "PULSE_SERVER": f"unix:{tmp}/no-pulse"}
    old_data = os.environ.get("CAMGUARD_DATA_DIR")
    os.environ["CAMGUARD_DATA_DIR"] = env["CAMGUARD_DATA_DIR"]
    from camguard.store.db import default_path

    fill_history(default_path(), opts.rows)
    if old_data is None:
        os.environ.pop("CAMGUARD_DATA_DIR")
    server = None
    if not opts.no_pulse:
        from tests import realenv

        if not realenv.missing(realenv.PA_TOOLS):
            server = realenv.start_pulseaudio(tmp / "pulse")
            env.update(server.env)
            env["PULSE_SERVER"] = server.server
    pulse = "a real PulseAudio" if server else "no sound server (refused at once)"
    py = sys.executable
    env["CAMGUARD_SOCKET"] = str(tmp / "no-service.sock")  # absent: the command works alone
    common = ["--camera-glob", f"{node.parent}/video*", "--mic-glob", f"{tmp}/pcmC*D*c"]
    commands = {
        "python -c pass": [py, "-c", "pass"],
        "camguard --version": [py, str(stub), "--version"],
        "camguard status --json": [py, str(stub), "status", "--json", *common],
        "camguard status, as text": [py, str(stub), "status", *common],
        f"camguard history --json ({opts.rows} rows)": [py, str(stub), "history", "--since",
                                                         "1d", "--json", *common],
        "fuser NODE": ["fuser", str(node)],
        "lsof NODE": ["lsof", "-n", "-P", "-w", str(node)],
    }
    service_box = None
    envs: dict[str, dict[str, str]] = {}
    if os.geteuid() == 0 and not opts.no_service:
        from tests.service_env import Service, box

        service_box = box()
        b = service_box.__enter__()
        Service(b, heartbeat=30.0).start()
        name = "camguard status --json (through the service)"
        commands[name] = [py, str(stub), "status", "--json"]
        envs[name] = {**env, "CAMGUARD_SOCKET": str(b.sock)}
    tray = xs = None
    if not opts.no_tray:
        tray, xs = start_tray(tmp, env, common)
        name = "camguard status --json (answered by the running tray)"
        commands[name] = [py, str(stub), "status", "--json"]
        commands["camguard status, as text (answered by the running tray)"] = [
            py, str(stub), "status"]
    if opts.compare is not None:
        other = str(opts.compare.resolve())
        for name in [k for k in commands if k.startswith("camguard")]:
            commands[f"{name} [{opts.compare.name}]"] = commands[name]
            envs[f"{name} [{opts.compare.name}]"] = {**envs.get(name, env),
                                                     "PYTHONPATH": other}
    commands = {k: v for k, v in commands.items() if shutil.which(v[0])}
    holder = subprocess.Popen(["sleep", "3600"], stdin=open(node))  # noqa: SIM115
    samples: dict[str, list[float]] = {k: [] for k in commands}
    cpu: dict[str, list[float]] = {k: [] for k in commands}
    try:
        floors = floor_scripts(tmp, py, env, ["status", "--json", *common])  # with a holder
        commands.update(floors)
        samples.update({k: [] for k in floors})
        cpu.update({k: [] for k in floors})
        for name, argv in commands.items():  # once, unmeasured: warm caches, check it works
            res = subprocess.run(argv, env=envs.get(name, env), capture_output=True, text=True,
                                 check=False)
            if name.startswith("camguard") and res.returncode != 0:
                print(f"{name} failed: {res.stderr}", file=sys.stderr)
                return 1
            if "running tray" in name and str(node) not in res.stdout:  # it looked itself
                print(f"{name}: the tray did not answer: {res.stdout[:300]}", file=sys.stderr)
                return 1
        for _ in range(opts.runs):
            for name, argv in commands.items():
                t = time.perf_counter()
                child = subprocess.Popen(argv, env=envs.get(name, env), stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
                _pid, _status, usage = os.wait4(child.pid, 0)
                samples[name].append((time.perf_counter() - t) * 1e3)
                child.returncode = 0  # reaped by wait4
                cpu[name].append((usage.ru_utime + usage.ru_stime) * 1e3)
    finally:
        holder.kill()
        holder.wait()
        if server is not None:
            server.stop()
        if service_box is not None:
            service_box.__exit__(None, None, None)
        if tray is not None:
            tray.terminate()
            tray.wait(30)
        if xs is not None:
            xs.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    base = statistics.median(samples["python -c pass"])
    base_cpu = statistics.median(cpu["python -c pass"])
    rows = []
    print(f"{opts.runs} interleaved runs each; status with {pulse}; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}\n")
    print("| command | wall median ms | wall p90 ms | wall x `python -c pass` | "
          "CPU median ms | CPU x | target |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, values in samples.items():
        med, cmed = statistics.median(values), statistics.median(cpu[name])
        target = next((f"≤ {v:g}x" for k, v in TARGETS.items() if name.startswith(k)), "")
        print(f"| `{name}` | {med:.1f} | {pct(values, 90):.1f} | {med / base:.2f} | "
              f"{cmed:.1f} | {cmed / base_cpu:.2f} | {target} |")
        rows.append({"command": name, "median_ms": med, "p90_ms": pct(values, 90),
                     "ratio": med / base, "cpu_median_ms": cmed, "cpu_ratio": cmed / base_cpu})
    (ROOT / "bench" / "results-cli.json").write_text(json.dumps(
        {"runs": opts.runs, "pulse": pulse, "results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
