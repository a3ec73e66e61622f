"""Lazy imports (issue 16) keep a name under ``if TYPE_CHECKING:`` for annotations only; a
run-time use of such a name is a NameError that mypy does not see (it happened when branches
merged: a function added by one used psutil, which the other had made a type-only import).
This walks every module of camguard/ for one."""

from __future__ import annotations

import ast
import pathlib
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2] / "camguard"


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in (getattr(test, "id", None), getattr(test, "attr", None))


def _imported(node: ast.AST) -> set[str]:
    return {(a.asname or a.name).split(".")[0] for n in ast.walk(node)
            if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names}


def type_only_names(tree: ast.Module) -> set[str]:
    """Names imported under TYPE_CHECKING and not bound at module level otherwise."""
    typing_only: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            typing_only |= _imported(node)
    bound: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            bound |= _imported(node)
        elif isinstance(node, ast.Assign):
            bound |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
    return typing_only - bound


class RunTimeUses(ast.NodeVisitor):
    """Loads of the given names outside annotations and outside functions that import
    them themselves."""

    def __init__(self, names: set[str], where: Any) -> None:
        self.names, self.where = names, where
        self.scopes: list[set[str]] = []
        self.hits: list[tuple[Any, int, str]] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        for decorator in node.decorator_list:
            self.visit(decorator)
        self.scopes.append(_imported(node))
        for statement in node.body:  # not the annotations
            self.visit(statement)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if (isinstance(node.ctx, ast.Load) and node.id in self.names
                and not any(node.id in scope for scope in self.scopes)):
            self.hits.append((self.where, node.lineno, node.id))


def uses(tree: ast.Module, where: Any) -> list[tuple[Any, int, str]]:
    visitor = RunTimeUses(type_only_names(tree), where)
    visitor.visit(tree)
    return visitor.hits


def test_no_name_imported_for_type_checking_only_is_used_at_run_time() -> None:
    hits = []
    for path in sorted(ROOT.rglob("*.py")):
        hits += uses(ast.parse(path.read_text()), str(path.relative_to(ROOT.parent)))
    assert hits == []


def test_the_check_finds_a_run_time_use() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import psutil\n"
        "def f(p: psutil.Process) -> None:\n    psutil.Process(1)\n"
        "def g() -> None:\n    import psutil\n    psutil.Process(1)\n")
    assert uses(tree, "x.py") == [("x.py", 5, "psutil")]
