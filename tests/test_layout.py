"""The code's shape, kept: one key module, layers that point one way, modules that fit,
test files that stand alone (what they share is in tests/support and tests/conftest.py).

These read the source as text; they fail with the file and line to fix.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "chalicelib"
#: Key prefixes of the one table (store/keys.py builds them; nothing else spells them).
_PREFIX = re.compile(
    r"[\"'](SUBJ|LINK|MAIL|MAILTPL|TEXT|RATE|CAMPAIGN|CONTACT|ACTHINT|ACTCONTACT|DRIFT|"
    r"HOOKOUT|BREACH|STATS|ERASURES|SYNC|ERASE)#"
)


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_only_store_keys_spells_table_keys() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _modules()
        if path != PACKAGE / "store" / "keys.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _PREFIX.search(line) and not line.lstrip().startswith("#")
    ]
    assert not found, "build keys with chalicelib.store.keys:\n" + "\n".join(found)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    return names


def test_the_domain_never_imports_the_web_or_the_cli() -> None:
    outer = ("chalicelib.web", "chalicelib.cli")
    domain = [p for p in _modules() if p.relative_to(PACKAGE).parts[0] not in ("web", "cli")]
    found = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in domain
        for name in _imports(path)
        if name.startswith(outer)
    ]
    assert not found, "\n".join(found)


def test_app_is_only_the_route_map() -> None:
    tree = ast.parse((ROOT / "app.py").read_text())
    statements = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all(isinstance(n, (ast.Expr, ast.Assign)) for n in statements)
    calls = [ast.unparse(n) for n in statements if isinstance(n, ast.Expr)][1:]  # docstring
    assert calls and all(c.startswith("app.register_blueprint(") for c in calls)


def test_a_long_module_says_why_it_is_one() -> None:
    long = [
        path
        for path in _modules()
        if len(path.read_text().splitlines()) > 400
        and "Size:" not in (ast.get_docstring(ast.parse(path.read_text())) or "")
    ]
    assert not long, "split these, or say why in the docstring (Size: ...): " + ", ".join(
        str(p.relative_to(ROOT)) for p in long
    )


def test_every_exception_class_lives_in_core_errors() -> None:
    found = []
    for path in _modules():
        if path == PACKAGE / "core" / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {ast.unparse(b) for b in node.bases}
                if any(b.endswith(("Error", "Exception", "BadInput")) for b in bases):
                    found.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert not found, "move to chalicelib/core/errors.py: " + ", ".join(found)


def _imported_test_modules(path: Path) -> list[str]:
    """The tests/test_*.py modules a file imports, however spelt: ``import tests.test_x``,
    ``from tests.test_x import y``, ``from tests import test_x``, ``from .test_x import y``,
    ``import test_x``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            modules = [base] + [f"{base}.{a.name}".replace("..", ".") for a in node.names]
        else:
            continue
        for module in modules:
            parts = [p for p in module.split(".") if p]
            ours = module.startswith(".") or parts[:1] == ["tests"] or len(parts) == 1
            if ours and any(p.startswith("test_") for p in parts):
                found.append(module)
                break  # one line per import statement
    return found


def test_no_test_file_imports_another() -> None:
    tests = ROOT / "tests"
    found = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted(tests.rglob("*.py"))
        for name in _imported_test_modules(path)
    ]
    assert not found, (
        "move what is shared to tests/support/ (helpers) or tests/conftest.py (fixtures):\n"
        + "\n".join(found)
    )
