"""What every input schema shares, and a document file read into one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from commonlab.errors import InvalidInput
from commonlab.schemas import Input, read_document


class Site(Input):
    name: str
    country: str


def test_an_input_refuses_unknown_fields_and_strips_text() -> None:
    assert Site.model_validate({"name": "  bologna ", "country": "IT"}).name == "bologna"
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Site.model_validate({"name": "bologna", "country": "IT", "contry": "IT"})


def test_a_document_is_json_or_toml_by_its_name(tmp_path: Path) -> None:
    (tmp_path / "site.json").write_text(json.dumps({"name": "bologna", "country": "IT"}))
    (tmp_path / "site.toml").write_text('name = "bologna"\ncountry = "IT"\n')
    for name in ("site.json", "site.toml"):
        assert read_document(tmp_path / name, Site, what="site") == Site(
            name="bologna", country="IT"
        )


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("site.json", '{"name": ', r"site.json: not valid JSON \(Expecting value"),
        ("site.toml", "name = \n", r"site.toml: not valid TOML \(Invalid value"),
        ("site.json", '{"name": "x"}', r"site.json: country: Field required"),
        ("site.json", '["x"]', r"site.json: site: Input should be a valid dictionary"),
    ],
)
def test_a_bad_document_is_one_line_naming_the_file(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(InvalidInput, match=message) as caught:
        read_document(tmp_path / name, Site, what="site")
    assert "\n" not in caught.value.message


def test_a_missing_file_and_a_refused_shape_say_why(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"nope.json: cannot read the site \(No such file"):
        read_document(tmp_path / "nope.json", Site, what="site")

    def one_site(data: Any) -> None:
        if isinstance(data, list):
            raise ValueError("a list of sites; give one site")

    (tmp_path / "sites.json").write_text("[]")
    with pytest.raises(InvalidInput, match=r"sites.json: a list of sites; give one site$"):
        read_document(tmp_path / "sites.json", Site, what="site", check=one_site)
