"""The MSI, as far as Linux can prove it: its tables, its cabinet, and that the table check
catches a broken MSI. (It is never installed here: no Windows. Built from the Linux bundle
as a stand-in payload, see packaging/windows/build_msi.sh.)"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need_tools
from tests.packaging.conftest import REPO, Artifacts

pytestmark = pytest.mark.real

CHECK = REPO / "packaging" / "windows" / "check_msi.py"


def check_msi(msi: Path, payload: Path, version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK), str(msi), "--payload", str(payload),
                           "--version", version], capture_output=True, text=True, timeout=120,
                          check=False, cwd=REPO)


def link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # 300 MB: a hard link when the file system allows
    except OSError:
        shutil.copy2(src, dst)


def test_msi_tables_are_right(artifacts: Artifacts) -> None:
    proc = check_msi(artifacts.msi, artifacts.msi_payload, artifacts.version)
    assert proc.returncode == 0, proc.stderr
    assert "tables as expected" in proc.stdout


def test_msi_cabinet_holds_the_bundle_byte_for_byte(artifacts: Artifacts, tmp_path: Path
                                                    ) -> None:
    proc = subprocess.run(["msiextract", "-C", str(tmp_path), str(artifacts.msi)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / "camguard"  # ProgramFiles64Folder\camguard
    extracted = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    payload = artifacts.msi_payload
    expected = sorted(str(p.relative_to(payload)) for p in payload.rglob("*")
                      if p.is_file() and not p.is_symlink())
    assert extracted == expected
    _match, mismatch, errors = filecmp.cmpfiles(root, payload, expected, shallow=False)
    assert mismatch == [] and errors == [], (mismatch[:5], errors[:5])
    assert filecmp.cmp(root / "camguard.exe", artifacts.bundle / "camguard", shallow=False)


def test_the_check_catches_a_broken_msi(artifacts: Artifacts, tmp_path: Path) -> None:
    need_tools(["msibuild"])
    broken = tmp_path / "broken.msi"
    shutil.copyfile(artifacts.msi, broken)
    for sql in (
            # the policy value written even when MODE is empty (an invalid "" mode)
            "UPDATE `Component` SET `Condition` = '' WHERE `Component` = 'C.Policy.Mode'",
            # a value name camguard does not read
            "UPDATE `Registry` SET `Name` = 'AlertDefault' WHERE `Component_` = "
            "'C.Policy.AlertDefault'",
            # LOCKED no longer reaches the elevated install
            "UPDATE `Property` SET `Value` = 'WIX_UPGRADE_DETECTED' WHERE `Property` = "
            "'SecureCustomProperties'",
            # the service run by a user account, and no longer removed on uninstall
            "UPDATE `ServiceInstall` SET `StartName` = '.\\someone' WHERE `ServiceInstall` "
            "= 'SI.camguard'",
            "UPDATE `ServiceControl` SET `Event` = 2 WHERE `ServiceControl` = 'SC.camguard'"):
        subprocess.run(["msibuild", str(broken), "-q", sql], check=True, timeout=60)
    payload = tmp_path / "payload"
    shutil.copytree(artifacts.msi_payload, payload, symlinks=True, copy_function=link_or_copy)
    (payload / "_internal" / "extra.dll").write_bytes(b"not in the MSI")

    proc = check_msi(broken, payload, artifacts.version)

    assert proc.returncode == 1
    for expected in ("component C.Policy.Mode condition ''",
                     "policy value alert_default is not [ALERTDEFAULT]",
                     "LOCKED is not in SecureCustomProperties",
                     "1 payload files not in the MSI: ['_internal/extra.dll']",
                     r"'StartName': '.\\someone'",
                     "ServiceControl rows [{'ServiceControl': 'SC.camguard'"):
        assert expected in proc.stderr, proc.stderr
