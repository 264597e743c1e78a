"""The lot's rules, once: who stands on which list, what a stay costs, what is still due, whether
one more vehicle fits, when a stay is too long.

Pure functions of plain values; no database, no clock. The ingest ledger (``ledger.py``, Core
statements, the hot path) and the operators' services (``service.py``, ``payments/``) read the
facts their own way and both decide with these functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.central.tariffs.models import Tariff
from app.central.tariffs.service import Fee, compute_fee

# A second entry read of a plate already inside within this window is the same arrival.
SAME_ARRIVAL = timedelta(minutes=2)

NO_FEE_ALLOW = Fee(0, 0, 0, 0, 0, "allow_listed")
NO_FEE_SUBSCRIBER = Fee(0, 0, 0, 0, 0, "subscriber")


@dataclass
class Standing:
    """List entries and subscriptions of one plate (all lots), as read from the database."""

    lists: list[tuple[str, str | None, datetime | None]] = field(default_factory=list)
    subs: list[tuple[str, datetime, datetime]] = field(default_factory=list)

    def listed(self, *, lot_id: str, at: datetime) -> str | None:
        """``deny`` wins over ``allow``; an entry for no lot counts for every lot."""
        kinds = {
            kind
            for kind, lot, expires in self.lists
            if (lot is None or lot == lot_id) and (expires is None or expires > at)
        }
        return "deny" if "deny" in kinds else "allow" if "allow" in kinds else None

    def subscriber(self, *, lot_id: str, at: datetime) -> bool:
        return any(lot == lot_id and start <= at < until for lot, start, until in self.subs)


@dataclass(frozen=True)
class LotRules:
    capacity: int
    exit_grace_minutes: int = 15
    lost_ticket_fee: int = 0
    max_stay_hours: int = 72


def has_room(*, capacity: int, counted: int) -> bool:
    """Whether one more vehicle fits when ``counted`` sessions are open (held exits count)."""
    return counted < capacity


def exit_fee(
    standing: Standing,
    tariff: Tariff | None,
    *,
    lot_id: str,
    entered_at: datetime,
    exited_at: datetime,
    tz: str,
) -> Fee:
    """Allow-listed at exit or subscribed at entry pay 0; everyone else pays the tariff."""
    if standing.listed(lot_id=lot_id, at=exited_at) == "allow":
        return NO_FEE_ALLOW
    if standing.subscriber(lot_id=lot_id, at=entered_at):
        return NO_FEE_SUBSCRIBER
    return compute_fee(tariff, entered_at=entered_at, exited_at=exited_at, tz=tz)


def lost_ticket_fee(fee: Fee, lot: LotRules) -> int:
    """A vehicle without its ticket pays the lot's lost-ticket fee, or its stay if that is more."""
    return max(fee.total, lot.lost_ticket_fee)


def paid_in_grace(
    *, paid_amount: int, paid_at: datetime | None, at: datetime, lot: LotRules
) -> bool:
    """Paid before the exit (pay station, desk) and leaving within the lot's grace period."""
    return (
        paid_amount > 0
        and paid_at is not None
        and at - paid_at <= timedelta(minutes=lot.exit_grace_minutes)
    )


def amount_due(
    fee_total: int, *, paid_amount: int, paid_at: datetime | None, at: datetime, lot: LotRules
) -> int:
    """What must still be paid at ``at``: nothing within the grace period after a payment,
    otherwise the fee less what was paid."""
    if paid_in_grace(paid_amount=paid_amount, paid_at=paid_at, at=at, lot=lot):
        return 0
    return max(0, fee_total - paid_amount)


def overstayed(*, entered_at: datetime, now: datetime, lot: LotRules) -> bool:
    return lot.max_stay_hours > 0 and now - entered_at > timedelta(hours=lot.max_stay_hours)
