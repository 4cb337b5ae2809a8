import ast
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelpress.common.validation import first_error

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = {"training", "export", "serving", "modelpress", "benchmarks", "tests"}


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: float = Field(0.5, gt=0, lt=1)

    @field_validator("rate")
    @classmethod
    def _not_half(cls, value: float) -> float:
        if value == 0.25:
            raise ValueError("0.25 is reserved")
        return value


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "x"
    items: list[Inner] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_both(self) -> "Outer":
        if self.name == "both" and self.items:
            raise ValueError("'both' takes no items")
        return self


def _error(raw: dict) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        Outer.model_validate(raw)
    return info.value


def test_where_is_the_dotted_location_with_list_indexes():
    first = first_error(_error({"items": [{"rate": 0.5}, {"rate": 2}]}))
    assert first.where == "items.1.rate"
    assert first.message == "Input should be less than 1"
    assert first.plain == first.message  # no validator prefix to drop
    assert first.kind == "less_than"


def test_only_the_first_of_several_errors():
    error = _error({"name": 3, "items": [{"rate": 2}]})
    assert len(error.errors()) == 2
    assert first_error(error).where == "name"


def test_a_validators_value_error_keeps_the_raw_message_and_a_plain_one():
    first = first_error(_error({"items": [{"rate": 0.25}]}))
    assert first.message == "Value error, 0.25 is reserved"
    assert first.plain == "0.25 is reserved"
    assert first.kind == "value_error"


def test_an_error_of_the_whole_object_has_no_location():
    first = first_error(_error({"name": "both", "items": [{}]}))
    assert first.where == ""
    assert first.plain == "'both' takes no items"


def test_an_unknown_key_is_extra_forbidden():
    first = first_error(_error({"items": [{"rat": 0.5}]}))
    assert (first.where, first.kind) == ("items.0.rat", "extra_forbidden")


def test_common_imports_no_project_package():
    """Every stage imports common/, so common/ may import none of them (nor anything heavy)."""
    imported = set()
    for path in (ROOT / "common").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) - {"common"} <= {"pydantic"}
    assert not imported & PROJECT_PACKAGES
