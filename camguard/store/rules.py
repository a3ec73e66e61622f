"""The user's rules file (``rules.json`` in the config folder, 0600): the rules and the mode.

Written atomically (private temporary file, fsync, ``os.replace``). A file that cannot be
parsed is moved aside and reported; a file with some bad rules keeps its good ones, and a
copy of it as it was is kept next to it before anything is rewritten, so a rule this
version could not read is never lost. Only durable rules are written: "once" and
"until-restart" rules live in the running camguard alone (see core.rules.Duration).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from camguard.core.rules import Mode, Rule, durable, prune
from camguard.core.rules_json import rules_from_json, rules_to_json
from camguard.store import paths
from camguard.store.files import aside_path, exclusive, write_private

log = logging.getLogger(__name__)

FILE_NAME = "rules.json"


@dataclass(frozen=True, slots=True)
class RuleFileContents:
    rules: list[Rule] = field(default_factory=list)
    mode: Mode | None = None  # None: the file does not choose one (the default applies)
    problems: list[str] = field(default_factory=list)


def default_path() -> Path:
    return paths.config_dir() / FILE_NAME


class RuleFile:
    """Load and save the rules file. One instance per file; not shared between threads."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else default_path()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive access across processes (the tray and ``camguard rules add`` may race)."""
        with exclusive(self.path):
            yield

    def load(self) -> RuleFileContents:
        """The rules and mode; problems say what was skipped. Never raises."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return RuleFileContents()
        except OSError as exc:
            return RuleFileContents(problems=[f"cannot read {self.path}: {exc}; no user rules"])
        try:
            doc = json.loads(raw.decode("utf-8"))
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except (ValueError, RecursionError) as exc:  # JSON and UTF-8 errors alike
            return RuleFileContents(problems=[self._move_aside(exc)])
        rules, errors = rules_from_json(doc)
        problems = [f"{self.path.name}: {e}" for e in errors]
        mode = None
        if doc.get("mode") is not None:
            try:
                mode = Mode(doc["mode"])
            except (ValueError, TypeError):
                problems.append(f"{self.path.name}: unknown mode {doc['mode']!r} ignored")
        if problems:
            problems.append(self._keep_copy(raw))
            for p in problems:
                log.warning("%s", p)
        return RuleFileContents(rules, mode, problems)

    def save(self, rules: Iterable[Rule], mode: Mode | None = None,
             now: float | None = None) -> None:
        """Replace the file with the durable rules (expired ones dropped when ``now`` is
        given). Raises OSError when it cannot be written."""
        keep = durable(rules)
        if now is not None:
            keep = prune(keep, now)
        data = (json.dumps(rules_to_json(keep, mode), indent=1, ensure_ascii=False)
                + "\n").encode("utf-8")
        write_private(self.path, data)

    def _keep_copy(self, raw: bytes) -> str:
        # Named by content, so loading the same file again does not pile up copies.
        digest = hashlib.sha256(raw).hexdigest()[:8]
        copy = self.path.with_name(f"{self.path.name}.rejected-{digest}")
        try:
            if not copy.exists():
                write_private(copy, raw)
        except OSError as exc:
            return f"could not keep a copy of {self.path} ({exc}); fix it before changing rules"
        return f"the file as it was is kept as {copy.name}"

    def _move_aside(self, exc: BaseException) -> str:
        aside = self.path
        aside = aside_path(self.path)
        try:
            os.replace(self.path, aside)
        except OSError as move_exc:
            msg = (f"{self.path} is unreadable ({exc}) and could not be moved aside "
                   f"({move_exc}); no user rules")
        else:
            msg = f"{self.path} was unreadable ({exc}); kept as {aside.name}; no user rules"
        log.warning("%s", msg)
        return msg
