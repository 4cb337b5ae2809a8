"""Which versions of a model are served: Triton's ``version_policy`` (latest N, all, or specific versions).

Written ``latest:2``, ``all`` or ``specific:1,3`` per model in ``MODELPRESS_VERSION_POLICY``
(``digits=latest:2;tiny=specific:1,3``; ``*`` sets the default for every other model; unset: ``latest:1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

DEFAULT_KEY = "*"


@dataclass(frozen=True)
class VersionPolicy:
    kind: Literal["latest", "all", "specific"] = "latest"
    count: int = 1
    versions: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> VersionPolicy:
        """``latest:N``, ``all`` or ``specific:V1,V2``.

        Raises:
            ValueError: naming the accepted forms.
        """
        kind, _, arg = text.strip().partition(":")
        try:
            if kind == "latest" and int(arg or "1") >= 1:
                return cls("latest", count=int(arg or "1"))
            if kind == "all" and not arg:
                return cls("all")
            versions = tuple(sorted({int(v) for v in arg.split(",") if v.strip()}))
            if kind == "specific" and versions and min(versions) >= 1:
                return cls("specific", versions=versions)
        except ValueError:
            pass
        raise ValueError(f"version policy {text!r}: expected latest:N, all, or specific:V1,V2 (versions >= 1)")

    def select(self, available: list[int]) -> list[int]:
        """The versions to serve out of ``available`` (ascending)."""
        ordered = sorted(available)
        if self.kind == "all":
            return ordered
        if self.kind == "specific":
            return [v for v in ordered if v in self.versions]
        return ordered[-self.count :]

    def __str__(self) -> str:
        if self.kind == "latest":
            return f"latest:{self.count}"
        return "all" if self.kind == "all" else "specific:" + ",".join(map(str, self.versions))


def parse_policies(text: str) -> dict[str, str]:
    """``"digits=latest:2;*=all"`` as a mapping, each policy checked.

    Raises:
        ValueError: an item without ``=`` or a bad policy.
    """
    policies = {}
    for item in (part.strip() for part in text.split(";")):
        if not item:
            continue
        model, sep, policy = item.partition("=")
        if not sep or not model.strip():
            raise ValueError(f"version policy {item!r}: expected MODEL=POLICY, e.g. digits=latest:2 or *=all")
        VersionPolicy.parse(policy)
        policies[model.strip()] = policy.strip()
    return policies


def policy_for(model: str, policies: Mapping[str, str]) -> VersionPolicy:
    """The model's own policy, else the ``*`` default, else latest 1."""
    text = policies.get(model) or policies.get(DEFAULT_KEY)
    return VersionPolicy.parse(text) if text else VersionPolicy()
