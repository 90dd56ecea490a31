"""The package's floors: each imports only from the floors below it.

Read from the source (every import statement, those inside functions too), so a
function-local import cannot hide an edge that runs back up.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Bottom up. Packages on one floor do not import each other.
FLOORS = {"trainer": 0, "components": 1, "pipeline": 2, "reporting": 3, "local": 4,
          "kubeflow": 4, "cli": 5}


def package_imports(package: str):
    """(module file, imported package of this project) for every import in `package`."""
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:  # relative: inside the same package
                    continue
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] != "imdb_sentiment":
                    continue
                if len(parts) > 1:
                    yield path.relative_to(ROOT), parts[1]
                elif isinstance(node, ast.ImportFrom):  # from imdb_sentiment import x, y
                    for alias in node.names:
                        yield path.relative_to(ROOT), alias.name


def test_every_folder_of_the_distribution_has_a_floor():
    pyproject = (ROOT / "pyproject.toml").read_text()
    declared = {line.split('"')[1].split(".")[1] for line in pyproject.splitlines()
                if line.strip().startswith('"imdb_sentiment.') and "=" not in line}
    assert declared == set(FLOORS)


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_a_package_imports_only_from_floors_below_it(package):
    upward = [f"{path} imports imdb_sentiment.{target}"
              for path, target in package_imports(package)
              if target != package and FLOORS.get(target, 99) >= FLOORS[package]]
    assert upward == []


def test_the_check_sees_a_function_local_import_that_runs_back_up(tmp_path, monkeypatch):
    (tmp_path / "trainer").mkdir()
    (tmp_path / "trainer" / "sneaky.py").write_text(
        "def f():\n    from imdb_sentiment.reporting import run_report\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert list(package_imports("trainer")) == [(Path("trainer/sneaky.py"), "reporting")]
