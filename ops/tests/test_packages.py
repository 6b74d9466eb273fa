"""Checks over every package's sources at once: each import of another distribution is declared in the
importing package's pyproject (what CI's per-package runs, `.ci/run`, rely on: each package alone, with
only what it declares), and no source file is longer than MAX_LINES (a longer one holds two jobs)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

PACKAGES = Path(__file__).resolve().parents[2] / "packages"
MAX_LINES = 400
REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: list[str]) -> set[str]:
    return {_normalised(REQUIREMENT_NAME.match(r).group()) for r in requirements}


def _imports(source: Path) -> list[tuple[int, str, bool]]:
    """(line, top-level module, whether it runs only when a function is called) of each absolute import."""
    tree = ast.parse(source.read_text(), str(source))
    in_function = {id(node) for func in ast.walk(tree) if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef)
                   for node in ast.walk(func)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        found += [(node.lineno, module.split(".")[0], id(node) in in_function) for module in modules]
    return found


def undeclared_imports(package: Path, distributions: dict[str, list[str]]) -> list[str]:
    """`path:line: module (distribution)` for each import of a distribution the package does not declare.
    An optional dependency (an extra) covers only an import made inside a function, where its absence can
    be a clear error at the call instead of a failed import of the module."""
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    required = _requirement_names(project.get("dependencies", []))
    optional = _requirement_names([r for extra in project.get("optional-dependencies", {}).values() for r in extra])
    problems = []
    for source in sorted((package / "src").rglob("*.py")):
        for line, module, lazy in _imports(source):
            if module in sys.stdlib_module_names:
                continue
            provided = {_normalised(d) for d in distributions.get(module, [module])}
            declared = required | (optional if lazy else set())
            if _normalised(project["name"]) not in provided and not provided & declared:
                problems.append(f"{package.name}/{source.relative_to(package)}:{line}: {module} ({', '.join(sorted(provided))})")
    return problems


def test_every_import_is_declared_in_its_packages_pyproject():
    distributions = packages_distributions()
    problems = [p for package in sorted(PACKAGES.iterdir()) if (package / "pyproject.toml").is_file()
                for p in undeclared_imports(package, distributions)]
    assert not problems, "imports not declared in the importing package's pyproject:\n" + "\n".join(problems)


def test_the_check_sees_an_undeclared_import_and_accepts_a_lazy_optional_one(tmp_path):
    package = tmp_path / "lw-demo"
    (package / "src" / "lw_demo").mkdir(parents=True)
    (package / "pyproject.toml").write_text('[project]\nname = "lw-demo"\ndependencies = ["numpy>=1.26"]\n'
                                            '[project.optional-dependencies]\nplots = ["matplotlib>=3.9"]\n')
    (package / "src" / "lw_demo" / "a.py").write_text(
        "import os\nimport numpy\nfrom lw_demo import b\nfrom . import c\nimport torch\nimport matplotlib\n\n"
        "def plot():\n    import matplotlib.pyplot\n")
    distributions = {"numpy": ["numpy"], "torch": ["torch"], "matplotlib": ["matplotlib"], "lw_demo": ["lw-demo"]}
    assert undeclared_imports(package, distributions) == [
        "lw-demo/src/lw_demo/a.py:5: torch (torch)", "lw-demo/src/lw_demo/a.py:6: matplotlib (matplotlib)"]


def test_no_source_file_is_longer_than_max_lines():
    sources = [path for path in PACKAGES.glob("*/src/**/*") if path.is_file() and "__pycache__" not in path.parts
               and path.suffix != ".pyc" and ".egg-info" not in str(path)]
    assert any(path.suffix == ".py" for path in sources)
    lengths = {path: len(path.read_bytes().splitlines()) for path in sources}
    long = [f"{path.relative_to(PACKAGES)}: {n} lines" for path, n in sorted(lengths.items()) if n > MAX_LINES]
    assert not long, f"source files over {MAX_LINES} lines (split them along their jobs):\n" + "\n".join(long)
