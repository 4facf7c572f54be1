"""The shape of `gradgen.tools`: one job per module, and no private cross-imports.

`gradgen check` is a package (`gradgen/tools/check/`: layout, points,
oracles, report, engine and opgrade (grading a learner's own Value class), second (hvp, hessian, jvp rows),
and the driver in `__init__`); each module states its contract in a
docstring and reads in one sitting.  The tools reach into the
rest of gradgen only through public names, except through the one function
that is allowed to (`check.layout.modules_of`, which asks the front end for
a function's modules), so moving the front end's internals is a one-line
change here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gradgen.tools.check as check

TOOLS = Path(check.__file__).resolve().parent.parent
FILES = sorted(TOOLS.rglob("*.py"))
ALLOWED = {("check/layout.py", "modules_of")}  # (file, function) that may import a private name


def private_imports(path: Path) -> list[tuple[str, str, int]]:
    """[(enclosing function or "<module>", imported name, line)] for `from gradgen.x import _name`
    from outside the file's own package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def visit(node, where):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else where
            if isinstance(child, ast.ImportFrom) and (child.module or "").startswith("gradgen."):
                own = child.module.startswith("gradgen.tools.check") and "check" in path.parts
                for alias in child.names:
                    if alias.name.startswith("_") and not own:
                        found.append((where, alias.name, child.lineno))
            visit(child, inner)

    visit(tree, "<module>")
    return found


def test_tools_import_no_private_names_but_through_modules_of():
    bad = []
    for path in FILES:
        rel = path.relative_to(TOOLS).as_posix()
        bad += [f"{rel}:{line}: {name} in {fn}" for fn, name, line in private_imports(path) if (rel, fn) not in ALLOWED]
    assert bad == []


def test_the_check_package_has_one_job_per_module():
    modules = sorted(p.name for p in (TOOLS / "check").glob("*.py"))
    assert modules == ["__init__.py", "engine.py", "layout.py", "opgrade.py", "oracles.py", "points.py", "report.py", "second.py"]
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        assert ast.get_docstring(ast.parse(text)), f"{path.name} has no module docstring (its contract)"
        assert len(text.splitlines()) < 400, f"{path.name} is {len(text.splitlines())} lines"


def test_the_names_cli_draw_and_the_tests_use_are_exported():
    """Every name in `__all__` exists, and the ones other modules import are in it."""
    used = {"RTOL", "ATOL", "FD_RTOL", "FD_ATOL", "parse_at", "Tolerances", "check_model", "format_report"}
    used |= {"summary", "bind", "example_point", "format_point", "select", "signature", "where"}
    used |= {"is_array_function", "layout_of", "engine_grad", "torch_grad", "fd_grad", "Row", "add_fd"}
    assert used <= set(check.__all__)
    assert [n for n in check.__all__ if not hasattr(check, n)] == []


def test_the_private_import_finder_finds_one(tmp_path):
    """The finder is not blind: a private import from another package is reported with its function."""
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from gradgen.frontend.trace import _modules\n")
    assert private_imports(path) == [("f", "_modules", 2)]
