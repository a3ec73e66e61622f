"""Who signed a macOS executable: its Team ID, or Apple itself, and whether the file still
matches the signature (platform.signer.Signer).

Two ways, the same answer:

* Security.framework through pyobjc (preferred: in process): SecStaticCodeCreateWithPath,
  SecStaticCodeCheckValidity, SecCodeCopySigningInformation with kSecCSSigningInformation;
  :func:`from_signing_information` decides on its dictionary (``teamid``, ``identifier``,
  the certificate summaries, ``flags``).
* ``/usr/bin/codesign -dv --verbose=2`` and ``codesign --verify --strict`` (no pyobjc):
  :func:`parse_codesign` decides on the text codesign prints (to stderr).

A Team ID comes only from a Developer ID / App Store chain: an ad-hoc signature ("Signature=
adhoc", "TeamIdentifier=not set") or an unsigned file has no signer (None), never a guess.
The decisions are tested on Linux with codesign output and signing dictionaries as Apple
documents them (codesign(1), SecCode.h); the adapters NEVER RAN (there is no Mac here).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from camguard.platform.signer import Signer, SignerKind

CODESIGN = "/usr/bin/codesign"
TIMEOUT = 10.0
APPLE_LEAF = "Software Signing"  # the leaf certificate of Apple's own platform binaries
_TEAM = re.compile(r"[A-Z0-9]{10}")
MAX_TEXT = 64 * 1024
# SecCode.h: kSecCodeInfoTeamIdentifier, kSecCodeInfoIdentifier, kSecCodeInfoCertificates,
# kSecCodeInfoPlatformIdentifier (the CFString values of those constants).
INFO_TEAM, INFO_IDENTIFIER, INFO_CERTIFICATES, INFO_PLATFORM = (
    "teamid", "identifier", "certificates", "platform-identifier")


def _signer(team: str | None, identifier: str, authorities: Sequence[str],
            verified: bool | None, why: str) -> Signer | None:
    leaf = authorities[0] if authorities else ""
    if team and _TEAM.fullmatch(team):
        return Signer(SignerKind.TEAM_ID, team, verified, leaf, identifier, why)
    if leaf == APPLE_LEAF and identifier:
        return Signer(SignerKind.APPLE, identifier, verified, leaf, identifier, why)
    return None  # ad hoc, unsigned, or a chain camguard does not know


def parse_codesign(display: str, verify_status: int | None = None, verify_text: str = ""
                   ) -> Signer | None:
    """``codesign -dv --verbose=2 FILE``'s stderr (and ``codesign --verify --strict``'s exit
    status and stderr, when run) -> the signer, or None for unsigned or ad-hoc code."""
    fields: dict[str, str] = {}
    authorities: list[str] = []
    for line in display[:MAX_TEXT].splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "Authority":
            authorities.append(value.strip()[:256])
        else:
            fields.setdefault(key.strip(), value.strip()[:256])
    if fields.get("Signature") == "adhoc":
        return None
    team = fields.get("TeamIdentifier")
    verified = None if verify_status is None else verify_status == 0
    why = "" if verified is not False else (verify_text.strip().splitlines() or [""])[-1][:200]
    return _signer(None if team == "not set" else team, fields.get("Identifier", ""),
                   authorities, verified, why)


def from_signing_information(info: Mapping[str, Any], certificate_names: Sequence[str],
                             valid: bool | None, why: str = "") -> Signer | None:
    """SecCodeCopySigningInformation's dictionary (keys as in SecCode.h), the subject
    summaries of its ``certificates`` (leaf first), and SecStaticCodeCheckValidity's
    verdict -> the signer."""
    team = info.get(INFO_TEAM)
    identifier = info.get(INFO_IDENTIFIER)
    return _signer(team if isinstance(team, str) else None,
                   identifier[:256] if isinstance(identifier, str) else "",
                   [str(n)[:256] for n in certificate_names], valid, why)


Run = Callable[[list[str]], tuple[int, str]]


def _run(argv: list[str]) -> tuple[int, str]:
    done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                          timeout=TIMEOUT, check=False)
    return done.returncode, done.stderr


class CodesignSigner:
    """The signer of an executable through ``codesign`` (two runs per file: display and
    verify); ``run`` takes an argv and gives (exit status, stderr). Any thread; None when
    the file is unsigned, ad hoc, or codesign cannot say."""

    def __init__(self, run: Run = _run) -> None:
        self.run = run

    def signer(self, exe: str) -> Signer | None:
        try:
            status, display = self.run([CODESIGN, "-dv", "--verbose=2", "--", exe])
            if status != 0:
                return None  # "code object is not signed at all", no such file
            vstatus, vtext = self.run([CODESIGN, "--verify", "--strict", "--", exe])
        except (OSError, subprocess.SubprocessError):
            return None
        return parse_codesign(display, vstatus, vtext)


class SecuritySigner:
    """The same through Security.framework (pyobjc-framework-Security, given as ``sec``)."""

    def __init__(self, sec: Any, foundation: Any) -> None:
        self.sec, self.foundation = sec, foundation

    def signer(self, exe: str) -> Signer | None:
        sec = self.sec
        url = self.foundation.NSURL.fileURLWithPath_(exe)
        status, code = sec.SecStaticCodeCreateWithPath(url, sec.kSecCSDefaultFlags, None)
        if status != 0 or code is None:
            return None
        check = sec.SecStaticCodeCheckValidity(code, sec.kSecCSStrictValidate, None)
        status, info = sec.SecCodeCopySigningInformation(code, sec.kSecCSSigningInformation,
                                                         None)
        if status != 0 or info is None:
            return None
        names = [str(sec.SecCertificateCopySubjectSummary(c) or "")
                 for c in list(info.get(INFO_CERTIFICATES) or [])[:8]]
        why = "" if check == 0 else f"SecStaticCodeCheckValidity: OSStatus {check}"
        return from_signing_information(dict(info), names, check == 0, why)


def load_signer() -> CodesignSigner | SecuritySigner:
    """Security.framework when pyobjc has it, else codesign."""
    try:
        import Foundation  # type: ignore[import-not-found, import-untyped, unused-ignore]
        import Security  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return CodesignSigner()
    return SecuritySigner(Security, Foundation)
