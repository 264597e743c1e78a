"""The lab's operator login (support/lab_tier.OperatorLogin) renews its token before central's
30 minutes are over, as a person at the dashboard would, and rides out a failed login while its
token is still good: the 2-hour soak of 2026-12-06 lost its guard, cashier and live feed when
one token, taken at the start, expired."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support.lab_tier import OperatorLogin


class FakeTier:
    url = "https://parking.lab"

    def __init__(self) -> None:
        self.users: list[str] = []

    def admin(self, *args: str, stdin: str = "") -> str:
        self.users.append(args[1])
        return ""


class Central:
    """Central's token endpoint: a new token each login, lasting ``life_s``; ``down`` refuses."""

    def __init__(self, life_s: float) -> None:
        self.life_s, self.logins, self.down = life_s, 0, False

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        request = httpx.Request("POST", url)
        if self.down:
            raise httpx.ConnectError("the VIP is away", request=request)
        self.logins += 1
        body = {"access_token": f"t{self.logins}", "expires_in": self.life_s}
        return httpx.Response(200, json=body, request=request)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr("support.lab_tier.time.monotonic", lambda: now[0])
    # no lab here: the lab CA's file does not exist on a fresh clone
    monkeypatch.setattr("support.lab_tier.ca_context", lambda: True)
    return now


@pytest.fixture
def central(monkeypatch: pytest.MonkeyPatch, clock: list[float]) -> Central:
    """Central's token endpoint (tokens of 30 minutes) in place of ``httpx.post``."""
    fake = Central(1800)
    monkeypatch.setattr(httpx, "post", fake.post)
    return fake


def test_the_token_is_renewed_at_half_its_life_and_put_on_every_request(
    central: Central, clock: list[float]
) -> None:
    login = OperatorLogin(FakeTier(), "r1")  # type: ignore[arg-type]
    assert login.token() == "t1"
    clock[0] += 899
    assert login.token() == "t1"
    clock[0] += 2
    assert login.token() == "t2", "renewed once half the life is over"
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(202)

    transport = httpx.MockTransport(answer)
    with httpx.Client(transport=transport, auth=login) as client:
        client.post("https://parking.lab/api/v1/cameras/x/open")
        clock[0] += 3600
        client.post("https://parking.lab/api/v1/cameras/x/open")
    assert seen == ["Bearer t2", "Bearer t3"]


def test_a_failed_login_keeps_a_good_token_and_fails_once_it_expired(
    central: Central, clock: list[float]
) -> None:
    login = OperatorLogin(FakeTier(), "r2")  # type: ignore[arg-type]
    assert login.token() == "t1"
    central.down = True
    clock[0] += 1200  # past the renewal, before the expiry: the old token still serves
    assert login.token() == "t1"
    clock[0] += 700  # expired and no login possible
    with pytest.raises(httpx.ConnectError):
        login.token()
    central.down = False
    assert login.token() == "t2"
