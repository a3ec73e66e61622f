"""Where an executable comes from (pure): a Debian package, a Flatpak or Snap sandbox, an
AppImage, or a local file no package owns.

The platform works it out (``camguard.platform.base.OriginResolver``; on Linux from dpkg's
database, the process's cgroup and root); rules may trust an origin instead of one binary's
hash, so "always allow the Debian package firefox-esr" survives an update that dpkg
installed and that verifies. Room is left for a Windows signer or a macOS Team ID (a new
:class:`OriginKind`).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Protocol

from camguard.core.text import json_safe, literal


class OriginKind(enum.StrEnum):
    DEB = "deb"  # owned by a Debian package (dpkg's database)
    FLATPAK = "flatpak"  # runs in a Flatpak sandbox (app id)
    SNAP = "snap"  # runs as a snap (snap name)
    APPIMAGE = "appimage"  # runs from a mounted AppImage (the image's path)
    LOCAL = "local"  # a file no package owns: known by its SHA-256


_WHAT = {OriginKind.DEB: "Debian package", OriginKind.FLATPAK: "Flatpak",
         OriginKind.SNAP: "Snap", OriginKind.APPIMAGE: "AppImage",
         OriginKind.LOCAL: "local file"}


@dataclass(frozen=True, slots=True)
class ExeOrigin:
    """Where one executable comes from.

    ``name``: the package (deb), app id (flatpak), snap name, the image's path (appimage)
    or the executable's path (local). ``verified``: True when the file was checked
    against what its origin recorded (a deb whose md5sum matches dpkg's, a snap binary on its
    read-only image), False when the check failed (``why`` says how), None when there is
    nothing to check it against. ``detail``: the Flatpak branch or a local file's SHA-256.
    """

    kind: OriginKind
    name: str
    verified: bool | None = None
    detail: str = ""
    why: str = ""

    @property
    def key(self) -> str:
        """What an origin rule names: ``deb:firefox-esr``, ``flatpak:org.telegram.desktop``."""
        return f"{self.kind.value}:{self.name}"

    def describe(self) -> str:
        """``Debian package firefox-esr``, ``Flatpak org.telegram.desktop (stable)``."""
        what = _WHAT[self.kind]
        name = literal(self.name, 200)
        if self.kind is OriginKind.FLATPAK and self.detail:
            return f"{what} {name} ({literal(self.detail, 40)})"
        return f"{what} {name}"

    @property
    def sandboxed(self) -> bool:
        """A Flatpak, Snap or AppImage: its process name (``bwrap``, ``AppRun``) says little,
        its app id or image says what it is."""
        return self.kind in (OriginKind.FLATPAK, OriginKind.SNAP, OriginKind.APPIMAGE)

    @property
    def trusted(self) -> bool:
        """Whether an origin rule may rely on it: a deb or snap file that verified; a
        Flatpak or AppImage that did not fail (camguard cannot check those: such a rule is
        as strong as the sandbox's cgroup and root, or the image's path). Never a local
        file: those are pinned by their SHA-256."""
        if self.kind in (OriginKind.FLATPAK, OriginKind.APPIMAGE):
            return self.verified is not False
        return self.kind is not OriginKind.LOCAL and self.verified is True

    def label(self, app_name: str) -> str:
        """How a person calls the app: ``firefox-esr (Debian package firefox-esr)``."""
        shown = literal(app_name, 64) or "?"
        if self.kind is OriginKind.LOCAL:
            return shown
        return f"{shown} ({self.describe()})"

    def problem(self) -> str | None:
        """Why this origin cannot be trusted now, in plain words (None: nothing wrong)."""
        if self.trusted or self.kind is OriginKind.LOCAL:
            return None
        if self.verified is None:
            return (f"the file could not be checked against its {_WHAT[self.kind]} "
                    f"{literal(self.name, 200)}" + (f" ({literal(self.why, 200)})"
                                                    if self.why else ""))
        if self.kind is OriginKind.DEB:
            return (f"the file no longer matches its Debian package {literal(self.name, 200)}"
                    + (f" ({literal(self.why, 200)})" if self.why else ""))
        return f"the file failed its {_WHAT[self.kind]} check" + \
            (f" ({literal(self.why, 200)})" if self.why else "")


def parse_origin_key(text: str) -> tuple[OriginKind, str]:
    """``deb:firefox-esr`` -> (DEB, "firefox-esr"); ValueError when it is not one."""
    kind, sep, name = text.partition(":")
    if not sep or not name or len(name) > 4096 or "\x00" in name or kind == "local":
        raise ValueError(f"not an origin: {literal(text, 80)!r} (say e.g. deb:firefox-esr, "
                         "flatpak:org.telegram.desktop, snap:zoom-client; a local file "
                         "is matched by its path and SHA-256)")
    try:
        return OriginKind(kind), name
    except ValueError:
        raise ValueError(f"unknown origin kind {literal(kind, 20)!r} "
                         f"(use {', '.join(OriginKind)})") from None


def origin_dict(o: ExeOrigin | None) -> dict[str, Any] | None:
    """The JSON shape (status, watch, history, event log): kind, name, verified, detail."""
    if o is None:
        return None
    out: dict[str, Any] = {"kind": o.kind.value, "name": json_safe(o.name),
                           "verified": o.verified, "detail": json_safe(o.detail) or None}
    if o.why:
        out["why"] = json_safe(o.why)
    return out


def origin_from_dict(d: Any) -> ExeOrigin | None:
    """Back from :func:`origin_dict` (a service's answer, a history row); None when it is
    not one."""
    if not isinstance(d, dict):
        return None
    try:
        kind = OriginKind(str(d.get("kind")))
    except ValueError:
        return None
    name, verified = d.get("name"), d.get("verified")
    if not isinstance(name, str) or verified not in (True, False, None):
        return None
    detail, why = d.get("detail") or "", d.get("why") or ""
    return ExeOrigin(kind, name, verified, detail if isinstance(detail, str) else "",
                     why if isinstance(why, str) else "")


def origin_from_json(text: object) -> ExeOrigin | None:
    """A stored origin (the JSON text of :func:`origin_dict`, a history row's ``origin``);
    None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        return origin_from_dict(json.loads(text))
    except (ValueError, RecursionError):
        return None


def origin_line(origin: ExeOrigin) -> str:
    """``from the Debian package firefox-esr (checked)``: where an app comes from, and what
    checking it found."""
    if origin.kind is OriginKind.LOCAL:
        digest = origin.detail  # 64 hex digits; the first 16 name it well enough here
        more = "…" if len(digest) > 16 else ""
        return f"a local file, not from any package (sha256 {literal(digest[:16])}{more})"
    check = {True: "checked", False: "check FAILED", None: "not checkable"}[origin.verified]
    return f"from the {origin.describe()} ({check})"


class OriginLookup(Protocol):
    """What consumers of origins need (platform.base.OriginResolver is one): ``origin`` may
    read the whole file the first time; ``cached`` never reads a file (None when it would
    have to), for the event path."""

    def origin(self, pid: int | None, exe: str) -> ExeOrigin | None: ...

    def cached(self, pid: int | None, exe: str) -> ExeOrigin | None: ...
