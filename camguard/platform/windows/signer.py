"""Who signed a Windows executable (Authenticode), as platform.signer.Signer: the signing
certificate's subject CN, and whether the file verifies against its signature now.

The adapter asks PowerShell's Get-AuthenticodeSignature (WinVerifyTrust underneath) for the
status and the signer's subject, as JSON, with the path passed in an environment variable
(never in the command text: a path is data, not code). :func:`parse_signature` decides on
that JSON and :func:`common_name` reads the subject (.NET quotes a value holding a comma:
``CN="Zoom Video Communications, Inc.", O=...``). Pure parts tested on Linux with the
documented output; the PowerShell run NEVER RAN (there is no Windows machine here). One
PowerShell start costs a few hundred milliseconds: callers cache by file identity and look
off the event path.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from typing import Any

from camguard.platform.signer import Signer, SignerKind

# SignatureStatus: Valid 0, UnknownError 1, NotSigned 2, HashMismatch 3, NotTrusted 4,
# NotSupportedFileFormat 5, Incompatible 6.
VALID, NOT_SIGNED, NOT_SUPPORTED = 0, 2, 5
STATUS_WORDS = {1: "unknown error", 3: "the file does not match its signature",
                4: "the certificate is not trusted", 6: "an incompatible signature"}
ENV = "CAMGUARD_AUTHENTICODE_TARGET"  # read by the script only
SCRIPT = ("$s = Get-AuthenticodeSignature -LiteralPath $env:" + ENV + "; "
          "[pscustomobject]@{Status = [int]$s.Status; "
          "Subject = $s.SignerCertificate.Subject; Message = $s.StatusMessage} "
          "| ConvertTo-Json -Compress")
TIMEOUT = 20.0
MAX_TEXT = 16 * 1024


def common_name(subject: str) -> str:
    """The CN of an X.500 subject as .NET prints it; "" when there is none."""
    i, n = 0, len(subject)
    while i < n:
        while i < n and subject[i] in " ,":
            i += 1
        key_end = subject.find("=", i)
        if key_end < 0:
            return ""
        key = subject[i:key_end].strip().upper()
        i = key_end + 1
        if i < n and subject[i] == '"':
            value, i = [], i + 1
            while i < n and not (subject[i] == '"' and subject[i + 1:i + 2] != '"'):
                if subject[i] == '"':  # "" is a quote inside a quoted value
                    i += 1
                value.append(subject[i])
                i += 1
            text, i = "".join(value), i + 1
        else:
            end = subject.find(",", i)
            end = n if end < 0 else end
            text, i = subject[i:end].strip(), end
        if key == "CN":
            return text[:256]
    return ""


def parse_signature(raw: str) -> Signer | None:
    """The adapter's JSON -> the signer; None for an unsigned file, a format that carries
    no signature, or output that is not what the script prints."""
    try:
        doc = json.loads(raw[:MAX_TEXT])
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, Mapping):
        return None
    status, subject = doc.get("Status"), doc.get("Subject")
    if not isinstance(status, int) or status in (NOT_SIGNED, NOT_SUPPORTED):
        return None
    if not isinstance(subject, str) or not (name := common_name(subject)):
        return None
    verified = status == VALID
    message = doc.get("Message")
    why = "" if verified else (message if isinstance(message, str) and message else
                               STATUS_WORDS.get(status, f"status {status}"))[:200]
    return Signer(SignerKind.AUTHENTICODE, name, verified, subject[:256], "", why)


Run = Callable[[list[str], Mapping[str, str]], str]


def _run(argv: list[str], env: Mapping[str, str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                          timeout=TIMEOUT, check=False, env={**os.environ, **env},
                          creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    return done.stdout


class AuthenticodeSigner:
    """Any thread; None when the file is unsigned or PowerShell cannot say."""

    def __init__(self, run: Run = _run, powershell: str = "powershell.exe") -> None:
        self.run, self.powershell = run, powershell

    def signer(self, exe: str) -> Signer | None:
        argv = [self.powershell, "-NoProfile", "-NonInteractive", "-ExecutionPolicy",
                "Bypass", "-Command", SCRIPT]
        try:
            out: Any = self.run(argv, {ENV: exe})
        except (OSError, subprocess.SubprocessError):
            return None
        return parse_signature(out) if isinstance(out, str) else None
