"""Checks camguard's MSI table by table (``msiinfo export``): what Linux can prove about it.

File, Registry, Property, Component and Directory (plus Shortcut, Upgrade, Media and the
summary information) must say: per-machine x64 install to Program Files\\camguard, every
payload file present with its size, the tray started at logon through HKLM Run only when
AUTOSTART=1, each silent-install policy property written to HKLM\\Software\\Policies\\camguard
under the setting name camguard reads, only when given, and listed as secure.

The policy round trip: the Registry rows, with sample property values, are fed to
camguard's own reader (camguard/store/policy_registry.py) as the registry Windows would
hold after ``msiexec /i ... LOCKED=... MODE=...``; every value must come out as the
setting it was meant to be, with no problem reported.

ServiceInstall and ServiceControl must register camguard/platform/windows/winservice.py's
SERVICE (manual start, LocalSystem, stopped before upgrade and uninstall, then removed), with
arguments camguard's own command line reads as ``camguard service --windows-service``.

Usage: check_msi.py MSI [--payload DIR] [--version X.Y.Z]   (exit 1 and a list on failure)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
UPGRADE_CODE = "{24FD2514-B197-4BAA-8CB1-7A460559EAA2}"
RUN_KEY = "Software\\Microsoft\\Windows\\CurrentVersion\\Run"
POLICY_KEY = "Software\\Policies\\camguard"
HKLM = "2"
SERVICE_OWN_PROCESS = 0x10
SERVICE_DEMAND_START = 3
SERVICE_ERROR_NORMAL = 1
MSIDB_SERVICE_VITAL = 0x8000  # ServiceInstall/@Vital: a failed install of it fails the MSI
MSI_STOP_ON_INSTALL, MSI_STOP_ON_UNINSTALL, MSI_DELETE_ON_UNINSTALL = 0x2, 0x20, 0x80
COMPONENT_64BIT = 256
COMPONENT_REGISTRY_KEYPATH = 4
# property -> (registry value name, sample value for the round trip through camguard's reader)
POLICY_PROPERTIES = {
    "LOCKED": ("Locked", "alert_default, mode,rules"),
    "MODE": ("mode", "notify-only"),
    "ALERTDEFAULT": ("alert_default", "block"),
    "EVENTSFILE": ("events_file", "C:\\ProgramData\\camguard\\events.jsonl"),
    "SYSLOG": ("syslog", "udp://siem.example.org:514"),
    "SYSLOGFACILITY": ("syslog_facility", "local0"),
}
CONDITIONS = {"C.Run": 'AUTOSTART="1"',
              **{f"C.Policy.{c}": p for c, p in (
                  ("Locked", "LOCKED"), ("Mode", "MODE"), ("AlertDefault", "ALERTDEFAULT"),
                  ("EventsFile", "EVENTSFILE"), ("Syslog", "SYSLOG"),
                  ("SyslogFacility", "SYSLOGFACILITY"))}}


def msiinfo(*args: str) -> str:
    exe = shutil.which("msiinfo")
    if exe is None:
        raise SystemExit("check_msi: msiinfo is missing (Debian: apt-get install msitools)")
    return subprocess.run([exe, *args], capture_output=True, text=True, check=True).stdout


def table(msi: Path, name: str) -> list[dict[str, str]]:
    """Rows of one table from ``msiinfo export`` (IDT: names, types, table+keys, rows)."""
    out = msiinfo("export", str(msi), name)
    lines = out.split("\r\n") if "\r\n" in out else out.split("\n")
    columns = lines[0].split("\t")
    return [dict(zip(columns, line.split("\t"), strict=False)) for line in lines[3:] if line]


def long_name(default_dir: str) -> str:
    """``short|long`` -> long (Directory.DefaultDir, File.FileName)."""
    return default_dir.rsplit("|", maxsplit=1)[-1]


class Checker:
    """Collects what is wrong, table by table."""

    def __init__(self, msi: Path) -> None:
        self.msi = msi
        self.problems: list[str] = []
        self.dirs = {r["Directory"]: r for r in table(msi, "Directory")}
        self.components = {r["Component"]: r for r in table(msi, "Component")}
        self.files = table(msi, "File")

    def want(self, ok: bool, what: str) -> None:
        if not ok:
            self.problems.append(what)

    def summary_and_properties(self, version: str | None) -> None:
        suminfo = msiinfo("suminfo", str(self.msi))
        self.want("Template: x64;" in suminfo, f"summary Template is not x64: {suminfo!r}")
        props = {r["Property"]: r["Value"] for r in table(self.msi, "Property")}
        for key, value in (("ALLUSERS", "1"), ("ProductName", "camguard"), ("AUTOSTART", "1"),
                           ("ARPNOMODIFY", "1"), ("UpgradeCode", UPGRADE_CODE)):
            self.want(props.get(key) == value,
                      f"Property {key} = {props.get(key)!r}, want {value!r}")
        if version:
            self.want(props.get("ProductVersion") == version,
                      f"ProductVersion {props.get('ProductVersion')!r}, want {version!r}")
        secure = set(props.get("SecureCustomProperties", "").split(";"))
        for prop in ["AUTOSTART", *POLICY_PROPERTIES]:
            self.want(prop in secure, f"{prop} is not in SecureCustomProperties (lost in "
                                      "managed installs)")

    def directories_and_components(self) -> None:
        inst = self.dirs.get("INSTALLDIR", {})
        self.want(inst.get("Directory_Parent") == "ProgramFiles64Folder"
                  and long_name(inst.get("DefaultDir", "")) == "camguard",
                  f"INSTALLDIR is not ProgramFiles64Folder\\camguard: {inst}")
        for name, row in self.components.items():
            attrs = int(row["Attributes"] or 0)
            self.want(bool(attrs & COMPONENT_64BIT), f"component {name} is not 64-bit ({attrs})")
            self.want(row["Condition"] == CONDITIONS.get(name, ""),
                      f"component {name} condition {row['Condition']!r}, "
                      f"want {CONDITIONS.get(name, '')!r}")
            self.want(bool(row["ComponentId"]), f"component {name} has no GUID")

    def registry(self) -> None:
        rows = table(self.msi, "Registry")
        run = [r for r in rows if r["Key"] == RUN_KEY]
        self.want(len(run) == 1 and run[0]["Root"] == HKLM and run[0]["Name"] == "camguard"
                  and run[0]["Value"] == '"[#F.camguard_tray.exe]"'
                  and run[0]["Component_"] == "C.Run", f"HKLM Run value wrong: {run}")
        policy_rows = {r["Name"]: r for r in rows if r["Key"] == POLICY_KEY}
        for prop, (value_name, _sample) in POLICY_PROPERTIES.items():
            row = policy_rows.get(value_name)
            component = self.components.get(row["Component_"], {}) if row else {}
            self.want(row is not None and row["Root"] == HKLM and row["Value"] == f"[{prop}]"
                      and component.get("Condition") == prop,
                      f"policy value {value_name} is not [{prop}] in HKLM, written only when "
                      f"{prop} is set: {row}")
            self.want(bool(int(component.get("Attributes") or 0) & COMPONENT_REGISTRY_KEYPATH),
                      f"{value_name}: its component is not keyed by the value")
        self.want(set(policy_rows) == {n for n, _s in POLICY_PROPERTIES.values()},
                  f"unexpected policy values: {sorted(policy_rows)}")
        self.problems += policy_round_trip(list(policy_rows.values()))

    def files_and_install(self) -> None:
        names = {r["File"]: r for r in self.files}
        for exe in ("F.camguard.exe", "F.camguard_tray.exe"):
            self.want(exe in names and self.components[names[exe]["Component_"]]["Directory_"]
                      == "INSTALLDIR", f"{exe} missing or not in INSTALLDIR")
        shortcuts = table(self.msi, "Shortcut")
        self.want(any(s["Directory_"] == "ProgramMenuFolder"
                      and s["Target"] == "[#F.camguard_tray.exe]" for s in shortcuts),
                  f"no Start-menu shortcut to camguard-tray.exe: {shortcuts}")
        media = table(self.msi, "Media")
        self.want(len(media) == 1 and media[0]["Cabinet"].startswith("#"),
                  f"the cabinet is not embedded: {media}")
        upgrades = table(self.msi, "Upgrade")
        self.want({u["ActionProperty"] for u in upgrades if u["UpgradeCode"] == UPGRADE_CODE}
                  == {"WIX_UPGRADE_DETECTED", "WIX_DOWNGRADE_DETECTED"},
                  f"MajorUpgrade rows missing: {upgrades}")
        sequence = {r["Action"] for r in table(self.msi, "InstallExecuteSequence")}
        for action in ("RemoveExistingProducts", "RemoveRegistryValues", "RemoveFiles",
                       "WriteRegistryValues", "InstallFiles", "CreateShortcuts",
                       "StopServices", "DeleteServices", "InstallServices"):
            self.want(action in sequence, f"InstallExecuteSequence lacks {action}")

    def dir_path(self, directory: str) -> str:
        """A Directory row as a path below INSTALLDIR ("" for INSTALLDIR itself)."""
        parts = []
        while directory != "INSTALLDIR":
            row = self.dirs.get(directory)
            if row is None:
                return "?outside INSTALLDIR?"
            name = long_name(row["DefaultDir"])
            if name != ".":
                parts.append(name)
            directory = row["Directory_Parent"]
        return "/".join(reversed(parts))

    def payload(self, payload: Path) -> None:
        in_msi = {}
        for r in self.files:
            folder = self.dir_path(self.components[r["Component_"]]["Directory_"])
            rel = "/".join(p for p in (folder, long_name(r["FileName"])) if p)
            in_msi[rel] = int(r["FileSize"])
        on_disk = {str(p.relative_to(payload)): p.stat().st_size
                   for p in payload.rglob("*") if p.is_file() and not p.is_symlink()}
        missing = sorted(set(on_disk) - set(in_msi))
        extra = sorted(set(in_msi) - set(on_disk))
        wrong = sorted(k for k in set(on_disk) & set(in_msi) if on_disk[k] != in_msi[k])
        self.want(not missing, f"{len(missing)} payload files not in the MSI: {missing[:5]}")
        self.want(not extra, f"{len(extra)} MSI files not in the payload: {extra[:5]}")
        self.want(not wrong, f"{len(wrong)} files with the wrong size: {wrong[:5]}")


def service_rows(msi: Path) -> list[str]:
    """The ServiceInstall and ServiceControl rows against camguard's own definition
    (camguard/platform/windows/winservice.SERVICE), and the arguments the SCM will pass
    against camguard's own command line: they must start ``camguard service`` as the
    Windows service."""
    sys.path.insert(0, str(REPO))
    from camguard.cli import build_parser
    from camguard.platform.windows.winservice import SERVICE

    problems = []
    installs = table(msi, "ServiceInstall")
    want = {"Name": SERVICE.name, "DisplayName": SERVICE.display_name,
            "ServiceType": str(SERVICE_OWN_PROCESS), "StartType": str(SERVICE_DEMAND_START),
            "ErrorControl": str(SERVICE_ERROR_NORMAL | MSIDB_SERVICE_VITAL),
            "StartName": SERVICE.account, "Arguments": SERVICE.arguments,
            "Component_": "C.Exe", "Description": SERVICE.description}
    if len(installs) != 1:
        return [f"want one ServiceInstall row, found {len(installs)}"]
    got = {k: installs[0].get(k) for k in want}
    if got != want:
        problems.append(f"ServiceInstall row {got}, want {want}")
    controls = table(msi, "ServiceControl")
    event = MSI_STOP_ON_INSTALL | MSI_STOP_ON_UNINSTALL | MSI_DELETE_ON_UNINSTALL
    if [(c["Name"], c["Event"], c["Wait"], c["Component_"]) for c in controls] != [
            (SERVICE.name, str(event), "1", "C.Exe")]:
        problems.append(f"ServiceControl rows {controls}: want stop on install and uninstall, "
                        "delete on uninstall, waiting")
    args = build_parser().parse_args(SERVICE.arguments.split())
    if not (args.command == "service" and args.windows_service
            and args.admin_group == "S-1-5-32-544"):
        problems.append(f"camguard does not read {SERVICE.arguments!r} as the Windows service")
    return problems


def check(msi: Path, payload: Path | None, version: str | None) -> list[str]:
    c = Checker(msi)
    c.summary_and_properties(version)
    c.directories_and_components()
    c.registry()
    c.files_and_install()
    c.problems += service_rows(msi)
    if payload is not None:
        c.payload(payload)
    return c.problems


def policy_round_trip(rows: list[dict[str, str]]) -> list[str]:
    """The Registry rows as Windows would write them, read back by camguard's own reader."""
    sys.path.insert(0, str(REPO))
    from camguard.store.policy import check_value
    from camguard.store.policy_registry import REG_SZ, WindowsRegistryPolicyReader

    samples = {f"[{prop}]": sample for prop, (_n, sample) in POLICY_PROPERTIES.items()}
    values: list[tuple[str, Any, int]] = []
    for row in rows:
        # A Value not starting with "#" is REG_SZ (Registry table, "Value" column rules).
        values.append((row["Name"], samples.get(row["Value"], row["Value"]), REG_SZ))

    class MsiWrittenRegistry:
        def values(self, key: str) -> list[tuple[str, Any, int]] | None:
            return values if key == WindowsRegistryPolicyReader().key else None

    policy = WindowsRegistryPolicyReader(MsiWrittenRegistry()).read()
    if policy is None:
        return ["camguard's registry reader found no policy in the MSI's values"]
    problems = [f"camguard's reader: {p}" for p in policy.problems]
    for prop, (name, sample) in POLICY_PROPERTIES.items():
        if prop == "LOCKED":
            wanted = {v.strip() for v in sample.split(",")}
            if set(policy.locked) != wanted:
                problems.append(f"LOCKED={sample!r} locks {sorted(policy.locked)}")
        elif policy.settings.get(name) != check_value(name, sample):
            problems.append(f"{prop}={sample!r} became {name}={policy.settings.get(name)!r}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("msi", type=Path)
    ap.add_argument("--payload", type=Path, help="the folder the MSI was built from")
    ap.add_argument("--version", help="the ProductVersion it must carry")
    args = ap.parse_args(argv)
    problems = check(args.msi, args.payload, args.version)
    for p in problems:
        print(f"check_msi: {p}", file=sys.stderr)
    if not problems:
        print(f"check_msi: {args.msi}: File, Registry, Property, Component, Directory, "
              "Shortcut, Upgrade, Media, ServiceInstall and ServiceControl tables as "
              "expected")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
