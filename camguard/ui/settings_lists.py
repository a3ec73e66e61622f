"""The settings window's list pages: the allow list and the rules, with the edits not yet saved.

Adding an entry or an exe rule hashes the chosen binary (camguard.store.hashing) on a pool
thread, never on the GUI thread (a 200 MB browser takes a good part of a second). Paths are
resolved first: a process's executable is reported with symlinks resolved, so an entry for
``/usr/bin/python3`` (a link) would never match anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from PySide6.QtCore import QThreadPool, Signal
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLineEdit, QPushButton, QVBoxLayout, QWidget

from camguard.core.models import DeviceKind
from camguard.core.rules import AppMatch, MatchBy, Mode, Origin, Rule, RuleError, Verdict, make_rule
from camguard.core.text import literal
from camguard.store.allowlist import AllowEntry
from camguard.store.hashing import sha256_file
from camguard.store.rules import RuleFileContents
from camguard.ui.alert import plain_label
from camguard.ui.settings_pages import (
    DURATIONS,
    KINDS,
    MATCHES,
    combo,
    make_table,
    plain_item,
    run_in_pool,
)

SAVED, TO_ADD, TO_REMOVE = "saved", "to add", "to remove"


class AllowEditor(Protocol):
    """The allow list (camguard.store.allowlist.AllowList fits). Called on the GUI thread
    when the dialog loads and saves (a SQLite call: about a millisecond)."""

    def entries(self) -> list[AllowEntry]: ...

    def add(self, exe: str, sha256: str, kind: DeviceKind | str, added_at: float,
            note: str = "") -> AllowEntry: ...

    def remove(self, exe: str, kind: DeviceKind | str | None = None) -> int: ...


class RulesEditor(Protocol):
    """The rules file (camguard.store.rules.RuleFile fits). GUI thread; a file read/write."""

    def locked(self) -> AbstractContextManager[None]: ...

    def load(self) -> RuleFileContents: ...

    def save(self, rules: Iterable[Rule], mode: Mode | None = None,
             now: float | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class AllowRow:
    exe: str
    kind: DeviceKind
    sha256: str
    state: str  # SAVED, TO_ADD or TO_REMOVE


class AllowPage(QWidget):
    """Allow-list entries and the additions and removals waiting for Save."""

    changed = Signal()

    def __init__(self, pool: QThreadPool) -> None:
        super().__init__()
        self._pool = pool
        self._rows: dict[tuple[str, DeviceKind], AllowRow] = {}
        self.hashing = 0
        box = QVBoxLayout(self)
        intro = plain_label("Programs allowed without an alert. Each entry allows one "
                            "binary: a changed file at the same path is asked about.")
        intro.setWordWrap(True)  # whole, at any window width
        box.addWidget(intro)
        self.table = make_table(("Program", "Device", "SHA-256", "State"))
        box.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.kind = combo(KINDS)
        self.add_button = QPushButton("Add program…")
        self.remove_button = QPushButton("Remove")
        for w in (self.kind, self.add_button, self.remove_button):
            row.addWidget(w)
        row.addStretch(1)
        box.addLayout(row)
        self.message = plain_label()
        self.message.setWordWrap(True)
        box.addWidget(self.message)
        self.remove_button.clicked.connect(lambda _=False: self.remove_selected())

    def load(self, entries: Iterable[AllowEntry]) -> None:
        self._rows = {(e.exe, e.kind): AllowRow(e.exe, e.kind, e.sha256, SAVED)
                      for e in entries}
        self._render()

    def rows(self) -> list[AllowRow]:
        return sorted(self._rows.values(), key=lambda r: (r.exe, r.kind.value))

    @property
    def dirty(self) -> bool:
        return any(r.state != SAVED for r in self._rows.values())

    def add_program(self, path: str, kind: str | None = None) -> None:
        """Hash ``path`` off the GUI thread and list it "to add" for the chosen kind(s)."""
        real = os.path.realpath(path)
        value = self.kind.currentData() if kind is None else kind
        # "" is the "camera and microphone" choice: screen and location are asked separately.
        kinds = [DeviceKind(value)] if value else [DeviceKind.CAMERA, DeviceKind.MICROPHONE]
        self.hashing += 1
        self.message.setText(f"Reading {literal(real, 200)}…")

        def done(digest: str | None) -> None:
            self.hashing -= 1
            if digest is None:
                self.message.setText(f"Cannot read {literal(real, 200)}: camguard could not "
                                     "tell this binary from another one at the same path.")
                return
            for k in kinds:
                self._rows[(real, k)] = AllowRow(real, k, digest, TO_ADD)
            self.message.setText(f"{literal(real, 200)} will be allowed when you save.")
            self._render()

        def failed(exc: BaseException) -> None:
            self.hashing -= 1
            self.message.setText(f"Cannot read {literal(real, 200)}: {exc}")

        run_in_pool(self._pool, self, lambda _say: sha256_file(real), done, failed=failed)

    def remove_selected(self) -> None:
        row = self.table.currentRow()
        rows = self.rows()
        if not 0 <= row < len(rows):
            return
        r = rows[row]
        key = (r.exe, r.kind)
        if r.state == TO_ADD:
            del self._rows[key]
        else:
            self._rows[key] = AllowRow(r.exe, r.kind, r.sha256, TO_REMOVE)
        self._render()

    def apply(self, allowlist: AllowEditor, now: float) -> None:
        """Write the pending edits; raises (OSError, sqlite3.Error) when the store fails."""
        for r in self.rows():
            if r.state == TO_REMOVE:
                allowlist.remove(r.exe, r.kind)
            elif r.state == TO_ADD:
                allowlist.add(r.exe, r.sha256, r.kind, now, note="added in Settings")

    def _render(self) -> None:
        rows = self.rows()
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            self.table.setItem(i, 0, plain_item(literal(r.exe, 120), literal(r.exe, 4096)))
            self.table.setItem(i, 1, plain_item(r.kind.value))
            self.table.setItem(i, 2, plain_item(r.sha256[:16] + "…", r.sha256))
            self.table.setItem(i, 3, plain_item(r.state))
        self.changed.emit()


class RulesPage(QWidget):
    """The policy's rules (read-only) and the user's, with additions and removals."""

    changed = Signal()

    def __init__(self, pool: QThreadPool, now: Callable[[], float]) -> None:
        super().__init__()
        self._pool = pool
        self._now = now
        self.policy_rules: list[Rule] = []
        self.user_rules: list[Rule] = []
        self.added: list[Rule] = []
        self.removed: set[str] = set()
        self.hashing = 0
        box = QVBoxLayout(self)
        self.table = make_table(("Verdict", "Device", "App", "When", "For", "Label", "Set by"))
        box.addWidget(self.table, 1)
        self.remove_button = QPushButton("Remove rule")
        box.addWidget(self.remove_button)
        self.form_box = QWidget()
        self._build_form(QFormLayout(self.form_box))
        box.addWidget(self.form_box)
        self.message = plain_label()
        self.message.setWordWrap(True)
        box.addWidget(self.message)
        self.match.currentIndexChanged.connect(self._match_changed)
        self.add_button.clicked.connect(lambda _=False: self.add_from_form())
        self.remove_button.clicked.connect(lambda _=False: self.remove_selected())
        self._match_changed()

    def _build_form(self, form: QFormLayout) -> None:
        self.verdict = combo(tuple((v.value, v.value) for v in Verdict))
        self.duration = combo(tuple((d, d) for d in DURATIONS))
        self.kind = combo((("Camera and microphone", "any"), ("Camera", "camera"),
                           ("Microphone", "microphone")))
        self.match = combo(MATCHES)
        self.value = QLineEdit()
        self.value.setPlaceholderText("/usr/bin/zoom, /opt/apps/ or a process name")
        self.browse = QPushButton("Browse…")
        value_row = QHBoxLayout()
        value_row.addWidget(self.value, 1)
        value_row.addWidget(self.browse)
        self.user = QLineEdit()
        self.user.setPlaceholderText("any user")
        self.when = QLineEdit()
        self.when.setPlaceholderText("always, or e.g. mon-fri 16:00-19:00")
        self.label = QLineEdit()
        self.add_button = QPushButton("Add rule")
        rows: tuple[tuple[str, QWidget], ...] = (
            ("Verdict", self.verdict), ("Device", self.kind), ("App", self.match))
        for text, widget in rows:
            form.addRow(text, widget)
        form.addRow("", value_row)
        rows = (("User", self.user), ("Time window", self.when), ("Lasts", self.duration),
                ("Label", self.label))
        for text, widget in rows:
            form.addRow(text, widget)
        form.addRow(self.add_button)

    def _match_changed(self) -> None:
        by = self.match.currentData()
        self.value.setEnabled(by != MatchBy.ANY.value)
        self.browse.setEnabled(by in (MatchBy.EXE.value, MatchBy.SCRIPT.value,
                                      MatchBy.PATH.value))

    # -- state -------------------------------------------------------------------------
    def load(self, policy_rules: Iterable[Rule], user_rules: Iterable[Rule]) -> None:
        self.policy_rules = list(policy_rules)
        self.user_rules = list(user_rules)
        self.added, self.removed = [], set()
        self._render()

    def shown_rules(self) -> list[Rule]:
        """The rules listed, in order: the policy's, then the user's kept and added ones."""
        mine = [r for r in self.user_rules if r.id not in self.removed] + self.added
        return self.policy_rules + mine

    @property
    def dirty(self) -> bool:
        return bool(self.added or self.removed)

    # -- edits -------------------------------------------------------------------------
    def add_from_form(self) -> None:
        """Build a rule from the form (hashing the binary first for an exe match)."""
        by = MatchBy(self.match.currentData())
        value = self.value.text().strip()
        if self._rule(AppMatch()) is None:  # a bad window or user: say so before hashing
            return
        if by in (MatchBy.EXE, MatchBy.SCRIPT) and value:
            real = os.path.realpath(value)
            self.hashing += 1
            self.message.setText(f"Reading {literal(real, 200)}…")

            def done(digest: str | None) -> None:
                self.hashing -= 1
                if digest is None:
                    self.message.setText(f"Cannot read {literal(real, 200)} to take its "
                                         "SHA-256; match its path instead.")
                    return
                self._add(AppMatch(by, real, digest))

            def failed(exc: BaseException) -> None:
                self.hashing -= 1
                self.message.setText(f"Cannot read {literal(real, 200)}: {exc}")

            run_in_pool(self._pool, self, lambda _say: sha256_file(real), done, failed=failed)
            return
        try:
            app = AppMatch(by, "" if by is MatchBy.ANY else value)
        except RuleError as exc:
            self.message.setText(f"Cannot add the rule: {exc}")
            return
        self._add(app)

    def _rule(self, app: AppMatch) -> Rule | None:
        try:
            return make_rule(self.verdict.currentData(), app=app, kind=self.kind.currentData(),
                             user=self.user.text().strip() or None,
                             window=self.when.text().strip() or None,
                             duration=self.duration.currentData(), created_at=self._now(),
                             label=self.label.text().strip())
        except RuleError as exc:
            self.message.setText(f"Cannot add the rule: {exc}")
            return None

    def _add(self, app: AppMatch) -> None:
        rule = self._rule(app)
        if rule is None:
            return
        if any(r.id == rule.id for r in self.shown_rules()):
            self.message.setText("That rule is already there.")
            return
        self.added.append(rule)
        warn = ""
        if app.by is MatchBy.NAME and rule.verdict is Verdict.ALLOW:
            warn = " A process chooses its own name: any program can call itself that."
        self.message.setText(f"Added (saved when you save): {rule.describe()}.{warn}")
        self._render()

    def remove_selected(self) -> None:
        row = self.table.currentRow()
        shown = self.shown_rules()
        if not 0 <= row < len(shown):
            return
        rule = shown[row]
        if rule.origin is not Origin.USER:
            self.message.setText("That rule is set by the managed policy; it cannot be "
                                 "removed here.")
            return
        if rule in self.added:
            self.added.remove(rule)
        else:
            self.removed.add(rule.id)
        self._render()

    def apply(self, rules: RulesEditor, now: float) -> None:
        """Merge the edits into the rules file as it is now (the CLI may have changed it
        since the dialog opened). Raises OSError when it cannot be written."""
        with rules.locked():
            contents = rules.load()
            keep = [r for r in contents.rules if r.id not in self.removed]
            ids = {r.id for r in keep}
            rules.save(keep + [r for r in self.added if r.id not in ids], contents.mode, now)

    def _render(self) -> None:
        shown = self.shown_rules()
        self.table.setRowCount(len(shown))
        for i, r in enumerate(shown):
            cells = (r.verdict.value, r.kind.value if r.kind else "any", r.app.describe(),
                     "always" if r.window is None else str(r.window), r.duration.value,
                     literal(r.label, 100), "policy" if r.origin is Origin.POLICY else
                     ("you (not saved yet)" if r in self.added else "you"))
            for j, text in enumerate(cells):
                self.table.setItem(i, j, plain_item(text, r.describe() if j == 2 else ""))
        self.changed.emit()
