"""Prometheus metrics. Request metrics are counted here; database-backed gauges are read
from the database at scrape time so every instance reports the same truth."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator
from typing import Any

import fastapi.routing
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import select
from starlette.types import Scope

from app.central.cameras.models import Camera
from app.central.clock import utcnow
from app.central.core.lots import LotOccupancy
from app.central.db import Database
from app.contract import API_PREFIX

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "parking_http_requests_total",
    "HTTP requests by route, method and status",
    ["route", "method", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "parking_http_request_duration_seconds",
    "HTTP request latency by route and method",
    ["route", "method"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EVENTS_INGESTED = Counter(
    "parking_events_ingested_total",
    "Plate events by result (accepted, duplicate)",
    ["result"],
    registry=REGISTRY,
)
RETENTION_DELETED = Counter(
    "parking_retention_deleted_total",
    "Rows the retention duty deleted, by kind (snapshots, events, sessions, payments, ...)",
    ["kind"],
    registry=REGISTRY,
)
RETENTION_ANONYMISED = Counter(
    "parking_retention_anonymised_total",
    "Rows the retention duty anonymised instead (sessions kept for their payments), by kind",
    ["kind"],
    registry=REGISTRY,
)
DUTIES_LEADER = Gauge(
    "parking_duties_leader",
    "1 on the central instance that runs the duties (command expiry, offline cameras,"
    " overstays, retention), 0 on the others",
    registry=REGISTRY,
)
DUTIES_LAST_RUN = Gauge(
    "parking_duties_last_run_timestamp_seconds",
    "Unix time this instance last finished a round of the duties (0: never)",
    registry=REGISTRY,
)
DUTIES_TAKEOVERS = Counter(
    "parking_duties_takeovers_total",
    "Times this instance ended a silent leader's database session to take the duties over",
    registry=REGISTRY,
)
DB_UNAVAILABLE = Counter(
    "parking_db_unavailable_total",
    "Requests answered 503 because the database was unreachable",
    registry=REGISTRY,
)


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/api/v1/sessions/{session_id}``), never the raw
    path, so label cardinality stays bounded. The router records the route in the scope."""
    route = scope.get("route")
    if route is None:
        return "unmatched"
    path = _full_templates(scope.get("app"), route).get(id(route))
    path = path or getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else "unmatched"


_TEMPLATES: weakref.WeakKeyDictionary[Any, dict[int, str]] = weakref.WeakKeyDictionary()


def _full_templates(app: Any, route: Any) -> dict[int, str]:
    """Route object id -> its whole path template in ``app``. A route declared on a feature
    router knows only its own part (``/sessions/{session_id}``): ``api.py`` includes the
    routers under ``API_PREFIX``. FastAPI >= 0.16x includes routers lazily and puts the route
    as declared in the scope; ``iter_route_contexts`` gives the path as included. Older
    FastAPI copies routes on inclusion, so their own path is already whole."""
    expand = getattr(fastapi.routing, "iter_route_contexts", None)
    if app is None or expand is None or not hasattr(app, "routes"):
        return {}
    known = _TEMPLATES.get(app)
    if known is None or id(route) not in known:  # first request, or routes changed since
        known = {}
        for context in expand(app.routes):
            template = context.path_format or context.path
            if template:
                known.setdefault(id(context.original_route), template)
        _TEMPLATES[app] = known
    return known


# Routes that hold a request open by design (a lane's command long poll waits up to 30 s):
# counted, but not response times, or every latency percentile and ParkingSlowResponses
# would measure how long lanes wait for commands.
HELD_OPEN_ROUTES = frozenset({f"{API_PREFIX}/lanes/{{camera_id}}/commands"})


def observe_request(scope: Scope, status: int, seconds: float) -> None:
    """Count one answered HTTP request by route template, method and status, and observe its
    latency unless its route is held open by design (``frame.HttpFrame`` calls it)."""
    route = route_template(scope)
    key = (route, scope.get("method", ""), status)
    children = _REQUEST_CHILDREN.get(key)
    if children is None:  # once per route, method and status: labels() locks and checks
        children = _REQUEST_CHILDREN[key] = (
            REQUESTS.labels(route, key[1], str(status)),
            None if route in HELD_OPEN_ROUTES else LATENCY.labels(route, key[1]),
        )
    children[0].inc()
    if children[1] is not None:
        children[1].observe(seconds)


_REQUEST_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


class DatabaseCollector(Collector):
    """Open sessions, cameras online, seconds since each camera's heartbeat, pool figures."""

    def __init__(self, db: Database, *, offline_after_s: int) -> None:
        self._db = db
        self._offline_after_s = offline_after_s

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # unchecked collector: registering it must not query the database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self._db.engine.pool
        pool_gauge = GaugeMetricFamily(
            "parking_db_pool_connections", "Database pool connections by state", labels=["state"]
        )
        for state, getter in (
            ("checked_out", "checkedout"),
            ("idle", "checkedin"),
            ("overflow", "overflow"),
            ("size", "size"),
        ):
            value = getattr(pool, getter, None)
            if callable(value):
                pool_gauge.add_metric([state], float(value()))
        yield pool_gauge

        up = GaugeMetricFamily("parking_db_up", "1 when the database answered this scrape")
        try:
            with self._db.read_session() as db:
                open_rows = db.execute(
                    select(LotOccupancy.lot_id, LotOccupancy.open_sessions)
                ).all()
                cameras = db.execute(
                    select(Camera.id, Camera.lot_id, Camera.last_heartbeat_at)
                ).all()
        except Exception as error:
            log.warning("metrics: database unavailable: %s", error)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up

        sessions = GaugeMetricFamily(
            "parking_open_sessions", "Open parking sessions per lot", labels=["lot"]
        )
        for lot_id, count in open_rows:
            sessions.add_metric([lot_id], float(count))
        yield sessions

        now = utcnow()
        online = 0
        since = GaugeMetricFamily(
            "parking_camera_seconds_since_heartbeat",
            "Seconds since the camera's last heartbeat (absent before the first)",
            labels=["camera", "lot"],
        )
        for camera_id, lot_id, last in cameras:
            if last is None:
                continue
            age = (now - last).total_seconds()
            since.add_metric([camera_id, lot_id], age)
            online += age <= self._offline_after_s
        yield since
        total = GaugeMetricFamily("parking_cameras", "Cameras by status", labels=["status"])
        total.add_metric(["online"], float(online))
        total.add_metric(["offline"], float(len(cameras) - online))
        yield total
