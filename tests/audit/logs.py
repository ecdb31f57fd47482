"""A served facility's log as the audit's tests need it: grown past a full tile, settled (every
entry in a signed checkpoint), mirrored, and damaged in a mirror one byte at a time."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

from commonlab.facility import Facility
from commonlab.policy.principal import SYSTEM
from commonlab.record import service as record
from commonlab.record.checkpoint import Checkpoint, sign_checkpoint
from commonlab.record.merkle import leaf_hash, root_from_leaf_hashes
from commonlab.record.models import Entry
from commonlab.record.note import Signer
from commonlab.record.tiles import (
    TILE_WIDTH,
    decode_entry_bundle,
    encode_entry_bundle,
    entries_path,
    new_tile_contents,
    tile_path,
)
from tests.helpers import http_client
from tests.record.events import SampleEvent

__all__ = [
    "append_many",
    "edit_first_entry",
    "first_bundle",
    "flip_byte",
    "leaf_tile",
    "rewrite_first_entry_and_its_leaf_tile",
    "serve_folder",
    "settled",
    "write_log",
]


def append_many(facility: Facility, count: int) -> None:
    """`count` entries of the record's own test type, in one transaction."""
    with facility.db.session() as session, session.begin():
        for i in range(count):
            record.append(
                session, SampleEvent.Entry, actor=SYSTEM, subject=f"thing/{i}", data={"i": i}
            )


def settled(facility: Facility, url: str) -> int:
    """Wait until the served checkpoint holds every committed entry; its size."""
    with facility.db.session() as session:
        total = session.scalar(select(func.count()).select_from(Entry)) or 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = httpx.get(f"{url}/log/checkpoint").text.split("\n")
        if len(lines) > 1 and lines[1].isdigit() and int(lines[1]) >= total:
            return int(lines[1])
        time.sleep(0.02)
    raise AssertionError(f"the sequencer did not sign all {total} entries")


def leaf_tile(mirror: Path, index: int = 0) -> Path:
    """The mirror's level-0 tile `index` (full or partial)."""
    found = sorted((mirror / "tile" / "0").glob(f"{index:03d}*"))
    tile = found[0]
    return next(tile.rglob("*")) if tile.is_dir() else tile


def first_bundle(mirror: Path, index: int = 0) -> Path:
    """The mirror's entry bundle `index` (the first by default)."""
    found = sorted((mirror / "tile" / "entries").glob(f"{index:03d}*"))
    bundle = found[0]
    return next(bundle.rglob("*")) if bundle.is_dir() else bundle


def edit_first_entry(bundle: Path) -> None:
    """Change one digit of the bundle's first entry, keeping the bundle well formed: what a
    mirror that rewrote history would hold."""
    bodies = decode_entry_bundle(bundle.read_bytes())
    first = bytearray(bodies[0])
    at = next(i for i, byte in enumerate(first) if chr(byte).isdigit())
    first[at] = ord("1") if first[at] != ord("1") else ord("2")
    bundle.write_bytes(encode_entry_bundle([bytes(first), *bodies[1:]]))


def rewrite_first_entry_and_its_leaf_tile(mirror: Path, bundle_index: int = 0) -> None:
    """Change a bundle's first entry and rewrite its leaf tile to match, leaving every tile
    above as it was: a mirror (or facility) that rewrote history and hoped nobody climbs from
    the leaves to the signed root. Needs a log past one full tile, so the root is read from a
    higher tile."""
    bundle = first_bundle(mirror, bundle_index)
    edit_first_entry(bundle)
    tile = leaf_tile(mirror, bundle_index)
    hashes = tile.read_bytes()
    first = decode_entry_bundle(bundle.read_bytes())[0]
    tile.write_bytes(leaf_hash(first) + hashes[32:])


def serve_folder(root: Path, verifier_key: str) -> httpx.Client:
    """A 'facility' that serves a folder as its /log/: what a mirror is shown in a test that
    needs the facility to lie."""

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/v1/record/key":
            return httpx.Response(200, json={"verifier_key": verifier_key})
        target = root / path.removeprefix("/log/")
        if path.startswith("/log/") and target.is_file():
            return httpx.Response(200, content=target.read_bytes())
        return httpx.Response(404, text="not found")

    return http_client(transport=httpx.MockTransport(answer))


def write_log(directory: Path, bodies: list[bytes], signer: Signer) -> None:
    """A whole log of `bodies` laid out as a facility serves it (checkpoint, tiles, bundles),
    signed by `signer`: another log, or a fork of one, for the audit to be shown."""
    hashes = [leaf_hash(body) for body in bodies]
    tiles = new_tile_contents(0, hashes, get_tile=lambda level, index: b"")
    for (level, index), data in tiles.items():
        _put(directory / tile_path(level, index, len(data) // 32), data)
    for bundle in range(0, len(bodies), TILE_WIDTH):
        chunk = bodies[bundle : bundle + TILE_WIDTH]
        _put(directory / entries_path(bundle // TILE_WIDTH, len(chunk)), encode_entry_bundle(chunk))
    checkpoint = Checkpoint(signer.name, len(bodies), root_from_leaf_hashes(hashes))
    _put(directory / "checkpoint", sign_checkpoint(checkpoint, signer))


def _put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def flip_byte(path: Path, at: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
