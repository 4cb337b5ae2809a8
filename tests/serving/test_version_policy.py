"""Version policies (Triton's latest N / all / specific) and how settings read them."""

from __future__ import annotations

import pytest

from modelpress.serving.settings import SettingsError, load_settings
from modelpress.serving.version_policy import VersionPolicy, parse_policies, policy_for


@pytest.mark.parametrize(
    ("text", "available", "selected"),
    [
        ("latest:1", [1, 2, 3], [3]),
        ("latest:2", [3, 1, 2], [2, 3]),
        ("latest:5", [1, 2], [1, 2]),
        ("all", [2, 1], [1, 2]),
        ("specific:1,3", [1, 2, 3], [1, 3]),
        ("specific:4", [1, 2, 3], []),
    ],
)
def test_policies_select_versions(text: str, available: list[int], selected: list[int]) -> None:
    assert VersionPolicy.parse(text).select(available) == selected


@pytest.mark.parametrize("text", ["latest:0", "newest", "specific:", "specific:a", "all:2", "latest:-1", "specific:0"])
def test_bad_policies_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="expected latest:N, all, or specific:V1,V2"):
        VersionPolicy.parse(text)


def test_model_policy_then_the_default_then_latest_one() -> None:
    policies = parse_policies("digits=latest:2; *=all")
    assert str(policy_for("digits", policies)) == "latest:2"
    assert str(policy_for("other", policies)) == "all"
    assert str(policy_for("other", {})) == "latest:1"


def test_settings_read_policies_from_env_and_refuse_bad_ones_in_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MODELPRESS_VERSION_POLICY", "digits=specific:1,3;*=latest:2")
    assert load_settings(repository=tmp_path).version_policy == {"digits": "specific:1,3", "*": "latest:2"}
    monkeypatch.setenv("MODELPRESS_VERSION_POLICY", '{"digits": "all"}')  # how worker processes get it
    assert load_settings(repository=tmp_path).version_policy == {"digits": "all"}
    monkeypatch.setenv("MODELPRESS_VERSION_POLICY", "digits=newest")
    with pytest.raises(SettingsError, match=r"MODELPRESS_VERSION_POLICY.*expected latest:N, all, or specific"):
        load_settings(repository=tmp_path)
    monkeypatch.setenv("MODELPRESS_VERSION_POLICY", "latest:2")
    with pytest.raises(SettingsError, match="expected MODEL=POLICY"):
        load_settings(repository=tmp_path)
