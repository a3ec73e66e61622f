"""Every tray state's icon, drawn by camguard's real renderer from its real SVG files, at the
sizes panels ask for and at device pixel ratio 2: nothing cut at the icon's edge."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSize
from PySide6.QtGui import QImage
from pytestqt.qtbot import QtBot

from camguard.ui.assets import STATE_FILES, icon_path, state_icon

pytestmark = pytest.mark.real

SIZES = (16, 22, 24, 32, 48, 64)
# Alpha at or under this is antialiasing's faint bleed, not drawn art (out of 255).
FAINT = 16
STATES = [(state, False) for state in STATE_FILES] + [("camera", True), ("blocked", True)]


def opaque_box(image: QImage) -> tuple[int, int, int, int] | None:
    """The bounding box (left, top, right, bottom) of the pixels more than faint."""
    xs, ys = [], []
    for y in range(image.height()):
        for x in range(image.width()):
            if image.pixelColor(x, y).alpha() > FAINT:
                xs.append(x)
                ys.append(y)
    return (min(xs), min(ys), max(xs), max(ys)) if xs else None


@pytest.mark.parametrize("state,degraded", STATES)
def test_tray_icons_are_not_clipped_at_any_size_or_scale(qtbot: QtBot, state: str,
                                                         degraded: bool) -> None:
    assert icon_path(STATE_FILES[state]) is not None  # the real art, not the fallback disc
    icon = state_icon(state, degraded)
    for size in SIZES:
        for ratio in (1.0, 2.0):
            pixmap = icon.pixmap(QSize(size, size), ratio)
            image = pixmap.toImage()
            device = round(size * ratio)
            # Drawn for the device pixels, not a smaller one scaled up (blurred) by Qt.
            assert (image.width(), image.height()) == (device, device), (size, ratio)
            box = opaque_box(image)
            assert box is not None, (state, size, ratio)
            left, top, right, bottom = box
            where = (state, degraded, size, ratio, box)
            # Nothing drawn on the outermost row or column: the art ends inside the icon.
            assert left > 0 and top > 0 and right < device - 1 and bottom < device - 1, where
            # ... and it is not shrunk to a dot to get there: it spans most of the icon.
            assert max(right - left, bottom - top) + 1 >= device * 0.7, where
