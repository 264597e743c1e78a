"""Every table, imported in one place for Alembic and for ``Base.metadata``."""

from app.central.audit.models import AuditEntry
from app.central.cameras.models import Camera
from app.central.commands.models import LaneCommand
from app.central.core.events import PlateEvent, Snapshot
from app.central.core.lots import Lot, LotOccupancy
from app.central.edgesync.models import OfflineGateDecision
from app.central.lists.models import ListEntry, Subscription
from app.central.operators.models import Operator
from app.central.payments.models import Payment
from app.central.sessions.models import Anomaly, ParkingSession
from app.central.tariffs.models import Tariff

__all__ = [
    "Anomaly",
    "AuditEntry",
    "Camera",
    "LaneCommand",
    "ListEntry",
    "Lot",
    "LotOccupancy",
    "OfflineGateDecision",
    "Operator",
    "ParkingSession",
    "Payment",
    "PlateEvent",
    "Snapshot",
    "Subscription",
    "Tariff",
]
