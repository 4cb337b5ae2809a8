"""The wheel's layout: the top-level stage folders install under the one ``modelpress`` namespace."""

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def setuptools_table() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed_under_the_namespace():
    table = setuptools_table()
    folders = {}
    for name, folder in table["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            folders[".".join((name, *relative.parts))] = init.parent
    assert sorted(table["packages"]) == sorted(folders)
    assert all(name == "modelpress" or name.startswith("modelpress.") for name in table["packages"])


def test_no_python_folder_is_left_out_of_the_wheel():
    """A folder of modules without __init__.py would be silently missing from the installed package."""
    table = setuptools_table()
    for folder in table["package-dir"].values():
        for module in (ROOT / folder).rglob("*.py"):
            assert (module.parent / "__init__.py").exists(), f"{module.parent} has modules but no __init__.py"


def test_stages_import_under_the_namespace_only():
    """No source file imports a stage by its folder name, which would work from a checkout and fail installed."""
    offenders = []
    for folder in ("modelpress", "common", "training", "export", "serving", "benchmarks", "tests"):
        for module in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(module.read_text().splitlines(), 1):
                words = line.split()
                if len(words) >= 2 and words[0] in ("from", "import"):
                    top = words[1].split(".")[0]
                    if top in ("common", "training", "export", "serving", "benchmarks"):
                        offenders.append(f"{module.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
