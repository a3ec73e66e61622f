"""The .deb for real: built, installed with apt-get on this machine, used, removed, purged.

The tests in this module run in order against ONE installation (the `installed` fixture);
the last one removes and purges it, and the fixture purges anyway if a test failed first.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import realenv
from tests.conftest import Holder, make_standin, need_tools
from tests.packaging.conftest import Artifacts

pytestmark = pytest.mark.real

APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
HELPER = Path("/usr/libexec/camguard/camguard-helper")
UNIT = Path("/usr/lib/systemd/system/camguard.service")
REPO_UNIT = Path(__file__).resolve().parents[2] / "resources" / "systemd" / "camguard.service"
UDEV_RULE = Path("/etc/udev/rules.d/72-camguard-block.rules")
# Everything the package or its scripts create; all of it must be gone after a purge.
CREATED = [Path(p) for p in (
    "/opt/camguard", "/usr/bin/camguard", "/usr/libexec/camguard", "/etc/camguard",
    "/etc/xdg/autostart/camguard.desktop", "/usr/share/applications/camguard.desktop",
    "/usr/share/icons/hicolor/scalable/apps/camguard.svg",
    "/usr/share/polkit-1/actions/org.camguard.helper.policy", "/usr/share/camguard",
    "/usr/share/man/man1/camguard.1.gz", "/usr/share/doc/camguard", str(UNIT),
    "/var/lib/camguard", "/var/log/camguard", str(UDEV_RULE))]


def run(*cmd: str, env: dict[str, str] | None = None, timeout: float = 120
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                          check=False, env=env)


def dpkg_status() -> str:
    return run("dpkg-query", "-W", "-f=${Status}", "camguard").stdout


def dpkg_knows_it() -> bool:
    """Installed, or removed with its conffiles still there."""
    return dpkg_status() not in ("", "unknown ok not-installed")


def app_env(tmp: Path, **extra: str) -> dict[str, str]:
    """A clean environment: nothing from the venv or the checkout can help the installed app."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "LANG": "C.UTF-8",
            "CAMGUARD_STATE_DIR": str(tmp / "state"), "CAMGUARD_CONFIG_DIR": str(tmp / "config"),
            "CAMGUARD_DATA_DIR": str(tmp / "data"), "PULSE_SERVER": f"unix:{tmp}/no-server",
            **extra}


@pytest.fixture(scope="module")
def installed(artifacts: Artifacts) -> Iterator[Artifacts]:
    need_tools(["apt-get", "dpkg-query"])
    if dpkg_knows_it():
        pytest.fail("camguard is already installed here; this test installs and purges its "
                    "own build, so remove it first: apt-get purge camguard")
    proc = run("apt-get", "install", "-y", str(artifacts.deb), env=APT_ENV, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert dpkg_status() == "install ok installed"
    yield artifacts
    if dpkg_knows_it():
        run("apt-get", "purge", "-y", "camguard", env=APT_ENV, timeout=600)


def test_package_metadata_and_modes(artifacts: Artifacts) -> None:
    info = run("dpkg-deb", "-f", str(artifacts.deb)).stdout
    fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line)
    assert fields["Package"] == "camguard" and fields["Version"] == artifacts.version
    depends = fields["Depends"].split(", ")
    assert "python3" in depends  # the helper runs on the system python
    assert any(re.fullmatch(r"libc6 \(>= 2\.\d+\)", d) for d in depends), depends
    assert "libxcb1" in depends  # left to the system by PyInstaller, so declared
    conffiles = run("dpkg-deb", "-I", str(artifacts.deb), "conffiles").stdout.split()
    assert conffiles == ["/etc/camguard/policy.toml", "/etc/xdg/autostart/camguard.desktop"]
    listing = run("dpkg-deb", "-c", str(artifacts.deb)).stdout
    entries = {line.split()[-1] if "->" not in line else line.split()[-3]: line.split()
               for line in listing.splitlines()}
    helper = entries["./usr/libexec/camguard/camguard-helper"]
    assert helper[0] == "-rwxr-xr-x" and helper[1] == "root/root", helper
    for line in listing.splitlines():
        mode = line.split()[0]
        assert " root/root " in line, f"not root-owned: {line}"
        assert mode[0] == "l" or "w" not in (mode[5], mode[8]), f"writable by others: {line}"
    assert entries["./usr/bin/camguard"][0].startswith("l")


def test_installed_files_and_folders(installed: Artifacts) -> None:
    listed = set(run("dpkg", "-L", "camguard").stdout.split())
    for path in ("/opt/camguard/camguard", "/usr/bin/camguard", str(HELPER),
                 "/usr/share/polkit-1/actions/org.camguard.helper.policy",
                 "/usr/share/camguard/udev/72-camguard-block.rules",
                 "/etc/xdg/autostart/camguard.desktop", "/etc/camguard/policy.toml",
                 "/usr/share/applications/camguard.desktop",
                 "/usr/share/icons/hicolor/scalable/apps/camguard.svg",
                 "/usr/share/man/man1/camguard.1.gz"):
        assert path in listed, path
    assert os.readlink("/usr/bin/camguard") == "/opt/camguard/camguard"
    assert (str(UNIT) in listed) == REPO_UNIT.exists()
    # The helper: the repository's file, root-owned 0755, isolated system python.
    st = HELPER.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o755)
    assert HELPER.read_text().splitlines()[0] == "#!/usr/bin/python3 -I"
    reply = run(str(HELPER), "status")
    assert reply.returncode == 0, reply.stderr
    assert json.loads(reply.stdout)["ok"] is True
    # postinst: private state, logs readable by adm; the udev rule stays inactive.
    for folder, mode in (("/var/lib/camguard", 0o700), ("/var/log/camguard", 0o750)):
        st = os.stat(folder)
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == mode, folder
    assert not UDEV_RULE.exists()
    conffiles = Path("/var/lib/dpkg/info/camguard.conffiles").read_text().split()
    assert conffiles == ["/etc/camguard/policy.toml", "/etc/xdg/autostart/camguard.desktop"]


def test_example_policy_manages_nothing(installed: Artifacts, tmp_path: Path) -> None:
    policy = Path("/etc/camguard/policy.toml")
    assert tomllib.loads(policy.read_text()) == {}  # every line is a comment
    assert "alert_default" in policy.read_text()  # ...but the example is all there
    proc = run("camguard", "policy", "show", "--json", env=app_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["error"] is None and doc["problems"] == []
    # ("rules" counts the user's own rules: source "user", value 0.)
    changed = {k: s for k, s in doc["settings"].items()
               if s["locked"] or (s["source"] != "default" and k != "rules")}
    assert changed == {}


def test_installed_command_names_the_process_holding_a_camera(
        installed: Artifacts, tmp_path: Path, devdir: Path, holders: list[Holder]) -> None:
    version = run("camguard", "--version", env=app_env(tmp_path))
    assert version.stdout.strip() == f"camguard {installed.version}"
    node = make_standin(devdir / "video0")
    h = Holder([node])
    holders.append(h)
    proc = run("camguard", "status", "--json", "--camera-glob", f"{devdir}/video*",
               "--mic-glob", f"{devdir}/snd/pcmC*D*c", env=app_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    cams = [d for d in json.loads(proc.stdout)["devices"] if d["kind"] == "camera"]
    assert [d["path"] for d in cams] == [str(node)]
    assert [u["pid"] for u in cams[0]["users"]] == [h.pid]


def test_installed_command_runs_as_an_ordinary_user(installed: Artifacts) -> None:
    need_tools(["setpriv"])
    home = Path(tempfile.mkdtemp(prefix="camguard-nobody-"))
    try:
        os.chown(home, 65534, 65534)
        proc = run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                   "/usr/bin/camguard", "status", "--json", "--camera-glob",
                   f"{home}/video*", env=app_env(home))
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["devices"] == []
    finally:
        shutil.rmtree(home)


def test_installed_selftest_records_blocks_and_restores(
        installed: Artifacts, pulseaudio: realenv.SoundServer, devdir: Path,
        tmp_path: Path) -> None:
    commands = run("camguard", "--help", env=app_env(tmp_path)).stdout
    if not re.search(r"^    selftest ", commands, re.M):
        pytest.skip("this camguard has no selftest command")
    node = make_standin(devdir / "video0")
    proc = run("camguard", "selftest", "--json", "--camera-glob", f"{devdir}/video*",
               "--mic-glob", f"{devdir}/snd/pcmC*D*c",
               env=app_env(tmp_path, PULSE_SERVER=pulseaudio.server), timeout=180)
    doc = json.loads(proc.stdout)  # nothing but the JSON on stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = {(c["name"], c["device"]): c for c in doc["checks"]}
    assert doc["summary"]["failed"] == 0, proc.stdout
    assert checks[("camera.detected.held", str(node))]["status"] == "passed"
    # The bundled OpenCV and numpy load (a stand-in node is not a camera: "not-provable").
    assert "cannot be loaded" not in checks[("camera.detected.opencv", str(node))]["detail"]
    # The bundled PortAudio records from the real server through the ALSA pulse plugin.
    for name in ("microphone.recorded", "microphone.detected", "microphone.blocked.silent",
                 "microphone.restored.level"):
        assert checks[(name, "pulse:sinemic")]["status"] == "passed", checks[
            (name, "pulse:sinemic")]
    assert checks[("camera.restored.node", str(node))]["status"] == "passed"


def tray_icon_embedded(env: dict[str, str]) -> bool:
    """A ("camguard" "camguard") window inside trayer's panel in the X window tree."""
    tree = run("xwininfo", "-root", "-tree", env=env).stdout.splitlines()
    for i, line in enumerate(tree):
        if '("panel" "trayer")' in line:
            indent = len(line) - len(line.lstrip())
            for below in tree[i + 1:]:
                if len(below) - len(below.lstrip()) <= indent:
                    break
                if '("camguard" "camguard")' in below:
                    return True
    return False


def test_installed_tray_starts_in_a_real_tray(
        installed: Artifacts, x_session: realenv.XSession, tmp_path: Path) -> None:
    env = app_env(tmp_path, **x_session.env, XDG_RUNTIME_DIR=str(tmp_path))
    tray = subprocess.Popen(["camguard", "tray"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        realenv.wait_until(lambda: tray_icon_embedded({**os.environ, **x_session.env})
                           or tray.poll() is not None, 30, "the tray icon in trayer")
        assert tray.poll() is None, tray.communicate()[1][-3000:]
    finally:
        tray.terminate()
        try:
            tray.wait(10)
        except subprocess.TimeoutExpired:
            tray.kill()
            tray.wait(10)


def test_desktop_entries_validate(installed: Artifacts) -> None:
    need_tools(["desktop-file-validate"])
    for entry in ("/usr/share/applications/camguard.desktop",
                  "/etc/xdg/autostart/camguard.desktop"):
        proc = run("desktop-file-validate", entry)
        assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
        text = Path(entry).read_text()
        assert "Exec=camguard tray" in text and "TryExec=camguard" in text


def test_man_page_covers_every_command(installed: Artifacts, tmp_path: Path) -> None:
    need_tools(["groff"])
    page = gzip.decompress(Path("/usr/share/man/man1/camguard.1.gz").read_bytes()).decode()
    sections = set(re.findall(r'^\.SS "camguard ([^"]+)"$', page, re.M))
    commands = re.findall(r"^    (\S+) ", run("camguard", "--help",
                                                env=app_env(tmp_path)).stdout, re.M)
    assert len(commands) >= 10 and set(commands) <= sections, set(commands) - sections
    for parent in ("rules", "lock", "policy"):
        nested = re.findall(r"^    (\S+) ", run("camguard", parent, "--help",
                                                 env=app_env(tmp_path)).stdout, re.M)
        assert {f"{parent} {n}" for n in nested} <= sections, parent
    render = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=page,
                            capture_output=True, text=True, timeout=60, check=False)
    assert render.returncode == 0 and not render.stderr.strip(), render.stderr[-2000:]


def test_polkit_knows_the_helper_action(installed: Artifacts, tmp_path: Path) -> None:
    """pkaction asks polkitd over the system bus: a private bus and polkitd, started here."""
    need_tools(["dbus-daemon", "pkaction", "/usr/lib/polkit-1/polkitd"])
    # polkitd drops to its own user, which must reach the socket: pytest's tmp is 0700.
    bus_dir = Path(tempfile.mkdtemp(prefix="camguard-sysbus-", dir="/tmp"))
    bus_dir.chmod(0o755)
    bus = f"unix:path={bus_dir}/system_bus"
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus}
    comp = realenv.Component(root=tmp_path)
    try:
        comp.spawn("dbus", ["dbus-daemon", "--system", f"--address={bus}", "--nofork",
                            "--nopidfile"])
        realenv.wait_until((bus_dir / "system_bus").exists, 10, "the private system bus")
        comp.spawn("polkitd", ["/usr/lib/polkit-1/polkitd", "--no-debug"], env=env)
        realenv.wait_until(lambda: run("pkaction", env=env).returncode == 0, 15, "polkitd")
        proc = run("pkaction", "--action-id", "org.camguard.helper.camera", "--verbose",
                   env=env)
        assert proc.returncode == 0, proc.stderr + comp.log("polkitd")
        assert "implicit active:   auth_admin_keep" in proc.stdout
        assert "org.freedesktop.policykit.exec.path -> /usr/libexec/camguard/camguard-helper" \
            in proc.stdout
    finally:
        comp.stop()
        shutil.rmtree(bus_dir)


def test_systemd_unit_verifies(installed: Artifacts) -> None:
    if not REPO_UNIT.exists():
        pytest.skip("resources/systemd/camguard.service does not exist: no unit is packaged")
    need_tools(["systemd-analyze"])
    proc = run("systemd-analyze", "verify", str(UNIT))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_remove_keeps_conffiles_and_purge_removes_everything(installed: Artifacts) -> None:
    # Leave traces the way real use does: the helper's udev rule (camera off until further
    # notice), service state, an event log, a file the service writes next to the policy.
    rule = run(str(HELPER), "install-udev-rule")
    assert rule.returncode == 0 and UDEV_RULE.exists(), rule.stdout + rule.stderr
    Path("/var/log/camguard/events.jsonl").write_text("{}\n")
    Path("/var/lib/camguard/history.sqlite").write_bytes(b"")
    Path("/etc/camguard/rules.json").write_text("[]\n")

    removed = run("apt-get", "remove", "-y", "camguard", env=APT_ENV, timeout=600)
    assert removed.returncode == 0, removed.stdout[-3000:] + removed.stderr[-3000:]
    assert dpkg_status() == "deinstall ok config-files"
    # prerm switched the camera back on: no camguard is left to do it later.
    assert not UDEV_RULE.exists(), removed.stdout
    for gone in ("/opt/camguard", "/usr/bin/camguard", "/usr/libexec/camguard"):
        assert not os.path.lexists(gone), gone
    for kept in ("/etc/camguard/policy.toml", "/etc/xdg/autostart/camguard.desktop",
                 "/var/lib/camguard/history.sqlite", "/var/log/camguard/events.jsonl"):
        assert os.path.exists(kept), kept

    purged = run("apt-get", "purge", "-y", "camguard", env=APT_ENV, timeout=600)
    assert purged.returncode == 0, purged.stdout[-3000:] + purged.stderr[-3000:]
    left = [str(p) for p in CREATED if os.path.lexists(p)]
    assert left == [], f"left after purge: {left}"
    assert not dpkg_knows_it(), dpkg_status()
    assert run("dpkg", "-L", "camguard").returncode != 0
