"""Merkle tree hashing, proofs and verification against published RFC 6962/9162 vectors."""

from __future__ import annotations

import base64
import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commonlab.record.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    ProofError,
    consistency_proof,
    dict_reader,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    subtrees_needed_for_consistency,
    subtrees_needed_for_inclusion,
    subtrees_needed_for_root,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

# The CT test tree (certificate-transparency / transparency-dev/merkle testonly).
LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    bytes.fromhex(h)
    for h in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]


def hx(*hashes: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in hashes]


INCLUSION_VECTORS = [  # (index, size, proof)
    (0, 1, []),
    (0, 2, hx("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7")),
    (1, 2, hx("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")),
    (2, 3, hx("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        hx(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        0,
        8,
        hx(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        hx(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]

CONSISTENCY_VECTORS = [  # (old_size, new_size, proof)
    (1, 1, []),
    (
        1,
        8,
        hx(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        hx(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        hx(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        hx(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]

CT_TREE = MemoryTree(leaf_hash(e) for e in LEAVES)


# --- published vectors ------------------------------------------------------


def test_hash_primitives() -> None:
    assert ROOTS[0] == EMPTY_ROOT
    assert leaf_hash(b"") == ROOTS[1]
    assert node_hash(leaf_hash(LEAVES[0]), leaf_hash(LEAVES[1])) == ROOTS[2]


@pytest.mark.parametrize("size", range(9))
def test_roots_match_ct_vectors(size: int) -> None:
    hashes = [leaf_hash(e) for e in LEAVES[:size]]
    assert root_from_leaf_hashes(hashes) == ROOTS[size]
    assert tree_root(size, CT_TREE.read) == ROOTS[size]
    assert CT_TREE.root(size) == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_inclusion_vectors(index: int, size: int, proof: list[bytes]) -> None:
    assert inclusion_proof(index, size, CT_TREE.read) == proof
    verify_inclusion(leaf_hash(LEAVES[index]), index, size, proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_consistency_vectors(old: int, new: int, proof: list[bytes]) -> None:
    assert consistency_proof(old, new, CT_TREE.read) == proof
    verify_consistency(old, new, proof, ROOTS[old], ROOTS[new])


def b64s(*items: str) -> list[bytes]:
    return [base64.b64decode(s) for s in items]


# Google Argon 2020 CT log responses, as vendored in golang.org/x/mod/sumdb/tlog/testdata/argon2020.
ARGON_SIZE = 961984013
ARGON_ROOT = base64.b64decode("dwlueapdd7LaOEnX2W2Wp9v2XE+KzejHRQGHwEx0oaM=")
ARGON_LEAF_10000 = base64.b64decode(
    "AAAAAAFelPhqUwAAAAViMIIFXjCCBEagAwIBAgIRAOodHzZdqWIFzYyl/SovhCMwDQYJKoZIhvcNAQELBQAwgZAxCzAJBgNVBAYTAkdCMRsw"
    "GQYDVQQIExJHcmVhdGVyIE1hbmNoZXN0ZXIxEDAOBgNVBAcTB1NhbGZvcmQxGjAYBgNVBAoTEUNPTU9ETyBDQSBMaW1pdGVkMTYwNAYDVQQD"
    "Ey1DT01PRE8gUlNBIERvbWFpbiBWYWxpZGF0aW9uIFNlY3VyZSBTZXJ2ZXIgQ0EwHhcNMTcwMjE1MDAwMDAwWhcNMjAwNDE2MjM1OTU5WjBf"
    "MSEwHwYDVQQLExhEb21haW4gQ29udHJvbCBWYWxpZGF0ZWQxHTAbBgNVBAsTFFBvc2l0aXZlU1NMIFdpbGRjYXJkMRswGQYDVQQDDBIqLmxh"
    "bmRsb3Jkcy5jb20uYXUwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQCtPBKKHj4zdrGlCjgTHzb5gx9JCs97DwvBz60f14gDufF2"
    "haWbOxyJ0a3opAMsZnOr8HkARVCwxdqG/PTfACcb0QM7FOlzvxGqxataTYiChwvkkif8F9GlJw69HuHgzhusPf1Ytfk3ps1PRC14MkyrS4kw"
    "Prk/Le4XdkqRpRw62wG4V6IkbzsNMEOl1H8EgUbfyapdOcVxHjIzvBVy56fBRKG05Fr5wNq3Acak5kYZdNsLhhmlrqAfAjiombW3hb3V5blJ"
    "dRC0BDdYHv2+zKey6LqJ1FDoXo6IzbzPpC+aifZy47YX+/N1U64Qn5xlDg7mOP8JXfkNJHbU1TJZHif5AgMBAAGjggHhMIIB3TAfBgNVHSME"
    "GDAWgBSQr2o6lFoL2JDqElZz30O0Oija5zAdBgNVHQ4EFgQUNQSLjkoz01I+iuuoC5lgEp0anhcwDgYDVR0PAQH/BAQDAgWgMAwGA1UdEwEB"
    "/wQCMAAwHQYDVR0lBBYwFAYIKwYBBQUHAwEGCCsGAQUFBwMCME8GA1UdIARIMEYwOgYLKwYBBAGyMQECAgcwKzApBggrBgEFBQcCARYdaHR0"
    "cHM6Ly9zZWN1cmUuY29tb2RvLmNvbS9DUFMwCAYGZ4EMAQIBMFQGA1UdHwRNMEswSaBHoEWGQ2h0dHA6Ly9jcmwuY29tb2RvY2EuY29tL0NP"
    "TU9ET1JTQURvbWFpblZhbGlkYXRpb25TZWN1cmVTZXJ2ZXJDQS5jcmwwgYUGCCsGAQUFBwEBBHkwdzBPBggrBgEFBQcwAoZDaHR0cDovL2Ny"
    "dC5jb21vZG9jYS5jb20vQ09NT0RPUlNBRG9tYWluVmFsaWRhdGlvblNlY3VyZVNlcnZlckNBLmNydDAkBggrBgEFBQcwAYYYaHR0cDovL29j"
    "c3AuY29tb2RvY2EuY29tMC8GA1UdEQQoMCaCEioubGFuZGxvcmRzLmNvbS5hdYIQbGFuZGxvcmRzLmNvbS5hdTANBgkqhkiG9w0BAQsFAAOC"
    "AQEACyHqxUzrexToY7tOv4+kyGPP2D27P1tQpyzeAl1bPObiMhNK2b9vvBLDWAaqm8c0YL1h+DBdLoWzf3xFsIkTCVCjWJTNSNlcYtgRk6or"
    "1s7jWsfXzWqsnPjPPmTIOCw7EfH7Yme3oxPs3UUsmShAgPwNohAtL9GqlqMiKM6v1WU3NHt01jEoNP23LRa6KeNK6AH6WHJykzL223IlhgXj"
    "HTeuQj6lR+TNrQXJuhwTXYe+20rrpPQxc1Pn7AqnvfWgmicRQ7gdIcr4V6+ecTvLfNOaJ0ZYe5G5giuAAdTm7F57pk04f4gyZNYKrj88mvbk"
    "oriN8b6jcWExtrYO6bm2TwAA"
)
ARGON_AUDIT_PATH = b64s(
    "T46AmJsuOM/gFiGlUp+IJJebp+1Z5qratFNW7U0JyOQ=",
    "9Jj1Feodn42uRYEfffkV4HF/EIPFQ5Zo9IwkxbQ2uhk=",
    "D53/1oCNebF4J59HHgioovKZxrmrKcVuCVhy3Izg8Ck=",
    "wSFDgGSrsXRPA+1c8WHoAFCsWeUv8NDyP/Q/SgsyVyY=",
    "516/RcwsgdwdzHn18v1dJHqBkgFUbNhmCIWOGjsMJaE=",
    "naTFY2ajLFgrgs5XUl+zJYZnnlJksLGsA1VYwpLfqbY=",
    "mKBRJo6qao+0Kdh/rhGkZUbHUAxMhrtrclrTpIbNjIg=",
    "Co4ueOFE7lpifLio94irxxsv1wFMMaK3tPu2ZQkHlro=",
    "yRgy800K6JMYCC05sWfqF2kvCg2riT/pVM+nEa6V5+0=",
    "n2O38XJZC8/Wpbwi9HhgVizlUyeUHVZvYyQB1607MRc=",
    "go3tAjuNfNSCj87y2Rg1xOroDknGN1eaf3cgvzObf7Q=",
    "8D0Mj3/J7ySSnFb0afIHYXv6rlOhECnsebY6XKi1IR8=",
    "6rcez46ZU8M5vPiWVMAUfJfAOV0pPP/mch/lYzZhj/M=",
    "2rtIeXrPvSdUyHc5maIgSAVB2BzaKaupWxSAiVayDE4=",
    "nniW/IMFQPN5xw8UsHFn7CRStYbm1gLu7NNa6kkRqJQ=",
    "mRPPi7sQS22MduIEyvcNzCNFqIt6kLwYPkNKrVtIcu8=",
    "JvTivzESNS9wHI8aph5a7uieVmtS/p9PciMZ5D6GyOo=",
    "UTyQd+Ym0wY4zG+qK806bBORwi1CSVvFQ/KknnqoZj8=",
    "hXODrqN+ff+U6zPqRQ+ZQKs6im1fPcxIerDSfNwflhE=",
    "II6GE+WY/DrpZzfHztLwkR46o37zVkNLCyPYlf68zA0=",
    "d609kWWcNBllbA8Jb/ad4XAVVGnScLRmtP8FYyr+Dck=",
    "rikBsP0G0gioXRpBFED2CzQdSLrGPvRd0bEcbEZw1rI=",
    "GXIElfmnRuWfbA4z7ubV/UwlpSRUbUeec7oL5HDDnh0=",
    "pR0SH/NYP6s9+8azWwaeUXA4Ze/3WCIgMfh5YW6wvcE=",
    "f3GuAKYVrF8RBg3s15jvA/YvV9oAliWtzP/imwPhQVA=",
    "WHn8zDxlVgkV+lSlmzaOdfSBrTHoRr5nT3d76q0KKWE=",
    "f2uV2ZxVgULzLPKuZcowRY3ZY7fRlX59iDBjV1R8kNQ=",
    "NzQVjJsvQwbi7WStMr9oFkh9VbHfK7LB6o7WwAqwNTs=",
    "C0LttBeYHZHgL+032JIcJC3CTBIyza/hsbmJUgJfmDI=",
    "nixU5CWTFVDlF4BGdcU6kA7WSYurEpe9jRWc+F/7sOc=",
)
ARGON_OLD_SIZE = 3654490
ARGON_OLD_ROOT = base64.b64decode("AuIZ5V6sDUj1vn3Y1K85oOaQ7y+FJJKtyRTl1edIKBQ=")
ARGON_CONSISTENCY = b64s(
    "80Sfbj6UQEdVSZCSIgh9NMPj3vCBzcc1A48B2crJSWg=",
    "FZcrgAHUk6nNPviJZq8kEK6jCG1d18pJOFE45ZDc1TQ=",
    "Q67reWXmPBo1UfmwBap4Xi9PMPfFdUSSw3WGlRZdG7k=",
    "eJ7CyhR4PxzBxDIsWgrVYW1eFUb9ndgf46tFmiqVrxA=",
    "QrDwp062Grm5WY8KdrhFsBuuNjGzRox2Jb8PmVL5OYw=",
    "XM4YMjMEdLH/XJam/ZWyaP14k3cmsOtnPsOWQ54lW1s=",
    "SGiBh+jOTGccXU48ZzgQ88lRcBmtB4wz4oSDndv2QTg=",
    "WAS6txqNLYKGL1GdBdpqmV42TTfn6cJsuDsqLXuTCNI=",
    "QFmRS0rirUA7ZN3lxFjDncV+E1OCrn3NUB4RCp+5fzc=",
    "Hdbp7It2XBNZmNDBpCN/KPd7vfVqxgzwOosqVIaEA9E=",
    "mxvHL0ZiblBdD7j7pIa1jlfB0gSqfJ6oX0UGo7L0VsU=",
    "q5hjyvoW6TL/PThgcitpDcSTrnKX2p1+aqscqH2euRA=",
    "jTOWDqt3IHj2NVFeezyBz2ofpru+ztEywqKUAfFclKI=",
    "GIRn0w3HqJdvU9j1WVD//eR6lk2AaTVjyzjsJNP8U88=",
    "x52GJvxG81fnQBrgOTbll1A5tz95/LXK0Ag1NhB0r1I=",
    "6/0OqrcTgc3o5dD5PymmoC96lB9yLPFuTHVvLy8fSGk=",
    "Gf+iKLfcXO5l4JEFmsZvSdG5q1uEeWPfYLrds6pmjz0=",
    "DGuaco+McyM3AfRSF6qX7RwSetwe2ieYJmxw5e9rVx0=",
    "2tQJ9V32hnYp+fdpP6TcjmgJmLeNVOMKM0Ml1kk4cNU=",
    "3PapK+IkyJr8I9yAErAmzuZezzLMzsg+PfeRCgNW8NQ=",
    "s6xiYeejb+wtqHA+URJZ2I/SCPyIW8coP6aB00FJbMY=",
    "z9lSpmdTcr5M5ZzKlc4EPh3SrSypKFdk6JUF/UccaZU=",
    "GXIElfmnRuWfbA4z7ubV/UwlpSRUbUeec7oL5HDDnh0=",
    "pR0SH/NYP6s9+8azWwaeUXA4Ze/3WCIgMfh5YW6wvcE=",
    "f3GuAKYVrF8RBg3s15jvA/YvV9oAliWtzP/imwPhQVA=",
    "WHn8zDxlVgkV+lSlmzaOdfSBrTHoRr5nT3d76q0KKWE=",
    "f2uV2ZxVgULzLPKuZcowRY3ZY7fRlX59iDBjV1R8kNQ=",
    "NzQVjJsvQwbi7WStMr9oFkh9VbHfK7LB6o7WwAqwNTs=",
    "C0LttBeYHZHgL+032JIcJC3CTBIyza/hsbmJUgJfmDI=",
    "nixU5CWTFVDlF4BGdcU6kA7WSYurEpe9jRWc+F/7sOc=",
)


def test_real_ct_log_inclusion_proof() -> None:
    verify_inclusion(leaf_hash(ARGON_LEAF_10000), 10000, ARGON_SIZE, ARGON_AUDIT_PATH, ARGON_ROOT)
    with pytest.raises(ProofError):
        verify_inclusion(
            leaf_hash(ARGON_LEAF_10000), 10001, ARGON_SIZE, ARGON_AUDIT_PATH, ARGON_ROOT
        )


def test_real_ct_log_consistency_proof() -> None:
    verify_consistency(ARGON_OLD_SIZE, ARGON_SIZE, ARGON_CONSISTENCY, ARGON_OLD_ROOT, ARGON_ROOT)
    with pytest.raises(ProofError):
        verify_consistency(
            ARGON_OLD_SIZE + 1, ARGON_SIZE, ARGON_CONSISTENCY, ARGON_OLD_ROOT, ARGON_ROOT
        )


# --- edge cases -------------------------------------------------------------

SOME = bytes(range(32))


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (2, 1), (-1, 4), (8, 8)])
def test_inclusion_rejects_index_outside_tree(index: int, size: int) -> None:
    with pytest.raises(ProofError, match="not inside"):
        verify_inclusion(SOME, index, size, [], SOME)


def test_single_leaf_tree_needs_empty_proof() -> None:
    verify_inclusion(ROOTS[1], 0, 1, [], ROOTS[1])
    with pytest.raises(ProofError, match="too long"):
        verify_inclusion(ROOTS[1], 0, 1, [SOME], ROOTS[1])


def test_wrong_hash_lengths_are_proof_errors() -> None:
    with pytest.raises(ProofError, match="leaf_hash"):
        verify_inclusion(b"short", 0, 1, [], ROOTS[1])
    with pytest.raises(ProofError, match="proof hash #0"):
        verify_inclusion(ROOTS[1], 0, 2, [b""], ROOTS[2])


def test_consistency_edge_cases() -> None:
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    verify_consistency(0, 5, [], EMPTY_ROOT, ROOTS[5])
    verify_consistency(3, 3, [], ROOTS[3], ROOTS[3])
    cases = [
        (0, 5, [SOME], EMPTY_ROOT, ROOTS[5], "must be empty"),  # empty old tree, non-empty proof
        (0, 5, [], ROOTS[1], ROOTS[5], "empty tree"),  # empty old tree, wrong old root
        (3, 3, [], ROOTS[3], ROOTS[4], "different roots"),
        (3, 3, [ROOTS[3]], ROOTS[3], ROOTS[3], "must be empty"),
        (4, 3, [], ROOTS[4], ROOTS[3], "prefix"),  # time travel
        (-1, 3, [], ROOTS[0], ROOTS[3], "prefix"),
        (2, 5, [], ROOTS[2], ROOTS[5], "empty"),
    ]
    for old, new, proof, r1, r2, msg in cases:
        with pytest.raises(ProofError, match=msg):
            verify_consistency(old, new, proof, r1, r2)


def test_generation_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(8, 8, CT_TREE.read)
    with pytest.raises(ValueError):
        consistency_proof(5, 4, CT_TREE.read)
    with pytest.raises(ValueError):
        tree_root(-1, CT_TREE.read)
    assert consistency_proof(0, 8, CT_TREE.read) == []


def test_memory_tree_reads_only_full_subtrees() -> None:
    with pytest.raises(KeyError):
        CT_TREE.read(4, 0)  # 16 leaves do not exist yet
    with pytest.raises(KeyError):
        MemoryTree(leaf_hash(e) for e in LEAVES[:7]).read(1, 3)  # leaves 6..7 incomplete


# --- properties -------------------------------------------------------------

MAX_SIZE = 600


@functools.cache
def big_tree() -> MemoryTree:
    return MemoryTree(leaf_hash(b"leaf %d" % i) for i in range(MAX_SIZE))


@functools.cache
def ref_root(size: int) -> bytes:
    return root_from_leaf_hashes(big_tree().levels[0][:size])


def ref_inclusion(hashes: list[bytes], index: int) -> list[bytes]:
    """Recursive PATH(m, D[n]) straight from RFC 9162 §2.1.3.1."""
    if len(hashes) <= 1:
        return []
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    if index < k:
        return [*ref_inclusion(hashes[:k], index), root_from_leaf_hashes(hashes[k:])]
    return [*ref_inclusion(hashes[k:], index - k), root_from_leaf_hashes(hashes[:k])]


def ref_consistency(hashes: list[bytes], m: int, from_root: bool = True) -> list[bytes]:
    """Recursive SUBPROOF(m, D[n], b) straight from RFC 9162 §2.1.4.1."""
    n = len(hashes)
    if m == n:
        return [] if from_root else [root_from_leaf_hashes(hashes)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*ref_consistency(hashes[:k], m, from_root), root_from_leaf_hashes(hashes[k:])]
    return [*ref_consistency(hashes[k:], m - k, False), root_from_leaf_hashes(hashes[:k])]


sizes = st.integers(min_value=1, max_value=MAX_SIZE)


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(sizes)
    return size, draw(st.integers(min_value=0, max_value=size - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(sizes)
    return draw(st.integers(min_value=1, max_value=new)), new


@settings(max_examples=300, deadline=None)
@given(size_and_index())
def test_inclusion_proofs_verify(case: tuple[int, int]) -> None:
    size, index = case
    tree = big_tree()
    proof = inclusion_proof(index, size, tree.read)
    leaf = tree.levels[0][index]
    assert tree_root(size, tree.read) == ref_root(size)
    assert proof == ref_inclusion(tree.levels[0][:size], index)
    verify_inclusion(leaf, index, size, proof, ref_root(size))


@settings(max_examples=300, deadline=None)
@given(two_sizes())
def test_consistency_proofs_verify(case: tuple[int, int]) -> None:
    old, new = case
    tree = big_tree()
    proof = consistency_proof(old, new, tree.read)
    assert proof == ref_consistency(tree.levels[0][:new], old)
    verify_consistency(old, new, proof, ref_root(old), ref_root(new))


@settings(max_examples=200, deadline=None)
@given(size_and_index(), st.data())
def test_tampered_inclusion_fails(case: tuple[int, int], data: st.DataObject) -> None:
    size, index = case
    tree = big_tree()
    proof = inclusion_proof(index, size, tree.read)
    leaf, root = tree.levels[0][index], ref_root(size)
    wrong_leaf = tree.levels[0][(index + 1) % MAX_SIZE]
    with pytest.raises(ProofError):
        verify_inclusion(wrong_leaf, index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, size, proof, ref_root(size % MAX_SIZE + 1))
    if size > 1:
        other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other")
        with pytest.raises(ProofError):
            verify_inclusion(leaf, other, size, proof, root)
        at = data.draw(st.integers(0, len(proof) - 1), label="at")
        bad = list(proof)
        bad[at] = bytes([bad[at][0] ^ 1]) + bad[at][1:]
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, bad, root)
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, proof[:-1], root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, size, [*proof, root], root)


@settings(max_examples=200, deadline=None)
@given(two_sizes(), st.data())
def test_tampered_consistency_fails(case: tuple[int, int], data: st.DataObject) -> None:
    old, new = case
    if old == new:
        new = min(new + 1, MAX_SIZE)
        if old == new:
            old -= 1
    tree = big_tree()
    proof = consistency_proof(old, new, tree.read)
    r1, r2 = ref_root(old), ref_root(new)
    with pytest.raises(ProofError):
        verify_consistency(old, new, proof, r2, r2)
    with pytest.raises(ProofError):
        verify_consistency(old, new, proof, r1, r1)
    at = data.draw(st.integers(0, len(proof) - 1), label="at")
    bad = list(proof)
    bad[at] = bytes([bad[at][0] ^ 16]) + bad[at][1:]
    with pytest.raises(ProofError):
        verify_consistency(old, new, bad, r1, r2)
    with pytest.raises(ProofError):
        verify_consistency(old, new, proof[:-1], r1, r2)
    with pytest.raises(ProofError):
        verify_consistency(old, new, [*proof, r1], r1, r2)


@settings(max_examples=100, deadline=None)
@given(size_and_index(), two_sizes())
def test_batch_fetch_then_prove(incl: tuple[int, int], cons: tuple[int, int]) -> None:
    """A caller can fetch exactly the listed subtrees, then prove from a dict."""
    tree = big_tree()
    size, index = incl
    needed = subtrees_needed_for_inclusion(index, size) + subtrees_needed_for_root(size)
    read = dict_reader({pair: tree.read(*pair) for pair in needed})
    assert inclusion_proof(index, size, read) == inclusion_proof(index, size, tree.read)
    assert tree_root(size, read) == ref_root(size)
    old, new = cons
    read = dict_reader(
        {pair: tree.read(*pair) for pair in subtrees_needed_for_consistency(old, new)}
    )
    assert consistency_proof(old, new, read) == consistency_proof(old, new, tree.read)


def test_dict_reader_names_missing_subtree() -> None:
    with pytest.raises(KeyError, match="level=3, index=1"):
        dict_reader({})(3, 1)


def test_proofs_at_ten_million_need_logarithmic_reads() -> None:
    """Proofs for huge trees only touch O(log n) full subtrees (fake hashes suffice)."""
    calls: list[tuple[int, int]] = []

    def read(level: int, index: int) -> bytes:
        calls.append((level, index))
        assert (index + 1) << level <= 10_000_000  # only ever a full subtree
        return level.to_bytes(16, "big") + index.to_bytes(16, "big")

    size = 10_000_000
    for index in (0, 1, 4_999_999, 9_999_998, 9_999_999):
        calls.clear()
        assert len(inclusion_proof(index, size, read)) <= 24
        assert len(calls) <= 2 * 24
        assert len(calls) == len(subtrees_needed_for_inclusion(index, size))
    for old in (1, 3, 8_388_608, 9_999_999):
        calls.clear()
        consistency_proof(old, size, read)
        assert len(calls) <= 2 * 24
