"""A document pydantic refused becomes one line that names the field to fix."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel, Field, ValidationError, model_validator

from commonlab.errors import InvalidInput, field_and_reason, from_validation


class Partition(BaseModel):
    nodes: Annotated[int, Field(ge=1)]


class Fleet(BaseModel):
    partitions: list[Partition]

    @model_validator(mode="after")
    def _some(self) -> Fleet:
        if not self.partitions:
            raise ValueError("a fleet needs a partition")
        return self


def refusal(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Fleet.model_validate(data)
    return caught.value


def test_a_documents_field_is_named_from_its_top() -> None:
    error = from_validation(
        refusal({"partitions": [{"nodes": 0}]}), where="fleet.toml", document="fleet"
    )
    assert isinstance(error, InvalidInput)
    assert (
        error.message
        == "fleet.toml: partitions.0.nodes: Input should be greater than or equal to 1"
    )


def test_a_problem_with_the_whole_document_names_the_document() -> None:
    error = from_validation(refusal({"partitions": []}), where="fleet.toml", document="fleet")
    # pydantic's "Value error, " says nothing to the person fixing the file
    assert error.message == "fleet.toml: fleet: a fleet needs a partition"


def test_a_part_of_a_request_names_its_fields_under_it() -> None:
    error = from_validation(refusal({"partitions": [{"nodes": 0}]}), where="payload")
    assert error.message.startswith("payload.partitions.0.nodes: Input should be")
    whole = from_validation(refusal({"partitions": []}), where="payload")
    assert whole.message == "payload: a fleet needs a partition"


def test_request_parts_can_be_left_out_of_the_field() -> None:
    complaint = {"loc": ("body", "level"), "msg": "Value error, unknown level 'CL-9'"}
    assert field_and_reason(complaint, hide=("body",)) == ("level", "unknown level 'CL-9'")
    assert field_and_reason({"loc": ("body",), "msg": "x"}, hide=("body",)) == ("", "x")
