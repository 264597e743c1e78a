"""The lot's rules (sessions/rules.py), as properties over random stays, payments and lists:
the barrier never opens for an unpaid fee, a payment within the grace period always lets the
vehicle out, and what is due is never negative nor more than the fee."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.central.sessions import rules
from app.central.sessions.rules import LotRules, Standing
from app.central.tariffs.models import Tariff

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
LOTS = st.builds(
    LotRules,
    capacity=st.integers(0, 1000),
    exit_grace_minutes=st.integers(0, 120),
    lost_ticket_fee=st.integers(0, 500_000),
    max_stay_hours=st.integers(0, 24 * 30),
)
TARIFFS = st.builds(
    Tariff,
    lot_id=st.just("lot"),
    vehicle_type=st.just("car"),
    free_minutes=st.integers(0, 120),
    hourly_rate=st.integers(0, 100_000),
    daily_cap=st.integers(0, 1_000_000),
    overnight_fee=st.integers(0, 100_000),
)
MINUTES = st.integers(0, 60 * 24 * 10)


@given(fee=st.integers(0, 10**7), paid=st.integers(0, 10**7), lot=LOTS,
       paid_after=MINUTES, exit_after=MINUTES)  # fmt: skip
def test_due_is_between_zero_and_the_fee_and_zero_within_grace(
    fee: int, paid: int, lot: LotRules, paid_after: int, exit_after: int
) -> None:
    paid_at = T0 + timedelta(minutes=paid_after) if paid else None
    at = T0 + timedelta(minutes=paid_after + exit_after)
    due = rules.amount_due(fee, paid_amount=paid, paid_at=paid_at, at=at, lot=lot)
    assert 0 <= due <= fee
    if paid and exit_after <= lot.exit_grace_minutes:
        assert due == 0  # paid ahead and leaving in time: no stop
    if not paid:
        assert due == fee  # nothing paid: the whole fee, so a fee > 0 always holds the barrier
    if paid >= fee:
        assert due == 0


@given(tariff=TARIFFS, stay=MINUTES, allow=st.booleans(), sub=st.booleans())
def test_listed_and_subscribed_vehicles_pay_nothing_others_the_tariff(
    tariff: Tariff, stay: int, allow: bool, sub: bool
) -> None:
    standing = Standing(
        lists=[("allow", None, None)] if allow else [],
        subs=[("lot", T0 - timedelta(days=1), T0 + timedelta(days=1))] if sub else [],
    )
    exited = T0 + timedelta(minutes=stay)
    fee = rules.exit_fee(standing, tariff, lot_id="lot", entered_at=T0, exited_at=exited, tz="UTC")
    if allow or sub or stay <= tariff.free_minutes:
        assert fee.total == 0
    else:
        assert fee.total >= 0
        assert fee.rule == "tariff"


@given(tariff=TARIFFS, stay=MINUTES)
def test_a_denied_vehicle_is_not_exempt_even_if_allow_listed(tariff: Tariff, stay: int) -> None:
    standing = Standing(lists=[("allow", None, None), ("deny", "lot", None)])
    assert standing.listed(lot_id="lot", at=T0) == "deny"
    fee = rules.exit_fee(
        standing, tariff, lot_id="lot", entered_at=T0, exited_at=T0 + timedelta(minutes=stay),
        tz="UTC",
    )  # fmt: skip
    plain = rules.exit_fee(
        Standing(), tariff, lot_id="lot", entered_at=T0, exited_at=T0 + timedelta(minutes=stay),
        tz="UTC",
    )  # fmt: skip
    assert fee == plain


@given(lot=LOTS, stay=MINUTES, tariff=TARIFFS)
def test_a_lost_ticket_pays_at_least_the_lots_fee_and_at_least_the_stay(
    lot: LotRules, stay: int, tariff: Tariff
) -> None:
    fee = rules.exit_fee(
        Standing(), tariff, lot_id="lot", entered_at=T0, exited_at=T0 + timedelta(minutes=stay),
        tz="UTC",
    )  # fmt: skip
    charged = rules.lost_ticket_fee(fee, lot)
    assert charged >= lot.lost_ticket_fee
    assert charged >= fee.total


@given(capacity=st.integers(0, 10_000), counted=st.integers(0, 10_000))
def test_room_means_strictly_fewer_open_sessions_than_places(capacity: int, counted: int) -> None:
    assert rules.has_room(capacity=capacity, counted=counted) == (counted < capacity)


@given(lot=LOTS, hours=st.integers(0, 24 * 60))
def test_overstay_only_past_the_limit_and_never_without_one(lot: LotRules, hours: int) -> None:
    now = T0 + timedelta(hours=hours, seconds=1)
    flagged = rules.overstayed(entered_at=T0, now=now, lot=lot)
    assert flagged == (lot.max_stay_hours > 0 and hours >= lot.max_stay_hours)
