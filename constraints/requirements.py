"""Print the requirements of modelpress's base install plus the given extras, as pyproject.toml declares them.

    python constraints/requirements.py pyproject.toml serve > requirements.txt

Standard library only: the Dockerfile runs it before anything is installed, so an image installs its dependencies
(with ``-c constraints/images.txt``) in a layer of their own, before the source is copied. Extras that name other
extras of the project (``modelpress[train]``) are expanded.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib


def requirements(project: dict, extras: list[str]) -> list[str]:
    """The base dependencies and those of ``extras`` (self-references expanded), each once, in declaration order.

    Raises:
        KeyError: an extra the project does not declare.
    """
    declared = project.get("optional-dependencies", {})
    itself = re.compile(rf"{re.escape(project['name'])}\[([^\]]+)\]", re.IGNORECASE)
    out = list(project.get("dependencies", []))
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        if extra not in declared:
            raise KeyError(f"no extra [{extra}] in pyproject.toml (declared: {', '.join(sorted(declared))})")
        seen.add(extra)
        for requirement in declared[extra]:
            nested = itself.fullmatch(requirement.replace(" ", ""))
            if nested:
                todo.extend(nested.group(1).split(","))
            else:
                out.append(requirement)
    return list(dict.fromkeys(out))


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: requirements.py PYPROJECT EXTRA [EXTRA ...]", file=sys.stderr)
        return 2
    project = tomllib.loads(Path(argv[0]).read_text())["project"]
    try:
        print("\n".join(requirements(project, argv[1:])))
    except KeyError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
