"""Rate limits per token and per address: 429 problem+json with Retry-After past the limit,
the two limits independent, buckets that refill, and shared by every process of a host."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from commonlab.app import create_app
from commonlab.config import Settings
from commonlab.facility import Facility
from commonlab.operations.limits import Limit, RateLimits, SharedBuckets

ALICE = ("198.51.100.7", 5000)
BOB = ("203.0.113.9", 5000)


@pytest.fixture(autouse=True)
def _stopped_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """No bucket refills during a test: on a busy machine three requests may take more than
    the second a bucket needs to refill one, and the refusal a test expects would not come.
    Refilling is tested below, with the time given."""
    monkeypatch.setattr(SharedBuckets, "clock", staticmethod(lambda: 1_000.0))


def limited_app(facility: Facility, **limits: Any) -> Any:
    settings = facility.settings.model_copy(
        update={"rate_limit_per_token": 0, "rate_limit_per_address": 0, **limits}
    )
    return create_app(Facility(**{**vars(facility), "settings": settings}), run_sequencer=False)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_past_the_address_limit_a_request_gets_429_with_retry_after(facility: Facility) -> None:
    # 1 a second with a 3-second burst: 3 at once, then refused.
    app = limited_app(facility, rate_limit_per_address=1, rate_limit_burst_seconds=3)
    with TestClient(app, client=ALICE) as alice, TestClient(app, client=BOB) as bob:
        assert [alice.get("/api/v1/health").status_code for _ in range(3)] == [200] * 3
        refused = alice.get("/api/v1/health", headers={"X-Request-ID": "r-429"})
        assert bob.get("/api/v1/health").status_code == 200  # another address, its own bucket
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "1"
    problem = refused.json()
    assert problem["limit"] == "address" and problem["request_id"] == "r-429"
    assert "retry in 1 s" in problem["detail"]


def test_a_portal_page_past_the_limit_is_refused_as_a_page(facility: Facility) -> None:
    app = limited_app(facility, rate_limit_per_address=1, rate_limit_burst_seconds=2)
    with TestClient(app, client=ALICE) as alice:
        assert alice.get("/").status_code == 200
        assert alice.get("/calls").status_code == 200
        page = alice.get("/calls")
        api = alice.get("/api/v1/health")  # the same address, an API path: problem+json
    assert page.status_code == 429 and page.headers["retry-after"] == "1"
    assert page.headers["content-type"].startswith("text/html")
    assert "Too many requests" in page.text and "Retry in 1 s" not in page.text
    assert "More than 1 requests a second from this address: retry in 1 s" in page.text
    assert api.status_code == 429 and api.headers["content-type"] == "application/problem+json"


def test_tokens_are_limited_each_on_its_own(facility: Facility) -> None:
    app = limited_app(facility, rate_limit_per_token=0.5, rate_limit_burst_seconds=6)
    with TestClient(app, client=ALICE) as client:
        # Unknown tokens are 401s, but they count: the limit runs before any look-up.
        codes = [client.get("/api/v1/me", headers=bearer("clab_a_1")).status_code for _ in range(3)]
        refused = client.get("/api/v1/me", headers=bearer("clab_a_1"))
        other = client.get("/api/v1/me", headers=bearer("clab_b_2"))
        same_id_other_secret = client.get("/api/v1/me", headers=bearer("clab_a_2"))
        public = client.get("/api/v1/me")
    assert codes == [401, 401, 401] and refused.status_code == 429
    assert refused.json()["limit"] == "token"
    assert refused.headers["retry-after"] == "2"  # one request every 2 s
    assert other.status_code == 401 and same_id_other_secret.status_code == 401
    assert public.status_code == 200


def test_the_token_and_address_limits_are_independent(facility: Facility) -> None:
    # An address may send 4 at once, a token 2.
    app = limited_app(
        facility, rate_limit_per_token=1, rate_limit_per_address=2, rate_limit_burst_seconds=2
    )
    with TestClient(app, client=ALICE) as alice, TestClient(app, client=BOB) as bob:
        assert [alice.get("/api/v1/health").status_code for _ in range(4)] == [200] * 4
        # Alice's address is spent: a fresh token does not get her past it.
        spent = alice.get("/api/v1/health", headers=bearer("clab_x_1"))
        assert spent.status_code == 429 and spent.json()["limit"] == "address"
        # The refusal took nothing from the token: it still has its two, from Bob's address.
        assert bob.get("/api/v1/health", headers=bearer("clab_x_1")).status_code == 200
        assert bob.get("/api/v1/health", headers=bearer("clab_x_1")).status_code == 200
        spent = bob.get("/api/v1/health", headers=bearer("clab_x_1"))
        assert spent.status_code == 429 and spent.json()["limit"] == "token"
        assert bob.get("/api/v1/health").status_code == 200  # Bob's address has one left


def test_exempt_networks_are_limited_per_token_only(facility: Facility) -> None:
    app = limited_app(
        facility,
        rate_limit_per_token=1,
        rate_limit_per_address=1,
        rate_limit_burst_seconds=1,
        rate_limit_exempt_networks="198.51.100.0/24",
    )
    with TestClient(app, client=ALICE) as alice:
        assert [alice.get("/api/v1/health").status_code for _ in range(5)] == [200] * 5
        assert alice.get("/api/v1/health", headers=bearer("clab_j_1")).status_code == 200
        assert alice.get("/api/v1/health", headers=bearer("clab_j_1")).status_code == 429


def test_an_ipv6_client_is_counted_per_64(facility: Facility) -> None:
    app = limited_app(facility, rate_limit_per_address=1, rate_limit_burst_seconds=1)
    one = TestClient(app, client=("2001:db8:1:2::a", 1))
    same_64 = TestClient(app, client=("2001:db8:1:2:ffff::b", 1))
    other_64 = TestClient(app, client=("2001:db8:1:3::a", 1))
    assert one.get("/api/v1/health").status_code == 200
    assert same_64.get("/api/v1/health").status_code == 429
    assert other_64.get("/api/v1/health").status_code == 200


def test_a_hostile_authorization_header_is_only_counted(facility: Facility) -> None:
    app = limited_app(facility, rate_limit_per_token=1, rate_limit_burst_seconds=1)
    with TestClient(app, client=ALICE) as client:
        huge = client.get("/api/v1/health", headers={"Authorization": "Bearer " + "x" * 8000})
        odd = client.get("/api/v1/health", headers={"Authorization": "Basic été".encode()})
    assert huge.status_code == 200 and odd.status_code == 200


def test_with_both_limits_off_there_is_no_middleware(facility: Facility) -> None:
    app = limited_app(facility)
    assert not any(m.cls is RateLimits for m in app.user_middleware)


# The buckets ------------------------------------------------------------------------------


def test_a_bucket_refills_at_its_rate() -> None:
    buckets = SharedBuckets(None, burst_seconds=2)
    limit = Limit("token", 42, rate=2.0)  # holds 4
    assert [buckets.take([limit], now=100.0)[1] for _ in range(4)] == [0.0] * 4
    _, wait = buckets.take([limit], now=100.0)
    assert wait == pytest.approx(0.5)
    assert buckets.take([limit], now=100.25)[1] == pytest.approx(0.25)  # half a request back
    assert buckets.take([limit], now=100.5)[1] == 0.0
    # Idle for a whole burst: full again, not fuller.
    assert [buckets.take([limit], now=110.0)[1] for _ in range(5)][-1] > 0


def test_a_stamp_from_the_future_is_a_full_bucket() -> None:
    """After a reboot the monotonic clock starts again below the stamps kept in the file."""
    buckets = SharedBuckets(None, burst_seconds=1)
    limit = Limit("address", 7, rate=1.0)
    assert buckets.take([limit], now=5000.0)[1] == 0.0
    assert buckets.take([limit], now=5000.0)[1] > 0
    assert buckets.take([limit], now=3.0)[1] == 0.0


def test_the_processes_of_a_host_share_the_buckets(tmp_path: Path) -> None:
    """Two tables on one file (as two workers open it): what one takes, the other sees."""
    path = tmp_path / "run" / "rate-limits.host"
    first = SharedBuckets(path, burst_seconds=1)
    second = SharedBuckets(path, burst_seconds=1)
    limit = Limit("token", 99, rate=2.0)
    assert first.take([limit], now=50.0)[1] == 0.0
    assert second.take([limit], now=50.0)[1] == 0.0
    assert first.take([limit], now=50.0)[1] > 0
    assert second.take([limit], now=50.0)[1] > 0
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_full_neighbourhood_gives_up_its_longest_idle_bucket() -> None:
    buckets = SharedBuckets(None, burst_seconds=100, slots=8)
    for key in range(1, 9):  # every slot taken, each at a later time
        assert buckets.take([Limit("address", key, rate=0.01)], now=float(key))[1] == 0.0
    assert buckets.take([Limit("address", 1, rate=0.01)], now=20.0)[1] > 0  # still there
    newcomer = Limit("address", 100, rate=0.01)
    assert buckets.take([newcomer], now=21.0)[1] == 0.0
    # Key 2 was the longest idle: its client starts again with a full bucket.
    assert buckets.take([Limit("address", 2, rate=0.01)], now=22.0)[1] == 0.0
    assert math.isfinite(buckets.take([newcomer], now=23.0)[1])


def test_this_machine_is_exempt_from_the_address_limit_unless_none_is(facility: Facility) -> None:
    here = ("127.0.0.1", 5000)
    exempt = limited_app(facility, rate_limit_per_address=1, rate_limit_burst_seconds=1)
    with TestClient(exempt, client=here) as client:
        assert [client.get("/api/v1/health").status_code for _ in range(3)] == [200] * 3
    settings = Settings(home=facility.settings.home, rate_limit_exempt_networks="none")
    limited = limited_app(
        facility,
        rate_limit_per_address=1,
        rate_limit_burst_seconds=1,
        rate_limit_exempt_networks=settings.rate_limit_exempt_networks,
    )
    with TestClient(limited, client=here) as client:
        assert [client.get("/api/v1/health").status_code for _ in range(2)] == [200, 429]


def test_a_slow_rate_refills_at_its_own_pace_not_the_burst() -> None:
    # One request every 10 s, though a burst is 5 s: the bucket holds 1 (never less).
    buckets = SharedBuckets(None, burst_seconds=5)
    limit = Limit("token", 5, rate=0.1)
    assert buckets.take([limit], now=0.0)[1] == 0.0
    assert buckets.take([limit], now=6.0)[1] == pytest.approx(4.0)
    assert buckets.take([limit], now=10.0)[1] == 0.0
