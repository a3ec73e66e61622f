"""The parental page's "Turn on the camguard service…" as an account uses it, inside a
private mount namespace where the package's unit is installed (run by
tests/integration/test_system_service.py). Prints one JSON object and saves a picture.

Usage (QT_QPA_PLATFORM=offscreen): python3 service_button_scene.py LOCK_DIR SHOT.png
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QApplication

from camguard.core.clock import FrozenClock
from camguard.platform import system_service
from camguard.store.parental_lock import LockGuard
from camguard.ui.parental_page import ParentalPage


def wait(app: QApplication, done: object, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while not done():  # type: ignore[operator]
        if time.monotonic() > end:
            raise TimeoutError("the page did not finish")
        app.processEvents()
        time.sleep(0.02)


def main(folder: str, shot: str) -> dict[str, object]:
    app = QApplication(["camguard"])
    pool = QThreadPool()
    service = system_service()
    page = ParentalPage(LockGuard(Path(folder) / "lock.json", FrozenClock(1.8e9)), pool,
                        service)
    page.resize(720, 520)
    page.show()
    wait(app, lambda: not page.service_busy)
    out: dict[str, object] = {"offered": page.service_button.isVisible(),
                              "state": page.service_state.text()}
    page.service_button.click()
    wait(app, lambda: not page.service_busy
         and "Waiting" not in page.service_result.text())
    out["said"] = page.service_result.text()
    page.grab().save(shot)
    pool.waitForDone(30_000)
    return out


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(sys.argv[1], sys.argv[2])) + "\n")
