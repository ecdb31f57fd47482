"""Pure rules: paths, safetensors headers, cards, licences, and the signed manifest."""

from __future__ import annotations

import io
import json

import pytest

from commonlab.artifacts import metadata, signing
from commonlab.errors import InvalidInput
from commonlab.record.note import Signer, generate_signer
from tests.artifacts.helpers import safetensors_bytes


@pytest.mark.parametrize("path", ["a.txt", "data/train.jsonl", "shards/00001.tar", "é/ü.txt"])
def test_good_paths(path):
    assert metadata.check_path(path) == path


@pytest.mark.parametrize(
    "path", ["", "/a", "../a", "a/..", "a/./b", "a//b", "a/", "a\\b", "C:x", "a\nb", ".commonlab/s"]
)
def test_bad_paths(path):
    with pytest.raises(InvalidInput):
        metadata.check_path(path)


def test_safetensors_made_by_the_real_library_validates(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save

    raw = save({"a": torch.zeros(3, 2), "b": torch.ones(4, dtype=torch.int64)}, {"job": "j-1"})
    meta = metadata.read_safetensors_header(io.BytesIO(raw), len(raw), path="m.safetensors")
    assert meta == {"tensors": 2, "metadata": {"job": "j-1"}}


def test_stamping_writes_the_version_into_the_header_and_keeps_every_tensor(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    tensors = {"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "b": torch.ones(5)}
    path = tmp_path / "model.safetensors"
    save_file(tensors, path, metadata={"format": "pt"})
    stamp = {metadata.STAMP_REPOSITORY: "models/lab/tiny", metadata.STAMP_VERSION: "2"}
    metadata.stamp_safetensors(path, stamp)
    with safe_open(path, framework="pt") as fh:
        assert fh.metadata() == {"format": "pt", **stamp}
    loaded = load_file(path)
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items())
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    assert metadata.stamp_mismatches(stamp, repository="models/lab/tiny", version=2, job=None) == []
    wrong = metadata.stamp_mismatches(
        {**stamp, metadata.STAMP_JOB: "7"}, repository="models/lab/other", version=3, job="8"
    )
    assert len(wrong) == 3 and "not 'models/lab/other'" in wrong[0]


def test_stamping_a_corrupt_file_changes_nothing(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(InvalidInput, match="not a valid safetensors"):
        metadata.stamp_safetensors(path, {metadata.STAMP_VERSION: "1"})
    assert path.read_bytes() == b"\xff" * 64


def test_safetensors_with_overlapping_tensors_is_refused():
    header = {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
    }
    raw = json.dumps(header).encode()
    blob = len(raw).to_bytes(8, "little") + raw + bytes(12)
    with pytest.raises(InvalidInput, match="overlap"):
        metadata.read_safetensors_header(io.BytesIO(blob), len(blob), path="m.safetensors")
    ok = safetensors_bytes()
    assert metadata.read_safetensors_header(io.BytesIO(ok), len(ok), path="x")["tensors"] == 1


def test_cards():
    card = metadata.parse_card("---\nlicense: [mit, apache-2.0]\ntags: [asr]\n---\n# Hi\n")
    assert card.licenses == ["mit", "apache-2.0"] and card.body == "# Hi\n"
    assert metadata.parse_card("# no front matter").meta == {}
    with pytest.raises(InvalidInput):
        metadata.parse_card("---\n- a list\n---\n")


@pytest.mark.parametrize(
    "licenses,expected",
    [
        (["Apache-2.0", "MIT"], []),
        (["GPL-3.0-only", "Apache-2.0"], []),
        (["GPL-2.0-only", "GPL-3.0-only"], ["incompatible"]),
        (["CC-BY-SA-4.0", "CC-BY-NC-4.0"], ["incompatible"]),
        (["Mystery-1.0"], ["unknown"]),
    ],
)
def test_license_flags(licenses, expected):
    flags = metadata.license_flags(licenses)
    assert [f.split()[0] for f in flags] == expected


def test_signed_manifest_round_trip_and_tampering(tmp_path):
    skey, vkey = generate_signer("lab.example/log")
    signer = Signer.from_key(skey)
    (tmp_path / "a.txt").write_bytes(b"a")
    import hashlib

    files = [{"path": "a.txt", "size": 1, "blake3": "0" * 64,
              "sha256": hashlib.sha256(b"a").hexdigest(), "media_type": "text/plain"}]  # fmt: skip
    statement = signing.make_statement(repository="models/x/y", version=1, files=files,
                                       licenses=["MIT"])  # fmt: skip
    envelope = signing.sign_statement(statement, signer, vkey)
    assert signing.open_envelope(envelope, vkey) == statement
    assert signing.verify_directory(statement, tmp_path).ok
    (tmp_path / "b.txt").write_bytes(b"extra")
    (tmp_path / "a.txt").write_bytes(b"changed")
    problems = signing.verify_directory(statement, tmp_path).problems
    assert len(problems) == 2
    _, other = generate_signer("other.example/log")
    with pytest.raises(signing.SignatureError):
        signing.open_envelope(envelope, other)
    forged = {**envelope, "payload": envelope["payload"][:-4] + "AAA="}
    with pytest.raises(signing.SignatureError):
        signing.open_envelope(forged, vkey)
