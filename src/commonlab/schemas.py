"""What every domain's input schemas share: the `Input` base (an unknown field is refused,
text is stripped), and `read_document`, which reads a JSON or TOML file into a schema or
stops with one line that names the file and what to fix."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from commonlab.errors import InvalidInput, from_validation

__all__ = ["Input", "read_document"]


class Input(BaseModel):
    """The base of what a person sends: a misspelt field is an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


Schema = TypeVar("Schema", bound=BaseModel)


def read_document(
    path: Path,
    schema: type[Schema],
    *,
    what: str,
    check: Callable[[Any], None] | None = None,
    text: str | None = None,
) -> Schema:
    """`path` (TOML if it ends in .toml, else JSON) validated as `schema`. `what` names the
    document in the messages; `check` sees the parsed data first and refuses it with a
    ValueError whose text says what to fix. `text` is the file's text when the caller has
    already read it (and checked its size and encoding)."""
    if text is None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise InvalidInput(f"{path}: cannot read the {what} ({exc.strerror})") from None
    toml = path.suffix == ".toml"
    try:
        data = tomllib.loads(text) if toml else json.loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError is one
        raise InvalidInput(f"{path}: not valid {'TOML' if toml else 'JSON'} ({exc})") from None
    try:
        if check is not None:
            check(data)
    except ValueError as exc:
        raise InvalidInput(f"{path}: {exc}") from None
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc, where=str(path), document=what) from None
