"""The first-run window's "Install the helper…" button, run as an account inside
tests/polkit_env.py's private scene (real pkexec, real polkitd): prints one JSON object
with the gaps before and after the click, what the window said, and saves its picture.

Usage (as the account, QT_QPA_PLATFORM=offscreen): python3 first_run_install_scene.py
PKEXEC CONFIG_DIR SHOT.png
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication

from camguard.platform.linux.helper_runner import PkexecHelper, install_helper
from camguard.ui.first_run import FirstRunWindow


def wait(app: QApplication, done: object, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while not done():  # type: ignore[operator]
        if time.monotonic() > end:
            raise TimeoutError("the first-run window did not finish")
        app.processEvents()
        time.sleep(0.02)


def main(pkexec: str, config: str, shot: str) -> dict[str, object]:
    app = QApplication(["camguard"])
    w = FirstRunWindow(Path(config), ["cameras: /dev/video*"], coverage=lambda: [],
                       helper=PkexecHelper.available,
                       install_helper=lambda: install_helper(pkexec=pkexec))
    w.show()
    wait(app, lambda: not w.loading)
    before = list(w.gap_labels)
    button = w.install_button
    offered = button is not None and button.isVisible()
    if button is not None:
        button.click()
    wait(app, lambda: not w.installing and not w.loading)
    for _ in range(20):  # the labels of the new look laid out
        app.processEvents()
    w.fit()
    app.processEvents()
    w.grab().save(shot)
    out = {"before": before, "offered": offered, "after": list(w.gap_labels),
           "said": w.install_result.text(),
           "button_visible": button is not None and button.isVisible()}
    w.shutdown()
    return out


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(*sys.argv[1:4])) + "\n")
