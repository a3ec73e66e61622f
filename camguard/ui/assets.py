"""Icons: finds camguard's resources (repo, wheel, PyInstaller, /usr/share) and draws tray icons.

A missing or unreadable icon file never stops the tray: a plain coloured disc stands in.
"""

from __future__ import annotations

import logging
import os
import sys
from functools import cache
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtSvg import QSvgRenderer

from camguard.core.models import ProcessRef

log = logging.getLogger(__name__)

SYSTEM_RESOURCES = Path("/usr/share/camguard/resources")
# Sizes panels ask for: 16 (classic trays), 22/24 (GNOME, KDE), 32+ (HiDPI, the popup);
# 44, 96 and 128 are 22, 48 and 64 at device pixel ratio 2 (else Qt scales another one).
ICON_SIZES = (16, 22, 24, 32, 44, 48, 64, 96, 128)
# The art's strokes reach up to one unit past the edge of its 64-unit box (a round cap, a
# stroke centred on the edge): the box is widened by that much, and a margin of at least
# one pixel is left around it, so nothing is cut at the icon's edge at any size.
ART_OVERFLOW = 1 / 64

# Tray state -> icon file; "degraded" alone is the idle shield with the warning badge.
STATE_FILES = {
    "idle": "idle", "camera": "camera", "microphone": "microphone", "both": "both",
    "blocked": "blocked", "paused": "paused", "degraded": "idle", "screen": "screen",
    "location": "location",
}
_FALLBACK_COLOURS = {
    "idle": "#2e8b57", "camera": "#e0201b", "microphone": "#ff8c00", "both": "#e0201b",
    "blocked": "#9a9a9a", "paused": "#8a8a8a", "degraded": "#ffd000", "app": "#ffffff",
    "screen": "#7b2fbe", "location": "#1e6fd9",
}


def resource_dirs() -> list[Path]:
    """Where resources may be, most specific first."""
    dirs: list[Path] = []
    override = os.environ.get("CAMGUARD_RESOURCES")
    if override:
        dirs.append(Path(override))
    frozen = getattr(sys, "_MEIPASS", None)  # PyInstaller unpacks bundled data here
    if isinstance(frozen, str):
        dirs.append(Path(frozen) / "resources")
    package = Path(__file__).resolve().parent.parent  # .../camguard
    dirs.append(package / "resources")  # a wheel that ships them inside the package
    dirs.append(package.parent / "resources")  # a source checkout or editable install
    dirs.append(SYSTEM_RESOURCES)
    return dirs


def icon_path(name: str) -> Path | None:
    for d in resource_dirs():
        candidate = d / "icons" / f"{name}.svg"
        if candidate.is_file():
            return candidate
    return None


def _render(path: Path | None, size: int, colour: str) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer = QSvgRenderer(str(path)) if path is not None else None
    if renderer is not None and renderer.isValid():
        box = renderer.viewBoxF()
        pad = box.width() * ART_OVERFLOW
        renderer.setViewBox(box.adjusted(-pad, -pad, pad, pad))
        margin = max(1.0, size / 32)
        renderer.render(painter, QRectF(margin, margin, size - 2 * margin, size - 2 * margin))
    else:
        # A disc in the state's colour with a dark rim: still readable, still distinct.
        painter.setPen(QPen(QColor("#101010"), max(1.0, size / 16)))
        painter.setBrush(QColor(colour))
        inset = size / 8
        painter.drawEllipse(QRectF(inset, inset, size - 2 * inset, size - 2 * inset))
    painter.end()
    return image


@cache
def load_icon(name: str) -> QIcon:
    """The SVG ``resources/icons/<name>.svg`` as a QIcon (a drawn disc if it is missing)."""
    path = icon_path(name)
    if path is None:
        log.warning("icon %s.svg not found in %s", name, [str(d) for d in resource_dirs()])
    icon = QIcon()
    for size in ICON_SIZES:
        icon.addPixmap(QPixmap.fromImage(_render(path, size, _FALLBACK_COLOURS.get(name,
                                                                                    "#888"))))
    return icon


@cache
def state_icon(state: str, degraded: bool = False) -> QIcon:
    """The tray icon for a state; ``degraded`` draws the warning triangle in a corner."""
    name = STATE_FILES.get(state, "idle")
    base = icon_path(name)
    badge = icon_path("degraded") if (degraded or state == "degraded") else None
    icon = QIcon()
    for size in ICON_SIZES:
        image = _render(base, size, _FALLBACK_COLOURS.get(state, "#888"))
        if degraded or state == "degraded":
            # The badge takes the bottom-right 60%: big enough to see at 16 px.
            mark = _render(badge, max(8, size * 6 // 10), _FALLBACK_COLOURS["degraded"])
            painter = QPainter(image)
            painter.drawImage(size - mark.width(), size - mark.height(), mark)
            painter.end()
        icon.addPixmap(QPixmap.fromImage(image))
    return icon


def app_icon(process: ProcessRef | None) -> QIcon:
    """The app's own icon from the desktop theme (named after its executable) if there is
    one, else a generic application icon. The name is only a theme lookup key."""
    if process is not None:
        base = os.path.basename(process.exe or "") or process.name
        if (base and len(base) <= 128 and "/" not in base and not base.startswith(".")
                and base.isprintable()):
            themed = QIcon.fromTheme(base)
            if not themed.isNull():
                return themed
    return load_icon("app")
