"""Who signed an executable (macOS code signature, Windows Authenticode): the piece an origin
(issue 15's ``OriginResolver``) needs on those systems, so that "always allow Zoom" can
survive Zoom's updates: a rule may name the signer instead of one binary's hash.

Shared by the macOS and Windows backends (which may not import each other); each backend
finds the signer its own way (platform/macos/signer.py, platform/windows/signer.py) and
gives this one small shape. Pure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from camguard.core.text import literal


class SignerKind(enum.StrEnum):
    TEAM_ID = "teamid"  # macOS: an Apple Developer Team ID (10 characters), e.g. BJ4HAAB9B3
    APPLE = "apple"  # macOS: Apple's own code ("Software Signing"), named by its identifier
    AUTHENTICODE = "authenticode"  # Windows: the signing certificate's subject (CN)


@dataclass(frozen=True, slots=True)
class Signer:
    """``verified``: True when the OS checked the file against its signature now, False when
    that check failed (``why`` says how: a modified file keeps its old signature blob), None
    when it was not checked. ``authority``: the leaf certificate as shown to a person.
    ``identifier``: the code's own identifier (a bundle id) where there is one."""

    kind: SignerKind
    name: str
    verified: bool | None
    authority: str = ""
    identifier: str = ""
    why: str = ""

    @property
    def key(self) -> str:
        """What a rule would name: ``teamid:BJ4HAAB9B3``, ``apple:com.apple.FaceTime``."""
        return f"{self.kind.value}:{self.name}"

    @property
    def trusted(self) -> bool:
        """A rule may rely on it only when the file verified against its signature."""
        return self.verified is True

    def describe(self) -> str:
        who = literal(self.authority or self.name, 200)
        what = {SignerKind.TEAM_ID: "signed by", SignerKind.APPLE: "Apple's",
                SignerKind.AUTHENTICODE: "signed by"}[self.kind]
        tail = "" if self.verified is not False else " (the file no longer matches it)"
        return f"{what} {who}{tail}"
