"""A witness's monitor: follow a facility's log over HTTP and fail loudly on a fork or a
rollback. Only the C2SP endpoints are used (checkpoint and tiles), so the same monitor
would work on any tiled log; the verifier key is pinned on first use or given up front."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from commonlab.record.checkpoint import Checkpoint, open_checkpoint
from commonlab.record.merkle import (
    CompactRange,
    ProofError,
    consistency_proof,
    leaf_hash,
    tree_root,
    verify_consistency,
)
from commonlab.record.note import NoteError, Verifier
from commonlab.record.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    TileHashReader,
    decode_entry_bundle,
    entries_path,
    tile_path,
)

__all__ = ["KeyChanged", "LogForked", "LogUnreachable", "WatchState", "Watcher"]


class LogForked(Exception):
    """The log contradicted what this watcher verified before: a fork, rollback or tampering.

    `evidence` names the file where both signed checkpoints were kept, when the facility
    signed the one that contradicts: together they prove the facility said two things."""

    def __init__(self, message: str, *, evidence: Path | None = None) -> None:
        super().__init__(message)
        self.evidence = evidence


class KeyChanged(LogForked):
    """The checkpoint is no longer signed by the key this watcher pinned: the very event a
    witness exists to catch (a new key may be a legitimate rotation, announced elsewhere)."""


class LogUnreachable(Exception):
    """The facility did not answer: nothing was verified, nothing contradicted."""


@dataclass
class WatchState:
    url: str
    verifier_key: str
    size: int
    root_hash: str  # base64, as in the checkpoint
    note: str

    @classmethod
    def load(cls, path: Path) -> WatchState | None:
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)  # atomic: a crash never leaves half a state


@dataclass(frozen=True)
class Observation:
    size: int
    previous_size: int | None
    checked_entries: int
    note: str


class Watcher:
    def __init__(
        self,
        url: str,
        *,
        state_path: Path,
        verifier_key: str | None = None,
        http: httpx.Client | None = None,
        check_entries: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.state_path = state_path
        self._http = http or httpx.Client(timeout=30.0)
        self._given_key = verifier_key
        self.check_entries = check_entries

    def _get(self, path: str) -> bytes:
        try:
            response = self._http.get(f"{self.url}/{path.lstrip('/')}")
        except httpx.HTTPError as exc:
            raise LogUnreachable(f"{self.url} did not answer ({exc})") from None
        if response.status_code != 200:
            raise LogForked(f"GET {path}: HTTP {response.status_code} ({response.text[:200]})")
        return response.content

    def verifier_key(self, state: WatchState | None) -> str:
        if state is not None:
            if self._given_key and self._given_key != state.verifier_key:
                raise LogForked("the given verifier key differs from the one pinned in the state")
            return state.verifier_key
        if self._given_key:
            return self._given_key
        # Trust on first use; the key is pinned from here on.
        return json.loads(self._get("/api/v1/record/key"))["verifier_key"]

    def check_once(self) -> Observation:
        state = WatchState.load(self.state_path)
        vkey = self.verifier_key(state)
        verifier = Verifier.from_key(vkey)
        note = self._get("/log/checkpoint")
        try:
            checkpoint, _ = open_checkpoint(note, origin=verifier.name, verifier=verifier)
        except NoteError as exc:
            raise KeyChanged(
                f"KEY CHANGED: the checkpoint at {self.url} is not signed by the pinned key "
                f"{verifier.name}+{verifier.key_id:08x} ({exc}); if the facility announced a "
                "rotation, check the new key out of band and start a new state file"
            ) from None
        reader = self._tile_reader(checkpoint.size)
        try:
            root = tree_root(checkpoint.size, reader)
        except (KeyError, ValueError) as exc:
            raise LogForked(f"tiles at size {checkpoint.size} are incomplete: {exc}") from None
        if root != checkpoint.root_hash:
            raise LogForked(f"the tiles do not hash to the signed root at size {checkpoint.size}")
        previous = None if state is None else state.size
        if state is not None:
            self._check_consistent(state, checkpoint, reader, note)
        checked = 0
        if self.check_entries:
            old_root = None if state is None else base64.b64decode(state.root_hash)
            checked = self._check_entries(
                previous or 0, old_root, checkpoint.size, checkpoint.root_hash, reader
            )
        WatchState(
            url=self.url,
            verifier_key=vkey,
            size=checkpoint.size,
            root_hash=base64.b64encode(checkpoint.root_hash).decode(),
            note=note.decode(),
        ).save(self.state_path)
        return Observation(checkpoint.size, previous, checked, note.decode())

    def _check_consistent(
        self, state: WatchState, new: Checkpoint, reader: TileHashReader, note: bytes
    ) -> None:
        """The new checkpoint must extend the verified one. A contradiction is said in words a
        reader cannot mistake, and both signed checkpoints are kept as evidence."""
        old_root = base64.b64decode(state.root_hash)
        if new.size < state.size:
            evidence = self._keep_evidence(state, note)
            raise LogForked(
                f"ROLLBACK: {self.url} now serves a log of {new.size} entries, but it signed a "
                f"log of {state.size} entries that this watcher verified: "
                f"{state.size - new.size} published entries are gone. A public log never "
                "shrinks (an older backup restored, or tampering); both signed checkpoints "
                f"are kept in {evidence}",
                evidence=evidence,
            )
        if new.size == state.size:
            if new.root_hash != old_root:
                evidence = self._keep_evidence(state, note)
                raise LogForked(
                    f"FORK: {self.url} signed two different logs of {new.size} entries: the "
                    "one this watcher verified and the one it serves now; both signed "
                    f"checkpoints are kept in {evidence}",
                    evidence=evidence,
                )
            return
        try:
            proof = consistency_proof(state.size, new.size, reader)
            verify_consistency(state.size, new.size, proof, old_root, new.root_hash)
        except (ProofError, KeyError, ValueError) as exc:
            evidence = self._keep_evidence(state, note)
            raise LogForked(
                f"FORK: {self.url} signed a log of {new.size} entries that does not extend "
                f"the log of {state.size} entries this watcher verified ({exc}): its history "
                f"was rewritten; both signed checkpoints are kept in {evidence}",
                evidence=evidence,
            ) from None

    def _keep_evidence(self, state: WatchState, note: bytes) -> Path:
        """Write the verified checkpoint and the contradicting one, both signed by the log's
        key, beside the state file (which keeps the verified one: it is never moved back)."""
        path = self.state_path.with_name(f"{self.state_path.name}.evidence-{state.size}.txt")
        try:
            path.write_text(
                f"{self.url}\nverified before:\n\n{state.note}\nserved now, contradicting it:"
                f"\n\n{note.decode()}"
            )
        except OSError as exc:  # the alarm matters more than the copy: say where it failed
            raise LogForked(
                f"the log at {self.url} contradicts the checkpoint of {state.size} entries in "
                f"{self.state_path}, and the evidence could not be written to {path} "
                f"({exc.strerror})"
            ) from None
        return path

    def _check_entries(
        self,
        start: int,
        old_root: bytes | None,
        size: int,
        root: bytes,
        reader: TileHashReader,
    ) -> int:
        """Fetch the entry bundles of the new entries and hash them up to the signed root.

        Not leaf by leaf against the tiles: a tile is not signed, and a leaf tile rewritten
        with its entries would pass under untouched higher tiles. The subtrees before
        `start` come from the tiles and are checked against the root verified last time."""
        tree = CompactRange.at(start, reader)
        if old_root is not None and tree.root() != old_root:
            raise LogForked(f"the tiles before entry {start} do not hash to the verified root")
        for bundle in range(start // TILE_WIDTH, (size + TILE_WIDTH - 1) // TILE_WIDTH):
            width = min(TILE_WIDTH, size - bundle * TILE_WIDTH)
            try:
                entries = decode_entry_bundle(self._get("/log/" + entries_path(bundle, width)))
            except ValueError as exc:
                raise LogForked(f"entry bundle {bundle} is not an entry bundle ({exc})") from None
            if len(entries) != width:
                raise LogForked(f"entry bundle {bundle} has {len(entries)} entries, not {width}")
            for index, entry in enumerate(entries, start=bundle * TILE_WIDTH):
                if index >= start:
                    tree.append(leaf_hash(entry))
        if tree.root() != root:
            raise LogForked(
                f"entries {start}..{size - 1} do not hash to the signed root at size {size}"
            )
        return size - start

    def _tile_reader(self, size: int) -> TileHashReader:
        def get_tile(level: int, index: int) -> bytes:
            hashes_at_level = size >> (TILE_HEIGHT * level)
            width = min(TILE_WIDTH, hashes_at_level - index * TILE_WIDTH)
            if width <= 0:
                raise KeyError(f"tile {level}/{index} is beyond tree size {size}")
            data = self._get("/log/" + tile_path(level, index, width))
            if len(data) != width * 32:
                raise LogForked(f"tile {level}/{index} has {len(data)} bytes, not {width * 32}")
            return data

        return TileHashReader(get_tile)
