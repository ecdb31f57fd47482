"""Rate limits per token and per address: a request over either gets 429 problem+json with
`Retry-After`, before any database work. Set in the settings (`rate_limit_*`; 0: off).

Each client has a token bucket: it holds `rate × rate_limit_burst_seconds` requests and
refills at `rate` a second. The buckets live in a small file mapped into every process of the
facility on this host (`SharedBuckets`), so `commonlab up --workers N` limits a client as one
process would, whichever worker its connections reach. Hosts keep their own buckets.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import mmap
import os
import socket
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from commonlab.config import Settings, parse_networks
from commonlab.http import problem
from commonlab.operations.instruments import RATE_LIMITED

__all__ = ["Limit", "RateLimits", "SharedBuckets", "client_address", "install_rate_limits"]

log = logging.getLogger("commonlab.operations.limits")

# One bucket: the client's key (a 64-bit digest, 0 = free slot), its requests left and when
# they were counted (CLOCK_MONOTONIC, which every process of a host shares).
_SLOT = struct.Struct("<Qdd")
# Where a key may sit: this many slots from its home slot. When all are busy the longest idle
# of them is given up: that client starts again with a full bucket (lenient, never wrong the
# other way).
_PROBE = 8
SLOTS = 65_536  # 1.5 MiB; a bucket idle for a whole burst is full again, so its slot is free


@dataclass(frozen=True)
class Limit:
    """One bucket a request draws from: which kind, whose, and how fast it refills."""

    kind: str  # "token" or "address": what the 429 names
    key: int
    rate: float  # requests a second


class SharedBuckets:
    """Token buckets in a file mapped by every process that opens the same path, changed
    under an exclusive `flock`, so several workers count one client together. With no path,
    the buckets are this process's own (anonymous memory)."""

    # Seconds on a clock that never goes back; tests stop it, so that a refusal they expect
    # does not depend on how fast a busy machine answers the requests before it.
    clock = staticmethod(time.monotonic)

    def __init__(self, path: Path | None, *, burst_seconds: float, slots: int = SLOTS) -> None:
        self.burst_seconds = burst_seconds
        self.slots = slots
        self._lock = threading.Lock()  # flock does not exclude threads sharing one descriptor
        self._fd: int | None = None
        size = slots * _SLOT.size
        if path is not None:
            try:
                self._fd = _open_table(path, size)
            except OSError as exc:
                log.warning(
                    "rate limits: cannot share buckets through %s (%s): each process counts alone",
                    path,
                    exc.strerror,
                )
        self._map = mmap.mmap(-1, size) if self._fd is None else mmap.mmap(self._fd, size)

    def take(self, limits: Sequence[Limit], *, now: float | None = None) -> tuple[Limit, float]:
        """Take one request from every bucket, or from none: the first limit that has none
        left and the seconds until it has one; (limits[0], 0.0) when the request may go."""
        now = self.clock() if now is None else now
        with self._lock:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                for limit in limits:
                    slot, left = self._bucket(limit, now)
                    if left < 1.0:
                        # Refilled, nothing taken: a client refused again and again stays
                        # the most recent of its neighbourhood, never the one given up.
                        _SLOT.pack_into(self._map, slot * _SLOT.size, limit.key, left, now)
                        return limit, (1.0 - left) / limit.rate
                for limit in limits:  # one by one: two new keys may want the same free slot
                    slot, left = self._bucket(limit, now)
                    _SLOT.pack_into(self._map, slot * _SLOT.size, limit.key, left - 1.0, now)
                return limits[0], 0.0
            finally:
                if self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _bucket(self, limit: Limit, now: float) -> tuple[int, float]:
        """The slot of this key's bucket and the requests it holds now (refilled)."""
        capacity = max(1.0, limit.rate * self.burst_seconds)
        home = limit.key % self.slots
        free: int | None = None
        oldest, oldest_since = home, math.inf
        for step in range(_PROBE):
            slot = (home + step) % self.slots
            key, left, since = _SLOT.unpack_from(self._map, slot * _SLOT.size)
            # A stamp from the future (the host rebooted since) or a torn value is no
            # bucket; nor is one idle long enough to be full again, which for another key
            # is taken to be a whole burst (its rate is its own).
            age = now - since if math.isfinite(left) else -1.0
            if key == limit.key:
                if not 0 <= age < capacity / limit.rate:
                    return slot, capacity
                return slot, min(capacity, max(0.0, left) + age * limit.rate)
            if key == 0 or not 0 <= age < self.burst_seconds:
                free = slot if free is None else free
            elif since < oldest_since:
                oldest, oldest_since = slot, since
        return (oldest if free is None else free), capacity


def _open_table(path: Path, size: int) -> int:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_size != size:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, size)  # a table of another size is started afresh
            fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        os.close(fd)
        raise
    return fd


def client_address(scope: Scope) -> str:
    """The client's address as the server saw it (behind a trusted proxy, uvicorn has put
    the X-Forwarded-For address there); "" when there is none."""
    client = scope.get("client")
    return str(client[0]) if client else ""


class RateLimits:
    """ASGI middleware: every request draws from its token's bucket and its address's."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        per_token: float,
        per_address: float,
        buckets: SharedBuckets,
        exempt: Sequence[IPv4Network | IPv6Network] = (),
    ) -> None:
        self.app = app
        self.per_token = per_token
        self.per_address = per_address
        self.buckets = buckets
        self.exempt = tuple(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self._limits(scope)
        if limits:
            limit, wait = self.buckets.take(limits)
            if wait > 0:
                RATE_LIMITED.labels(limit=limit.kind).inc()
                await self._refuse(scope, limit, wait)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _limits(self, scope: Scope) -> list[Limit]:
        limits = []
        if self.per_token:
            bearer = _bearer(scope)
            if bearer is not None:
                limits.append(Limit("token", _key(b"token", bearer), self.per_token))
        if self.per_address:
            address = self._address_key(client_address(scope))
            if address is not None:
                limits.append(Limit("address", _key(b"address", address), self.per_address))
        return limits

    def _address_key(self, address: str) -> bytes | None:
        """What counts as one address: an IPv4 address, an IPv6 /64 (one host is given a
        whole /64); None for an exempt network."""
        try:
            ip = ip_address(address)
        except ValueError:
            return address.encode()[:200]  # not an IP (a test client, a Unix socket)
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.exempt):
            return None
        if ip.version == 6:
            return str(ip_network(f"{ip}/64", strict=False)).encode()
        return str(ip).encode()

    def _refuse(self, scope: Scope, limit: Limit, wait: float) -> ASGIApp:
        seconds = max(1, math.ceil(wait))
        whose = "this token" if limit.kind == "token" else "this address"
        detail = (
            f"more than {limit.rate:g} requests a second from {whose}: retry in {seconds} s "
            "(Retry-After), and send fewer"
        )
        # A page the portal serves is refused as a page (the portal installs `html_refusal`
        # on the app; a path it does not serve gets None): a person reads it, not a client.
        html = getattr(scope["app"].state, "html_refusal", None) if "app" in scope else None
        response = html(scope, 429, "Too many requests", detail) if html is not None else None
        if response is None:
            response = problem(
                429, "Too many requests", detail, slug="rate-limited", limit=limit.kind
            )
        response.headers["Retry-After"] = str(seconds)
        return response


def _bearer(scope: Scope) -> bytes | None:
    """The credential of an Authorization header, whole: a token's bucket is keyed on its
    secret too, so someone who knows a token's id cannot drain its owner's bucket."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return value.strip()[:4096] or None
    return None


def _key(kind: bytes, value: bytes) -> int:
    digest = hashlib.blake2b(value, digest_size=8, person=kind.ljust(16, b"\0")[:16]).digest()
    return int.from_bytes(digest, "little") or 1  # 0 marks a free slot


def buckets_path(settings: Settings) -> Path:
    """The buckets every process of this facility on this host shares."""
    return settings.home / "run" / f"rate-limits.{socket.gethostname()}"


def install_rate_limits(app: FastAPI, settings: Settings) -> None:
    """Add the rate-limit middleware to the app (nothing when both limits are 0)."""
    if not (settings.rate_limit_per_token or settings.rate_limit_per_address):
        return
    app.add_middleware(
        RateLimits,
        per_token=settings.rate_limit_per_token,
        per_address=settings.rate_limit_per_address,
        buckets=SharedBuckets(
            buckets_path(settings), burst_seconds=settings.rate_limit_burst_seconds
        ),
        exempt=parse_networks(settings.rate_limit_exempt_networks),
    )
