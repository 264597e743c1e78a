"""Running the app under uvicorn with a graceful shutdown, in one process or several.

On SIGTERM uvicorn stops accepting and lets in-flight requests finish; before that we close
every live WebSocket with 1001 (going away) so dashboards reconnect to the other instance.

With ``workers > 1`` (PostgreSQL only: the live feed crosses processes through LISTEN/NOTIFY)
uvicorn's supervisor starts that many processes on one socket, each building the app from the
factory; Prometheus counters then live in files under ``PROMETHEUS_MULTIPROC_DIR`` and every
scrape, whichever worker answers it, sums all of them (``main.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
import uvicorn.supervisors.multiprocess as uvicorn_multiprocess
from fastapi import FastAPI

from app.central.core.state import AppState
from app.central.onewrite import OneWriteHttpProtocol

APP_FACTORY = "app.central.main:create_app"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _parking_state(app: Any) -> AppState | None:
    """The AppState of the FastAPI app inside uvicorn's middleware wrappers."""
    for _ in range(20):
        state = getattr(getattr(app, "state", None), "parking", None)
        if isinstance(state, AppState):
            return state
        app = getattr(app, "app", None)
        if app is None:
            break
    return None


@dataclass(frozen=True)
class TLSFiles:
    """Central's HTTPS: its certificate and key, and the CA whose client certificates it
    requires (None: any client)."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None


class GracefulServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        app: FastAPI | None = None,
        before_shutdown: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self._parking_app = app
        self._before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._before_shutdown is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._before_shutdown)
        app = self._parking_app or getattr(self.config, "loaded_app", None)
        state = _parking_state(app)
        if state is not None:
            state.command_waiters.close()  # lanes' open polls answer at once
            with contextlib.suppress(Exception):
                await state.hub.close_all(1001)
        await super().shutdown(sockets)


class _GracefulProcess(uvicorn_multiprocess.Process):
    """A uvicorn worker process whose server is a ``GracefulServer``."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = GracefulServer(self.config)
        return self._server


def serve(
    app: FastAPI | None,
    *,
    host: str,
    port: int,
    ws_ping_interval_s: float,
    workers: int = 1,
    trusted_proxies: str = "",
    tls: TLSFiles | None = None,
    before_shutdown: Callable[[], None] | None = None,
) -> None:
    """Serve ``app`` in this process, or (``workers > 1``, ``app`` None) that many worker
    processes each running ``create_app()`` with the same settings from the environment.
    ``tls``: HTTPS with that certificate; with a client CA, only clients showing a certificate
    it signed get an answer (the load balancers and Prometheus, in the cluster)."""
    config = uvicorn.Config(
        app if workers == 1 and app is not None else APP_FACTORY,
        factory=workers > 1 or app is None,
        workers=workers,
        host=host,
        port=port,
        log_config=None,  # our JSON logging is already configured
        # X-Forwarded-For is believed from the load balancers only (never from anyone who can
        # reach the port, and not from this host's other processes unless listed).
        proxy_headers=bool(trusted_proxies.strip()),
        forwarded_allow_ips=trusted_proxies.strip() or None,
        ws_ping_interval=ws_ping_interval_s,
        ws_ping_timeout=ws_ping_interval_s,
        timeout_graceful_shutdown=20,
        # A worker answers the supervisor's health pings only once it has imported the app;
        # on a busy machine that takes longer than uvicorn's 5 s, and it would be killed and
        # restarted forever.
        timeout_worker_healthcheck=60,
        server_header=False,
        # a response's header and body in one write (app/central/onewrite.py)
        http=OneWriteHttpProtocol,
        ssl_certfile=tls.cert_file if tls else None,
        ssl_keyfile=tls.key_file if tls else None,
        ssl_ca_certs=tls.client_ca_file if tls else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if tls and tls.client_ca_file else ssl.CERT_NONE,
    )
    if workers == 1:
        GracefulServer(config, app, before_shutdown).run()
        return
    metrics_dir = tempfile.mkdtemp(prefix="parking-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir  # read by each worker as it imports prometheus
    # uvicorn's supervisor makes its worker processes from this module-level name.
    uvicorn_multiprocess.Process = _GracefulProcess  # type: ignore[misc]
    try:
        sock = config.bind_socket()
        uvicorn_multiprocess.Multiprocess(config, sockets=[sock]).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
