"""Where an app comes from, on real processes holding real stand-in nodes.

- A Python that a Debian package installed on this machine (dpkg says which) is ``deb`` and
  verified, in ``camguard status --json``; a copy of it elsewhere is ``local``.
- A test package built with dpkg-deb and installed with the real dpkg into a throwaway root
  (``dpkg --root``: the machine's own /var/lib/dpkg is never touched): an origin rule and an
  "Always allow" entry hold after dpkg upgrades it, and not for the same path with other
  bytes or for a copy elsewhere; the reason given is "the file no longer matches its Debian
  package".
- A process in its own mount namespace whose root holds a ``/.flatpak-info`` (the way
  flatpak's bwrap builds one) is named by its app id (needs root for the namespace).
- The event log's records with an origin validate against docs/event.schema.json.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil
import pytest

from camguard.core.clock import FrozenClock
from camguard.core.decision import UsageFacts, decide, evaluate
from camguard.core.models import Device, DeviceKind, EventType, ProcessRef, Usage, UsageEvent
from camguard.core.origin import ExeOrigin, OriginKind
from camguard.core.rules import AppMatch, MatchBy, Mode, Rule, Verdict, make_rule
from camguard.platform.linux.origin import LinuxOriginResolver
from camguard.platform.process import ProcessDescriber
from camguard.store.allowlist import AllowList, AllowStatus
from camguard.store.db import Database
from camguard.store.eventlog import EventLog
from camguard.ui.adapters import Allower
from tests.conftest import IS_ROOT, Holder, make_standin, need, need_tools
from tests.integration.test_eventlog import SCHEMA_DOC, validate
from tests.realenv import wait_until

pytestmark = pytest.mark.real

CLOCK = FrozenClock(1_800_000_000.0)
CLOCK_TZ = datetime.UTC
PACKAGE = "camguard-origin-test"
BINARY = "/usr/bin/camguard-origin-test"


def packaged_python() -> tuple[str, str]:
    """(path, package) of a Python binary a Debian package installed here."""
    need_tools(["dpkg-query"])
    for name in ("python3", "python3.13", "python3.12", "python3.11"):
        path = shutil.which(name, path="/usr/bin")
        if path is None:
            continue
        real = os.path.realpath(path)
        out = subprocess.run(["dpkg-query", "-S", real], capture_output=True, text=True,
                             check=False)
        if out.returncode == 0:
            return real, out.stdout.split(":", 1)[0].strip()
    need(False, "no Python here was installed by a Debian package")
    raise AssertionError


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "camguard", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env}, check=False)


@pytest.fixture
def cfg(tmp_path: Path) -> dict[str, str]:
    return {"CAMGUARD_CONFIG_DIR": str(tmp_path / "cfg"), "CAMGUARD_DATA_DIR":
            str(tmp_path / "data"), "CAMGUARD_STATE_DIR": str(tmp_path / "state"),
            "CAMGUARD_SOCKET": str(tmp_path / "no-service.sock"),
            "PULSE_SERVER": f"unix:{tmp_path}/no-such-socket"}


def test_status_names_a_packaged_binary_and_a_local_copy(
        devdir: Path, holders: list[Holder], cfg: dict[str, str], tmp_path: Path) -> None:
    python, package = packaged_python()
    copy = tmp_path / "bin" / "python-copy"
    copy.parent.mkdir()
    shutil.copy2(python, copy)
    cam = make_standin(devdir / "video0")
    holders.append(Holder([cam], exe=python))
    holders.append(Holder([cam], exe=str(copy)))
    out = run("status", "--json", "--camera-glob", f"{devdir}/video*", "--mic-glob",
              f"{devdir}/snd/pcm*c", env=cfg)
    assert out.returncode == 0, out.stderr
    (device,) = json.loads(out.stdout)["devices"]
    by_pid = {u["pid"]: u for u in device["users"]}
    assert by_pid[holders[0].pid]["origin"] == {"kind": "deb", "name": package,
                                                "verified": True, "detail": None}
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    assert by_pid[holders[1].pid]["origin"] == {"kind": "local", "name": str(copy),
                                                "verified": None, "detail": digest}
    human = run("status", "--camera-glob", f"{devdir}/video*", "--mic-glob",
                f"{devdir}/snd/pcm*c", env=cfg)
    assert f"from the Debian package {package} (checked)" in human.stdout
    assert "a local file, not from any package" in human.stdout


def test_watch_json_carries_the_origin(devdir: Path, cfg: dict[str, str],
                                       holders: list[Holder]) -> None:
    python, package = packaged_python()
    cam = make_standin(devdir / "video0")
    watch = subprocess.Popen(
        [sys.executable, "-m", "camguard", "watch", "--json", "--camera-glob",
         f"{devdir}/video*", "--mic-glob", f"{devdir}/snd/pcm*c"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, **cfg})
    try:
        assert watch.stdout is not None
        assert json.loads(watch.stdout.readline())["event"] == "degraded"  # it runs
        holders.append(Holder([cam], exe=python))
        started = json.loads(watch.stdout.readline())
        holders[0].close()
        stopped = json.loads(watch.stdout.readline())
    finally:
        watch.kill()
        watch.communicate(timeout=20)
    want = {"kind": "deb", "name": package, "verified": True, "detail": None}
    assert (started["event"], started["pid"], started["origin"]) == \
        ("started", holders[0].pid, want)
    assert (stopped["event"], stopped["origin"]) == ("stopped", want)


def test_rules_add_origin_then_explain(cfg: dict[str, str], tmp_path: Path) -> None:
    python, package = packaged_python()
    added = run("rules", "add", "--verdict", "allow", "--origin", f"deb:{package}",
                "--kind", "camera", "--label", "packaged python", env=cfg)
    assert added.returncode == 0, added.stderr
    listed = run("rules", "list", env=cfg)
    assert f"the Debian package {package}" in listed.stdout, listed.stdout
    said = run("rules", "explain", "--kind", "camera", "--exe", python, "--json", env=cfg)
    assert json.loads(said.stdout)["verdict"] == "allow", said.stdout
    copy = tmp_path / "python-copy"
    shutil.copy2(python, copy)
    moved = run("rules", "explain", "--kind", "camera", "--exe", str(copy), env=cfg)
    assert moved.stdout.startswith("ask: no rule matches")  # a copy is not the package
    for bad in ("local:/usr/bin/x", "rpm:x", "firefox"):
        refused = run("rules", "add", "--verdict", "allow", "--origin", bad, env=cfg)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr


# -- a test package, installed and upgraded by the real dpkg in a throwaway root ----------
class Root:
    """A dpkg root of our own: ``dpkg --root`` keeps its database in root/var/lib/dpkg."""

    def __init__(self, tmp: Path) -> None:
        need_tools(["dpkg", "dpkg-deb"])
        self.tmp = tmp
        self.path = tmp / "root"
        admin = self.path / "var" / "lib" / "dpkg"
        for sub in ("info", "updates", "triggers"):
            (admin / sub).mkdir(parents=True)
        (admin / "status").touch()
        self.admin = admin

    def install(self, version: str, payload: bytes) -> None:
        build = self.tmp / f"build-{version}"
        (build / "DEBIAN").mkdir(parents=True)
        (build / "usr" / "bin").mkdir(parents=True)
        exe = build / BINARY.lstrip("/")
        exe.write_bytes(payload)
        exe.chmod(0o755)
        (build / "DEBIAN" / "control").write_text(
            f"Package: {PACKAGE}\nVersion: {version}\nArchitecture: all\n"
            "Maintainer: camguard tests <tests@camguard.invalid>\n"
            "Description: a Python binary for camguard's origin tests\n")
        deb = self.tmp / f"{PACKAGE}_{version}_all.deb"
        _check(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", str(build),
                str(deb)])
        _check(["dpkg", f"--root={self.path}", "--force-not-root",
                "--force-script-chrootless", "--force-depends", "-i", str(deb)])

    @property
    def binary(self) -> Path:
        return self.path / BINARY.lstrip("/")


def _check(cmd: Sequence[str]) -> None:
    out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, (cmd, out.stdout, out.stderr)


class Rules:
    """A RuleSource over a fixed list (core.decision.RuleSource)."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules

    def current(self) -> tuple[list[Rule], Mode]:
        return self.rules, Mode.ASK

    def spend(self, rule: Rule) -> None:
        pass


def _usage(holder: Holder, cam: Path) -> tuple[Usage, ProcessRef]:
    ref = ProcessDescriber().describe(holder.pid)
    assert ref is not None
    return Usage(Device(DeviceKind.CAMERA, str(cam), path=str(cam)), ref, via="fd"), ref


def test_an_origin_rule_and_an_allow_entry_survive_a_dpkg_upgrade_not_tampering(
        devdir: Path, holders: list[Holder], tmp_path: Path) -> None:
    python, _package = packaged_python()
    original = Path(python).read_bytes()
    root = Root(tmp_path)
    root.install("1.0", original)
    resolver = LinuxOriginResolver(root.admin, root=str(root.path))

    def origin_of(p: ProcessRef) -> ExeOrigin | None:
        return resolver.origin(p.pid, p.exe)

    rule = make_rule(Verdict.ALLOW, app=AppMatch(MatchBy.ORIGIN, f"deb:{PACKAGE}"),
                     label="test app")
    rules = Rules([rule])
    allow = AllowList(Database(tmp_path / "allow.sqlite3", CLOCK))
    allower = Allower(allow, CLOCK, origin_of=origin_of)
    cam = make_standin(devdir / "video0")

    def judge(holder: Holder) -> tuple[Verdict, tuple[str, ...], ExeOrigin | None, Usage]:
        usage, ref = _usage(holder, cam)
        d = evaluate(rules, usage, CLOCK, CLOCK_TZ, origin_of=origin_of)
        return d.verdict, d.notes, origin_of(ref), usage

    v1 = Holder([cam], exe=str(root.binary))
    holders.append(v1)
    verdict, notes, origin, usage = judge(v1)
    assert origin == ExeOrigin(OriginKind.DEB, PACKAGE, True)
    assert (verdict, notes) == (Verdict.ALLOW, ())
    assert usage.process is not None
    granted = allower.allow(usage.process, DeviceKind.CAMERA)  # the popup's "Always allow"
    assert "as part of the Debian package camguard-origin-test" in granted.message
    v1.end()

    # dpkg upgrades it: other bytes (a different SHA-256), recorded in its new md5sums.
    upgraded = original + b"\0camguard-origin-test 2.0\0"
    root.install("2.0", upgraded)
    v2 = Holder([cam], exe=str(root.binary))
    holders.append(v2)
    verdict, notes, origin, usage = judge(v2)
    assert origin == ExeOrigin(OriginKind.DEB, PACKAGE, True)
    assert (verdict, notes) == (Verdict.ALLOW, ())
    assert usage.process is not None
    check = allower.check(usage.process, DeviceKind.CAMERA)
    assert check.allowed, check.reason
    v2.end()

    # The same path with bytes dpkg did not put there.
    root.binary.write_bytes(original + b"\0tampered\0")
    bad = Holder([cam], exe=str(root.binary))
    holders.append(bad)
    verdict, notes, origin, usage = judge(bad)
    assert origin is not None and origin.verified is False
    assert verdict is Verdict.ASK
    assert notes == (f"rule 'test app' not applied: the file no longer matches its Debian "
                     f"package {PACKAGE} ({origin.why})",)
    assert usage.process is not None
    check = allower.check(usage.process, DeviceKind.CAMERA)
    assert not check.allowed and getattr(check, "status", None) is AllowStatus.BINARY_CHANGED
    assert "the file no longer matches its Debian package camguard-origin-test" in \
        getattr(check, "asks_again", "")
    bad.end()

    # A copy elsewhere (no package owns it): local, pinned by its hash; the rule does not hold.
    elsewhere = tmp_path / "elsewhere" / "camguard-origin-test"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(upgraded)
    elsewhere.chmod(0o755)
    moved = Holder([cam], exe=str(elsewhere))
    holders.append(moved)
    verdict, notes, origin, _unused = judge(moved)
    assert origin is not None and origin.kind is OriginKind.LOCAL
    assert verdict is Verdict.ASK and "comes from the local file" in notes[0]


@contextlib.contextmanager
def flatpak_style_process(tmp_path: Path) -> Iterator[int]:
    """A real Python in its own mount namespace, chrooted into a root that holds a
    ``/.flatpak-info`` (app org.example.Camera, branch beta), as flatpak's bwrap builds one.
    Yields its pid."""
    need(IS_ROOT, "a mount namespace with a bind-mounted /usr needs root")
    need_tools(["unshare", "chroot"])
    python, _package = packaged_python()
    root = tmp_path / "sandbox"
    for sub in ("usr", "proc", "tmp"):
        (root / sub).mkdir(parents=True)
    for link in ("lib", "lib64", "bin"):
        if os.path.islink(f"/{link}"):
            (root / link).symlink_to(os.readlink(f"/{link}").lstrip("/"))
    (root / ".flatpak-info").write_text(
        "[Application]\nname=org.example.Camera\n"
        "runtime=runtime/org.freedesktop.Platform/x86_64/23.08\n\n"
        "[Instance]\ninstance-id=1\nbranch=beta\narch=x86_64\n")
    script = "import sys; print('ready', flush=True); sys.stdin.readline()"
    proc = subprocess.Popen(
        ["unshare", "--mount", "--fork", "sh", "-c",
         'mount --bind /usr "$1/usr" && exec chroot "$1" "$2" -c "$3"', "sh", str(root),
         python, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        wait_until(lambda: _child_running(proc.pid, python) is not None, timeout=10,
                   what="the sandboxed python")
        pid = _child_running(proc.pid, python)
        assert pid is not None
        yield pid
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(10)


def test_a_process_in_a_flatpak_style_sandbox_is_named_by_its_app_id(tmp_path: Path) -> None:
    with flatpak_style_process(tmp_path) as pid:
        resolver = LinuxOriginResolver()
        ref = ProcessDescriber().describe(pid)
        assert ref is not None
        origin = resolver.origin(pid, ref.exe)
        assert origin == ExeOrigin(OriginKind.FLATPAK, "org.example.Camera", None, "beta")
        assert origin.label(ref.name) == f"{ref.name} (Flatpak org.example.Camera (beta))"
        assert resolver.cached(pid, ref.exe) == origin  # no file read needed for a sandbox


def _child_running(parent: int, exe: str) -> int | None:
    """The pid of the process running ``exe`` below ``parent`` (unshare forks, then
    chroot execs), or None yet."""
    try:
        for child in psutil.Process(parent).children(recursive=True):
            try:
                if child.exe().endswith(exe):
                    return int(child.pid)
            except psutil.Error:
                continue
    except psutil.Error:
        return None
    return None


def test_event_records_with_an_origin_validate(tmp_path: Path, devdir: Path,
                                               holders: list[Holder]) -> None:
    python, package = packaged_python()
    cam = make_standin(devdir / "video0")
    holders.append(Holder([cam], exe=python))
    records: list[dict[str, object]] = []
    log = EventLog(CLOCK, [], host="h", user="u", origins=LinuxOriginResolver())
    log.add_listener(lambda r: records.append(dict(r)))
    usage, _ref = _usage(holders[0], cam)
    log.decided(decide([], UsageFacts(DeviceKind.CAMERA), Mode.ASK, CLOCK), usage)
    log.monitor_sink(UsageEvent(EventType.STARTED, usage, CLOCK.now()))  # cached by now
    unseen = Usage(usage.device, None)
    log.monitor_sink(UsageEvent(EventType.STARTED, unseen, CLOCK.now()))
    assert [r["origin"] for r in records] == [
        {"kind": "deb", "name": package, "verified": True, "detail": None},
        {"kind": "deb", "name": package, "verified": True, "detail": None}, None]
    for r in records:
        assert validate(r, SCHEMA_DOC) == [], r
    broken = dict(records[0], origin={"kind": "rpm", "name": "x", "verified": True})
    assert validate(broken, SCHEMA_DOC) != []

