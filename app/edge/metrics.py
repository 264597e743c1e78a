"""Local Prometheus metrics (``/metrics``): queue depth, send latency, failures, breaker state.

Everything lives on one ``CollectorRegistry`` owned by ``EdgeMetrics``, never the global one, so
tests and several agents in one process (``simulate``) do not collide.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class EdgeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events_captured = Counter(
            "parking_edge_events_captured", "Events made from sightings", ["camera"], registry=r
        )
        self.events_refused = Counter(
            "parking_edge_events_refused",
            "Events refused because the outbox rows fill its byte bound or the disk",
            ["camera"],
            registry=r,
        )
        self.events_delivered = Counter(
            "parking_edge_events_delivered",
            "Events acknowledged by central",
            ["camera"],
            registry=r,
        )
        self.events_dead_lettered = Counter(
            "parking_edge_events_dead_lettered",
            "Events central refused permanently, moved to dead letters",
            ["camera"],
            registry=r,
        )
        self.send_failures = Counter(
            "parking_edge_send_failures",
            "Failed sends to central by kind (transport, http_5xx, http_429, http_4xx, ...)",
            ["kind"],
            registry=r,
        )
        self.send_reconnects = Counter(
            "parking_edge_send_reconnects",
            "Calls sent again on a fresh connection (the old one died, or a connect timed out"
            " while the VIP moved) before the uploader saw a failure",
            ["error"],
            registry=r,
        )
        self.send_latency = Histogram(
            "parking_edge_send_latency_seconds",
            "Time of one POST to central",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
            registry=r,
        )
        self.breaker_state = Gauge(
            "parking_edge_breaker_state",
            "Circuit breaker: 0 closed, 1 half-open, 2 open",
            registry=r,
        )
        self.breaker_transitions = Counter(
            "parking_edge_breaker_transitions", "Breaker state changes", ["to"], registry=r
        )
        self.gate_actions = Counter(
            "parking_edge_gate_actions",
            "Gate actions by action and whether the offline policy decided",
            ["action", "offline"],
            registry=r,
        )
        self.commands = Counter(
            "parking_edge_commands",
            "Lane commands from central by outcome (pulsed, expired, failed); each id once",
            ["camera", "outcome"],
            registry=r,
        )
        self.command_reoffers = Counter(
            "parking_edge_command_reoffers",
            "Commands central offered again that the journal already had (not executed again)",
            ["camera"],
            registry=r,
        )
        self.command_latency = Histogram(
            "parking_edge_command_latency_seconds",
            "From a command's arrival on the edge to its relay pulse",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=r,
        )
        self.command_poll_errors = Counter(
            "parking_edge_command_poll_errors",
            "Failed command polls by kind (transport, http_404, http_5xx, ...)",
            ["camera", "kind"],
            registry=r,
        )
        self.command_acks = Counter(
            "parking_edge_command_acks",
            "Command acks sent to central by result (ok, failed: retried, dropped: refused)",
            ["camera", "result"],
            registry=r,
        )
        self.command_channel_up = Gauge(
            "parking_edge_command_channel_up",
            "1 while the lane's last command poll succeeded, else 0",
            ["camera"],
            registry=r,
        )
        self.reads_rejected = Counter(
            "parking_edge_reads_rejected", "Plate reads below confidence or grammar", registry=r
        )
        self.frames = Counter("parking_edge_frames", "Frames processed", registry=r)
        self.inference_seconds = Histogram(
            "parking_edge_inference_seconds",
            "Plate reading time per frame",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1),
            registry=r,
        )
        self.outbox_depth = Gauge("parking_edge_outbox_depth", "Undelivered events", registry=r)
        self.outbox_bytes = Gauge("parking_edge_outbox_bytes", "Outbox bytes in use", registry=r)
        self.outbox_oldest_age = Gauge(
            "parking_edge_outbox_oldest_age_seconds",
            "Age of the oldest undelivered event",
            registry=r,
        )
        self.dead_letters = Gauge("parking_edge_dead_letters", "Dead letters held", registry=r)
        self.clock_synchronised = Gauge(
            "parking_edge_clock_synchronised",
            "1 while the wall clock may stamp events ([clock] require_sync), else 0",
            registry=r,
        )
        self.sightings_held = Gauge(
            "parking_edge_sightings_held",
            "Sightings held in memory until the clock is synchronised",
            registry=r,
        )
        self.sightings_dropped = Counter(
            "parking_edge_sightings_dropped",
            "Held sightings dropped before the clock was synchronised (bound, or stop)",
            ["camera"],
            registry=r,
        )

    def bind_outbox(self, stats: Callable[[], Any]) -> None:
        """Read the outbox gauges from ``stats()`` (an ``OutboxStats``) at scrape time."""
        self.outbox_depth.set_function(lambda: float(stats().depth))
        self.outbox_bytes.set_function(lambda: float(stats().bytes))
        self.outbox_oldest_age.set_function(lambda: float(stats().oldest_age_s))
        self.dead_letters.set_function(lambda: float(stats().dead_letters))

    def bind_clock(self, synchronised: Callable[[], bool], held: Callable[[], int]) -> None:
        """Read the clock gauges at scrape time (the hold's last look, not a new one)."""
        self.clock_synchronised.set_function(lambda: 1.0 if synchronised() else 0.0)
        self.sightings_held.set_function(lambda: float(held()))


class MetricsServer:
    """``/metrics`` on ``host:port`` in a daemon thread; ``port=0`` picks a free one."""

    def __init__(self, metrics: EdgeMetrics, host: str, port: int) -> None:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
        self._server = server
        self._thread: threading.Thread = thread
        self.port: int = int(server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
