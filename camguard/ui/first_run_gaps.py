"""What camguard cannot see or do on this computer, in words for the first-run window.

Built from the detection's real coverage (``TrayOptions.coverage``) and whether the
privileged helper is installed. Each gap says what is missed, why, and what would fix it,
in words: no shell command is shown (a command to paste is not something a person should
have to trust). The one fix run from here is the helper's installer (first_run.py's button,
platform/linux/helper_install.py through pkexec).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from camguard.core.coverage import Coverage, CoverageState
from camguard.core.text import literal
from camguard.ui.sensors import SOURCE_WORDS

SENSOR_WORDS = {"camera": "Camera", "microphone": "Microphone", "screen": "Screen capture",
                "location": "Location"}
NOT_ROOT = ("Apps in other accounts are counted but not named, and a use shorter than a "
            "second can be missed: camguard runs with your rights, not an administrator's. "
            "Turning on camguard's system service (it comes with the camguard package; an "
            "administrator turns it on once) names every account's apps.")
X11 = ("Screen capture cannot be seen: in an X11 session any app may read the screen "
       "without asking anyone. Log in with a Wayland session (chosen on the login screen) "
       "and camguard names the apps that share your screen.")
NO_HELPER = ("Block switches the camera off for your own apps only: camguard's helper, "
             "which switches it off for every account, is not installed. It comes with the "
             "camguard package (.deb); installing that package adds it.")
ALL_SEEN = "Nothing: camguard sees every use of the camera, microphone, screen and location."


@dataclass(frozen=True, slots=True)
class Gap:
    key: str  # one gap per key: the camera and microphone share "not root"
    text: str


def gaps(coverage: Sequence[Coverage] | None, helper_installed: bool | None) -> list[Gap]:
    """``coverage``: None when not known (nothing is said about it). ``helper_installed``:
    None where no helper is needed or exists (root, another OS)."""
    out: dict[str, Gap] = {}
    for c in sorted(coverage or (), key=lambda c: (c.sensor, c.source)):
        if c.state is CoverageState.WATCHING:
            continue
        reason = c.reason.lower()
        if "not root" in reason:
            out.setdefault("not-root", Gap("not-root", NOT_ROOT))
        elif "x11" in reason and c.sensor == "screen":
            out.setdefault("x11", Gap("x11", X11))
        else:
            what = SENSOR_WORDS.get(c.sensor, literal(c.sensor, 40))
            verb = "not seen" if c.state is CoverageState.BLIND else "partly seen"
            text = f"{what} through {SOURCE_WORDS.get(c.source, literal(c.source, 40))}: {verb}"
            text += f": {literal(c.reason, 300)}." if c.reason else "."
            out.setdefault(f"{c.sensor}/{c.source}", Gap(f"{c.sensor}/{c.source}", text))
    if helper_installed is False:
        out["helper"] = Gap("helper", NO_HELPER)
    return list(out.values())
