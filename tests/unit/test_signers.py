"""Who signed an executable, on macOS (Team ID) and Windows (Authenticode): the pure parsers
against the output Apple's codesign(1) and PowerShell's Get-AuthenticodeSignature print (as
documented; written here, not captured on a Mac or a Windows machine), and the adapters with
Fake runners at the OS boundary: fixed argv, no shell, the path never in command text."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

import pytest

from camguard import platform as facade
from camguard.platform.macos.signer import (
    CODESIGN,
    CodesignSigner,
    SecuritySigner,
    from_signing_information,
    parse_codesign,
)
from camguard.platform.signer import Signer, SignerKind
from camguard.platform.windows.signer import (
    ENV,
    AuthenticodeSigner,
    common_name,
    parse_signature,
)

ZOOM = """Executable=/Applications/zoom.us.app/Contents/MacOS/zoom.us
Identifier=us.zoom.xos
Format=app bundle with Mach-O universal (x86_64 arm64)
CodeDirectory v=20500 size=1234 flags=0x10000(runtime) hashes=27+7 location=embedded
Signature size=9040
Authority=Developer ID Application: Zoom Video Communications, Inc. (BJ4HAAB9B3)
Authority=Developer ID Certification Authority
Authority=Apple Root CA
Timestamp=1 Dec 2026 at 10:00:00
Info.plist entries=40
TeamIdentifier=BJ4HAAB9B3
Runtime Version=14.0.0
Sealed Resources version=2 rules=13 files=2000
Internal requirements count=1 size=212
"""
FACETIME = """Executable=/System/Applications/FaceTime.app/Contents/MacOS/FaceTime
Identifier=com.apple.FaceTime
Format=app bundle with Mach-O universal (x86_64 arm64e)
CodeDirectory v=20400 size=5000 flags=0x0(none) hashes=150+7 location=embedded
Platform identifier=15
Signature size=4442
Authority=Software Signing
Authority=Apple Code Signing Certification Authority
Authority=Apple Root CA
Signed Time=1 Nov 2026 at 01:02:03
TeamIdentifier=not set
"""
ADHOC = """Executable=/usr/local/bin/ffmpeg
Identifier=ffmpeg
Format=Mach-O thin (arm64)
CodeDirectory v=20400 size=100 flags=0x20002(adhoc,linker-signed) hashes=1+0 location=embedded
Signature=adhoc
TeamIdentifier=not set
"""


def test_codesign_output_gives_the_team_id_or_apple_or_nothing() -> None:
    zoom = parse_codesign(ZOOM, 0, "")
    assert zoom == Signer(SignerKind.TEAM_ID, "BJ4HAAB9B3", True,
                          "Developer ID Application: Zoom Video Communications, Inc. "
                          "(BJ4HAAB9B3)", "us.zoom.xos")
    assert zoom.key == "teamid:BJ4HAAB9B3" and zoom.trusted
    apple = parse_codesign(FACETIME, 0, "")
    assert apple is not None and apple.key == "apple:com.apple.FaceTime"
    assert parse_codesign(ADHOC, 0, "") is None  # ad hoc: no signer, never a guess
    tampered = parse_codesign(ZOOM, 1, "/Applications/zoom.us.app: a sealed resource is "
                              "missing or invalid\n")
    assert tampered is not None and tampered.verified is False and not tampered.trusted
    assert tampered.why == "/Applications/zoom.us.app: a sealed resource is missing or invalid"
    assert "no longer matches" in tampered.describe()
    assert parse_codesign(ZOOM) is not None and parse_codesign(ZOOM).verified is None  # type: ignore[union-attr]
    # A forged TeamIdentifier line that is not a Team ID, and hostile text, give nothing.
    assert parse_codesign(ZOOM.replace("=BJ4HAAB9B3\n", "=BJ4;rm -rf\n"), 0) is None
    assert parse_codesign("\x00" * 100_000) is None


def test_signing_information_dictionary() -> None:
    info = {"teamid": "BJ4HAAB9B3", "identifier": "us.zoom.xos", "flags": 0x10000}
    got = from_signing_information(info, ["Developer ID Application: Zoom (BJ4HAAB9B3)"], True)
    assert got is not None and got.key == "teamid:BJ4HAAB9B3" and got.trusted
    assert from_signing_information({"identifier": "x"}, [], True) is None
    assert from_signing_information({"teamid": 5}, ["Software Signing"], True) is None


class FakeRunner:
    def __init__(self, answers: list[tuple[int, str]]) -> None:
        self.answers = answers
        self.argvs: list[list[str]] = []

    def __call__(self, argv: list[str]) -> tuple[int, str]:
        self.argvs.append(argv)
        return self.answers.pop(0)


def test_codesign_adapter_runs_fixed_argvs() -> None:
    exe = "/Applications/-rf; evil.app/Contents/MacOS/x"
    run = FakeRunner([(0, ZOOM), (0, "")])
    assert CodesignSigner(run).signer(exe) == parse_codesign(ZOOM, 0, "")
    assert run.argvs == [[CODESIGN, "-dv", "--verbose=2", "--", exe],
                         [CODESIGN, "--verify", "--strict", "--", exe]]
    unsigned = FakeRunner([(1, f"{exe}: code object is not signed at all\n")])
    assert CodesignSigner(unsigned).signer(exe) is None and len(unsigned.argvs) == 1


class FakeSecurity:
    """pyobjc's Security module: the calls SecuritySigner makes, answering as documented."""

    kSecCSDefaultFlags, kSecCSStrictValidate, kSecCSSigningInformation = 0, 16, 2

    def __init__(self, valid: int = 0) -> None:
        self.valid = valid

    def SecStaticCodeCreateWithPath(self, url: Any, flags: int, _none: None) -> Any:
        return 0, ("code", url)

    def SecStaticCodeCheckValidity(self, code: Any, flags: int, _req: None) -> int:
        assert flags == self.kSecCSStrictValidate
        return self.valid

    def SecCodeCopySigningInformation(self, code: Any, flags: int, _none: None) -> Any:
        return 0, {"teamid": "BJ4HAAB9B3", "identifier": "us.zoom.xos",
                   "certificates": ["leaf", "intermediate", "root"]}

    def SecCertificateCopySubjectSummary(self, cert: str) -> str:
        return {"leaf": "Developer ID Application: Zoom (BJ4HAAB9B3)"}.get(cert, cert)


class FakeFoundation:
    class NSURL:
        @staticmethod
        def fileURLWithPath_(path: str) -> str:
            return f"file://{path}"


def test_security_framework_adapter() -> None:
    got = SecuritySigner(FakeSecurity(), FakeFoundation).signer("/Applications/zoom.us.app")
    assert got is not None and got.trusted and got.authority.startswith("Developer ID")
    bad = SecuritySigner(FakeSecurity(valid=-67061), FakeFoundation).signer("/x")
    assert bad is not None and bad.verified is False and "-67061" in bad.why


# -- Windows -----------------------------------------------------------------------------------
def test_common_name_reads_dotnet_subjects() -> None:
    assert common_name('CN="Zoom Video Communications, Inc.", O="Zoom Video Communications, '
                       'Inc.", L=San Jose, S=California, C=US') == \
        "Zoom Video Communications, Inc."
    assert common_name("CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond") == \
        "Microsoft Corporation"
    assert common_name('O=x, CN="say ""hi"", ok"') == 'say "hi", ok'
    assert common_name("O=nobody") == "" and common_name("garbage") == ""


def test_authenticode_json() -> None:
    valid = json.dumps({"Status": 0, "Subject": 'CN="Zoom Video Communications, Inc.", O=Z',
                        "Message": "Signature verified."})
    got = parse_signature(valid)
    assert got is not None and got.key == "authenticode:Zoom Video Communications, Inc."
    assert got.trusted
    mismatch = parse_signature(json.dumps({"Status": 3, "Subject": "CN=Zoom", "Message": ""}))
    assert mismatch is not None and mismatch.verified is False
    assert mismatch.why == "the file does not match its signature"
    assert parse_signature(json.dumps({"Status": 2, "Subject": None})) is None  # NotSigned
    assert parse_signature("[" * 100_000) is None and parse_signature("not json") is None


def test_authenticode_adapter_passes_the_path_as_data() -> None:
    exe = "C:\\Users\\x\\'; Remove-Item -Recurse C:\\ ; '.exe"
    seen: list[tuple[list[str], Mapping[str, str]]] = []

    def run(argv: list[str], env: Mapping[str, str]) -> str:
        seen.append((argv, env))
        return json.dumps({"Status": 0, "Subject": "CN=Example Corp", "Message": "ok"})

    got = AuthenticodeSigner(run).signer(exe)
    assert got is not None and got.name == "Example Corp"
    [(argv, env)] = seen
    assert env == {ENV: exe} and not any(exe in a for a in argv)


def test_the_facade_hands_out_each_os_signer(monkeypatch: pytest.MonkeyPatch) -> None:
    assert facade.code_signer() is None  # Linux: packages, not signatures
    monkeypatch.setattr(sys, "platform", "win32")
    win = facade.code_signer()
    assert win is not None and isinstance(win.__self__, AuthenticodeSigner)  # type: ignore[attr-defined]
    monkeypatch.setattr(sys, "platform", "darwin")
    mac = facade.code_signer()  # no pyobjc here: codesign
    assert mac is not None and isinstance(mac.__self__, CodesignSigner)  # type: ignore[attr-defined]
