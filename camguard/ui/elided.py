"""A one-line plain-text label that elides with an ellipsis at a character boundary.

A label clipped by its width cuts the last glyph in half, and a long command line or path
then ends mid-character. This label asks Qt's font metrics for the elided form (Qt cuts
between grapheme clusters, never inside one) whenever its width changes, and carries the
whole text, escaped, in its tooltip. The text is always plain: it never becomes markup.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

# The tooltip shows more than the line, but still not a wall of text.
TOOLTIP_LIMIT = 2000


class ElidedLabel(QLabel):
    """``set_full(text)`` shows ``text`` (already through literal()) on one line, elided."""

    def __init__(self, mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self._mode = mode
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setWordWrap(False)

    def full_text(self) -> str:
        return self._full

    def is_elided(self) -> bool:
        return self.text() != self._full

    def set_full(self, text: str) -> None:
        self._full = text
        self._elide()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = self.contentsRect().width()
        shown = self._full
        if width > 0 and shown:
            shown = self.fontMetrics().elidedText(self._full, self._mode, width)
        if shown != self.text():
            self.setText(shown)
        # Qt renders a tooltip as rich text when it looks like markup: escape it, whole.
        tip = "" if shown == self._full else (
            "<qt>" + html.escape(self._full[:TOOLTIP_LIMIT], quote=False) + "</qt>")
        if tip != self.toolTip():
            self.setToolTip(tip)


def plain_label(text: str = "", *, bold: bool = False) -> QLabel:
    """A label that shows its text literally: no markup, no links, clipped not widened."""
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setText(text)
    if bold:
        _embolden(label)
    return label


def _embolden(label: QLabel) -> None:
    """Bold and a little larger: a popup's title and name lines."""
    font = QFont(label.font())
    font.setBold(True)
    font.setPointSizeF(font.pointSizeF() * 1.15)
    label.setFont(font)


def elided_label(*, bold: bool = False,
                 mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight) -> ElidedLabel:
    """A one-line plain label that ends in an ellipsis, at a character, when too long."""
    label = ElidedLabel(mode)
    if bold:
        _embolden(label)
    return label
