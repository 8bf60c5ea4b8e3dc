"""Issue 17: a function imports a module only for a reason it states (``# lazy: <reason>``):
an extra a box may not install, or a heavy library only some commands need. The commands
layer imports the applications only so, since one ``appliance`` command serves boxes that
install one application's extra (import-linter checks who may import what; this checks
why it is done in a function)."""

from __future__ import annotations

import ast
from pathlib import Path

APPS = ("hub", "agent", "tui")
ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("appliance", "hub", "agent", "tui")


def _function_level_imports(package: str) -> list[tuple[Path, int, str]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
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
                found += [(path, sub.lineno, m) for m in modules]
    return found


def _says_why(lines: list[str], lineno: int) -> bool:
    """``# lazy:`` on the import's line or on a line above it in the same import group
    (the lines up to a blank one, the function's signature or its docstring)."""
    index = lineno - 1
    if "# lazy:" in lines[index]:
        return True
    while index > 0:
        index -= 1
        line = lines[index].strip()
        if not line or line.endswith(":") or line.endswith('"""'):
            return False
        if "# lazy:" in line:
            return True
    return False


def test_every_function_level_import_says_why():
    imports = [i for package in PACKAGES for i in _function_level_imports(package)]
    assert len({i[0].parts[len(ROOT.parts)] for i in imports}) >= 3, "the walk found too little"
    unexplained = [
        f"{path.relative_to(ROOT)}:{lineno} imports {module}"
        for path, lineno, module in imports
        if not _says_why(path.read_text().splitlines(), lineno)
    ]
    assert not unexplained, "say why, with '# lazy: <reason>':\n" + "\n".join(unexplained)


def test_a_reason_must_be_in_the_imports_own_group(tmp_path):
    lines = [
        "def f():",
        '    """Doc."""',
        "    import torch  # lazy: heavy",
        "",
        "    from hub.training.mlp import fit",
        "    from hub.training.mlp import more",
    ]
    assert _says_why(lines, 3)
    assert not _says_why(lines, 5)
    assert not _says_why(lines, 6)
    lines[4] += "  # lazy: imports torch"
    assert _says_why(lines, 6)


def test_the_kernel_imports_no_application_even_lazily():
    outside_cli = [
        i
        for i in _function_level_imports("appliance")
        if "cli" not in i[0].parts and i[2].split(".")[0] in APPS
    ]
    assert outside_cli == []
