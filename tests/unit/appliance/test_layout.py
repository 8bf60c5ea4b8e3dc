"""Issue 17: the commands layer imports the applications only lazily, each import with its
reason, since one ``appliance`` command serves boxes that install one application's extra
(import-linter checks who may import what; this checks why it is done in a function)."""

from __future__ import annotations

import ast
from pathlib import Path

APPS = ("hub", "agent", "tui")
ROOT = Path(__file__).resolve().parents[3] / "appliance"


def _function_level_app_imports() -> list[tuple[Path, int, str]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and sub.module:
                    modules = [sub.module]
                elif isinstance(sub, ast.Import):
                    modules = [alias.name for alias in sub.names]
                else:
                    continue
                found += [(path, sub.lineno, m) for m in modules if m.split(".")[0] in APPS]
    return found


def test_every_lazy_import_of_an_application_says_why():
    imports = _function_level_app_imports()
    assert imports, "the walk found nothing: it would pass whatever the code said"
    unexplained = []
    for path, lineno, module in imports:
        lines = path.read_text().splitlines()
        if "# lazy:" not in lines[lineno - 1] and "# lazy:" not in lines[lineno - 2]:
            unexplained.append(f"{path.relative_to(ROOT.parent)}:{lineno} imports {module}")
    assert not unexplained, "say why, with '# lazy: <reason>':\n" + "\n".join(unexplained)


def test_the_kernel_imports_no_application_even_lazily():
    outside_cli = [i for i in _function_level_app_imports() if "cli" not in i[0].parts]
    assert outside_cli == []
