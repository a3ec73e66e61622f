"""Load detection settings from ``settings.json``; a bad file is reported, kept, never fatal.

The file is read by store.files.read_settings and each value checked by
store.policy.check_value against the ``DETECTION`` schema, as every other section is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from camguard.core.settings import DetectionSettings
from camguard.core.text import literal
from camguard.store.files import read_settings
from camguard.store.policy import DETECTION, check_value


def load_detection_settings(path: Path) -> tuple[DetectionSettings, list[str]]:
    """Settings from the ``"detection"`` object of ``path``, plus human-readable problems.

    A missing file gives the defaults silently. An unreadable or corrupt file, or a bad
    value, gives the defaults for what is wrong and a problem line; the file itself is left
    untouched so nothing the user wrote is lost.
    """
    doc, problem = read_settings(path)
    if problem:
        return DetectionSettings(), [problem]
    section = doc.get("detection", {})
    if not isinstance(section, dict):
        return DetectionSettings(), [f"{path}: 'detection' must be an object; using defaults"]
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in section.items():
        if key not in DETECTION:
            problems.append(f"{path}: unknown setting detection.{literal(key, 64)} ignored")
            continue
        try:
            values[key] = check_value(key, value, DETECTION)
        except ValueError as exc:
            problems.append(f"{path}: detection.{key}: {exc}; using the default")
    return DetectionSettings(**values), problems
