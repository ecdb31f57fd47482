"""A record's text and content digest: one definition, and a person hashing her own copy of a
passage gets the facility's digest."""

from __future__ import annotations

import hashlib
import unicodedata

import pytest

from commonlab.artifacts.dataset_rows import Member, Record
from commonlab.datasearch.content import (
    content_sha256,
    normalise,
    record_digests,
    record_text,
    text_sha256_of_file,
)
from commonlab.errors import InvalidInput

PASSAGE = "The lighthouse keeper counted seven silver gulls.\nThen he slept."


def _text(name: str, text: str | None, *, truncated: bool = False) -> Member:
    size = len(text or "")
    return Member(name, "text", "text/plain", size, text, truncated)


def _record(*members: Member) -> Record:
    return Record(0, "0", list(members), None, "none", None, "none")


def test_digest_is_sha256_of_the_utf8_text() -> None:
    assert content_sha256(PASSAGE) == hashlib.sha256(PASSAGE.encode()).hexdigest()


@pytest.mark.parametrize(
    "variant",
    [
        PASSAGE + "\n",  # a file's last newline
        "  " + PASSAGE + " \n\n",  # stray whitespace around it
        PASSAGE.replace("\n", "\r\n"),  # saved on Windows
        PASSAGE.replace("\n", "\r"),  # old Mac line ends
        "\ufeff" + PASSAGE,  # a byte-order mark
    ],
)
def test_the_same_text_hashes_the_same(variant: str) -> None:
    assert content_sha256(variant) == content_sha256(PASSAGE)


def test_unicode_composition_does_not_matter() -> None:
    composed = "Café crème"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert content_sha256(decomposed) == content_sha256(composed)
    assert normalise(decomposed) == composed


@pytest.mark.parametrize(
    "other",
    [
        PASSAGE.replace("seven", "Seven"),  # case is text
        PASSAGE.replace("seven silver", "seven  silver"),  # so is whitespace inside it
        PASSAGE.replace("\n", " "),
    ],
)
def test_a_different_text_hashes_differently(other: str) -> None:
    assert content_sha256(other) != content_sha256(PASSAGE)


def test_a_file_hashes_as_its_text(tmp_path) -> None:
    path = tmp_path / "chapter.txt"
    path.write_bytes(b"\xef\xbb\xbf" + PASSAGE.replace("\n", "\r\n").encode() + b"\r\n")
    assert text_sha256_of_file(path) == content_sha256(PASSAGE)


def test_a_file_that_is_not_text_is_refused(tmp_path) -> None:
    path = tmp_path / "picture.txt"
    path.write_bytes(b"\xff\xd8\xff\xe0 not utf-8 \xff")
    with pytest.raises(InvalidInput, match="not UTF-8 text"):
        text_sha256_of_file(path)
    with pytest.raises(InvalidInput, match="cannot read"):
        text_sha256_of_file(tmp_path / "absent.txt")


def test_record_text_is_its_text_members_without_provenance() -> None:
    record = _record(
        _text("title", "Gulls"),
        _text("url", "https://example.org/gulls"),
        Member("meta", "json", "application/json", 9, '{"a": 1}'),
        _text("text", PASSAGE),
        _text("license", "CC-BY-4.0"),
        _text("blank", "  \n"),
        Member("jpg", "image", "image/jpeg", 100),
    )
    assert record_text(record) == "Gulls\n\n" + PASSAGE
    assert record_text(record, ["text"]) == PASSAGE
    # Member order, not the order the columns are named in.
    assert record_text(record, ["text", "title"]) == "Gulls\n\n" + PASSAGE
    assert record_text(record, ["absent"]) == ""
    assert record_text(_record(Member("jpg", "image", "image/jpeg", 100))) == ""


def test_a_record_answers_to_its_whole_text_and_to_each_member() -> None:
    record = _record(_text("title", "Gulls"), _text("text", PASSAGE), _text("source", "x"))
    whole = content_sha256("Gulls\n\n" + PASSAGE)
    assert record_digests(record) == (whole, content_sha256("Gulls"), content_sha256(PASSAGE))
    assert record_digests(_record(_text("text", PASSAGE))) == (content_sha256(PASSAGE),)
    assert record_digests(_record(_text("source", "x"))) == ()


def test_a_member_too_large_to_read_holds_no_text() -> None:
    record = _record(_text("txt", None), _text("caption", "Gulls"))
    assert record_text(record) == "Gulls"
